import Glibc

public enum OptimizerKind: Int32, Sendable {
    case sgd = 1
}

/// Where training stands: what a checkpoint saves so that a resumed run continues its schedule.
public struct TrainingProgress: Equatable, Sendable {
    /// Updates applied over the model's life (a loaded model continues the count).
    public var step: Int64 = 0
    /// The caller's epoch counter (`sdlstm_set_epoch`), 0 at creation.
    public var epoch: Int64 = 0
    /// Updates applied since the epoch was last set.
    public var epochStep: Int64 = 0

    public init() {}

    /// Sets the epoch counter and restarts `epochStep`.
    public mutating func setEpoch(_ epoch: Int64) throws(SDLSTMError) {
        guard epoch >= 0 else { throw .invalid("epoch must be >= 0, got \(epoch)") }
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
    static func gradientNorm(_ dense: [Parameter], embeddings: [Embedding]) -> Double {
        var sum = 0.0
        for p in dense { sum += sumOfSquares(p.grad.ptr, p.count) }
        for e in embeddings {
            for r in e.touchedRows { sum += sumOfSquares(e.table.grad.ptr + Int(r) * e.width, e.width) }
        }
        return sum.squareRoot()
    }

    func update(_ dense: [Parameter], embeddings: [Embedding], gradNorm: Double) {
        var scale = learningRate
        if clipNorm > 0 && gradNorm > Double(clipNorm) { scale *= Float(Double(clipNorm) / gradNorm) }
        for p in dense { axpy(-scale, p.grad.ptr, p.value.ptr, p.count) }
        for e in embeddings {
            for r in e.touchedRows {
                let off = Int(r) * e.width
                axpy(-scale, e.table.grad.ptr + off, e.table.value.ptr + off, e.width)
            }
        }
    }
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
