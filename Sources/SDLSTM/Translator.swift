import CSDLSTM

/// The architecture of an attention encoder-decoder (OpenNMT-py's RNN model; see sdlstm.h).
public struct TranslatorConfig: Equatable, Sendable {
    public var sourceVocabSize: Int
    public var targetVocabSize: Int
    /// Width of both embeddings.
    public var embedSize: Int
    /// Width of every LSTM layer (a bidirectional encoder: hiddenSize / 2 per direction; even).
    public var hiddenSize: Int
    /// Stacked layers of the encoder and of the decoder (>= 1).
    public var numLayers: Int
    /// The encoder reads the source both ways.
    public var bidirectional: Bool
    /// The attentional vector joins the decoder's next input.
    public var inputFeeding: Bool
    /// Parameters start uniform in [-initScale, initScale].
    public var initScale: Float
    /// Seeds the initialisation and the dropout masks.
    public var seed: UInt64

    /// The library's defaults (`sdlstm_config_init` for `SDLSTM_TASK_SEQ2SEQ`).
    public init() {
        var c = sdlstm_config()
        c.struct_size = MemoryLayout<sdlstm_config>.size
        let status = sdlstm_config_init(&c, SDLSTM_TASK_SEQ2SEQ)
        precondition(status == SDLSTM_OK, "sdlstm_config_init failed: \(String(cString: sdlstm_last_error()))")
        self.init(c)
    }

    init(_ c: sdlstm_config) {
        sourceVocabSize = Int(c.vocab_size)
        targetVocabSize = Int(c.target_vocab_size)
        embedSize = Int(c.embed_size)
        hiddenSize = Int(c.hidden_size)
        numLayers = Int(c.num_layers)
        bidirectional = c.bidirectional != 0
        inputFeeding = c.input_feeding != 0
        initScale = c.init_scale
        seed = c.seed
    }

    /// The C struct; throws `.invalid` if a size does not fit in int32 (the library checks the rest).
    func cConfig() throws(SDLSTMError) -> sdlstm_config {
        var c = sdlstm_config()
        c.struct_size = MemoryLayout<sdlstm_config>.size
        try SDLSTMError.check(sdlstm_config_init(&c, SDLSTM_TASK_SEQ2SEQ))
        c.vocab_size = try SDLSTMError.int32(sourceVocabSize, "sourceVocabSize")
        c.target_vocab_size = try SDLSTMError.int32(targetVocabSize, "targetVocabSize")
        c.embed_size = try SDLSTMError.int32(embedSize, "embedSize")
        c.hidden_size = try SDLSTMError.int32(hiddenSize, "hiddenSize")
        c.num_layers = try SDLSTMError.int32(numLayers, "numLayers")
        c.bidirectional = bidirectional ? 1 : 0
        c.input_feeding = inputFeeding ? 1 : 0
        c.init_scale = initScale
        c.seed = seed
        return c
    }
}

/// A source sentence and its translation, as token ids without <bos> and <eos>.
public struct SentencePair: Equatable, Sendable {
    public var source: [Int32]
    public var target: [Int32]
    public init(source: [Int32], target: [Int32]) { (self.source, self.target) = (source, target) }
}

/// A decoded translation: its tokens (no <bos>, no <eos>) and its log-probability, <eos> included.
public struct Hypothesis: Equatable, Sendable {
    public var tokens: [Int32]
    public var score: Double
}

/// An attention encoder-decoder trained with SGD. It pads batches itself and adds the target
/// markers: `bos` and `eos` are ids of the target vocabulary. Owns one `sdlstm_model` handle,
/// freed on deinit. Use a translator from one thread at a time.
public final class Translator: TrainableModel {
    public let handle: OpaquePointer
    public let bos: Int32, eos: Int32

    /// Creates a translator with freshly initialised parameters, no dropout, SGD with learning rate 1.
    public init(_ config: TranslatorConfig, bos: Int32, eos: Int32) throws(SDLSTMError) {
        (handle, self.bos, self.eos) = (try createHandle(try config.cConfig()), bos, eos)
    }

    /// Takes ownership of a handle (`load(from:bos:eos:)`).
    init(adopting handle: OpaquePointer, bos: Int32, eos: Int32) { (self.handle, self.bos, self.eos) = (handle, bos, eos) }

    deinit { sdlstm_model_free(handle) }

    /// Loads a translator from a checkpoint; `bos` and `eos` are the target ids it was trained with.
    /// `.io` for a missing or unreadable file, `.format` for anything wrong inside it.
    public static func load(from path: String, bos: Int32, eos: Int32) throws(SDLSTMError) -> Translator {
        Translator(adopting: try loadCheckpoint(path, task: SDLSTM_TASK_SEQ2SEQ, "a translator"), bos: bos, eos: eos)
    }

