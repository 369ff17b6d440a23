import CSDLSTM
import Glibc

/// How `LanguageModel.generate` samples (`sdlstm_generate_options`).
public struct GenerateOptions: Equatable, Sendable {
    /// > 0 divides the logits (1: the model's distribution); 0 always takes the most likely token.
    public var temperature: Float
    /// 0: sample from every token; k >= 1: from the k most likely.
    public var topK: Int
    /// The sampling stream: the same model, prompt, options and seed give the same tokens.
    public var seed: UInt64
    /// Generation ends once this id is emitted (it is included); nil: only `maxTokens` ends it.
    public var stopID: Int32?

    /// The library's defaults (`sdlstm_generate_options_init`), then the arguments given.
    public init(temperature: Float? = nil, topK: Int? = nil, seed: UInt64? = nil, stopID: Int32? = nil) {
        var o = sdlstm_generate_options()
        o.struct_size = MemoryLayout<sdlstm_generate_options>.size
        let status = sdlstm_generate_options_init(&o)
        precondition(status == SDLSTM_OK, "sdlstm_generate_options_init failed: \(String(cString: sdlstm_last_error()))")
        self.temperature = temperature ?? o.temperature
        self.topK = topK ?? Int(o.top_k)
        self.seed = seed ?? o.seed
        self.stopID = stopID ?? (o.stop_id >= 0 ? o.stop_id : nil)
    }

    func cOptions() throws(SDLSTMError) -> sdlstm_generate_options {
        var o = sdlstm_generate_options()
        o.struct_size = MemoryLayout<sdlstm_generate_options>.size
        (o.temperature, o.seed, o.stop_id) = (temperature, seed, stopID ?? -1)
        o.top_k = try SDLSTMError.int32(topK, "topK")
        return o
    }
}

/// The log-probability of a token sequence under a language model.
public struct SequenceScore: Equatable, Sendable {
    /// Σ log P(tokens[i] | tokens[..<i]) over i >= 1, in nats.
    public var logProb: Double
    /// Each of those terms: tokens.count - 1 values.
    public var tokenLogProbs: [Float]

    /// exp of the mean negative log-probability per predicted token.
    public var perplexity: Double { exp(-logProb / Double(tokenLogProbs.count)) }
}

extension LanguageModel {
    /// The recurrent state of `streams` independent token streams, each starting from zero; separate
    /// from the state that `step` and `evaluate` carry. It keeps its model alive.
    public final class State {
        public let model: LanguageModel
        public let streams: Int
        let handle: OpaquePointer
        let vocabSize: Int

        public init(for model: LanguageModel, streams: Int = 1) throws(SDLSTMError) {
            var out: OpaquePointer?
            try SDLSTMError.check(sdlstm_lm_state_create(model.handle, try SDLSTMError.int32(streams, "streams"), &out))
            guard let out else { throw SDLSTMError(.invalid, "sdlstm_lm_state_create returned no state") }
            (self.model, self.streams, handle, vocabSize) = (model, streams, out, model.config.vocabSize)
        }

        deinit { sdlstm_lm_state_free(handle) }

        /// Every stream back to the zero state.
        public func reset() throws(SDLSTMError) {
            try SDLSTMError.check(sdlstm_lm_state_reset(handle))
        }

        /// Reads one token per stream, advances the state, and returns the natural-log probabilities
        /// of each stream's next token: streams × vocabSize values, stream s's at
        /// s * vocabSize ..< (s + 1) * vocabSize. On failure the state is unchanged.
        public func nextLogProbs(_ tokens: [Int32]) throws(SDLSTMError) -> [Float] {
            guard tokens.count == streams else {
                throw SDLSTMError(.invalid, "tokens has \(tokens.count) ids, expected one per stream (\(streams))")
            }
            var out = [Float](repeating: 0, count: streams * vocabSize)
            let status = tokens.withUnsafeBufferPointer { t in
                out.withUnsafeMutableBufferPointer { sdlstm_lm_next(model.handle, handle, t.baseAddress, $0.baseAddress) }
            }
            try SDLSTMError.check(status)
            return out
        }
    }

    /// Scores `tokens` (at least 2) from a zero state: tokens[0] is the context (e.g. <eos>), each
    /// later token is predicted from those before it. Changes neither the model nor its carried state.
    public func score(_ tokens: [Int32]) throws(SDLSTMError) -> SequenceScore {
        guard tokens.count >= 2 else { throw SDLSTMError(.invalid, "tokens has \(tokens.count) ids, expected at least 2") }
        var logProb = 0.0
        var terms = [Float](repeating: 0, count: tokens.count - 1)
        let status = tokens.withUnsafeBufferPointer { t in
            terms.withUnsafeMutableBufferPointer {
                sdlstm_lm_score(handle, t.baseAddress, Int64(tokens.count), &logProb, $0.baseAddress)
            }
        }
        try SDLSTMError.check(status)
        return SequenceScore(logProb: logProb, tokenLogProbs: terms)
    }

    /// Feeds `prompt` (at least one id) from a zero state, then samples up to `maxTokens` ids.
    public func generate(prompt: [Int32], maxTokens: Int, options: GenerateOptions = GenerateOptions()) throws(SDLSTMError) -> [Int32] {
        guard !prompt.isEmpty else { throw SDLSTMError(.invalid, "prompt is empty") }
        guard maxTokens >= 1 else { throw SDLSTMError(.invalid, "maxTokens must be >= 1, got \(maxTokens)") }
        var o = try options.cOptions()
        var out = [Int32](repeating: -1, count: maxTokens)
        var count: Int64 = 0
        let status = prompt.withUnsafeBufferPointer { p in
            out.withUnsafeMutableBufferPointer {
                sdlstm_lm_generate(handle, p.baseAddress, Int64(prompt.count), &o, $0.baseAddress, Int64(maxTokens), &count)
            }
        }
        try SDLSTMError.check(status)
        return Array(out.prefix(Int(count)))
    }
}
