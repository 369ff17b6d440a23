/// Output projection and softmax cross-entropy: logits = H̃ · W_out + b, H̃ = H ⊙ M_out.
///
/// loss = mean over the N = T·B tokens of  log Σ_v exp(z_v) − z_target;
/// ∂loss/∂z = (softmax(z) − onehot(target)) / N, computed in place over the logits.
/// A negative target marks a padded position: no loss, no gradient, not counted in N.
public final class OutputLayer {
    public let weight: Parameter  // H × V (PyTorch's decoder.weight is V × H)
    public let bias: Parameter    // V
    /// H̃ · W_out: the OUTPUT dropout site.
    public let projection: MaskedLinear
    public var dropout: DropoutMask { projection.mask }
    public let inputSize: Int, vocabSize: Int
    private let loss: SoftmaxCrossEntropy
    private var logits: Buffer
    private var rowLoss: UnsafeMutableBufferPointer<Double> = .allocate(capacity: 0)
    private(set) var dInput: Buffer
    private var steps = 0, batch = 0
    private var counted = 0  // real (non-negative) targets of the last forward
    /// The owning model's threads; nil runs single-threaded.
    public var compute: Compute?
    private var pool: ThreadPool? { compute?.pool }

    deinit { rowLoss.deallocate() }

    /// Parameters named as a PyTorch `nn.Linear` called `name`: `name.weight` (V × H), `name.bias`.
    public init(inputSize: Int, vocabSize: Int, name: String) throws(SDLSTMError) {
        self.inputSize = inputSize
        self.vocabSize = vocabSize
        weight = try Parameter("\(name).weight", rows: inputSize, cols: vocabSize, transposed: true)
        bias = try Parameter("\(name).bias", rows: vocabSize)
        projection = try MaskedLinear(width: inputSize, outputs: vocabSize)
        loss = SoftmaxCrossEntropy(width: vocabSize)
        (logits, dInput) = (try Buffer(0), try Buffer(0))
    }

    func prepare(steps: Int, batch: Int) throws(SDLSTMError) {
        self.steps = steps
        self.batch = batch
        try projection.prepare(steps: steps, batch: batch, threads: compute?.threads ?? 1)
        let rows = steps * batch
        if logits.count < rows * vocabSize {
            logits = try Buffer(rows * vocabSize)
            dInput = try Buffer(rows * inputSize)
            rowLoss.deallocate()
            rowLoss = .allocate(capacity: rows)
        }
    }

    /// Mean token loss of the window; `targets` batch-major. Leaves softmax probabilities behind.
    func forward(_ h: UnsafePointer<Float>, targets: UnsafePointer<Int32>, dropout: Bool) -> Double {
        counted = 0
        for i in 0..<(steps * batch) where targets[i] >= 0 { counted += 1 }
        let (n, v) = (steps * batch, vocabSize)
        for r in 0..<n { (logits.ptr + r * v).update(from: bias.value.ptr, count: v) }
        projection.begin(steps: steps, batch: batch, dropout: dropout)
        projection.forward(h, w: weight.value.ptr, into: logits.ptr, pool: pool)
        // Rows in parallel, their losses summed in one fixed order: the same bits on any thread count.
        let losses = rowLoss.baseAddress!, z = logits.ptr, steps = steps, batch = batch, loss = loss
        func rows(_ r: Range<Int>) {
            for i in r { losses[i] = loss.lossAndProbabilities(z + i * v, target: Int(targets[(i % batch) * steps + i / batch])) }
        }
        if let pool { pool.forChunks(n, rows) } else { rows(0..<n) }
        var total = 0.0
        for i in 0..<n { total += losses[i] }
        return total / Double(max(counted, 1))
    }

    /// log softmax(H · W_out + b) of `rows` rows (no dropout), in place of the logits: what a
    /// decoder ranks its next tokens by. Needs `prepare` for at least `rows` rows.
    func logProbabilities(_ h: UnsafePointer<Float>, rows: Int) -> UnsafePointer<Float> {
        let v = vocabSize, z0 = logits.ptr, loss = loss
        for r in 0..<rows { (z0 + r * v).update(from: bias.value.ptr, count: v) }
        gemm(m: rows, n: v, k: inputSize, a: h, lda: inputSize, b: weight.value.ptr, ldb: v, beta: 1, c: z0, ldc: v,
             pool: pool)
        func run(_ r: Range<Int>) {
            for i in r {
                let z = z0 + i * v
                let shift = loss.logSumExp(z)
                for j in 0..<v { z[j] -= shift }
            }
        }
        if let pool { pool.forChunks(rows, run) } else { run(0..<rows) }
        return UnsafePointer(z0)
    }

    /// Backward of `forward`: parameter gradients (overwritten) and ∂loss/∂H into `dInput`.
    func backward(targets: UnsafePointer<Int32>) {
        let (n, v) = (steps * batch, vocabSize)
        let scale = 1 / Float(max(counted, 1))
        let z0 = logits.ptr, steps = steps, batch = batch, loss = loss
        func rows(_ r: Range<Int>) {
            for i in r { loss.gradient(z0 + i * v, target: Int(targets[(i % batch) * steps + i / batch]), scale: scale) }
        }
        if let pool { pool.forChunks(n, rows) } else { rows(0..<n) }
        projection.weightGradient(logits.ptr, into: weight.grad.ptr, pool: pool)
        columnSums(logits.ptr, rows: n, n: v, into: bias.grad.ptr)
        projection.backwardData(logits.ptr, w: weight.value.ptr, into: dInput.ptr, pool: pool)
    }
}
