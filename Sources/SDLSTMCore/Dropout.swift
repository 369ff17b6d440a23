import CKernels

/// Dropout policies (the paper's 2 × 2 framework) and the masks they draw.

public enum DropoutPolicy: Int32, Sendable, CaseIterable {
    case none = 0
    case variational = 1      // case I: per sample, fixed over the window
    case standard = 2         // case II: per sample, new every step
    case structured = 3       // case III: shared by the batch, new every step
    case structuredFixed = 4  // case IV: shared by the batch, fixed over the window

    /// Batch-uniform policies zero whole columns, which is what lets the GEMMs skip work.
    public var isStructured: Bool { self == .structured || self == .structuredFixed }
}

public enum DropoutSite: Int32, Sendable, CaseIterable {
    case input = 0      // embedding output into the first layer
    case between = 1    // a layer's output into the next one
    case output = 2     // top layer output into the output projection
    case recurrent = 3  // H(t-1) into W_hh
}

public struct DropoutSetting: Equatable, Sendable {
    public var policy: DropoutPolicy
    public var p: Float
    public init(policy: DropoutPolicy = .none, p: Float = 0) { self.policy = policy; self.p = p }
    public var isActive: Bool { policy != .none && p > 0 }
}

/// The multipliers (0 or 1/(1-p)) of one site over one window of T steps × B samples × `width` units.
///
/// Every policy is stored at its natural size and read through two strides, so a per-sample,
/// per-step mask is T × B × width while a structured fixed one is a single row of width:
/// multiplier(t, b, d) = values[t * stepStride + b * rowStride + d].
///
/// A batch-uniform mask is also kept in column form — the kept units of each step and their one
/// scale — which is what lets the consuming GEMM skip the dropped units (StructuredGEMM.swift).
public final class DropoutMask {
    public let width: Int
    public var setting = DropoutSetting()
    /// Tests freeze the masks to evaluate the same function repeatedly (finite differences).
    public var frozen = false
    private(set) var steps = 0, batch = 0
    private(set) var stepStride = 0, rowStride = 0
    private var values: Buffer
    private var hasExplicit = false

    /// Column form: true when every step's mask is shared by the batch.
    public private(set) var columnar = false
    private(set) var scale: Float = 1
    /// Kept units of step t: keptIndex[t * width ..< t * width + keptCount[t]], ascending.
    private(set) var keptIndex: IndexBuffer
    private(set) var keptCount: [Int] = []
    /// Workspaces of the consuming GEMM (StructuredGEMM.swift): the kept columns of its input,
    /// scaled, step after step (B × keptCount[t] at gatherOffset[t]), and their gradient.
    var gathered: Buffer
    var gatheredGrad: Buffer
    var gatherOffset: [Int] = []
    /// Per-thread packed tiles of the weight (StructuredGEMM.swift).
    var packs: [Buffer] = []
    /// The masked copy of the input of a dense projection, and what the last `project` used
    /// (MaskedProjection.swift).
    var masked: Buffer
    var projectedInput: UnsafePointer<Float>?
    var projectedRows = 0
    var projectedStructured = false

    public init(width: Int) throws(SDLSTMError) {
        self.width = width
        values = try Buffer(0)
        keptIndex = try IndexBuffer(0)
        gathered = try Buffer(0)
        gatheredGrad = try Buffer(0)
        masked = try Buffer(0)
    }

    public var isActive: Bool { hasExplicit || setting.isActive }

    /// Whether the next window's masks can have the column form (consumers size workspaces by it).
    public var mayBeColumnar: Bool { hasExplicit || setting.policy.isStructured }

    /// Reserves room for a window of a consumer running on `threads` threads; allocation happens
    /// only when the window grows.
    public func prepare(steps: Int, batch: Int, threads: Int = 1) throws(SDLSTMError) {
        let perThread = DropoutMask.packCount(rows: width)
        if packs.count < threads || packs.first.map({ $0.count < perThread }) ?? true {
            var fresh: [Buffer] = []
            for _ in 0..<threads { fresh.append(try Buffer(perThread)) }
            packs = fresh
        }
        let need = steps * batch * width
        if values.count < need {
            values = try Buffer(need)
            gathered = try Buffer(need)
            gatheredGrad = try Buffer(need)
            masked = try Buffer(need)
        }

        if keptIndex.count < steps * width { keptIndex = try IndexBuffer(steps * width) }
        if keptCount.count < steps {
            keptCount = [Int](repeating: 0, count: steps)
            gatherOffset = [Int](repeating: 0, count: steps + 1)
        }
    }

