import CSDLSTM

/// Span counts and scores as CoNLL's conlleval computes them; scores are fractions in [0, 1].
public struct SpanScores: Equatable, Sendable {
    /// Spans in the gold tags.
    public var goldSpans: Int
    /// Spans in the predicted tags.
    public var predictedSpans: Int
    /// Predicted spans with a gold span's first token, last token and type.
    public var correctSpans: Int
    /// correct / predicted (0 if nothing was predicted).
    public var precision: Double
    /// correct / gold (0 if there is no gold span).
    public var recall: Double
    /// 2 · precision · recall / (precision + recall) (0 if both are 0).
    public var f1: Double
    /// Tokens counted, and tokens whose two tags agree (overall scores only; 0 per type).
    public var tokens: Int, correctTags: Int

    init(_ s: sdlstm_span_scores) {
        goldSpans = Int(s.gold_spans)
        predictedSpans = Int(s.predicted_spans)
        correctSpans = Int(s.correct_spans)
        precision = s.precision
        recall = s.recall
        f1 = s.f1
        tokens = Int(s.tokens)
        correctTags = Int(s.correct_tags)
    }
}

/// Accumulates span precision, recall and F1 over sentences of tag ids exactly as conlleval counts
/// them (IOB1 or IOB2), by the library's `sdlstm_span_f1`.
public final class SpanF1 {
    private let handle: OpaquePointer
    /// The entity types of the tag names (the parts after the first '-'), sorted.
    public let types: [String]

    /// A counter for tags named `tagNames` (tag id i is `tagNames[i]`).
    public init(tagNames: [String]) throws(SDLSTMError) {
        let count = try SDLSTMError.int32(tagNames.count, "tagNames.count")
        var out: OpaquePointer?
        try SDLSTMError.check(withCStrings(tagNames) { sdlstm_span_f1_create($0, count, &out) })
        guard let out else { throw SDLSTMError(.invalid, "sdlstm_span_f1_create returned no counter") }
        handle = out
        var n: Int32 = 0
        precondition(sdlstm_span_f1_get_type_count(out, &n) == SDLSTM_OK)
        types = (0..<n).map { i in
            var name: UnsafePointer<CChar>?
            precondition(sdlstm_span_f1_get_type_name(out, i, &name) == SDLSTM_OK)
            return String(cString: name!)
        }
    }

    deinit { sdlstm_span_f1_free(handle) }

    /// Adds sentences: `gold[i]` and `predicted[i]` are the tag ids of sentence i, of equal length.
    public func add(gold: [[Int32]], predicted: [[Int32]]) throws(SDLSTMError) {
        guard gold.count == predicted.count else {
            throw SDLSTMError(.invalid, "\(gold.count) gold sentences but \(predicted.count) predicted ones")
        }
        for (i, (g, p)) in zip(gold, predicted).enumerated() where g.count != p.count {
            throw SDLSTMError(.invalid, "sentence \(i) has \(g.count) gold tags but \(p.count) predicted ones")
        }
        // Empty sentences count nothing (and have no valid length): leave them out.
        let kept = gold.indices.filter { !gold[$0].isEmpty }
        guard let t = gold.map(\.count).max(), !kept.isEmpty else { return }
        var g = [Int32](repeating: 0, count: kept.count * t), p = g
        for (row, i) in kept.enumerated() {
            for j in gold[i].indices { (g[row * t + j], p[row * t + j]) = (gold[i][j], predicted[i][j]) }
        }
        let lengths = kept.map { Int32(gold[$0].count) }
        let status = g.withUnsafeBufferPointer { gp in
            p.withUnsafeBufferPointer { pp in
                lengths.withUnsafeBufferPointer { lp in
                    sdlstm_span_f1_add(handle, gp.baseAddress, pp.baseAddress, Int32(clamping: kept.count),
                                       Int32(clamping: t), lp.baseAddress)
                }
            }
        }
        try SDLSTMError.check(status)
    }

    /// Scores over all types.
    public var overall: SpanScores { scores(index: -1) }

    /// Scores of one of `types`; nil for another name.
    public func scores(type: String) -> SpanScores? {
        types.firstIndex(of: type).map { scores(index: Int32($0)) }
    }

    private func scores(index: Int32) -> SpanScores {
        var s = sdlstm_span_scores()
        s.struct_size = MemoryLayout<sdlstm_span_scores>.size
        let status = sdlstm_span_f1_get_scores(handle, index, &s)
        precondition(status == SDLSTM_OK, "sdlstm_span_f1_get_scores failed: \(String(cString: sdlstm_last_error()))")
        return SpanScores(s)
    }
}