    /// The translator's architecture, as the library reports it.
    public var config: TranslatorConfig {
        TranslatorConfig(readConfig(handle))
    }

    /// One training step (forward, backward, clip, update) on a batch of pairs.
    public func step(_ pairs: [SentencePair]) throws(SDLSTMError) -> StepStats { try run(sdlstm_step, pairs) }

    /// The mean loss per predicted target token (<eos> included), without dropout or update.
    public func evaluate(_ pairs: [SentencePair]) throws(SDLSTMError) -> StepStats { try run(sdlstm_evaluate, pairs) }

    /// The best translation of each source sentence: greedy with `beamSize` 1, beam search otherwise;
    /// hypotheses rank by log P / (tokens + 1)^lengthPenalty.
    public func translate(_ sources: [[Int32]], beamSize: Int = 1, maxLength: Int = 100,
                          lengthPenalty: Float = 1) throws(SDLSTMError) -> [Hypothesis] {
        let padded = try Padded(sources.map { SentencePair(source: $0, target: []) }, bos: bos, eos: eos)
        var options = sdlstm_decode_options()
        options.struct_size = MemoryLayout<sdlstm_decode_options>.size
        (options.bos_id, options.eos_id, options.length_penalty) = (bos, eos, lengthPenalty)
        options.beam_size = try SDLSTMError.int32(beamSize, "beamSize")
        options.max_len = try SDLSTMError.int32(maxLength, "maxLength")
        let n = sources.count
        var tokens = [Int32](repeating: -1, count: n * max(maxLength, 0))
        var lengths = [Int32](repeating: 0, count: n), scores = [Double](repeating: 0, count: n)
        let status = padded.with { batch in
            tokens.withUnsafeMutableBufferPointer { t in
                lengths.withUnsafeMutableBufferPointer { l in
                    scores.withUnsafeMutableBufferPointer { s in
                        sdlstm_translate(handle, batch, &options, t.baseAddress, l.baseAddress, s.baseAddress)
                    }
                }
            }
        }
        try SDLSTMError.check(status)
        return (0..<n).map { i in
            Hypothesis(tokens: Array(tokens[(i * maxLength)..<(i * maxLength + Int(lengths[i]))]), score: scores[i])
        }
    }

    private func run(_ call: @escaping BatchCall, _ pairs: [SentencePair]) throws(SDLSTMError) -> StepStats {
        let padded = try Padded(pairs, bos: bos, eos: eos)
        return try stats(of: call) { padded.with($0) }
    }
}

/// Pairs right-padded into the batch-major arrays of an `sdlstm_batch`, targets as <bos> y <eos>.
private struct Padded {
    let batchSize: Int, sourceLen: Int, targetLen: Int
    var sources: [Int32], targets: [Int32], sourceLengths: [Int32], targetLengths: [Int32]

    /// Checks only what keeps the library from reading past a buffer; it validates the values.
    init(_ pairs: [SentencePair], bos: Int32, eos: Int32) throws(SDLSTMError) {
        guard !pairs.isEmpty else { throw SDLSTMError(.invalid, "no sentences") }
        guard pairs.allSatisfy({ !$0.source.isEmpty }) else { throw SDLSTMError(.invalid, "a source sentence is empty") }
        batchSize = pairs.count
        sourceLen = pairs.map(\.source.count).max()!
        targetLen = pairs.map(\.target.count).max()! + 2
        sources = [Int32](repeating: 0, count: batchSize * sourceLen)
        targets = [Int32](repeating: 0, count: batchSize * targetLen)
        sourceLengths = pairs.map { Int32(clamping: $0.source.count) }
        targetLengths = pairs.map { Int32(clamping: $0.target.count + 2) }
        for (b, p) in pairs.enumerated() {
            for (t, id) in p.source.enumerated() { sources[b * sourceLen + t] = id }
            for (t, id) in ([bos] + p.target + [eos]).enumerated() { targets[b * targetLen + t] = id }
        }
    }

    func with<R>(_ body: (UnsafePointer<sdlstm_batch>) -> R) -> R {
        sources.withUnsafeBufferPointer { s in
            targets.withUnsafeBufferPointer { t in
                sourceLengths.withUnsafeBufferPointer { sl in
                    targetLengths.withUnsafeBufferPointer { tl in
                        var batch = sdlstm_batch()
                        batch.struct_size = MemoryLayout<sdlstm_batch>.size
                        batch.batch_size = Int32(clamping: batchSize)
                        batch.seq_len = Int32(clamping: sourceLen)
                        batch.target_len = Int32(clamping: targetLen)
                        (batch.inputs, batch.targets) = (s.baseAddress, t.baseAddress)
                        (batch.lengths, batch.target_lengths) = (sl.baseAddress, tl.baseAddress)
                        return body(&batch)
                    }
                }
            }
        }
    }
}
