import CSDLSTM

/// What every model of the wrapper shares: one owned `sdlstm_model` handle and the settings that
/// every task has. LanguageModel and Tagger add their own batches, steps and outputs.
public protocol TrainableModel: AnyObject {
    /// The C handle, for calls the wrapper does not cover; owned by the model, freed with it.
    var handle: OpaquePointer { get }
    /// Its data-parallel reducer (DataParallel.swift).
    var replica: Replica { get }
}

extension TrainableModel {
    /// The number of trainable scalars.
    public var parameterCount: Int {
        var count: Int64 = 0
        let status = sdlstm_get_parameter_count(handle, &count)
        precondition(status == SDLSTM_OK, "sdlstm_get_parameter_count failed: \(String(cString: sdlstm_last_error()))")
        return Int(count)
    }

    /// Sets the dropout policy and drop probability `p` in [0, 1) of one site; p = 0 or `.none`
    /// turns it off. Which activation each site masks depends on the task (see sdlstm.h).
    public func setDropout(_ policy: DropoutPolicy, p: Float, at site: DropoutSite) throws(SDLSTMError) {
        try SDLSTMError.check(sdlstm_set_dropout(handle, site.cValue, policy.cValue, p))
    }

    /// Chooses the update rule.
    public func setOptimizer(_ optimizer: Optimizer) throws(SDLSTMError) {
        try SDLSTMError.check(sdlstm_set_optimizer(handle, optimizer.cValue))
    }

    /// Sets the learning rate (> 0) of the next steps; the gradient is that of the mean token loss.
    public func setLearningRate(_ learningRate: Float) throws(SDLSTMError) {
        try SDLSTMError.check(sdlstm_set_learning_rate(handle, learningRate))
    }

    /// Clips the gradient to a global L2 norm of at most `maxNorm`; 0 turns clipping off.
    public func setClipNorm(_ maxNorm: Float) throws(SDLSTMError) {
        try SDLSTMError.check(sdlstm_set_clip_norm(handle, maxNorm))
    }

    /// Threads used by this model's calls (>= 1).
    public func setNumThreads(_ threads: Int) throws(SDLSTMError) {
        try SDLSTMError.check(sdlstm_set_num_threads(handle, try SDLSTMError.int32(threads, "threads")))
    }

    /// Restarts the dropout random stream from `seed`.
    public func seed(_ seed: UInt64) throws(SDLSTMError) {
        try SDLSTMError.check(sdlstm_set_seed(handle, seed))
    }
}

/// sdlstm_step or sdlstm_evaluate.
typealias BatchCall = (OpaquePointer?, UnsafePointer<sdlstm_batch>?, UnsafeMutablePointer<sdlstm_stats>?) -> sdlstm_status

extension TrainableModel {
    /// Runs `call` on the batch that `withBatch` lays out and returns what it measured.
    func stats(of call: @escaping BatchCall,
               _ withBatch: ((UnsafePointer<sdlstm_batch>) -> sdlstm_status) -> sdlstm_status) throws(SDLSTMError) -> StepStats {
        var stats = sdlstm_stats()
        stats.struct_size = MemoryLayout<sdlstm_stats>.size
        try SDLSTMError.check(withBatch { call(handle, $0, &stats) })
        return StepStats(stats)
    }
}

/// A new model for a filled config; the caller owns the handle.
func createHandle(_ config: sdlstm_config) throws(SDLSTMError) -> OpaquePointer {
    var c = config
    var out: OpaquePointer?
    try SDLSTMError.check(sdlstm_model_create(&c, &out))
    guard let out else { throw SDLSTMError(.invalid, "sdlstm_model_create returned no model") }
    return out
}

/// The architecture of the model behind `handle`, as the library reports it.
func readConfig(_ handle: OpaquePointer) -> sdlstm_config {
    var c = sdlstm_config()
    c.struct_size = MemoryLayout<sdlstm_config>.size
    let status = sdlstm_get_config(handle, &c)
    precondition(status == SDLSTM_OK, "sdlstm_get_config failed: \(String(cString: sdlstm_last_error()))")
    return c
}
