import Glibc

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
    /// Its shard of a global batch and the host's gradient reduction (DataParallel.swift).
    var dataParallel: DataParallel { get }
    /// The masks a dropout site drives (empty: the model lacks the site).
    func masks(at site: DropoutSite) -> [DropoutMask]
    /// Every LSTM layer, and every other masked linear map, of the model: the GEMMs of a step.
    var lstmLayers: [LSTMLayer] { get }
    var projections: [MaskedLinear] { get }
    /// Mean training loss (dropout on, masks drawn for this batch) without gradients; with frozen
    /// masks a function of the parameters alone, which is what a finite-difference check needs.
    func trainingLoss(_ batch: Batch) throws(SDLSTMError) -> StepStats
    /// Every gradient of the loss the last `trainingLoss` computed (overwritten).
    func backward(_ batch: Batch)
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

    /// Mean training loss and every gradient; changes neither the parameters nor any carried state.
    public func lossAndGradients(_ batch: Batch) throws(SDLSTMError) -> StepStats {
        var stats = try trainingLoss(batch)
        guard stats.loss.isFinite else { return stats }
        backward(batch)
        stats.skippedMACsFraction = skippedMACsFraction
        return stats
    }

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

    /// Forward, backward, (reduce), clip, update. A non-finite loss or gradient changes nothing, not
    /// even the random stream, so the caller may skip the batch and go on; with a reducer, a
    /// non-finite loss or gradient on any replica makes every replica skip (the NaN reaches every
    /// sum), and a failing reducer changes nothing either.
    public func step(_ batch: Batch) throws(SDLSTMError) -> StepStats {
        // epoch_step never exceeds step, so this bound keeps both increments below from overflowing.
        guard optimizer.progress.step < TrainingProgress.maxCount else {
            throw .state("training/step is \(optimizer.progress.step), at or past 2^53, the most steps a model counts")
        }
        try dataParallel.shard.check(batch: batch.batchSize)
        let savedRNG = rng
        var stats = try lossAndGradients(batch)
        if let reducer = dataParallel.reducer {
            let reduced: ReducedGradients
            do throws(SDLSTMError) { reduced = try dataParallel.reduce(self, stats, reducer) } catch {
                rng = savedRNG
                throw error
            }
            stats = reduced.stats
            guard stats.loss.isFinite else {
                rng = savedRNG
                throw .numeric("training loss over the replicas is \(stats.loss); every replica skipped the update")
            }
            // The sums of the replicas' summed-loss gradients: the mean's are 1/N of them.
            let perToken = 1 / Double(stats.tokens)
            let norm = Optimizer.squaredNorm(reduced.normSpans, pool: compute.pool).squareRoot() * perToken
            guard norm.isFinite else {
                rng = savedRNG
                throw .numeric("gradient norm over the replicas is \(norm); every replica skipped the update")
            }
            let a = -optimizer.stepScale(norm) * Float(perToken)
            optimizer.update(reduced.dense, by: a, pool: compute.pool)
            for r in reduced.rows { optimizer.update(r.embedding, rows: r.rows, grad: r.grad, by: a) }
            stats.gradNorm = norm
        } else {
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
            stats.gradNorm = norm
        }
        optimizer.progress.step += 1
        optimizer.progress.epochStep += 1
        commitState(batch)
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

    /// Draws this batch's masks at every site, as rows of the global batch (BatchShard).
    func sampleMasks(steps: Int, batch: Int) {
        for site in DropoutSite.allCases {
            for m in masks(at: site) { m.sample(steps: steps, batch: batch, rng: &rng, shard: dataParallel.shard) }
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
