/// A mini-batch as the ABI receives it: batch-major ids ([b][t] at b * seqLen + t) and the
/// optional fields of the tasks that need them. Each model validates the fields it reads.
public struct Batch {
    public var batchSize: Int
    public var seqLen: Int
    public var inputs: UnsafePointer<Int32>
    /// Read by a loss (step, evaluate); decoding (tag, translate) reads none and takes nil.
    public var targets: UnsafePointer<Int32>?
    public var lengths: UnsafePointer<Int32>? = nil
    public var targetLen = 0
    public var targetLengths: UnsafePointer<Int32>? = nil
    public var maxWordLen = 0
    public var chars: UnsafePointer<Int32>? = nil
    public var wordLengths: UnsafePointer<Int32>? = nil

    public init(batchSize: Int, seqLen: Int, inputs: UnsafePointer<Int32>, targets: UnsafePointer<Int32>?) {
        self.batchSize = batchSize
        self.seqLen = seqLen
        self.inputs = inputs
        self.targets = targets
    }
}

public struct StepStats: Equatable, Sendable {
    public var loss: Double = 0
    public var tokens: Int = 0
    public var gradNorm: Double = 0
    public var skippedMACsFraction: Double = 0
}
