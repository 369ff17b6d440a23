import Glibc

/// Sequence labeller after Lample et al. (2016): for every word of a sentence
///
///     x_t = [ E_word[w_t] | c(w_t) ]                    c: character BiLSTM features (optional)
///     h_t = BiLSTM layers over x_1 … x_L                  hidden_size / 2 per direction
///     s_t = h̃_t · W + b                                  one score per tag
///
/// then a linear-chain CRF over s_1 … s_L (loss −log P(gold), Viterbi decoding) or, without it, a
/// softmax cross-entropy per word (argmax decoding). The loss is the mean over the batch's real
/// words: Σ_sentences loss / Σ_b L_b.
///
/// A batch holds B sentences right-padded to T words: inputs (word ids) and targets (tag ids) are
/// batch-major B × T, lengths gives each sentence's L_b, chars are B × T × W character ids with
/// word_lengths B × T. Only real positions (t < L_b) are read; padded positions take no part in
/// the loss, the CRF, the gradients or the decoded tags, whatever they hold.
///
/// Dropout sites: input = x_t entering the first BiLSTM layer, between = a layer's output entering
/// the next, output = the top layer's output entering the tag projection, recurrent = H(t-1) of
/// every word LSTM. Each direction of a layer draws its own masks in its own time order.
public final class Tagger: Model {
    /// The most tags a tagger (and a span counter) takes.
    public static let maxTags = 1 << 12
    public let config: ModelConfig
    public let wordEmbedding: Embedding
    public let characters: CharacterEncoder?
    let layers: [PaddedLSTM]
    /// The tag scores S = H̃ · W + b (W: D × K, PyTorch's `hidden2tag.weight` is K × D), H̃ = H ⊙ M_out.
    let tagWeight: Parameter
    let tagBias: Parameter
    let projection: MaskedLinear
    private let wordLoss: SoftmaxCrossEntropy  // without a CRF
    public let crf: CRF?
    public var optimizer = Optimizer()
    public let compute = Compute()
    public var rng = Random(seed: 0)
    public let dataParallel = DataParallel()
    /// Set with `setTagNames`; nil until then.
    public private(set) var tagNames: [String]?
    public private(set) var tagScheme: TagScheme = .none

    /// Width of x_t.
    public var inputWidth: Int { config.embedSize + (characters?.width ?? 0) }

    // This batch.
    private var steps = 0, batch = 0
    private var lengths: [Int] = []
    private var realWords = 0
    private var tags: UnsafePointer<Int32> = emptyIDs  // the batch's gold tags, B × T (validated)
    private var wordIDs: [Int32] = []       // B × T, 0 at padded positions
    private var wordRows: [Int] = []        // row t * B + b of each real word, time-major order
    private var wordPositions: [Int] = []   // index b * T + t of each real word in the batch arrays
    private var representation: Buffer      // T × B × inputWidth
    private var dEmbedding: Buffer          // T × B × embedSize
    private var dCharacters: Buffer         // N × C
    private var scores: Buffer              // T × B × K
    private var dScores: Buffer             // T × B × K; without a CRF, first the words' softmax
    private var dTop: Buffer                // T × B × hidden: ∂loss/∂H of the top layer

