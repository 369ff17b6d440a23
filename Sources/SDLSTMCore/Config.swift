/// The architecture of a language model. Mirrors `sdlstm_config`.
public struct LanguageModelConfig: Equatable, Sendable {
    public var vocabSize = 10_000
    public var embedSize = 650
    public var hiddenSize = 650
    public var numLayers = 2
    public var initScale: Float = 0.05
    public var seed: UInt64 = 1

    /// PTB medium (Zaremba et al. 2014): 2 × 650, vocabulary 10k, uniform ±0.05.
    public init() {}

    /// Every size positive and small enough that the buffers' element counts fit in Int32 BLAS indices.
    public func validate() throws(SDLSTMError) {
        func check(_ name: String, _ value: Int, max: Int) throws(SDLSTMError) {
            guard value >= 1 && value <= max else { throw .invalid("\(name) must be in 1...\(max), got \(value)") }
        }
        try check("vocab_size", vocabSize, max: 1 << 22)
        try check("embed_size", embedSize, max: 1 << 16)
        try check("hidden_size", hiddenSize, max: 1 << 16)
        try check("num_layers", numLayers, max: 64)
        guard initScale.isFinite && initScale >= 0 else {
            throw .invalid("init_scale must be finite and >= 0, got \(initScale)")
        }
    }
}
