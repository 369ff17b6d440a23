/// The tagger's linear layer from the BiLSTM output to one score per tag:
///
///     S = H̃ · W + b,     H̃ = H ⊙ M_out        (rows T·B, H̃ T·B × D, W D × K)
///
/// M_out is the output dropout site. Backward: ∂W = H̃ᵀ · ∂S, ∂b = Σ_rows ∂S, ∂H = (∂S · Wᵀ) ⊙ M_out.
final class TagProjection {
    let weight: Parameter  // D × K (PyTorch's Linear.weight is K × D)
    let bias: Parameter    // K
    let dropout: DropoutMask
    let inputSize: Int, numTags: Int
    private(set) var scores: Buffer  // T × B × K
    private(set) var dInput: Buffer  // T × B × D
    private var masked: Buffer
    private var input: UnsafePointer<Float>?
    private var steps = 0, batch = 0

    /// Parameters named as a PyTorch `nn.Linear` called `name`.
    init(inputSize: Int, numTags: Int, name: String) throws(SDLSTMError) {
        self.inputSize = inputSize
        self.numTags = numTags
        weight = try Parameter("\(name).weight", rows: inputSize, cols: numTags, transposed: true)
        bias = try Parameter("\(name).bias", rows: numTags)
        dropout = try DropoutMask(width: inputSize)
        (scores, dInput, masked) = (try Buffer(0), try Buffer(0), try Buffer(0))
    }

    func prepare(steps: Int, batch: Int) throws(SDLSTMError) {
        self.steps = steps
        self.batch = batch
        try dropout.prepare(steps: steps, batch: batch)
        let rows = steps * batch
        if scores.count < rows * numTags { scores = try Buffer(rows * numTags) }
        if masked.count < rows * inputSize {
            masked = try Buffer(rows * inputSize)
            dInput = try Buffer(rows * inputSize)
        }
    }

    /// Scores of every row of `h` (T × B × D, valid until `backward`).
    func forward(_ h: UnsafePointer<Float>, dropout useDropout: Bool) {
        let (rows, d, k) = (steps * batch, inputSize, numTags)
        var x = h
        if useDropout && dropout.isActive {
            for t in 0..<steps { dropout.apply(step: t, h + t * batch * d, masked.ptr + t * batch * d) }
            x = UnsafePointer(masked.ptr)
        }
        input = x
        for r in 0..<rows { (scores.ptr + r * k).update(from: bias.value.ptr, count: k) }
        gemm(m: rows, n: k, k: d, a: x, lda: d, b: weight.value.ptr, ldb: k, beta: 1, c: scores.ptr, ldc: k)
    }

    /// Parameter gradients (overwritten) and ∂loss/∂H into `dInput`, from ∂loss/∂S.
    func backward(_ dScores: UnsafePointer<Float>) {
        let (rows, d, k) = (steps * batch, inputSize, numTags)
        gemm(transA: true, m: d, n: k, k: rows, a: input!, lda: d, b: dScores, ldb: k, beta: 0, c: weight.grad.ptr, ldc: k)
        bias.grad.zero()
        for r in 0..<rows {
            for j in 0..<k { bias.grad[j] += dScores[r * k + j] }
        }
        gemm(transB: true, m: rows, n: d, k: k, a: dScores, lda: k, b: weight.value.ptr, ldb: k,
             beta: 0, c: dInput.ptr, ldc: d)
        if dropout.isActive {
            for t in 0..<steps { dropout.apply(step: t, dInput.ptr + t * batch * d, dInput.ptr + t * batch * d) }
        }
    }
}
