import CKernels

/// A linear map whose input carries a dropout mask, over a window of T steps × B samples
/// (X time-major, T·B × width; W input-major, width × n; G = ∂loss/∂Y):
///
///     forward          Y += X̃ · W            X̃ = X ⊙ M
///     weight gradient  dW = X̃ᵀ · G
///     backward data    dX = (G · Wᵀ) ⊙ M
///
/// This is the one place that decides how the three GEMMs run (`Path`, once per window, in
/// `begin`): on the kept columns only (StructuredGEMM.swift) when the mask is batch-uniform and the
/// kernels pay for it, on a masked copy of X when the mask is not (or they do not), on X itself
/// without dropout. It owns each path's workspaces, and counts as skipped only the multiply-adds
/// the kept-column path really leaves out. The LSTM layer's input and recurrent products, the
/// output layer of the LM and the translator, and the tagger's tag projection are all this map.
public final class MaskedLinear {
    /// How the window's GEMMs run.
    public enum Path: Sendable {
        case plain        // no dropout: X itself
        case maskedCopy   // X ⊙ M materialised, dense GEMMs (per-sample masks; structured ones the kernels do not pay for)
        case keptColumns  // the kept columns of a batch-uniform mask only (StructuredGEMM.swift)
    }

    /// Whether the kept-column path may be taken.
    public enum Kernels: Sendable {
        case whenTheyPay
        case never  // an n narrower than one kernel panel (the tagger's 9 tags) leaves nothing to skip
    }

    public let mask: DropoutMask
    public let width: Int, outputs: Int
    public let kernels: Kernels
    public private(set) var path = Path.plain
    private(set) var steps = 0, batch = 0

    /// The kept-column path: X̃'s kept columns, scaled, step after step (B × keptCount[t] at
    /// mask.gatherOffset[t]), their gradient, and per-thread packed tiles of the weight gradient.
    var gathered: Buffer
    var gatheredGrad: Buffer
    var packs: [Buffer] = []
    /// The masked-copy path's X ⊙ M.
    private(set) var masked: Buffer
    /// The dense weight gradient's operand: X or its masked copy, whichever the forward pass used.
    private var operand: UnsafePointer<Float>?

    public init(width: Int, outputs: Int, kernels: Kernels = .whenTheyPay) throws(SDLSTMError) {
        self.width = width
        self.outputs = outputs
        self.kernels = kernels
        mask = try DropoutMask(width: width)
        (gathered, gatheredGrad, masked) = (try Buffer(0), try Buffer(0), try Buffer(0))
    }

    /// Reserves room for a window on `threads` threads; allocates only when the window grows.
    public func prepare(steps: Int, batch: Int, threads: Int = 1) throws(SDLSTMError) {
        try mask.prepare(steps: steps, batch: batch)
        let need = steps * batch * width
        if masked.count < need { masked = try Buffer(need) }
        guard kernels == .whenTheyPay else { return }
        if gathered.count < need {
            gathered = try Buffer(need)
            gatheredGrad = try Buffer(need)
        }
        let perThread = Self.packCount(rows: width)
        if packs.count < threads || packs.first.map({ $0.count < perThread }) ?? true {
            var fresh: [Buffer] = []
            for _ in 0..<threads { fresh.append(try Buffer(perThread)) }
            packs = fresh
        }
    }

    /// Starts a window of `steps` × `batch` rows (the mask sampled for it when `dropout`) and
    /// decides its path.
    public func begin(steps: Int, batch: Int, dropout: Bool) {
        (self.steps, self.batch) = (steps, batch)
        guard dropout && mask.isActive else { path = .plain; return }
        let kept = kernels == .whenTheyPay && mask.columnar && (mask.isExplicit || Self.kernelsPay(keep: mask.keep))
        path = kept ? .keptColumns : .maskedCopy
    }

    /// Whether a structured mask that keeps this share of its units takes the kept-column kernels;
    /// otherwise it is applied like any other mask and the GEMMs run dense, at standard dropout's
    /// cost. A kept multiply-add of the kernels costs 1/rate of one of OpenBLAS's, so they pay
    /// while keep < rate; the margin covers the gathers and scatters around them. Explicit masks
    /// always take the kernels (tests compare the two paths).
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

    // MARK: Whole window

    /// Y (row stride n) += X̃ · W over the window. X must stay valid until the backward passes.
    public func forward(_ x: UnsafePointer<Float>, w: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>,
                        pool: ThreadPool?) {
        if path == .keptColumns {
            gather(x, steps: 0..<steps)
            keptForward(w, n: outputs, into: y, ldc: outputs, steps: 0..<steps, pool: pool)
            return
        }
        let a = stepOperand(0, x, through: steps)
        gemm(m: steps * batch, n: outputs, k: width, a: a, lda: width, b: w, ldb: outputs, beta: 1, c: y, ldc: outputs,
             pool: pool)
    }

