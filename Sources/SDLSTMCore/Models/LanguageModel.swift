/// Word-level LM: embedding → stacked LSTM layers → linear → softmax cross-entropy, trained with
/// truncated BPTT (the hidden state of one batch starts the next).
public final class LanguageModel: Model {
    public let config: ModelConfig
    public let embedding: Embedding
    public let layers: [LSTMLayer]
    public let output: OutputLayer
    public var optimizer = Optimizer()
    public let compute = Compute()
    public var rng = Random(seed: 0)
    public let dataParallel = DataParallel()

    private var stateH: [Buffer] = [], stateC: [Buffer] = []
    /// Batch size of the carried state; nil while the state is zero (fits any batch).
    public private(set) var carriedBatch: Int?
    private var zeros: Buffer
    private var targets: UnsafePointer<Int32> = emptyIDs  // the batch's, validated by prepare

    public init(_ config: ModelConfig) throws(SDLSTMError) {
        guard config.task == .languageModel else { throw .invalid("not a language-model config") }
        try config.validate()
        self.config = config
        embedding = try Embedding(vocabSize: config.vocabSize, width: config.embedSize, name: "embedding.weight")
        var layers: [LSTMLayer] = []
        for l in 0..<config.numLayers {
            layers.append(try LSTMLayer(inputSize: l == 0 ? config.embedSize : config.hiddenSize,
                                        hiddenSize: config.hiddenSize, name: "rnn", layer: l))
        }
        self.layers = layers
        output = try OutputLayer(inputSize: config.hiddenSize, vocabSize: config.vocabSize, name: "decoder")
        for layer in layers { layer.compute = compute }
        output.compute = compute
        zeros = try Buffer(0)
        var initRNG = Random(seed: config.seed)
        for p in parameters { p.initUniform(scale: config.initScale, rng: &initRNG) }
        rng = initRNG
    }

    public var parameters: [Parameter] {
        [embedding.table] + layers.flatMap(\.parameters) + [output.weight, output.bias]
    }

    public var embeddings: [Embedding] { [embedding] }

    /// Input: the first layer's input; between: layers 1…; recurrent: every layer.
    public var lstmLayers: [LSTMLayer] { layers }
    public var projections: [MaskedLinear] { [output.projection] }

    public func masks(at site: DropoutSite) -> [DropoutMask] {
        switch site {
        case .input: return [layers[0].inputDropout]
        case .between: return layers.dropFirst().map(\.inputDropout)
        case .output: return [output.dropout]
        case .recurrent: return layers.map(\.recurrentDropout)
        }
    }

    public func resetState() { carriedBatch = nil }

    /// Training loss (dropout on) without gradients; with frozen masks, a function of the parameters
    /// alone — what a finite-difference check needs.
    public func trainingLoss(_ batch: Batch) throws(SDLSTMError) -> StepStats {
        try prepare(batch)
        sampleMasks(steps: batch.seqLen, batch: batch.batchSize)
        return StepStats(loss: forward(batch, dropout: true), tokens: batch.batchSize * batch.seqLen)
    }

    public func evaluationLoss(_ batch: Batch) throws(SDLSTMError) -> StepStats {
        try prepare(batch)
        let loss = forward(batch, dropout: false)
        if loss.isFinite { commitState(batch) }
        return StepStats(loss: loss, tokens: batch.batchSize * batch.seqLen)
    }

    public func commitState(_ batch: Batch) {
        let n = batch.batchSize * config.hiddenSize
        for (l, layer) in layers.enumerated() {
            stateH[l].ptr.update(from: layer.finalHidden, count: n)
            stateC[l].ptr.update(from: layer.finalCell, count: n)
        }
        carriedBatch = batch.batchSize
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
    private func prepare(_ batch: Batch) throws(SDLSTMError) {
        let (t, b) = (batch.seqLen, batch.batchSize)
        try batch.checkShape(widest: max(config.vocabSize, 4 * config.hiddenSize, config.embedSize))
        try checkIDs(batch.inputs, rows: b, stride: t, below: config.vocabSize, "inputs")
        targets = try batch.requiredTargets()
        try checkIDs(targets, rows: b, stride: t, below: config.vocabSize, "targets")
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

    private func forward(_ batch: Batch, dropout: Bool) -> Double {
        var x = UnsafePointer(embedding.forward(batch.inputs))
        for (l, layer) in layers.enumerated() {
            let h0 = carriedBatch == nil ? zeros.ptr : stateH[l].ptr
            let c0 = carriedBatch == nil ? zeros.ptr : stateC[l].ptr
            layer.forward(x, h0: h0, c0: c0, dropout: dropout)
            x = UnsafePointer(layer.output)
        }
        return output.forward(x, targets: targets, dropout: dropout)
    }

    public func backward(_ batch: Batch) {
        output.backward(targets: targets)
        var dOut = output.dInput.ptr
        for layer in layers.reversed() {
            layer.backward(dOut, needInputGradient: true)
            dOut = layer.dx.ptr
        }
        embedding.backward(batch.inputs, dOut)
    }
}
