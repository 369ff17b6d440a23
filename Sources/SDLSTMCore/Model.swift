import Glibc

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

/// What every task's model provides; `step`, `evaluate` and the settings are shared below.
public protocol Model: AnyObject {
    var config: ModelConfig { get }
    /// Every parameter, in PyTorch's `state_dict` order.
    var parameters: [Parameter] { get }
    /// Tables with sparse (row) gradients; their parameters are also in `parameters`.
    var embeddings: [Embedding] { get }
    var optimizer: Optimizer { get set }
    /// The model's threads; its layers share it.
    var compute: Compute { get }
    var rng: Random { get set }
    /// The masks a dropout site drives (empty: the model lacks the site).
    func masks(at site: DropoutSite) -> [DropoutMask]
    /// Every LSTM layer, and every other masked linear map, of the model: the GEMMs of a step.
    var lstmLayers: [LSTMLayer] { get }
    var projections: [MaskedLinear] { get }
    /// Mean training loss (dropout on, masks drawn for this batch) and every gradient; changes
    /// neither the parameters nor any carried state.
    func lossAndGradients(_ batch: Batch) throws(SDLSTMError) -> StepStats
    /// Mean loss without dropout; on a finite loss, keeps whatever state the task carries.
    func evaluationLoss(_ batch: Batch) throws(SDLSTMError) -> StepStats
    /// Keeps the state a successful step leaves (the LM's hidden state); nothing for other tasks.
    func commitState(_ batch: Batch)
    func resetState()
    /// The state the task carries from one call to the next (the LM's hidden state), as named
    /// tensors for a checkpoint; empty while it is zero. Default: none.
    func carriedStateTensors() -> [StateTensor]
    /// Restores what `carriedStateTensors` returned, or throws `.format` naming the tensor that does
    /// not fit; changes nothing on failure. Default: only an empty list fits.
    func restoreCarriedState(_ tensors: [StateTensor]) throws(SDLSTMError)
}

/// A named float32 tensor, row-major.
public struct StateTensor: Equatable, Sendable {
    public var name: String
    public var shape: [Int]
    public var values: [Float]
    public init(name: String, shape: [Int], values: [Float]) { (self.name, self.shape, self.values) = (name, shape, values) }
}

extension Model {
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }

    /// The share of the last step's GEMM multiply-adds (forward, backward data, weight gradient)
    /// that the kept-column path left out.
    var skippedMACsFraction: Double {
        var count = MACCount()
        for lstm in lstmLayers { count.add(lstm) }
        for p in projections { p.countMACs(into: &count) }
        return count.skippedFraction
    }

    public func carriedStateTensors() -> [StateTensor] { [] }

    public func restoreCarriedState(_ tensors: [StateTensor]) throws(SDLSTMError) {
        if let t = tensors.first { throw .format("state/\(t.name): this task carries no state") }
    }

    var denseParameters: [Parameter] {
        let sparse = embeddings.map { ObjectIdentifier($0.table) }
        return parameters.filter { !sparse.contains(ObjectIdentifier($0)) }
    }

    /// Forward, backward, clip, update. A non-finite loss or gradient changes nothing, not even
    /// the random stream, so the caller may skip the batch and go on.
    public func step(_ batch: Batch) throws(SDLSTMError) -> StepStats {
        // epoch_step never exceeds step, so this bound keeps both increments below from overflowing.
        guard optimizer.progress.step < TrainingProgress.maxCount else {
            throw .state("training/step is \(optimizer.progress.step), at or past 2^53, the most steps a model counts")
        }
        let savedRNG = rng
        var stats = try lossAndGradients(batch)
        guard stats.loss.isFinite else {
            rng = savedRNG
            throw .numeric("training loss is \(stats.loss); the update was skipped")
        }
        let norm = Optimizer.gradientNorm(denseParameters, embeddings: embeddings, pool: compute.pool)
        guard norm.isFinite else {
            rng = savedRNG
            throw .numeric("gradient norm is \(norm); the update was skipped")
        }
        optimizer.update(denseParameters, embeddings: embeddings, gradNorm: norm, pool: compute.pool)
        optimizer.progress.step += 1
        optimizer.progress.epochStep += 1
        commitState(batch)
        stats.gradNorm = norm
        return stats
    }

    public func evaluate(_ batch: Batch) throws(SDLSTMError) -> StepStats {
        let stats = try evaluationLoss(batch)
        guard stats.loss.isFinite else { throw .numeric("evaluation loss is \(stats.loss)") }
        return stats
    }

    public func setDropout(_ setting: DropoutSetting, at site: DropoutSite) throws(SDLSTMError) {
        guard setting.p.isFinite && setting.p >= 0 && setting.p < 1 else {
            throw .invalid("dropout p must be in [0, 1), got \(setting.p)")
        }
        let targets = masks(at: site)
        guard !targets.isEmpty || !setting.isActive else {
            throw .invalid("this model has no \(site) dropout site (between needs at least 2 layers)")
        }
        for m in targets { m.setting = setting }
    }

    public func dropout(at site: DropoutSite) -> DropoutSetting {
        masks(at: site).first?.setting ?? DropoutSetting()
    }

    public func setNumThreads(_ n: Int) throws(SDLSTMError) {
        guard n >= 1 && n <= Compute.maxThreads else { throw .invalid("threads must be in 1...\(Compute.maxThreads), got \(n)") }
        compute.setThreads(n)
    }

    public var numThreads: Int { compute.threads }

    public func seed(_ seed: UInt64) { rng = Random(seed: seed) }

    /// Draws this batch's masks at every site.
    func sampleMasks(steps: Int, batch: Int) {
        for site in DropoutSite.allCases {
            for m in masks(at: site) { m.sample(steps: steps, batch: batch, rng: &rng) }
        }
    }
}

/// The default thread count of a new model: SDLSTM_NUM_THREADS, read once per process, else 1.
public func defaultThreads() -> Int { defaultThreadsSetting }

private let defaultThreadsSetting: Int = {
    guard let s = getenv("SDLSTM_NUM_THREADS"), s.pointee != 0 else { return 1 }
    let (threads, warning) = threadsSetting(String(cString: s))
    if let warning {
        let line = Array((warning + "\n").utf8)
        _ = write(STDERR_FILENO, line, line.count)
    }
    return threads
}()

/// The thread count SDLSTM_NUM_THREADS = `value` gives, and the warning a value outside 1...256
/// deserves: a typo must not quietly train on one thread.
public func threadsSetting(_ value: String) -> (threads: Int, warning: String?) {
    let limit = Compute.maxThreads
    if let n = Int(value), (1...limit).contains(n) { return (n, nil) }
    let threads = Int(value).map { $0 > limit ? limit : 1 } ?? 1
    return (threads, "sdlstm: warning: SDLSTM_NUM_THREADS=\(value) is not a thread count in 1...\(limit); using \(threads)")
}

/// Builds the model a config describes; every model of the ABI, created or loaded, starts here.
public func makeModel(_ config: ModelConfig) throws(SDLSTMError) -> any Model {
    try prepareProcess()
    switch config.task {
    case .languageModel: return try LanguageModel(config)
    case .tagger: return try Tagger(config)
    case .seq2seq: return try Translator(config)
    }
}
