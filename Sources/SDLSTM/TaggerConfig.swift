import CSDLSTM

/// The architecture of a sequence tagger: word embedding [+ character BiLSTM features] -> BiLSTM
/// layers -> linear -> CRF (or a softmax per word).
public struct TaggerConfig: Equatable, Sendable {
    /// Word vocabulary.
    public var vocabSize: Int
    /// Width of the word embedding.
    public var embedSize: Int
    /// Width of every BiLSTM layer's output, both directions together (hiddenSize / 2 each; even).
    public var hiddenSize: Int
    /// Stacked BiLSTM layers (>= 1).
    public var numLayers: Int
    /// Tags (their ids are 0 ..< numTags).
    public var numTags: Int
    /// Character vocabulary; 0 turns character features off.
    public var charVocabSize: Int
    /// Width of the character embedding.
    public var charEmbedSize: Int
    /// Width of the character features, both directions of the character BiLSTM together (even).
    public var charHiddenSize: Int
    /// A linear-chain CRF (loss and Viterbi decoding) instead of a softmax per word.
    public var useCRF: Bool
    /// Parameters start uniform in [-initScale, initScale].
    public var initScale: Float
    /// Seeds the initialisation and the dropout masks.
    public var seed: UInt64

    /// The library's defaults (`sdlstm_config_init` for `SDLSTM_TASK_TAGGER`: CoNLL-2003 NER after
    /// Lample et al. 2016, embedding 100, 1 layer of 100 + 100, characters 25 and 25 + 25, CRF).
    public init() {
        var c = sdlstm_config()
        c.struct_size = MemoryLayout<sdlstm_config>.size
        let status = sdlstm_config_init(&c, SDLSTM_TASK_TAGGER)
        precondition(status == SDLSTM_OK, "sdlstm_config_init failed: \(String(cString: sdlstm_last_error()))")
        self.init(c)
    }

    init(_ c: sdlstm_config) {
        vocabSize = Int(c.vocab_size)
        embedSize = Int(c.embed_size)
        hiddenSize = Int(c.hidden_size)
        numLayers = Int(c.num_layers)
        numTags = Int(c.num_tags)
        charVocabSize = Int(c.char_vocab_size)
        charEmbedSize = Int(c.char_embed_size)
        charHiddenSize = Int(c.char_hidden_size)
        useCRF = c.use_crf != 0
        initScale = c.init_scale
        seed = c.seed
    }

    /// The C struct; throws `.invalid` if a size does not fit in int32 (the library checks the rest).
    func cConfig() throws(SDLSTMError) -> sdlstm_config {
        var c = sdlstm_config()
        c.struct_size = MemoryLayout<sdlstm_config>.size
        try SDLSTMError.check(sdlstm_config_init(&c, SDLSTM_TASK_TAGGER))
        c.vocab_size = try SDLSTMError.int32(vocabSize, "vocabSize")
        c.embed_size = try SDLSTMError.int32(embedSize, "embedSize")
        c.hidden_size = try SDLSTMError.int32(hiddenSize, "hiddenSize")
        c.num_layers = try SDLSTMError.int32(numLayers, "numLayers")
        c.num_tags = try SDLSTMError.int32(numTags, "numTags")
        c.char_vocab_size = try SDLSTMError.int32(charVocabSize, "charVocabSize")
        c.char_embed_size = try SDLSTMError.int32(charEmbedSize, "charEmbedSize")
        c.char_hidden_size = try SDLSTMError.int32(charHiddenSize, "charHiddenSize")
        c.use_crf = useCRF ? 1 : 0
        c.init_scale = initScale
        c.seed = seed
        return c
    }
}

/// How tag names mark spans; selects the transitions a tagger's CRF forbids.
public enum TagScheme: Sendable, CaseIterable {
    /// No constraints.
    case none
    /// B-X only directly after B-X or I-X, never first.
    case iob1
    /// I-X only directly after B-X or I-X, never first.
    case iob2

    var cValue: sdlstm_tag_scheme {
        switch self {
        case .none: SDLSTM_TAG_SCHEME_NONE
        case .iob1: SDLSTM_TAG_SCHEME_IOB1
        case .iob2: SDLSTM_TAG_SCHEME_IOB2
        }
    }
}

/// One sentence for a tagger: its word ids, each word's character ids (when the tagger has
/// character features), and its gold tag ids (for training and evaluation; ignored by `tag`).
public struct TaggedSentence: Equatable, Sendable {
    public var words: [Int32]
    /// One array of character ids per word, or empty without character features.
    public var characters: [[Int32]]
    public var tags: [Int32]

    public init(words: [Int32], characters: [[Int32]] = [], tags: [Int32] = []) {
        self.words = words
        self.characters = characters
        self.tags = tags
    }
}
