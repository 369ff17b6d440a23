import Glibc

/// Output projection and softmax cross-entropy: logits = H̃ · W_out + b, H̃ = H ⊙ M_out.
///
/// loss = mean over the N = T·B tokens of  log Σ_v exp(z_v) − z_target;
/// ∂loss/∂z = (softmax(z) − onehot(target)) / N, computed in place over the logits.
public final class OutputLayer {
    public let weight: Parameter  // H × V (PyTorch's decoder.weight is V × H)
    public let bias: Parameter    // V
    public let dropout: DropoutMask
    public let inputSize: Int, vocabSize: Int
    private var logits: Buffer
    private var hm: Buffer
    private var rowLoss: UnsafeMutableBufferPointer<Double> = .allocate(capacity: 0)
    private(set) var dInput: Buffer
    private var steps = 0, batch = 0
    private var input: UnsafePointer<Float>?
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
        (logits, hm, dInput) = (try Buffer(0), try Buffer(0), try Buffer(0))
    }

    func prepare(steps: Int, batch: Int) throws(SDLSTMError) {
        self.steps = steps
        self.batch = batch
        try dropout.prepare(steps: steps, batch: batch, threads: compute?.threads ?? 1)
        let rows = steps * batch
        if logits.count < rows * vocabSize {
            logits = try Buffer(rows * vocabSize)
            hm = try Buffer(rows * inputSize)
            dInput = try Buffer(rows * inputSize)
            rowLoss.deallocate()
            rowLoss = .allocate(capacity: rows)
        }
    }

    private func structured(_ useDropout: Bool) -> Bool { useDropout && dropout.isActive && dropout.columnar }

    /// Mean token loss of the window; `targets` batch-major. Leaves softmax probabilities behind.
    func forward(_ h: UnsafePointer<Float>, targets: UnsafePointer<Int32>, dropout useDropout: Bool) -> Double {
        let (n, v, d) = (steps * batch, vocabSize, inputSize)
        for r in 0..<n { (logits.ptr + r * v).update(from: bias.value.ptr, count: v) }
        if structured(useDropout) {
            dropout.gather(h, steps: 0..<steps)
            dropout.forwardGEMM(weight.value.ptr, n: v, into: logits.ptr, ldc: v, steps: 0..<steps, pool: pool)
        } else {
            var x = h
            if useDropout && dropout.isActive {
                for t in 0..<steps { dropout.apply(step: t, h + t * batch * d, hm.ptr + t * batch * d) }
                x = UnsafePointer(hm.ptr)
            }
            input = x
            gemm(m: n, n: v, k: d, a: x, lda: d, b: weight.value.ptr, ldb: v, beta: 1, c: logits.ptr, ldc: v, pool: pool)
        }
        // Rows in parallel, their losses summed in one fixed order: the same bits on any thread count.
        let losses = rowLoss.baseAddress!, z = logits.ptr, steps = steps, batch = batch
        func rows(_ r: Range<Int>) {
            for i in r { losses[i] = softmaxRow(z + i * v, target: Int(targets[(i % batch) * steps + i / batch])) }
        }
        if let pool { pool.forChunks(n, rows) } else { rows(0..<n) }
        var total = 0.0
        for i in 0..<n { total += losses[i] }
        return total / Double(n)
    }

    /// Turns one row of logits into probabilities in place and returns its cross-entropy.
    private func softmaxRow(_ z: UnsafeMutablePointer<Float>, target: Int) -> Double {
        let v = vocabSize
        let zTarget = z[target]
        // Sixteen independent lanes: a reduction LLVM vectorises without reassociating floats.
        var mx16 = V16(repeating: -.infinity), i = 0
        while i + 16 <= v { mx16 = mx16.replacing(with: load(z + i), where: load(z + i) .> mx16); i += 16 }
        var mx = mx16.max()
        while i < v { mx = max(mx, z[i]); i += 1 }
        for j in 0..<v { z[j] = fastExp(z[j] - mx) }
        var sum16 = V16(repeating: 0)
        i = 0
        while i + 16 <= v { sum16 += load(z + i); i += 16 }
        var sum = sum16.sum()
        while i < v { sum += z[i]; i += 1 }
        let inv = 1 / sum
        for j in 0..<v { z[j] *= inv }
        return Double(logf(sum)) + Double(mx) - Double(zTarget)
    }

    /// Backward of `forward`: parameter gradients (overwritten) and ∂loss/∂H into `dInput`.
    func backward(targets: UnsafePointer<Int32>, dropout useDropout: Bool) {
        let (n, v, d) = (steps * batch, vocabSize, inputSize)
        let scale = 1 / Float(n)
        let z0 = logits.ptr, steps = steps, batch = batch
        func rows(_ r: Range<Int>) {
            for i in r {
                let z = z0 + i * v
                z[Int(targets[(i % batch) * steps + i / batch])] -= 1
                for j in 0..<v { z[j] *= scale }
            }
        }
        if let pool { pool.forChunks(n, rows) } else { rows(0..<n) }
        let isStructured = structured(useDropout)
        if isStructured {
            dropout.weightGradient(logits.ptr, n: v, ldg: v, into: weight.grad.ptr, pool: pool)
        } else {
            gemm(transA: true, m: d, n: v, k: n, a: input!, lda: d, b: logits.ptr, ldb: v,
                 beta: 0, c: weight.grad.ptr, ldc: v, pool: pool)
        }
        bias.grad.zero()
        for r in 0..<n {
            let z = z0 + r * v
            for j in 0..<v { bias.grad[j] += z[j] }
        }
        if isStructured {
            dropout.backwardData(logits.ptr, n: v, ldg: v, weight.value.ptr, into: dInput.ptr,
                                 steps: 0..<steps, pool: pool)
        } else {
            gemm(transB: true, m: n, n: d, k: v, a: logits.ptr, lda: v, b: weight.value.ptr, ldb: v,
                 beta: 0, c: dInput.ptr, ldc: d, pool: pool)
            if useDropout && dropout.isActive {
                for t in 0..<steps { dropout.apply(step: t, dInput.ptr + t * batch * d, dInput.ptr + t * batch * d) }
            }
        }
    }
}