    public init(_ config: ModelConfig) throws(SDLSTMError) {
        guard config.task == .tagger else { throw .invalid("not a tagger config") }
        try config.validate()
        try ModelConfig.check("num_tags", config.numTags, max: Self.maxTags)
        guard config.hiddenSize % 2 == 0 else {
            throw .invalid("hidden_size must be even (hidden_size / 2 per direction), got \(config.hiddenSize)")
        }
        try ModelConfig.check("char_vocab_size", config.charVocabSize, min: 0, max: 1 << 22)
        if config.charVocabSize > 0 {
            try ModelConfig.check("char_embed_size", config.charEmbedSize, max: 1 << 16)
            try ModelConfig.check("char_hidden_size", config.charHiddenSize, min: 2, max: 1 << 16)
            guard config.charHiddenSize % 2 == 0 else {
                throw .invalid("char_hidden_size must be even (char_hidden_size / 2 per direction), got \(config.charHiddenSize)")
            }
        }
        self.config = config
        wordEmbedding = try Embedding(vocabSize: config.vocabSize, width: config.embedSize, name: "word_embedding.weight")
        characters = config.charVocabSize > 0
            ? try CharacterEncoder(vocabSize: config.charVocabSize, embedSize: config.charEmbedSize,
                                   hiddenSize: config.charHiddenSize, name: "char")
            : nil
        let input = config.embedSize + (config.charVocabSize > 0 ? config.charHiddenSize : 0)
        var layers: [PaddedLSTM] = []
        for l in 0..<config.numLayers {
            layers.append(try PaddedLSTM(inputSize: l == 0 ? input : config.hiddenSize,
                                           hiddenSize: config.hiddenSize / 2, name: "lstm", layer: l))
        }
        self.layers = layers
        tagWeight = try Parameter("hidden2tag.weight", rows: config.hiddenSize, cols: config.numTags, transposed: true)
        tagBias = try Parameter("hidden2tag.bias", rows: config.numTags)
        // K = num_tags is far narrower than one kernel panel: the kept columns would save nothing.
        projection = try MaskedLinear(width: config.hiddenSize, outputs: config.numTags, kernels: .never)
        wordLoss = SoftmaxCrossEntropy(width: config.numTags)
        crf = config.useCRF ? try CRF(numTags: config.numTags, name: "crf") : nil
        let lstms = layers.flatMap(\.directions) + (characters?.lstm.directions ?? [])
        for lstm in lstms { lstm.compute = compute }
        (representation, dEmbedding, dCharacters, scores, dScores, dTop) =
            (try Buffer(0), try Buffer(0), try Buffer(0), try Buffer(0), try Buffer(0), try Buffer(0))
        var initRNG = Random(seed: config.seed)
        for p in parameters { p.initUniform(scale: config.initScale, rng: &initRNG) }
        rng = initRNG
    }

    /// PyTorch's `state_dict` order of a module registering them in this order.
    public var parameters: [Parameter] {
        [wordEmbedding.table] + (characters?.parameters ?? []) + layers.flatMap(\.parameters)
            + [tagWeight, tagBias] + (crf?.parameters ?? [])
    }

    public var embeddings: [Embedding] { [wordEmbedding] + (characters.map { [$0.embedding] } ?? []) }

    /// The character LSTM has no dropout site, but its GEMMs count in the total.
    public var lstmLayers: [LSTMLayer] { layers.flatMap(\.directions) + (characters?.lstm.directions ?? []) }
    public var projections: [MaskedLinear] { [projection] }

    public func masks(at site: DropoutSite) -> [DropoutMask] {
        switch site {
        case .input: return layers[0].directions.map(\.inputDropout)
        case .between: return layers.dropFirst().flatMap(\.directions).map(\.inputDropout)
        case .output: return [projection.mask]
        case .recurrent: return layers.flatMap(\.directions).map(\.recurrentDropout)
        }
    }

    public func commitState(_ batch: Batch) {}
    public func resetState() {}

    /// Names the tags (tag id = index) and constrains the CRF to `scheme`: a transition the scheme
    /// forbids scores −∞ in the loss and in decoding, and a gold sequence taking one is invalid.
    /// Without a CRF the names are kept and the scheme has no effect.
    public func setTagNames(_ names: [String], scheme: TagScheme) throws(SDLSTMError) {
        guard names.count == config.numTags else {
            throw .invalid("got \(names.count) tag names for num_tags = \(config.numTags)")
        }
        try crf?.setConstraints(TransitionConstraints(names: names, scheme: scheme))
        tagNames = names
        tagScheme = scheme
    }

    // MARK: Training and evaluation

    /// Training loss (dropout on) without gradients; with frozen masks, a function of the parameters.
    public func trainingLoss(_ batch: Batch) throws(SDLSTMError) -> StepStats {
        try prepare(batch, needTargets: true)
        sampleMasks(steps: steps, batch: self.batch)
        forward(batch, dropout: true)
        return StepStats(loss: loss(batch) / Double(realWords), tokens: realWords)
    }

    public func evaluationLoss(_ batch: Batch) throws(SDLSTMError) -> StepStats {
        try prepare(batch, needTargets: true)
        forward(batch, dropout: false)
        return StepStats(loss: loss(batch) / Double(realWords), tokens: realWords)
    }