    /// Draws this window's masks unless they are frozen or were given explicitly. A per-sample mask
    /// is drawn for the whole global batch of `shard`, each step's rows in order, and keeps this
    /// batch's rows: sample i of the global batch gets the same mask however the batch is split, and
    /// the stream advances by as much on every replica.
    public func sample(steps: Int, batch: Int, rng: inout Random, shard: BatchShard = BatchShard()) {
        if hasExplicit || (frozen && self.steps == steps && self.batch == batch) { return }
        self.steps = steps
        self.batch = batch
        columnar = false
        guard setting.isActive else { return }
        let p = setting.p, scale = 1 / (1 - p)
        let perStep = setting.policy == .standard || setting.policy == .structured
        let perSample = setting.policy == .standard || setting.policy == .variational
        let nSteps = perStep ? steps : 1
        let nRows = perSample ? batch : 1
        rowStride = perSample ? width : 0
        stepStride = perStep ? nRows * width : 0
        let (before, after) = perSample ? shard.margins(batch: batch) : (0, 0)
        var i = 0
        for _ in 0..<nSteps {
            rng.discard(before * width)
            for _ in 0..<(nRows * width) {
                values[i] = rng.uniform() < p ? 0 : scale
                i += 1
            }
            rng.discard(after * width)
        }
        if setting.policy.isStructured && Self.kernelsPay(keep: 1 - p) { buildColumns(scale: scale) }
    }

    /// Whether a structured mask that keeps this share of its units takes the kept-share kernels
    /// (StructuredGEMM.swift); otherwise it is applied like any other mask and the GEMMs run dense,
    /// at standard dropout's cost. A kept multiply-add of the kernels costs 1/rate of one of
    /// OpenBLAS's, so they pay while keep < rate; the margin covers the gathers and scatters
    /// around them. Explicit masks always take the kernels (tests compare the two paths).
    public static func kernelsPay(keep: Float) -> Bool { keep <= 0.9 * kernelRate(sdk_isa()) }

    /// The lowest rate_vs_dense of the four passes at the PTB shapes (`sdlstm-bench kernels`, each
    /// set against OpenBLAS on its proper core; bench/compare.md). Portable C is the reference
    /// semantics, never the fast path.
    static func kernelRate(_ isa: sdk_isa_id) -> Float {
        switch isa {
        case SDK_ISA_AVX512: return 0.85
        case SDK_ISA_AVX2: return 0.65
        default: return 0
        }
    }

    /// Replaces the drawn masks by given multipliers, T × B × width (tests, reference comparisons).
    /// A batch-uniform mask with one scale gets the column form, as a drawn structured one does.
    public func setExplicit(_ multipliers: [Float], steps: Int, batch: Int) throws(SDLSTMError) {
        guard multipliers.count == steps * batch * width else {
            throw .invalid("explicit mask needs \(steps * batch * width) values, got \(multipliers.count)")
        }
        try prepare(steps: steps, batch: batch)
        for i in 0..<multipliers.count { values[i] = multipliers[i] }
        self.steps = steps
        self.batch = batch
        stepStride = batch * width
        rowStride = width
        hasExplicit = true
        let kept = Set(multipliers.filter { $0 != 0 })
        var uniform = kept.count <= 1
        for t in 0..<steps where uniform {
            for b in 1..<max(batch, 1) where uniform {
                for d in 0..<width where multipliers[(t * batch + b) * width + d] != multipliers[t * batch * width + d] {
                    uniform = false
                }
            }
        }
        columnar = false
        if uniform { buildColumns(scale: kept.first ?? 1) }
    }

    /// Kept-unit lists from the multipliers of sample 0 (the same for every sample).
    private func buildColumns(scale: Float) {
        columnar = true
        self.scale = scale
        var offset = 0
        for t in 0..<steps {
            let m = values.ptr + t * stepStride, list = keptIndex.ptr + t * width
            var k = 0
            for d in 0..<width where m[d] != 0 { list[k] = Int32(d); k += 1 }
            keptCount[t] = k
            gatherOffset[t] = offset
            offset += k * batch
        }
        gatherOffset[steps] = offset
    }

    @inline(__always)
    public func multipliers(step t: Int, sample b: Int) -> UnsafePointer<Float> {
        UnsafePointer(values.ptr + t * stepStride + b * rowStride)
    }

    /// dst[b][d] = src[b][d] * m(t, b, d) for the B rows of step t; src and dst may alias.
    public func apply(step t: Int, _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>) {
        for b in 0..<batch {
            let m = multipliers(step: t, sample: b), s = src + b * width, o = dst + b * width
            for d in 0..<width { o[d] = s[d] * m[d] }
        }
    }

    /// Multiply-adds skipped by a GEMM with n outputs consuming this site, per pass, over the steps.
    func skippableMACs(outputs n: Int, steps range: Range<Int>) -> Int {
        guard columnar && isActive else { return 0 }
        var dropped = 0
        for t in range { dropped += width - keptCount[t] }
        return dropped * batch * n
    }
}
