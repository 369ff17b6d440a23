import Glibc

/// A batch of token ids, batch-major ([b][t] at b * seqLen + t), as the ABI receives it.
public struct TokenBatch {
    public var batchSize: Int
    public var seqLen: Int
    public var inputs: UnsafePointer<Int32>
    public var targets: UnsafePointer<Int32>

    public init(batchSize: Int, seqLen: Int, inputs: UnsafePointer<Int32>, targets: UnsafePointer<Int32>) {
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

/// Word-level LM: embedding → stacked LSTM layers → linear → softmax cross-entropy, trained with
/// truncated BPTT (the hidden state of one batch starts the next).
public final class LanguageModel {
    public let config: LanguageModelConfig
    public let embedding: Embedding
    public let layers: [LSTMLayer]
    public let output: OutputLayer
    public var optimizer = Optimizer()
    public private(set) var numThreads: Int
    public var rng = Random(seed: 0)

    private var stateH: [Buffer] = [], stateC: [Buffer] = []
    /// Batch size of the carried state; nil while the state is zero (fits any batch).
    public private(set) var carriedBatch: Int?
    private var zeros: Buffer

    public init(_ config: LanguageModelConfig) throws(SDLSTMError) {
        try config.validate()
        self.config = config
        embedding = try Embedding(vocabSize: config.vocabSize, width: config.embedSize, name: "embedding.weight")
        var layers: [LSTMLayer] = []
        for l in 0..<config.numLayers {
            layers.append(try LSTMLayer(inputSize: l == 0 ? config.embedSize : config.hiddenSize,
                                        hiddenSize: config.hiddenSize, layer: l))
        }
        self.layers = layers
        output = try OutputLayer(inputSize: config.hiddenSize, vocabSize: config.vocabSize)
        numThreads = LanguageModel.defaultThreads()
        zeros = try Buffer(0)
        var initRNG = Random(seed: config.seed)
        for p in parameters { p.initUniform(scale: config.initScale, rng: &initRNG) }
        rng = initRNG
    }

    private static func defaultThreads() -> Int {
        guard let s = getenv("SDLSTM_NUM_THREADS"), let n = Int(String(cString: s)), n >= 1 else { return 1 }
        return min(n, 256)
    }

    /// Every parameter, in PyTorch's `state_dict` order.
    public var parameters: [Parameter] {
        [embedding.table] + layers.flatMap(\.parameters) + [output.weight, output.bias]
    }

    private var denseParameters: [Parameter] { layers.flatMap(\.parameters) + [output.weight, output.bias] }

    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }

    /// The masks a site drives: one per layer for `between` (layers 1…) and `recurrent`.
    public func masks(at site: DropoutSite) -> [DropoutMask] {
        switch site {
        case .input: return [layers[0].inputDropout]
        case .between: return layers.dropFirst().map(\.inputDropout)
        case .output: return [output.dropout]
        case .recurrent: return layers.map(\.recurrentDropout)
        }
    }

    public func setDropout(_ setting: DropoutSetting, at site: DropoutSite) throws(SDLSTMError) {
        guard setting.p.isFinite && setting.p >= 0 && setting.p < 1 else {
            throw .invalid("dropout p must be in [0, 1), got \(setting.p)")
        }
        let targets = masks(at: site)
        guard !targets.isEmpty || !setting.isActive else {
            throw .invalid("site \(site) needs at least 2 layers; the model has \(layers.count)")
        }
        for m in targets { m.setting = setting }
    }

    public func dropout(at site: DropoutSite) -> DropoutSetting {
        masks(at: site).first?.setting ?? DropoutSetting()
    }

    public func resetState() { carriedBatch = nil }

    public func setNumThreads(_ n: Int) throws(SDLSTMError) {
        guard n >= 1 && n <= 256 else { throw .invalid("threads must be in 1...256, got \(n)") }
        numThreads = n
    }

    public func seed(_ seed: UInt64) { rng = Random(seed: seed) }

    // MARK: - Training and evaluation

    public func step(_ batch: TokenBatch) throws(SDLSTMError) -> StepStats {
        try withBLASThreads(numThreads) { () throws(SDLSTMError) -> StepStats in try trainStep(batch) }
    }

    public func evaluate(_ batch: TokenBatch) throws(SDLSTMError) -> StepStats {
        try withBLASThreads(numThreads) { () throws(SDLSTMError) -> StepStats in
            try prepare(batch)
            let loss = forward(batch, dropout: false)
            guard loss.isFinite else { throw .numeric("evaluation loss is \(loss)") }
            commitState(batch.batchSize)
            return StepStats(loss: loss, tokens: batch.batchSize * batch.seqLen)
        }
    }

    private func trainStep(_ batch: TokenBatch) throws(SDLSTMError) -> StepStats {
        let savedRNG = rng
        let loss = try lossAndGradients(batch)
        guard loss.isFinite else {
            rng = savedRNG
            throw .numeric("training loss is \(loss); the update was skipped")
        }
        let norm = Optimizer.gradientNorm(denseParameters, embedding: embedding)
        guard norm.isFinite else {
            rng = savedRNG
            throw .numeric("gradient norm is \(norm); the update was skipped")
        }
        optimizer.update(denseParameters, embedding: embedding, gradNorm: norm)
        commitState(batch.batchSize)
        return StepStats(loss: loss, tokens: batch.seqLen * batch.batchSize, gradNorm: norm,
                         skippedMACsFraction: skippedMACsFraction(batch.seqLen))
    }

    /// Training loss with this window's masks, and the gradients of every parameter left in their
    /// `grad` buffers; changes neither the parameters nor the carried state.
    public func lossAndGradients(_ batch: TokenBatch) throws(SDLSTMError) -> Double {
        let loss = try trainingLoss(batch)
        if loss.isFinite { backward(batch) }
        return loss
    }

    /// Training loss (dropout on) without gradients; with frozen masks, a function of the parameters
    /// alone — what a finite-difference check needs.
    public func trainingLoss(_ batch: TokenBatch) throws(SDLSTMError) -> Double {
        try prepare(batch)
        for site in DropoutSite.allCases {
            for m in masks(at: site) { m.sample(steps: batch.seqLen, batch: batch.batchSize, rng: &rng) }
        }
        return forward(batch, dropout: true)
    }

    /// The carried hidden and cell state per layer (B × H each), nil while it is zero.
    public var carriedState: (h: [[Float]], c: [[Float]])? {
        guard let b = carriedBatch else { return nil }
        let n = b * config.hiddenSize
        return (stateH.map { Array($0.array.prefix(n)) }, stateC.map { Array($0.array.prefix(n)) })
    }

    public func setCarriedState(h: [[Float]], c: [[Float]], batchSize b: Int) throws(SDLSTMError) {
        let n = b * config.hiddenSize
        guard b >= 1, h.count == layers.count, c.count == layers.count,
              h.allSatisfy({ $0.count == n }), c.allSatisfy({ $0.count == n }) else {
            throw .invalid("carried state needs \(layers.count) layers of \(b) × \(config.hiddenSize) values")
        }
        try allocateState(batch: b)
        for l in 0..<layers.count {
            for i in 0..<n { stateH[l][i] = h[l][i]; stateC[l][i] = c[l][i] }
        }
        carriedBatch = b
    }

    /// Validates the batch and sizes every workspace for it (allocating only when it grows).
    private func prepare(_ batch: TokenBatch) throws(SDLSTMError) {
        let (t, b) = (batch.seqLen, batch.batchSize)
        guard b >= 1 && t >= 1 else { throw .invalid("batch_size and seq_len must be >= 1, got \(b) and \(t)") }
        let widest = max(config.vocabSize, 4 * config.hiddenSize, config.embedSize)
        guard t.multipliedReportingOverflow(by: b).partialValue <= Int(Int32.max) / widest,
              !t.multipliedReportingOverflow(by: b).overflow else {
            throw .invalid("batch_size × seq_len = \(b) × \(t) is too large for this model")
        }
        for (name, ids) in [("inputs", batch.inputs), ("targets", batch.targets)] {
            for i in 0..<(t * b) where ids[i] < 0 || Int(ids[i]) >= config.vocabSize {
                throw .invalid("\(name)[\(i)] = \(ids[i]) is outside [0, \(config.vocabSize))")
            }
        }
        if let carried = carriedBatch, carried != b {
            throw .state("the carried hidden state has batch size \(carried), this batch \(b); call sdlstm_reset_state first")
        }
        try embedding.prepare(steps: t, batch: b)
        for layer in layers { try layer.prepare(steps: t, batch: b) }
        try output.prepare(steps: t, batch: b)
        try allocateState(batch: b)
    }

    private func allocateState(batch b: Int) throws(SDLSTMError) {
        guard stateH.isEmpty || stateH[0].count < b * config.hiddenSize else { return }
        var h: [Buffer] = [], c: [Buffer] = []
        for _ in layers {
            h.append(try Buffer(b * config.hiddenSize))
            c.append(try Buffer(b * config.hiddenSize))
        }
        (stateH, stateC) = (h, c)
        zeros = try Buffer(b * config.hiddenSize)
    }

    private func forward(_ batch: TokenBatch, dropout: Bool) -> Double {
        var x = UnsafePointer(embedding.forward(batch.inputs))
        for (l, layer) in layers.enumerated() {
            let h0 = carriedBatch == nil ? zeros.ptr : stateH[l].ptr
            let c0 = carriedBatch == nil ? zeros.ptr : stateC[l].ptr
            layer.forward(x, h0: h0, c0: c0, dropout: dropout)
            x = UnsafePointer(layer.output)
        }
        return output.forward(x, targets: batch.targets, dropout: dropout)
    }

    private func backward(_ batch: TokenBatch) {
        output.backward(targets: batch.targets, dropout: true)
        var dOut = output.dInput.ptr
        for layer in layers.reversed() {
            layer.backward(dOut, needInputGradient: true, dropout: true)
            dOut = layer.dx.ptr
        }
        embedding.backward(batch.inputs, dOut)
    }

    private func commitState(_ b: Int) {
        let n = b * config.hiddenSize
        for (l, layer) in layers.enumerated() {
            stateH[l].ptr.update(from: layer.finalHidden, count: n)
            stateC[l].ptr.update(from: layer.finalCell, count: n)
        }
        carriedBatch = b
    }

    /// Multiply-adds of this step's GEMMs (forward, backward-data, weight-gradient) that the
    /// structured masks make unnecessary, as a share of all of them.
    private func skippedMACsFraction(_ t: Int) -> Double {
        var total = 0, skipped = 0
        let all = 0..<t, afterFirst = 1..<t
        func consumer(_ mask: DropoutMask, outputs n: Int, backwardData: Range<Int>) {
            let b = mask.batch, d = mask.width
            total += b * d * n * (2 * all.count + backwardData.count)
            skipped += mask.skippableMACs(outputs: n, steps: all) * 2
                + mask.skippableMACs(outputs: n, steps: backwardData)
        }
        for layer in layers {
            consumer(layer.inputDropout, outputs: 4 * layer.hiddenSize, backwardData: all)
            consumer(layer.recurrentDropout, outputs: 4 * layer.hiddenSize, backwardData: afterFirst)
        }
        consumer(output.dropout, outputs: output.vocabSize, backwardData: all)
        return total == 0 ? 0 : Double(skipped) / Double(total)
    }
}