    /// The best tag sequence of each sentence, batch-major into `out` (B × T); padded positions get
    /// −1. `batch.targets` is not read. Non-finite scores or CRF parameters are `.numeric` and leave
    /// `out` as it was.
    public func tag(_ batch: Batch, into out: UnsafeMutablePointer<Int32>) throws(SDLSTMError) {
        try prepare(batch, needTargets: false)
        forward(batch, dropout: false)
        let scores = UnsafePointer(self.scores.ptr)
        let k = config.numTags
        // NaN wins no comparison, so decoding would quietly answer tag 0 everywhere.
        for r in wordRows where !(0..<k).allSatisfy({ scores[r * k + $0].isFinite }) {
            throw .numeric("the tag scores of sentence \(r % self.batch), word \(r / self.batch) are not finite; the model's parameters are not usable")
        }
        if let crf {
            if let bad = crf.parameters.first(where: { !$0.value.array.allSatisfy(\.isFinite) }) {
                throw .numeric("\(bad.pytorchName) holds non-finite values; the CRF cannot decode")
            }
            crf.decode(scores, lengths: lengths, steps: steps, into: out)
            return
        }
        for b in 0..<self.batch {
            for t in 0..<steps {
                guard t < lengths[b] else { out[b * steps + t] = -1; continue }
                let s = scores + (t * self.batch + b) * k
                var best = 0
                for j in 1..<k where s[j] > s[best] { best = j }
                out[b * steps + t] = Int32(best)
            }
        }
    }

    /// Validates the batch (real positions only) and sizes every workspace for it.
    private func prepare(_ batch: Batch, needTargets: Bool) throws(SDLSTMError) {
        let (t, b) = (batch.seqLen, batch.batchSize)
        try batch.checkShape(widest: max(inputWidth, 2 * config.hiddenSize, config.numTags))
        let lengths = try batch.rowLengths(batch.lengths, max: t, "lengths")
        try checkIDs(batch.inputs, rows: b, stride: t, lengths: lengths, below: config.vocabSize, "inputs")
        if needTargets {
            let tags = try batch.requiredTargets()
            try checkIDs(tags, rows: b, stride: t, lengths: lengths, below: config.numTags, "targets")
            try crf?.checkAllowed(tags, lengths: lengths, steps: t, names: tagNames)
            self.tags = tags
        }
        let words = lengths.reduce(0, +)
        if let characters {
            let w = batch.maxWordLen
            guard let chars = batch.chars, let wordLengths = batch.wordLengths else {
                throw .invalid("this tagger reads character features: batch->chars and batch->word_lengths must be set")
            }
            guard w >= 1 else { throw .invalid("max_word_len must be >= 1, got \(w)") }
            let widest = max(config.charEmbedSize, 2 * config.charHiddenSize)
            let (rows, overflow) = words.multipliedReportingOverflow(by: w)
            guard !overflow, rows <= Int(Int32.max) / widest else {
                throw .invalid("\(words) words × max_word_len \(w) is too large for this model")
            }
            for i in 0..<b {
                for j in 0..<lengths[i] {
                    let p = i * t + j, n = wordLengths[p]
                    guard n >= 1 && Int(n) <= w else { throw .invalid("word_lengths[\(p)] = \(n) is outside [1, \(w)]") }
                    for c in 0..<Int(n) where chars[p * w + c] < 0 || Int(chars[p * w + c]) >= config.charVocabSize {
                        throw .invalid("chars[\(p * w + c)] = \(chars[p * w + c]) is outside [0, \(config.charVocabSize))")
                    }
                }
            }
            try characters.prepare(words: words, maxLength: w)
        }

        steps = t
        self.batch = b
        self.lengths = lengths
        realWords = words
        refill(&wordIDs, 0, count: b * t)
        wordRows.removeAll(keepingCapacity: true)
        wordPositions.removeAll(keepingCapacity: true)
        for j in 0..<t {
            for i in 0..<b where j < lengths[i] {
                wordIDs[i * t + j] = batch.inputs[i * t + j]
                wordRows.append(j * b + i)
                wordPositions.append(i * t + j)
            }
        }
        try wordEmbedding.prepare(steps: t, batch: b)
        for layer in layers { try layer.prepare(steps: t, batch: b) }
        try projection.prepare(steps: t, batch: b)
        let rows = t * b
        if scores.count < rows * config.numTags { scores = try Buffer(rows * config.numTags) }
        if dTop.count < rows * config.hiddenSize { dTop = try Buffer(rows * config.hiddenSize) }
        if representation.count < rows * inputWidth { representation = try Buffer(rows * inputWidth) }
        if dEmbedding.count < rows * config.embedSize { dEmbedding = try Buffer(rows * config.embedSize) }
        if dScores.count < rows * config.numTags { dScores = try Buffer(rows * config.numTags) }
        if let characters, dCharacters.count < words * characters.width { dCharacters = try Buffer(words * characters.width) }
    }

