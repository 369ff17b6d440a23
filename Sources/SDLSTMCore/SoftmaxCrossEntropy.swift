import Glibc

/// Output projection and softmax cross-entropy: logits = H̃ · W_out + b, H̃ = H ⊙ M_out.
///
/// loss = mean over the N = T·B tokens of  log Σ_v exp(z_v) − z_target;
/// ∂loss/∂z = (softmax(z) − onehot(target)) / N, computed in place over the logits.
/// A negative target marks a padded position: no loss, no gradient, not counted in N.
public final class OutputLayer {
    public let weight: Parameter  // H × V (PyTorch's decoder.weight is V × H)
    public let bias: Parameter    // V
    public let dropout: DropoutMask
    public let inputSize: Int, vocabSize: Int
    private var logits: Buffer
    private var rowLoss: UnsafeMutableBufferPointer<Double> = .allocate(capacity: 0)
    private(set) var dInput: Buffer
    private var steps = 0, batch = 0
    private var counted = 0  // real (non-negative) targets of the last forward
    /// The owning model's threads; nil runs single-threaded.
    public var compute: Compute?
    private var pool: ThreadPool? { compute?.pool }

    /// Parameters named as a PyTorch `nn.Linear` called `name`: `name.weight` (V × H), `name.bias`.
    deinit { rowLoss.deallocate() }

    public init(inputSize: Int, vocabSize: Int, name: String) throws(SDLSTMError) {
        self.inputSize = inputSize
        self.vocabSize = vocabSize
        weight = try Parameter("\(name).weight", rows: inputSize, cols: vocabSize, transposed: true)
        bias = try Parameter("\(name).bias", rows: vocabSize)
        dropout = try DropoutMask(width: inputSize)
        (logits, dInput) = (try Buffer(0), try Buffer(0))
    }

    func prepare(steps: Int, batch: Int) throws(SDLSTMError) {
        self.steps = steps
        self.batch = batch
        try dropout.prepare(steps: steps, batch: batch, threads: compute?.threads ?? 1)
        let rows = steps * batch
        if logits.count < rows * vocabSize {
            logits = try Buffer(rows * vocabSize)
            dInput = try Buffer(rows * inputSize)
            rowLoss.deallocate()
            rowLoss = .allocate(capacity: rows)
        }
    }

    /// Mean token loss of the window; `targets` batch-major. Leaves softmax probabilities behind.
    func forward(_ h: UnsafePointer<Float>, targets: UnsafePointer<Int32>, dropout useDropout: Bool) -> Double {
        counted = 0
        for i in 0..<(steps * batch) where targets[i] >= 0 { counted += 1 }
        let (n, v) = (steps * batch, vocabSize)
        for r in 0..<n { (logits.ptr + r * v).update(from: bias.value.ptr, count: v) }
        dropout.project(h, rows: n, w: weight.value.ptr, n: v, into: logits.ptr, useMask: useDropout, pool: pool)
        // Rows in parallel, their losses summed in one fixed order: the same bits on any thread count.
        let losses = rowLoss.baseAddress!, z = logits.ptr, steps = steps, batch = batch
        func rows(_ r: Range<Int>) {
            for i in r { losses[i] = softmaxRow(z + i * v, target: Int(targets[(i % batch) * steps + i / batch])) }
        }
        if let pool { pool.forChunks(n, rows) } else { rows(0..<n) }
        var total = 0.0
        for i in 0..<n { total += losses[i] }
        return total / Double(max(counted, 1))
    }

    /// log softmax(H · W_out + b) of `rows` rows (no dropout), in place of the logits: what a
    /// decoder ranks its next tokens by. Needs `prepare` for at least `rows` rows.
    func logProbabilities(_ h: UnsafePointer<Float>, rows: Int) -> UnsafePointer<Float> {
        let v = vocabSize, z0 = logits.ptr
        for r in 0..<rows { (z0 + r * v).update(from: bias.value.ptr, count: v) }
        gemm(m: rows, n: v, k: inputSize, a: h, lda: inputSize, b: weight.value.ptr, ldb: v, beta: 1, c: z0, ldc: v,
             pool: pool)
        func run(_ r: Range<Int>) {
            for i in r {
                let z = z0 + i * v
                let shift = logSumExp(z)
                for j in 0..<v { z[j] -= shift }
            }
        }
        if let pool { pool.forChunks(rows, run) } else { run(0..<rows) }
        return UnsafePointer(z0)
    }

