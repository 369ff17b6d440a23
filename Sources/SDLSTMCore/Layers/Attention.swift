/// Luong et al. (2015) global attention with the "general" score, one decoder step at a time (as
/// OpenNMT-py's `GlobalAttention`, no biases). For decoder row r attending to source sequence
/// b = r / beam, whose memory m_0 … m_{L_b − 1} is the encoder's top output (Ts × B × H, time-major):
///
///     q = h_t · W_in                          W_in:  H × H   (PyTorch's linear_in.weight, transposed)
///     s_j = q · m_j,   a = softmax(s)         over the real positions j < L_b only
///     c = Σ_j a_j m_j
///     h̃_t = tanh([c | h_t] · W_out)           W_out: 2H × H  (linear_out.weight, transposed)
///
/// Backward, per step (∂h̃_t in, ∂h_t out, ∂memory accumulated):
///
///     ∂p = ∂h̃ ⊙ (1 − h̃²);  [∂c | ∂h] = ∂p · W_outᵀ
///     ∂a_j = ∂c · m_j;  ∂s_j = a_j (∂a_j − Σ_k a_k ∂a_k);  ∂q = Σ_j ∂s_j m_j
///     ∂m_j += a_j ∂c + ∂s_j q;   ∂h += ∂q · W_inᵀ
///
/// and the weight gradients over the window at the end: ∂W_in = Hᵀ · ∂Q, ∂W_out = [C | H]ᵀ · ∂P.
final class Attention {
    let linearIn: Parameter
    let linearOut: Parameter
    let size: Int
    private var steps = 0, rows = 0, sourceSteps = 0, beam = 1
    private var lengths: [Int] = []
    private var queries: Buffer   // T × R × H
    private var weights: Buffer   // T × R × Ts, 0 past each source's length
    private var concat: Buffer    // T × R × 2H: [c | h]
    private(set) var output: Buffer  // T × R × H: h̃
    private var dPre: Buffer      // T × R × H: ∂ before the tanh
    private var dQueries: Buffer  // T × R × H
    private var dConcat: Buffer   // R × 2H
    private var dWeights: Buffer  // Ts: ∂a, then ∂s, of one row
    private(set) var dMemory: Buffer  // Ts × B × H
    var compute: Compute?
    private var pool: ThreadPool? { compute?.pool }

    init(size: Int, name: String) throws(SDLSTMError) {
        self.size = size
        linearIn = try Parameter("\(name).linear_in.weight", rows: size, cols: size, transposed: true)
        linearOut = try Parameter("\(name).linear_out.weight", rows: 2 * size, cols: size, transposed: true)
        (queries, weights, concat, output, dPre, dQueries) =
            (try Buffer(0), try Buffer(0), try Buffer(0), try Buffer(0), try Buffer(0), try Buffer(0))
        (dConcat, dWeights, dMemory) = (try Buffer(0), try Buffer(0), try Buffer(0))
    }

    var parameters: [Parameter] { [linearIn, linearOut] }

    /// A window of `steps` decoder steps over `rows` = B · beam rows, attending to B sources of
    /// `lengths` (each in 1 … sourceSteps).
    func prepare(steps: Int, rows: Int, sourceSteps: Int, lengths: [Int], beam: Int) throws(SDLSTMError) {
        (self.steps, self.rows, self.sourceSteps, self.lengths, self.beam) = (steps, rows, sourceSteps, lengths, beam)
        let h = size, n = steps * rows
        func ensure(_ buffer: inout Buffer, _ count: Int) throws(SDLSTMError) {
            if buffer.count < count { buffer = try Buffer(count) }
        }
        for buffer in [\Attention.queries, \.output, \.dPre, \.dQueries] { try ensure(&self[keyPath: buffer], n * h) }
        try ensure(&weights, n * sourceSteps)
        try ensure(&concat, n * 2 * h)
        try ensure(&dConcat, rows * 2 * h)
        try ensure(&dWeights, sourceSteps)
        try ensure(&dMemory, sourceSteps * lengths.count * h)
    }

    /// Memory row j of source b, and the stride between its positions (the memory is time-major).
    @inline(__always) private func source(_ memory: UnsafePointer<Float>, _ r: Int) -> (UnsafePointer<Float>, Int) {
        (memory + (r / beam) * size, lengths.count * size)
    }