    /// x_t for every position (0 at padded ones), the BiLSTM layers, the tag scores.
    private func forward(_ batch: Batch, dropout: Bool) {
        let (e, d) = (config.embedSize, inputWidth)
        let emb = wordIDs.withUnsafeBufferPointer { wordEmbedding.forward($0.baseAddress!) }
        representation.ptr.update(repeating: 0, count: steps * self.batch * d)
        for r in wordRows { (representation.ptr + r * d).update(from: emb + r * e, count: e) }
        if let characters, let chars = batch.chars, let wordLengths = batch.wordLengths {
            characters.forward(chars: chars, wordLengths: wordLengths, positions: wordPositions)
            let c = characters.width
            for (n, r) in wordRows.enumerated() {
                (representation.ptr + r * d + e).update(from: characters.features.ptr + n * c, count: c)
            }
        }
        var x = UnsafePointer(representation.ptr)
        for layer in layers {
            layer.forward(x, lengths: lengths, dropout: dropout)
            x = UnsafePointer(layer.output.ptr)
        }
        let k = config.numTags
        for r in 0..<(steps * self.batch) { (scores.ptr + r * k).update(from: tagBias.value.ptr, count: k) }
        projection.begin(steps: steps, batch: self.batch, dropout: dropout)
        projection.forward(x, w: tagWeight.value.ptr, into: scores.ptr, pool: nil)
    }

    /// Σ over sentences of their loss (the CRF's −log P(gold), or the words' cross-entropies, which
    /// leave each word's softmax in dScores for `backward`; padded rows are zero there).
    private func loss(_ batch: Batch) -> Double {
        let scores = UnsafePointer(self.scores.ptr)
        if let crf { return crf.forward(scores, tags: tags, lengths: lengths, steps: steps) }
        let k = config.numTags
        dScores.ptr.update(repeating: 0, count: steps * self.batch * k)
        var total = 0.0
        for r in 0..<wordRows.count {
            let z = dScores.ptr + wordRows[r] * k
            z.update(from: scores + wordRows[r] * k, count: k)
            total += wordLoss.lossAndProbabilities(z, target: Int(tags[wordPositions[r]]))
        }
        return total
    }

    /// Gradients of the mean loss, from the tag scores down to both embeddings.
    public func backward(_ batch: Batch) {
        let k = config.numTags, scale = 1 / Double(realWords)
        if let crf {
            crf.backward(UnsafePointer(scores.ptr), tags: tags, lengths: lengths, steps: steps, scale: scale,
                         dEmissions: dScores.ptr)
        } else {
            // ∂/∂s = (softmax(s) − onehot(y)) / N at real positions (loss left the softmax), 0 at padded ones.
            for r in 0..<wordRows.count {
                wordLoss.gradient(dScores.ptr + wordRows[r] * k, target: Int(tags[wordPositions[r]]), scale: Float(scale))
            }
        }
        let rows = steps * self.batch
        projection.weightGradient(dScores.ptr, into: tagWeight.grad.ptr, pool: nil)
        columnSums(dScores.ptr, rows: rows, n: k, into: tagBias.grad.ptr)
        projection.backwardData(dScores.ptr, w: tagWeight.value.ptr, into: dTop.ptr, pool: nil)
        var dOut = UnsafePointer(dTop.ptr)
        for layer in layers.reversed() {
            layer.backward(outputGradient: dOut, needInputGradient: true)
            dOut = UnsafePointer(layer.dx.ptr)
        }
        // Split ∂x_t into the word embedding's and the character features' parts.
        let (e, d) = (config.embedSize, inputWidth)
        for r in 0..<(steps * self.batch) { (dEmbedding.ptr + r * e).update(from: dOut + r * d, count: e) }
        wordIDs.withUnsafeBufferPointer { wordEmbedding.backward($0.baseAddress!, dEmbedding.ptr) }
        if let characters {
            let c = characters.width
            for (n, r) in wordRows.enumerated() { (dCharacters.ptr + n * c).update(from: dOut + r * d + e, count: c) }
            characters.backward(dCharacters.ptr)
        }
    }
}