    /// Turns one row of logits into probabilities in place and returns its cross-entropy (0 for a
    /// padded position, whose row is left as it is: backward clears it).
    private func softmaxRow(_ z: UnsafeMutablePointer<Float>, target: Int) -> Double {
        let v = vocabSize
        if target < 0 { return 0 }
        let zTarget = z[target]
        let (mx, sum) = exponentiate(z)
        let inv = 1 / sum
        for j in 0..<v { z[j] *= inv }
        return Double(logf(sum)) + Double(mx) - Double(zTarget)
    }

    /// The largest of one row of logits.
    private func rowMax(_ z: UnsafePointer<Float>) -> Float {
        let v = vocabSize
        // Sixteen independent lanes: a reduction LLVM vectorises without reassociating floats.
        var mx16 = V16(repeating: -.infinity), i = 0
        while i + 16 <= v { mx16 = mx16.replacing(with: load(z + i), where: load(z + i) .> mx16); i += 16 }
        var mx = mx16.max()
        while i < v { mx = max(mx, z[i]); i += 1 }
        return mx
    }

    /// log Σ_j exp(z_j) of one row, the row unchanged (the exponentials as the loss computes them).
    private func logSumExp(_ z: UnsafePointer<Float>) -> Float {
        let v = vocabSize, mx = rowMax(z)
        // The exponentials go through a block on the stack: a plain loop over it vectorises, where
        // filling a V16 lane by lane ran scalar (10× exponentiate's time in a profile of scoring).
        let block = 256
        let (sum16, blocked) = withUnsafeTemporaryAllocation(of: Float.self, capacity: block) { buffer -> (V16, Int) in
            let e = buffer.baseAddress!
            var sum16 = V16(repeating: 0), i = 0
            while i + 16 <= v {
                let n = min(block, (v - i) / 16 * 16), row = z + i
                for j in 0..<n { e[j] = fastExp(row[j] - mx) }
                for l in stride(from: 0, to: n, by: 16) { sum16 += load(e + l) }
                i += n
            }
            return (sum16, i)
        }
        var sum = sum16.sum(), i = blocked
        while i < v { sum += fastExp(z[i] - mx); i += 1 }
        return mx + logf(sum)
    }

    /// z ← exp(z − max z) over one row of logits; returns the max and the sum of the new values.
    private func exponentiate(_ z: UnsafeMutablePointer<Float>) -> (max: Float, sum: Float) {
        let v = vocabSize, mx = rowMax(z)
        for j in 0..<v { z[j] = fastExp(z[j] - mx) }
        var sum16 = V16(repeating: 0), i = 0
        while i + 16 <= v { sum16 += load(z + i); i += 16 }
        var sum = sum16.sum()
        while i < v { sum += z[i]; i += 1 }
        return (mx, sum)
    }

    /// Backward of `forward`: parameter gradients (overwritten) and ∂loss/∂H into `dInput`.
    func backward(targets: UnsafePointer<Int32>, dropout useDropout: Bool) {
        let (n, v) = (steps * batch, vocabSize)
        let scale = 1 / Float(max(counted, 1))
        let z0 = logits.ptr, steps = steps, batch = batch
        func rows(_ r: Range<Int>) {
            for i in r {
                let z = z0 + i * v, target = Int(targets[(i % batch) * steps + i / batch])
                guard target >= 0 else { z.update(repeating: 0, count: v); continue }
                z[target] -= 1
                for j in 0..<v { z[j] *= scale }
            }
        }
        if let pool { pool.forChunks(n, rows) } else { rows(0..<n) }
        dropout.projectWeightGradient(logits.ptr, n: v, into: weight.grad.ptr, pool: pool)
        bias.grad.zero()
        for r in 0..<n {
            let z = z0 + r * v
            for j in 0..<v { bias.grad[j] += z[j] }
        }
        dropout.projectBackwardData(logits.ptr, n: v, w: weight.value.ptr, into: dInput.ptr, pool: pool)
    }
}
