/// Attention encoder-decoder, OpenNMT-py's RNN model (Luong et al. 2015, input feeding):
///
///     encoder   x_j = E_src[s_j] → L LSTM layers over the source (bidirectional: H/2 per direction)
///               memory m_j = top layer output; final (h, c) of layer l = [→ | ←] after the whole source
///     decoder   starts layer l from the encoder's final (h, c) of layer l, then for t = 0, 1, …
///               x_t = [ E_tgt[y_t] | h̃_{t-1} ]   (input feeding; h̃_{-1} = 0)
///               h_t = L LSTM layers, one step;  h̃_t = attention(h_t, m)     (Attention.swift)
///               P(y_{t+1}) = softmax(h̃_t · W_gen + b)
///
/// A batch holds B source rows (T_s ids, lengths L_b) and B target rows <bos> y_1 … y_n <eos>
/// (n_b + 2 ids); the decoder reads ids 0 … n_b and predicts ids 1 … n_b + 1. The loss is the mean
/// cross-entropy over those predicted tokens. Padding is never read: padded source positions are
/// outside every attention window and after every final state (PaddedLSTM), padded target steps
/// come after the real ones and carry no loss, so no gradient reaches anything through them.
///
/// Dropout sites: input = the first encoder layer's input and the first decoder layer's whole
/// input (embedding and fed h̃), between = stacked layers of both, output = h̃ entering the
/// generator, recurrent = H(t-1) of every encoder direction and decoder layer.
public final class Translator: Model {
    public let config: ModelConfig
    let sourceEmbedding: Embedding
    let targetEmbedding: Embedding
    let encoder: [PaddedLSTM]
    let decoder: [LSTMLayer]
    let attention: Attention
    let generator: OutputLayer
    public var optimizer = Optimizer()
    public let compute = Compute()
    public var rng = Random(seed: 0)
    public let dataParallel = DataParallel()

    // This batch.
    private var sourceSteps = 0, targetSteps = 0, batch = 0
    private var sourceLengths: [Int] = []
    private var sourceIDs: [Int32] = []   // B × T_s, 0 at padded positions
    private var decoderIDs: [Int32] = []  // B × T_t, the decoder's inputs, 0 at padded positions
    private var gold: [Int32] = []        // B × T_t, the predicted ids, −1 at padded positions
    private var predicted = 0
    private var firstInput: Buffer        // T_t × B × (E [+ H]): the first decoder layer's input
    private var dTop: Buffer              // T_t × B × H: ∂h_t of the top decoder layer
    private var dEmbedding: Buffer        // T_t × B × E
    private(set) var initialH: [Buffer] = [], initialC: [Buffer] = []  // B × H per layer: the encoder's final states

    public init(_ config: ModelConfig) throws(SDLSTMError) {
        guard config.task == .seq2seq else { throw .invalid("not a sequence-to-sequence config") }
        try config.validate()
        try ModelConfig.check("target_vocab_size", config.targetVocabSize, max: 1 << 22)
        if config.bidirectional {
            guard config.hiddenSize % 2 == 0 else {
                throw .invalid("hidden_size must be even with a bidirectional encoder (hidden_size / 2 per direction), got \(config.hiddenSize)")
            }
        }
        self.config = config
        let (e, h, layers) = (config.embedSize, config.hiddenSize, config.numLayers)
        sourceEmbedding = try Embedding(vocabSize: config.vocabSize, width: e, name: "encoder.embedding.weight")
        var encoder: [PaddedLSTM] = []
        for l in 0..<layers {
            encoder.append(try PaddedLSTM(inputSize: l == 0 ? e : h, hiddenSize: config.bidirectional ? h / 2 : h,
                                          name: "encoder.rnn", layer: l, bidirectional: config.bidirectional))
        }
        self.encoder = encoder
        targetEmbedding = try Embedding(vocabSize: config.targetVocabSize, width: e, name: "decoder.embedding.weight")
        var decoder: [LSTMLayer] = []
        for l in 0..<layers {
            let input = l > 0 ? h : e + (config.inputFeeding ? h : 0)
            decoder.append(try LSTMLayer(inputSize: input, hiddenSize: h, name: "decoder.rnn", layer: l))
        }
        self.decoder = decoder
        attention = try Attention(size: h, name: "decoder.attn")
        generator = try OutputLayer(inputSize: h, vocabSize: config.targetVocabSize, name: "generator")
        for lstm in encoder.flatMap(\.directions) + decoder { lstm.compute = compute }
        attention.compute = compute
        generator.compute = compute
        (firstInput, dTop, dEmbedding) = (try Buffer(0), try Buffer(0), try Buffer(0))
        var initRNG = Random(seed: config.seed)
        for p in parameters { p.initUniform(scale: config.initScale, rng: &initRNG) }
        rng = initRNG
    }

    public var parameters: [Parameter] {
        [sourceEmbedding.table] + encoder.flatMap(\.parameters) + [targetEmbedding.table]
            + decoder.flatMap(\.parameters) + attention.parameters + [generator.weight, generator.bias]
    }

