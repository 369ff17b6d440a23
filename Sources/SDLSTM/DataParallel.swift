import CSDLSTM

/// Sums, in place and identically on every replica, the values and totals a step hands it (twice per
/// step: the embedding rows each replica used, with the loss sum and token count; then the
/// gradients); returns false to fail the step (`sdlstm_gradient_reducer` says what each call holds).
public typealias GradientReducer = (_ values: UnsafeMutableBufferPointer<Float>,
                                    _ totals: UnsafeMutableBufferPointer<Double>) -> Bool

/// What a model of the wrapper keeps for data-parallel training: the reducer it calls, which
/// lives as long as the model or until replaced.
public final class Replica {
    fileprivate var reducer: GradientReducer?
    public init() {}
}

extension TrainableModel {
    /// Makes each `step` call `reducer` between the backward pass and the update (nil: none), on
    /// the stepping thread, so that N replicas train as one model on the global batch; see
    /// `sdlstm_set_gradient_reducer`. A reducer returning false fails the step with `.io`.
    public func setGradientReducer(_ reducer: GradientReducer?) throws(SDLSTMError) {
        guard let reducer else {
            try SDLSTMError.check(sdlstm_set_gradient_reducer(handle, nil, nil))
            replica.reducer = nil
            return
        }
        // The C side holds the Replica unretained; the model owns it, and with it the closure.
        let context = Unmanaged.passUnretained(replica).toOpaque()
        replica.reducer = reducer
        try SDLSTMError.check(sdlstm_set_gradient_reducer(handle, { values, count, totals, context in
            let replica = Unmanaged<Replica>.fromOpaque(context!).takeUnretainedValue()
            let ok = replica.reducer!(UnsafeMutableBufferPointer(start: values, count: Int(count)),
                                      UnsafeMutableBufferPointer(start: totals, count: Int(SDLSTM_REDUCER_TOTALS)))
            return ok ? 0 : 1
        }, context))
    }

    /// This replica's batches are rows offset ..< offset + batch size of a global batch of
    /// `globalBatchSize` rows (0, 0: the batch is the whole batch); see `sdlstm_set_batch_shard`.
    public func setBatchShard(offset: Int, globalBatchSize: Int) throws(SDLSTMError) {
        try SDLSTMError.check(sdlstm_set_batch_shard(handle, Int64(offset), Int64(globalBatchSize)))
    }
}
