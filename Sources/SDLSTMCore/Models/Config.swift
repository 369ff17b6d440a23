/// What a model learns. Mirrors `sdlstm_task`.
public enum Task: Int32, Sendable {
    case languageModel = 1
    case seq2seq = 2
    case tagger = 3
}

/// The architecture of a model. Mirrors `sdlstm_config`; each task reads the fields it uses.
public struct ModelConfig: Equatable, Sendable {
    public var task: Task
    public var vocabSize = 10_000
    public var embedSize = 650
    public var hiddenSize = 650
    public var numLayers = 2
    public var initScale: Float = 0.05
    public var seed: UInt64 = 1
    // Sequence to sequence.
    public var targetVocabSize = 0
    public var bidirectional = false
    public var inputFeeding = false
    // Tagger.
    public var numTags = 0
    public var charVocabSize = 0
    public var charEmbedSize = 0
    public var charHiddenSize = 0
    public var useCRF = false

    /// The defaults of a task. LM: PTB medium (Zaremba et al. 2014), 2 × 650, vocabulary 10k, ±0.05.
    /// Tagger: CoNLL-2003 NER after Lample et al. (2016): word embedding 100, one BiLSTM layer of
    /// 100 + 100, character embedding 25 and character BiLSTM 25 + 25, CRF, 9 tags (O and B-/I- of
    /// four types), ±0.1; vocab_size 20000 and char_vocab_size 100 are placeholders for the data's.
    /// Sequence to sequence: OpenNMT-py's RNN defaults, embedding 500, 2 layers × 500, bidirectional
    /// encoder, input feeding, ±0.1, vocabularies of 10k on both sides.
    public init(task: Task = .languageModel) {
        self.task = task
        if task == .seq2seq {
            (vocabSize, targetVocabSize, embedSize, hiddenSize, numLayers, initScale) = (10_000, 10_000, 500, 500, 2, 0.1)
            (bidirectional, inputFeeding) = (true, true)
        }
        if task == .tagger {
            (vocabSize, embedSize, hiddenSize, numLayers, initScale) = (20_000, 100, 200, 1, 0.1)
            (numTags, charVocabSize, charEmbedSize, charHiddenSize, useCRF) = (9, 100, 25, 50, true)
        }
    }

    /// Every size the task uses positive and small enough for Int32 BLAS indices.
    public func validate() throws(SDLSTMError) {
        try Self.check("vocab_size", vocabSize, max: 1 << 22)
        try Self.check("embed_size", embedSize, max: 1 << 16)
        try Self.check("hidden_size", hiddenSize, max: 1 << 16)
        try Self.check("num_layers", numLayers, max: 64)
        guard initScale.isFinite && initScale >= 0 else {
            throw .invalid("init_scale must be finite and >= 0, got \(initScale)")
        }
    }

    public static func check(_ name: String, _ value: Int, min: Int = 1, max: Int) throws(SDLSTMError) {
        guard value >= min && value <= max else { throw .invalid("\(name) must be in \(min)...\(max), got \(value)") }
    }
}
