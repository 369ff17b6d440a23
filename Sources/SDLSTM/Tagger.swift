import CSDLSTM

/// A sequence tagger (word embedding [+ character BiLSTM] -> BiLSTM -> linear -> CRF) trained with SGD.
///
/// Takes sentences of different lengths and pads them itself. Owns one `sdlstm_model` handle, freed
/// on deinit. Use a tagger from one thread at a time.
public final class Tagger: TrainableModel {
    public let handle: OpaquePointer

    /// Creates a tagger with freshly initialised parameters, no dropout, SGD with learning rate 1.
    public init(_ config: TaggerConfig) throws(SDLSTMError) {
        handle = try createHandle(try config.cConfig())
    }

    /// Takes ownership of a handle (`load(from:)`).
    init(adopting handle: OpaquePointer) { self.handle = handle }

    deinit { sdlstm_model_free(handle) }

    /// The tagger's architecture, as the library reports it.
    public var config: TaggerConfig {
        TaggerConfig(readConfig(handle))
    }

    /// Names the tags (`names[i]` is tag id i, e.g. "O", "B-PER", "I-PER") and makes the CRF forbid
    /// what `scheme` rules out, in the loss and in decoding.
    public func setTagNames(_ names: [String], scheme: TagScheme) throws(SDLSTMError) {
        let count = try SDLSTMError.int32(names.count, "names.count")
        let status = withCStrings(names) { sdlstm_set_tag_names(handle, $0, count, scheme.cValue) }
        try SDLSTMError.check(status)
    }

    /// The tag names and scheme set with `setTagNames` (a checkpoint keeps them), or nil if the tags
    /// were never named.
    public var tagNames: (names: [String], scheme: TagScheme)? {
        var out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
        var count: Int32 = 0
        var scheme = SDLSTM_TAG_SCHEME_NONE
        let status = sdlstm_get_tag_names(handle, &out, &count, &scheme)
        precondition(status == SDLSTM_OK, "sdlstm_get_tag_names failed: \(String(cString: sdlstm_last_error()))")
        guard let out else { return nil }
        defer { sdlstm_free(out) }
        let names = (0..<Int(count)).map { String(cString: out[$0]!) }
        return (names, TagScheme.allCases.first { $0.cValue == scheme } ?? .none)
    }

    /// Loads a tagger from a checkpoint: parameters, settings, progress, dropout, random stream, tag
    /// names and scheme. `.io` for a missing or unreadable file, `.format` for anything wrong inside it.
    public static func load(from path: String) throws(SDLSTMError) -> Tagger {
        Tagger(adopting: try loadCheckpoint(path, task: SDLSTM_TASK_TAGGER, "a tagger"))
    }

    /// One training step (forward, backward, clip, update) on a batch of tagged sentences.
    public func step(_ sentences: [TaggedSentence]) throws(SDLSTMError) -> StepStats {
        try run(sdlstm_step, sentences)
    }

    /// The mean loss per word on tagged sentences, without dropout and without an update.
    public func evaluate(_ sentences: [TaggedSentence]) throws(SDLSTMError) -> StepStats {
        try run(sdlstm_evaluate, sentences)
    }

    /// The best tag sequence of each sentence (their `tags` are not read).
    public func tag(_ sentences: [TaggedSentence]) throws(SDLSTMError) -> [[Int32]] {
        let padded = try PaddedBatch(sentences, withTags: false)
        var out = [Int32](repeating: -1, count: padded.batchSize * padded.seqLen)
        let status = out.withUnsafeMutableBufferPointer { o in padded.with { sdlstm_tag(handle, $0, o.baseAddress) } }
        try SDLSTMError.check(status)
        return sentences.indices.map { b in Array(out[(b * padded.seqLen)..<(b * padded.seqLen + sentences[b].words.count)]) }
    }

    private func run(_ call: @escaping BatchCall, _ sentences: [TaggedSentence]) throws(SDLSTMError) -> StepStats {
        let padded = try PaddedBatch(sentences, withTags: true)
        return try stats(of: call) { padded.with($0) }
    }
}

/// Sentences right-padded into the batch-major arrays of an `sdlstm_batch`; padding holds 0.
private struct PaddedBatch {
    let batchSize: Int, seqLen: Int, maxWordLen: Int
    var words: [Int32], tags: [Int32], lengths: [Int32]
    var chars: [Int32] = [], wordLengths: [Int32] = []
    let hasCharacters: Bool

    /// Checks only what keeps the library from reading past a buffer; it validates the values.
    init(_ sentences: [TaggedSentence], withTags: Bool) throws(SDLSTMError) {
        guard !sentences.isEmpty else { throw SDLSTMError(.invalid, "no sentences") }
        batchSize = sentences.count
        seqLen = sentences.map(\.words.count).max()!
        guard seqLen >= 1 else { throw SDLSTMError(.invalid, "every sentence is empty") }
        hasCharacters = sentences.contains { !$0.characters.isEmpty }
        maxWordLen = hasCharacters ? max(1, sentences.flatMap(\.characters).map(\.count).max() ?? 1) : 0
        words = [Int32](repeating: 0, count: batchSize * seqLen)
        tags = words
        lengths = sentences.map { Int32(clamping: $0.words.count) }
        if hasCharacters {
            chars = [Int32](repeating: 0, count: batchSize * seqLen * maxWordLen)
            wordLengths = words
        }
        for (b, s) in sentences.enumerated() {
            if withTags && s.tags.count != s.words.count {
                throw SDLSTMError(.invalid, "sentence \(b) has \(s.words.count) words but \(s.tags.count) tags")
            }
            if hasCharacters && s.characters.count != s.words.count {
                throw SDLSTMError(.invalid, "sentence \(b) has \(s.words.count) words but characters for \(s.characters.count)")
            }
            for t in s.words.indices {
                words[b * seqLen + t] = s.words[t]
                if withTags { tags[b * seqLen + t] = s.tags[t] }
                guard hasCharacters else { continue }
                let w = s.characters[t]
                wordLengths[b * seqLen + t] = Int32(w.count)
                for (c, id) in w.enumerated() { chars[(b * seqLen + t) * maxWordLen + c] = id }
            }
        }
    }

    func with<R>(_ body: (UnsafePointer<sdlstm_batch>) -> R) -> R {
        words.withUnsafeBufferPointer { w in
            tags.withUnsafeBufferPointer { y in
                lengths.withUnsafeBufferPointer { l in
                    chars.withUnsafeBufferPointer { c in
                        wordLengths.withUnsafeBufferPointer { wl in
                            var batch = sdlstm_batch()
                            batch.struct_size = MemoryLayout<sdlstm_batch>.size
                            batch.batch_size = Int32(clamping: batchSize)
                            batch.seq_len = Int32(clamping: seqLen)
                            (batch.inputs, batch.targets, batch.lengths) = (w.baseAddress, y.baseAddress, l.baseAddress)
                            if hasCharacters {
                                batch.max_word_len = Int32(clamping: maxWordLen)
                                (batch.chars, batch.word_lengths) = (c.baseAddress, wl.baseAddress)
                            }
                            return body(&batch)
                        }
                    }
                }
            }
        }
    }
}

/// Calls `body` with a C array of the strings, valid during the call.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    var pointers: [UnsafePointer<CChar>?] = []
    func nest(_ i: Int) -> R {
        guard i < strings.count else {
            pointers.append(nil)  // never empty, so the base address exists; the callee reads count entries
            return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
        }
        return strings[i].withCString { p in
            pointers.append(p)
            return nest(i + 1)
        }
    }
    return nest(0)
}