    public var embeddings: [Embedding] { [sourceEmbedding, targetEmbedding] }

    public var lstmLayers: [LSTMLayer] { encoder.flatMap(\.directions) + decoder }
    public var projections: [MaskedLinear] { [generator.projection] }

    public func masks(at site: DropoutSite) -> [DropoutMask] {
        switch site {
        case .input: return encoder[0].directions.map(\.inputDropout) + [decoder[0].inputDropout]
        case .between: return encoder.dropFirst().flatMap(\.directions).map(\.inputDropout)
            + decoder.dropFirst().map(\.inputDropout)
        case .output: return [generator.dropout]
        case .recurrent: return encoder.flatMap(\.directions).map(\.recurrentDropout) + decoder.map(\.recurrentDropout)
        }
    }

    public func commitState(_ batch: Batch) {}
    public func resetState() {}

    var firstInputWidth: Int { decoder[0].inputSize }

    // MARK: Training and evaluation

    /// Training loss (dropout on) without gradients; with frozen masks, a function of the parameters.
    public func trainingLoss(_ batch: Batch) throws(SDLSTMError) -> StepStats {
        try prepare(batch)
        // The encoder's masks span the source steps, the decoder's and the generator's the target steps.
        let (b, shard) = (self.batch, dataParallel.shard)
        for lstm in encoder.flatMap(\.directions) {
            lstm.inputDropout.sample(steps: sourceSteps, batch: b, rng: &rng, shard: shard)
            lstm.recurrentDropout.sample(steps: sourceSteps, batch: b, rng: &rng, shard: shard)
        }
        for lstm in decoder {
            lstm.inputDropout.sample(steps: targetSteps, batch: b, rng: &rng, shard: shard)
            lstm.recurrentDropout.sample(steps: targetSteps, batch: b, rng: &rng, shard: shard)
        }
        generator.dropout.sample(steps: targetSteps, batch: b, rng: &rng, shard: shard)
        return StepStats(loss: forward(dropout: true), tokens: predicted)
    }

    public func evaluationLoss(_ batch: Batch) throws(SDLSTMError) -> StepStats {
        try prepare(batch)
        return StepStats(loss: forward(dropout: false), tokens: predicted)
    }

    /// Validates the batch (real positions only) and sizes every workspace for it.
    private func prepare(_ batch: Batch) throws(SDLSTMError) {
        let (b, ts) = (batch.batchSize, batch.seqLen)
        let widest = max(firstInputWidth, 4 * config.hiddenSize, config.targetVocabSize, 2 * config.hiddenSize)
        try batch.checkShape(widest: widest)
        let lengths = try batch.rowLengths(batch.lengths, max: ts, "lengths")
        try checkIDs(batch.inputs, rows: b, stride: ts, lengths: lengths, below: config.vocabSize, "inputs")
        let tt = batch.targetLen
        guard tt >= 2 else { throw .invalid("target_len must be >= 2 (<bos> and <eos> at least), got \(tt)") }
        try batch.checkShape(steps: tt, widest: widest, "target_len")
        let targetLengths = try batch.rowLengths(batch.targetLengths, max: tt, min: 2, "target_lengths")
        let targets = try batch.requiredTargets()
        try checkIDs(targets, rows: b, stride: tt, lengths: targetLengths, below: config.targetVocabSize, "targets")

        try prepareEncoder(batch.inputs, lengths: lengths, steps: ts)
        // The decoder reads ids 0 … n_b of each row and predicts ids 1 … n_b + 1.
        let steps = tt - 1
        targetSteps = steps
        refill(&decoderIDs, 0, count: b * steps)
        refill(&gold, -1, count: b * steps)
        predicted = 0
        for i in 0..<b {
            for t in 0..<(targetLengths[i] - 1) {
                decoderIDs[i * steps + t] = targets[i * tt + t]
                gold[i * steps + t] = targets[i * tt + t + 1]
            }
            predicted += targetLengths[i] - 1
        }
        try targetEmbedding.prepare(steps: steps, batch: b)
        for layer in decoder { try layer.prepare(steps: steps, batch: b) }
        try attention.prepare(steps: steps, rows: b, sourceSteps: ts, lengths: lengths, beam: 1)
        try generator.prepare(steps: steps, batch: b)
        let rows = steps * b, h = config.hiddenSize
        if firstInput.count < rows * firstInputWidth { firstInput = try Buffer(rows * firstInputWidth) }
        if dTop.count < rows * h { dTop = try Buffer(rows * h) }
        if dEmbedding.count < rows * config.embedSize { dEmbedding = try Buffer(rows * config.embedSize) }
    }