    /// h̃_t of every row into row block t of `output`, from h_t (R × H) and the memory.
    func forwardStep(_ t: Int, hidden: UnsafePointer<Float>, memory: UnsafePointer<Float>) {
        let (h, r0) = (size, t * rows)
        let q = queries.ptr + r0 * h, cat = concat.ptr + r0 * 2 * h
        gemm(m: rows, n: h, k: h, a: hidden, lda: h, b: linearIn.value.ptr, ldb: h, beta: 0, c: q, ldc: h, pool: pool)
        for r in 0..<rows {
            let (m, ldm) = source(memory, r), len = lengths[r / beam]
            let a = weights.ptr + (r0 + r) * sourceSteps
            gemm(transB: true, m: 1, n: len, k: h, a: q + r * h, lda: h, b: m, ldb: ldm, beta: 0, c: a, ldc: len)
            softmaxInPlace(a, len)
            (a + len).update(repeating: 0, count: sourceSteps - len)
            gemm(m: 1, n: h, k: len, a: a, lda: len, b: m, ldb: ldm, beta: 0, c: cat + r * 2 * h, ldc: h)
            (cat + r * 2 * h + h).update(from: hidden + r * h, count: h)
        }
        let out = output.ptr + r0 * h
        gemm(m: rows, n: h, k: 2 * h, a: cat, lda: 2 * h, b: linearOut.value.ptr, ldb: h, beta: 0, c: out, ldc: h,
             pool: pool)
        tanhInPlace(out, rows * h)
    }

    /// Starts a backward pass over the window: ∂memory accumulates from zero.
    func beginBackward() {
        dMemory.ptr.update(repeating: 0, count: sourceSteps * lengths.count * size)
    }

    /// Step t of the backward pass: ∂h̃_t (R × H) in, ∂h_t (R × H) into `dHidden`.
    func backwardStep(_ t: Int, dOutput: UnsafePointer<Float>, memory: UnsafePointer<Float>,
                      dHidden: UnsafeMutablePointer<Float>) {
        let (h, r0) = (size, t * rows)
        let out = output.ptr + r0 * h, dp = dPre.ptr + r0 * h
        for i in 0..<(rows * h) { dp[i] = dOutput[i] * (1 - out[i] * out[i]) }
        gemm(transB: true, m: rows, n: 2 * h, k: h, a: dp, lda: h, b: linearOut.value.ptr, ldb: h, beta: 0,
             c: dConcat.ptr, ldc: 2 * h, pool: pool)
        let q = queries.ptr + r0 * h, dq = dQueries.ptr + r0 * h, da = dWeights.ptr
        for r in 0..<rows {
            let (m, ldm) = source(memory, r), len = lengths[r / beam]
            let dm = dMemory.ptr + (r / beam) * h
            let a = weights.ptr + (r0 + r) * sourceSteps, dc = dConcat.ptr + r * 2 * h
            gemm(transB: true, m: 1, n: len, k: h, a: dc, lda: h, b: m, ldb: ldm, beta: 0, c: da, ldc: len)
            var dot: Float = 0
            for j in 0..<len { dot += a[j] * da[j] }
            for j in 0..<len { da[j] = a[j] * (da[j] - dot) }
            gemm(m: 1, n: h, k: len, a: da, lda: len, b: m, ldb: ldm, beta: 0, c: dq + r * h, ldc: h)
            gemm(transA: true, m: len, n: h, k: 1, a: a, lda: len, b: dc, ldb: h, beta: 1, c: dm, ldc: ldm)
            gemm(transA: true, m: len, n: h, k: 1, a: da, lda: len, b: q + r * h, ldb: h, beta: 1,
                 c: dm, ldc: ldm)
            (dHidden + r * h).update(from: dc + h, count: h)
        }
        gemm(transB: true, m: rows, n: h, k: h, a: dq, lda: h, b: linearIn.value.ptr, ldb: h, beta: 1, c: dHidden,
             ldc: h, pool: pool)
    }

    /// Weight gradients (overwritten) over the window; `hidden` is h_t of every step (T × R × H).
    func finishBackward(hidden: UnsafePointer<Float>) {
        let (h, n) = (size, steps * rows)
        gemm(transA: true, m: h, n: h, k: n, a: hidden, lda: h, b: dQueries.ptr, ldb: h, beta: 0,
             c: linearIn.grad.ptr, ldc: h, pool: pool)
        gemm(transA: true, m: 2 * h, n: h, k: n, a: concat.ptr, lda: 2 * h, b: dPre.ptr, ldb: h, beta: 0,
             c: linearOut.grad.ptr, ldc: h, pool: pool)
    }
}

/// z ← softmax(z) over n values.
func softmaxInPlace(_ z: UnsafeMutablePointer<Float>, _ n: Int) {
    var mx = z[0]
    for j in 1..<n { mx = max(mx, z[j]) }
    var sum: Float = 0
    for j in 0..<n { z[j] = fastExp(z[j] - mx); sum += z[j] }
    let inv = 1 / sum
    for j in 0..<n { z[j] *= inv }
}