    /// dW = X̃ᵀ · G over the window (overwritten); G has row stride n.
    public func weightGradient(_ g: UnsafePointer<Float>, into dw: UnsafeMutablePointer<Float>, pool: ThreadPool?) {
        if path == .keptColumns {
            keptWeightGradient(g, n: outputs, ldg: outputs, into: dw, pool: pool)
        } else {
            gemm(transA: true, m: width, n: outputs, k: steps * batch, a: operand!, lda: width, b: g, ldb: outputs,
                 beta: 0, c: dw, ldc: outputs, pool: pool)
        }
    }

    /// dX = (G · Wᵀ) ⊙ M over the window (overwritten); G has row stride n.
    public func backwardData(_ g: UnsafePointer<Float>, w: UnsafePointer<Float>, into dx: UnsafeMutablePointer<Float>,
                             pool: ThreadPool?) {
        if path == .keptColumns {
            keptBackwardData(g, n: outputs, ldg: outputs, w, into: dx, steps: 0..<steps, pool: pool)
            return
        }
        gemm(transB: true, m: steps * batch, n: width, k: outputs, a: g, lda: outputs, b: w, ldb: outputs, beta: 0,
             c: dx, ldc: width, pool: pool)
        for t in 0..<steps { maskGradient(step: t, dx + t * batch * width) }
    }

    // MARK: Step by step
    //
    // For inputs that depend on the previous step's output (a decoder with input feeding, the
    // recurrent product): X, Y, G and dX are whole-window buffers, step t's rows filled in turn.

    /// Step t's operand of the dense paths: row block t of X, or of X ⊙ M (written now) on the
    /// masked-copy path. `through` steps of X from t on are masked in one go.
    public func stepOperand(_ t: Int, _ x: UnsafePointer<Float>, through count: Int = 1) -> UnsafePointer<Float> {
        let block = batch * width
        guard path == .maskedCopy else {
            if t == 0 { operand = x }
            return x + t * block
        }
        for s in t..<(t + count) { mask.apply(step: s, x + s * block, masked.ptr + s * block) }
        if t == 0 { operand = UnsafePointer(masked.ptr) }
        return UnsafePointer(masked.ptr + t * block)
    }

    /// Row block t of `forward`.
    public func forwardStep(_ t: Int, _ x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                            into y: UnsafeMutablePointer<Float>, pool: ThreadPool?) {
        if path == .keptColumns {
            gather(x, steps: t..<(t + 1))
            keptForward(w, n: outputs, into: y, ldc: outputs, steps: t..<(t + 1), pool: pool)
            return
        }
        gemm(m: batch, n: outputs, k: width, a: stepOperand(t, x), lda: width, b: w, ldb: outputs, beta: 1,
             c: y + t * batch * outputs, ldc: outputs, pool: pool)
    }

    /// Row block t of `backwardData`.
    public func backwardDataStep(_ t: Int, _ g: UnsafePointer<Float>, w: UnsafePointer<Float>,
                                 into dx: UnsafeMutablePointer<Float>, pool: ThreadPool?) {
        if path == .keptColumns {
            keptBackwardData(g, n: outputs, ldg: outputs, w, into: dx, steps: t..<(t + 1), pool: pool)
            return
        }
        let out = dx + t * batch * width
        gemm(transB: true, m: batch, n: width, k: outputs, a: g + t * batch * outputs, lda: outputs, b: w, ldb: outputs,
             beta: 0, c: out, ldc: width, pool: pool)
        maskGradient(step: t, out)
    }

    /// g ⊙ M for step t's B rows, in place, on the masked-copy path (the kept-column path leaves
    /// dropped columns out instead; without dropout there is nothing to do).
    public func maskGradient(step t: Int, _ g: UnsafeMutablePointer<Float>) {
        if path == .maskedCopy { mask.apply(step: t, g, g) }
    }

    // MARK: Work

    /// Adds this window's multiply-adds to `count`: forward and weight gradient over every step,
    /// backward data over `backwardData` (default: every step).
    func countMACs(into count: inout MACCount, backwardData: Range<Int>? = nil) {
        let data = backwardData ?? 0..<steps
        count.total += batch * width * outputs * (2 * steps + data.count)
        guard path == .keptColumns else { return }
        func dropped(_ r: Range<Int>) -> Int { r.reduce(0) { $0 + width - mask.keptCount[$1] } * batch * outputs }
        count.skipped += 2 * dropped(0..<steps) + dropped(data)
    }
}

/// Σ_rows G: the bias gradient of a linear map, G rows × n (overwritten into `out`).
func columnSums(_ g: UnsafePointer<Float>, rows: Int, n: Int, into out: UnsafeMutablePointer<Float>) {
    out.update(repeating: 0, count: n)
    for r in 0..<rows {
        let row = g + r * n
        for j in 0..<n { out[j] += row[j] }
    }
}
