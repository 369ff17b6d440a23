import CSDLSTM

/// An LSTM language model (embedding -> stacked LSTM -> linear -> softmax) trained with SGD.
///
/// Owns one `sdlstm_model` handle, freed on deinit. Use a model from one thread at a time.
public final class LanguageModel: TrainableModel {
    public let handle: OpaquePointer
    public let replica = Replica()

    /// Creates a model with freshly initialised parameters, no dropout, SGD with learning rate 1.
    public init(_ config: LanguageModelConfig) throws(SDLSTMError) {
        handle = try createHandle(try config.cConfig())
    }

    /// Takes ownership of a handle (Checkpoint.swift's `load(from:)`).
    init(adopting handle: OpaquePointer) { self.handle = handle }

    deinit { sdlstm_model_free(handle) }

    /// The model's architecture, as the library reports it.
    public var config: LanguageModelConfig {
        LanguageModelConfig(readConfig(handle))
    }

    /// One training step (forward, backward, clip, update) on a batch-major batch:
    /// element [b][t] of `inputs` and `targets` is at index b * seqLen + t.
    /// The hidden state carries over from the previous step (truncated BPTT).
    public func step(inputs: [Int32], targets: [Int32], batchSize: Int, seqLen: Int) throws(SDLSTMError) -> StepStats {
        try run(sdlstm_step, inputs: inputs, targets: targets, batchSize: batchSize, seqLen: seqLen)
    }

    /// The loss on a batch without dropout and without an update; the hidden state carries over as in `step`.
    public func evaluate(inputs: [Int32], targets: [Int32], batchSize: Int, seqLen: Int) throws(SDLSTMError) -> StepStats {
        try run(sdlstm_evaluate, inputs: inputs, targets: targets, batchSize: batchSize, seqLen: seqLen)
    }

    /// Zeroes the carried hidden state, e.g. at the start of an epoch or before evaluating.
    public func resetState() throws(SDLSTMError) {
        try SDLSTMError.check(sdlstm_reset_state(handle))
    }

    private func run(_ call: @escaping BatchCall, inputs: [Int32], targets: [Int32],
                     batchSize: Int, seqLen: Int) throws(SDLSTMError) -> StepStats {
        let b = try SDLSTMError.int32(batchSize, "batchSize")
        let t = try SDLSTMError.int32(seqLen, "seqLen")
        // Only make sure the library is never handed a too-short buffer; it validates the rest.
        if b > 0, t > 0 {
            let (expected, overflow) = batchSize.multipliedReportingOverflow(by: seqLen)
            for (name, count) in [("inputs", inputs.count), ("targets", targets.count)]
            where overflow || count != expected {
                throw SDLSTMError(.invalid, "\(name) has \(count) ids, expected batchSize * seqLen = \(batchSize) * \(seqLen)")
            }
        }
        return try stats(of: call) { body in
            inputs.withUnsafeBufferPointer { inp in
                targets.withUnsafeBufferPointer { tgt in
                    var batch = sdlstm_batch()
                    batch.struct_size = MemoryLayout<sdlstm_batch>.size
                    (batch.batch_size, batch.seq_len, batch.inputs, batch.targets) = (b, t, inp.baseAddress, tgt.baseAddress)
                    return body(&batch)
                }
            }
        }
    }
}