    /// Sizes the encoder for B = lengths.count sources of `steps` positions and copies their ids.
    func prepareEncoder(_ ids: UnsafePointer<Int32>, lengths: [Int], steps: Int) throws(SDLSTMError) {
        let b = lengths.count
        (sourceSteps, batch, sourceLengths) = (steps, b, lengths)
        refill(&sourceIDs, 0, count: b * steps)
        for i in 0..<b { for j in 0..<lengths[i] { sourceIDs[i * steps + j] = ids[i * steps + j] } }
        try sourceEmbedding.prepare(steps: steps, batch: b)
        for layer in encoder { try layer.prepare(steps: steps, batch: b) }
        let h = config.hiddenSize
        if initialH.first.map({ $0.count < b * h }) ?? true {
            initialH = []
            initialC = []
            for _ in decoder {
                initialH.append(try Buffer(b * h))
                initialC.append(try Buffer(b * h))
            }
        }
    }

    /// The encoder over the prepared source ids: memory and each layer's final states.
    func encode(dropout: Bool) -> UnsafePointer<Float> {
        var x = UnsafePointer(sourceIDs.withUnsafeBufferPointer { sourceEmbedding.forward($0.baseAddress!) })
        for (l, layer) in encoder.enumerated() {
            layer.forward(x, lengths: sourceLengths, dropout: dropout)
            layer.finalStates(into: initialH[l].ptr, cell: initialC[l].ptr)
            x = UnsafePointer(layer.output.ptr)
        }
        return x
    }

    /// Mean loss over the predicted tokens.
    private func forward(dropout: Bool) -> Double {
        let memory = encode(dropout: dropout)
        let (b, h, e, w) = (batch, config.hiddenSize, config.embedSize, firstInputWidth)
        let emb = decoderIDs.withUnsafeBufferPointer { targetEmbedding.forward($0.baseAddress!) }
        for r in 0..<(targetSteps * b) { (firstInput.ptr + r * w).update(from: emb + r * e, count: e) }
        for (l, layer) in decoder.enumerated() {
            layer.begin(h0: initialH[l].ptr, c0: initialC[l].ptr, dropout: dropout)
        }
        for t in 0..<targetSteps {
            if config.inputFeeding {
                for i in 0..<b {
                    let feed = firstInput.ptr + (t * b + i) * w + e
                    if t == 0 { feed.update(repeating: 0, count: h) } else {
                        feed.update(from: attention.output.ptr + ((t - 1) * b + i) * h, count: h)
                    }
                }
            }
            var x = UnsafePointer(firstInput.ptr)
            for layer in decoder {
                layer.forwardStep(t, x)
                x = UnsafePointer(layer.output)
            }
            attention.forwardStep(t, hidden: x + t * b * h, memory: memory)
        }
        return gold.withUnsafeBufferPointer {
            generator.forward(attention.output.ptr, targets: $0.baseAddress!, dropout: dropout)
        }
    }

    /// Gradients of the mean loss, from the generator back through the decoder steps, the
    /// attention and the initial states into the encoder and both embeddings.
    public func backward(_: Batch) {
        let (b, h, e, w) = (self.batch, config.hiddenSize, config.embedSize, firstInputWidth)
        gold.withUnsafeBufferPointer { generator.backward(targets: $0.baseAddress!) }
        let dOutput = generator.dInput.ptr  // ∂h̃, T_t × B × H; the fed-back share is added below
        let memory = UnsafePointer(encoder[encoder.count - 1].output.ptr)
        attention.beginBackward()
        for layer in decoder { layer.beginBackward(initialStateGradient: true) }
        let top = decoder.count - 1
        for t in stride(from: targetSteps - 1, through: 0, by: -1) {
            let dh̃ = dOutput + t * b * h
            if config.inputFeeding && t + 1 < targetSteps {
                // h̃_t was also the fed input of step t + 1.
                let fed = decoder[0].dx.ptr + (t + 1) * b * w + e
                for i in 0..<b { for j in 0..<h { dh̃[i * h + j] += fed[i * w + j] } }
            }
            let dHidden = dTop.ptr + t * b * h
            attention.backwardStep(t, dOutput: dh̃, memory: memory, dHidden: dHidden)
            decoder[top].backwardStep(t, dHidden, needInputGradient: true)
            for l in stride(from: top - 1, through: 0, by: -1) {
                decoder[l].backwardStep(t, decoder[l + 1].dx.ptr + t * b * h, needInputGradient: true)
            }
        }
        for layer in decoder { layer.finishBackward() }
        attention.finishBackward(hidden: decoder[top].output)
        let dx = decoder[0].dx.ptr
        for r in 0..<(targetSteps * b) { (dEmbedding.ptr + r * e).update(from: dx + r * w, count: e) }
        decoderIDs.withUnsafeBufferPointer { targetEmbedding.backward($0.baseAddress!, dEmbedding.ptr) }

        // The encoder: its top output fed the attention, every layer's final states the decoder's.
        var dOut = UnsafePointer(attention.dMemory.ptr)
        for l in stride(from: encoder.count - 1, through: 0, by: -1) {
            encoder[l].backward(outputGradient: dOut, finalHidden: decoder[l].initialHiddenGradient,
                                finalCell: decoder[l].initialCellGradient, needInputGradient: true)
            dOut = UnsafePointer(encoder[l].dx.ptr)
        }
        sourceIDs.withUnsafeBufferPointer { sourceEmbedding.backward($0.baseAddress!, dOut) }
    }
}
