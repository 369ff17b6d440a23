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
public final class DropoutMask {
    public let width: Int
    public var setting = DropoutSetting()
    /// Tests freeze the masks to evaluate the same function repeatedly (finite differences).
    public var frozen = false
    private(set) var steps = 0, batch = 0
    private(set) var stepStride = 0, rowStride = 0
    private var values: Buffer
    /// Dropped units per step, for structured policies (what the GEMMs may skip).
    private(set) var droppedPerStep: [Int] = []
    private var hasExplicit = false

    init(width: Int) throws(SDLSTMError) {
        self.width = width
        self.values = try Buffer(0)
    }

    public var isActive: Bool { hasExplicit || setting.isActive }

    /// Reserves room for a window; allocation happens only when the window grows.
    func prepare(steps: Int, batch: Int) throws(SDLSTMError) {
        let need = steps * batch * width
        if values.count < need { values = try Buffer(need) }
        if droppedPerStep.count < steps { droppedPerStep = [Int](repeating: 0, count: steps) }
    }

    /// Draws this window's masks unless they are frozen or were given explicitly.
    func sample(steps: Int, batch: Int, rng: inout Random) {
        if hasExplicit || (frozen && self.steps == steps && self.batch == batch) { return }
        self.steps = steps
        self.batch = batch
        guard setting.isActive else { return }
        let p = setting.p, scale = 1 / (1 - p)
        let perStep = setting.policy == .standard || setting.policy == .structured
        let perSample = setting.policy == .standard || setting.policy == .variational
        let nSteps = perStep ? steps : 1
        let nRows = perSample ? batch : 1
        rowStride = perSample ? width : 0
        stepStride = perStep ? nRows * width : 0
        for i in 0..<(nSteps * nRows * width) {
            values[i] = rng.uniform() < p ? 0 : scale
        }
        if setting.policy.isStructured {
            for t in 0..<steps {
                let m = values.ptr + (perStep ? t * width : 0)
                var dropped = 0
                for d in 0..<width where m[d] == 0 { dropped += 1 }
                droppedPerStep[t] = dropped
            }
        }
    }

    /// Replaces the drawn masks by given multipliers, T × B × width (tests, reference comparisons).
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
    }

    @inline(__always)
    func multipliers(step t: Int, sample b: Int) -> UnsafePointer<Float> {
        UnsafePointer(values.ptr + t * stepStride + b * rowStride)
    }

    /// dst[b][d] = src[b][d] * m(t, b, d) for the B rows of step t; src and dst may alias.
    func apply(step t: Int, _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>) {
        for b in 0..<batch {
            let m = multipliers(step: t, sample: b), s = src + b * width, o = dst + b * width
            for d in 0..<width { o[d] = s[d] * m[d] }
        }
    }

    /// Multiply-adds skipped by a GEMM with n outputs consuming this site, per pass, over the window.
    func skippableMACs(outputs n: Int, steps range: Range<Int>) -> Int {
        guard setting.policy.isStructured, setting.isActive, !hasExplicit else { return 0 }
        var dropped = 0
        for t in range { dropped += droppedPerStep[t] }
        return dropped * batch * n
    }
}
