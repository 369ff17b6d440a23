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
    /// Where step t's kept columns start in a gathered copy (B × keptCount[t] each, step after step).
    private(set) var gatherOffset: [Int] = []

    public init(width: Int) throws(SDLSTMError) {
        self.width = width
        values = try Buffer(0)
        keptIndex = try IndexBuffer(0)
    }

    public var isActive: Bool { hasExplicit || setting.isActive }

    /// Whether the masks were given explicitly (setExplicit) rather than drawn.
    public var isExplicit: Bool { hasExplicit }

    /// The share of units a drawn mask keeps.
    public var keep: Float { 1 - setting.p }

    /// Reserves room for a window; allocation happens only when the window grows.
    public func prepare(steps: Int, batch: Int) throws(SDLSTMError) {
        let need = steps * batch * width
        if values.count < need { values = try Buffer(need) }

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
        if setting.policy.isStructured { buildColumns(scale: scale) }
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
}
