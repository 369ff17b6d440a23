import CSDLSTM

/// The architecture of a language model: embedding -> stacked LSTM -> linear -> softmax.
public struct LanguageModelConfig: Equatable, Sendable {
    /// Input and output vocabulary.
    public var vocabSize: Int
    /// Width of the embedding.
    public var embedSize: Int
    /// Width of every LSTM layer.
    public var hiddenSize: Int
    /// Stacked LSTM layers (>= 1).
    public var numLayers: Int
    /// Parameters start uniform in [-initScale, initScale].
    public var initScale: Float
    /// Seeds the initialisation and the dropout masks.
    public var seed: UInt64

    /// The library's defaults (`sdlstm_config_init`: PTB medium, vocab 10000, 2 x 650, init 0.05, seed 1).
    public init() {
        var c = sdlstm_config()
        c.struct_size = MemoryLayout<sdlstm_config>.size
        let status = sdlstm_config_init(&c, SDLSTM_TASK_LANGUAGE_MODEL)
        precondition(status == SDLSTM_OK, "sdlstm_config_init failed: \(String(cString: sdlstm_last_error()))")
        self.init(c)
    }

    /// The defaults, with the given fields replaced.
    public init(vocabSize: Int? = nil, embedSize: Int? = nil, hiddenSize: Int? = nil,
                numLayers: Int? = nil, initScale: Float? = nil, seed: UInt64? = nil) {
        self.init()
        if let vocabSize { self.vocabSize = vocabSize }
        if let embedSize { self.embedSize = embedSize }
        if let hiddenSize { self.hiddenSize = hiddenSize }
        if let numLayers { self.numLayers = numLayers }
        if let initScale { self.initScale = initScale }
        if let seed { self.seed = seed }
    }

    init(_ c: sdlstm_config) {
        vocabSize = Int(c.vocab_size)
        embedSize = Int(c.embed_size)
        hiddenSize = Int(c.hidden_size)
        numLayers = Int(c.num_layers)
        initScale = c.init_scale
        seed = c.seed
    }

    /// The C struct; throws `.invalid` if a size does not fit in int32 (the library checks the rest).
    func cConfig() throws(SDLSTMError) -> sdlstm_config {
        var c = sdlstm_config()
        c.struct_size = MemoryLayout<sdlstm_config>.size
        try SDLSTMError.check(sdlstm_config_init(&c, SDLSTM_TASK_LANGUAGE_MODEL))
        c.vocab_size = try SDLSTMError.int32(vocabSize, "vocabSize")
        c.embed_size = try SDLSTMError.int32(embedSize, "embedSize")
        c.hidden_size = try SDLSTMError.int32(hiddenSize, "hiddenSize")
        c.num_layers = try SDLSTMError.int32(numLayers, "numLayers")
        c.init_scale = initScale
        c.seed = seed
        return c
    }
}
