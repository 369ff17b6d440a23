import Glibc

public enum OptimizerKind: Int32, Sendable {
    case sgd = 1
}

/// Where training stands: what a checkpoint saves so that a resumed run continues its schedule.
public struct TrainingProgress: Equatable, Sendable {
    /// The largest value of each counter: 2^53, exact in a double (JSON, Python, most HDF5 readers)
    /// and far from overflowing when a step adds one.
    public static let maxCount: Int64 = 1 << 53

    /// Updates applied over the model's life (a loaded model continues the count).
    public var step: Int64 = 0
    /// The caller's epoch counter (`sdlstm_set_epoch`), 0 at creation.
    public var epoch: Int64 = 0
    /// Updates applied since the epoch was last set.
    public var epochStep: Int64 = 0

    public init() {}

    /// Sets the epoch counter and restarts `epochStep`.
    public mutating func setEpoch(_ epoch: Int64) throws(SDLSTMError) {
        guard epoch >= 0 && epoch <= Self.maxCount else { throw .invalid("epoch must be in 0...2^53, got \(epoch)") }
        self.epoch = epoch
        epochStep = 0
    }
}

/// Plain SGD with global-norm clipping: θ ← θ − lr · g · min(1, clip / ‖g‖).
public struct Optimizer: Sendable {
    public var kind: OptimizerKind = .sgd
    public var learningRate: Float = 1
    public var clipNorm: Float = 0
    /// Counted by `Model.step`, saved by checkpoints. (SGD keeps no per-parameter state; an optimizer
    /// that does — momentum, Adam moments — adds its tensors to the checkpoint's `training` group.)
    public var progress = TrainingProgress()

    public mutating func setLearningRate(_ lr: Float) throws(SDLSTMError) {
        guard lr.isFinite && lr > 0 else { throw .invalid("learning_rate must be finite and > 0, got \(lr)") }
        learningRate = lr
    }

    public mutating func setClipNorm(_ norm: Float) throws(SDLSTMError) {
        guard norm.isFinite && norm >= 0 else { throw .invalid("max_norm must be finite and >= 0, got \(norm)") }
        clipNorm = norm
    }

    /// Global L2 norm of the gradients, accumulated in double; the embedding counts its used rows only
    /// (the others are zero).
    static func gradientNorm(_ dense: [Parameter], embeddings: [Embedding], pool: ThreadPool? = nil) -> Double {
        var sum = squaredNorm(dense.map(GradientSpan.init), pool: pool)
        for e in embeddings {
            for r in e.touchedRows { sum += sumOfSquares(e.table.grad.ptr + Int(r) * e.width, e.width) }
        }
        return sum.squareRoot()
    }

    /// Σ g² over the spans, in double. Each span is summed in fixed chunks, in parallel, and the
    /// chunk sums added in order: the same bits on any thread count.
    static func squaredNorm(_ spans: [GradientSpan], pool: ThreadPool?) -> Double {
        var sum = 0.0
        for s in spans {
            let chunks = (s.count + chunk - 1) / chunk
            if chunks <= 1 || pool == nil { sum += sumOfSquares(s.grad, s.count); continue }
            let grad = s.grad, count = s.count
            // On the stack: a few KiB even for the largest parameter, and no malloc per step.
            sum += withUnsafeTemporaryAllocation(of: Double.self, capacity: chunks) { partial in
                pool!.forChunks(chunks) { r in
                    for c in r { partial[c] = sumOfSquares(grad + c * chunk, min(chunk, count - c * chunk)) }
                }
                return partial.reduce(0, +)
            }
        }
        return sum
    }

    /// θ ← θ − lr · scale · g; dense parameters in parallel chunks (memory-bound, so the second
    /// core's bandwidth is the gain), the embedding on its used rows.
    func update(_ dense: [Parameter], embeddings: [Embedding], gradNorm: Double, pool: ThreadPool? = nil) {
        let a = -stepScale(gradNorm)
        update(dense.map(GradientSpan.init), by: a, pool: pool)
        for e in embeddings {
            for r in e.touchedRows {
                let off = Int(r) * e.width
                axpy(a, e.table.grad.ptr + off, e.table.value.ptr + off, e.width)
            }
        }
    }

    /// lr, shrunk so that the step's gradient norm is at most clipNorm.
    func stepScale(_ gradNorm: Double) -> Float {
        var scale = learningRate
        if clipNorm > 0 && gradNorm > Double(clipNorm) { scale *= Float(Double(clipNorm) / gradNorm) }
        return scale
    }

    /// Row rows[i] of the embedding += a · grad[i * width ..< (i + 1) * width].
    func update(_ e: Embedding, rows: [Int32], grad: UnsafePointer<Float>, by a: Float) {
        for (i, r) in rows.enumerated() {
            let off = Int(r) * e.width
            axpy(a, grad + i * e.width, e.table.value.ptr + off, e.width)
        }
    }

    /// value += a · grad over each span, in parallel chunks.
    func update(_ spans: [GradientSpan], by a: Float, pool: ThreadPool?) {
        for s in spans {
            let grad = s.grad, value = s.value, count = s.count
            let chunks = (count + Optimizer.chunk - 1) / Optimizer.chunk
            let run = { (r: Range<Int>) in
                for c in r {
                    let lo = c * Optimizer.chunk
                    axpy(a, grad + lo, value + lo, min(Optimizer.chunk, count - lo))
                }
            }
            if let pool, chunks > 1 { pool.forChunks(chunks, run) } else { run(0..<chunks) }
        }
    }

    /// Elements per parallel chunk of the norm and the update.
    static let chunk = 1 << 16
}

/// A gradient and the values it updates, `count` floats each.
struct GradientSpan {
    let grad: UnsafePointer<Float>
    let value: UnsafeMutablePointer<Float>
    let count: Int

    init(grad: UnsafePointer<Float>, value: UnsafeMutablePointer<Float>, count: Int) {
        (self.grad, self.value, self.count) = (grad, value, count)
    }

    init(_ p: Parameter) { self.init(grad: p.grad.ptr, value: p.value.ptr, count: p.count) }
}

private func sumOfSquares(_ x: UnsafePointer<Float>, _ n: Int) -> Double {
    var acc = 0.0
    var i = 0
    while i + 16 <= n {
        let v = load(x + i)
        acc += Double((v * v).sum())
        i += 16
    }
    while i < n { acc += Double(x[i] * x[i]); i += 1 }
    return acc
}

private func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    for i in 0..<n { y[i] += a * x[i] }
}
