/// Span (chunk) precision, recall and F1 exactly as CoNLL's `conlleval` script counts them.
///
/// conlleval reads one stream of (gold tag, predicted tag) pairs with a boundary between sentences
/// and decides, from each tag and the one before it, where spans start and end. Its rules are the
/// same for IOB1 and IOB2 (and tolerate ill-formed sequences): a span starts at every B-, and at an
/// I- whose predecessor is O or of another type; it ends before B-, O, or a change of type. A
/// predicted span is correct when a gold span starts at the same token, both end at the same token,
/// and the types agree. Precision = correct / predicted spans, recall = correct / gold spans,
/// F1 = 2PR / (P + R), each 0 when its denominator is.

/// Counts and scores for one entity type, or for all types together.
public struct SpanScores: Equatable, Sendable {
    public var goldSpans = 0       // conlleval's foundCorrect
    public var predictedSpans = 0  // foundGuessed
    public var correctSpans = 0    // correctChunk
    /// Tokens and tokens whose two tags agree (conlleval's accuracy); overall scores only.
    public var tokens = 0, correctTags = 0

    public init() {}

    public var precision: Double { predictedSpans == 0 ? 0 : Double(correctSpans) / Double(predictedSpans) }
    public var recall: Double { goldSpans == 0 ? 0 : Double(correctSpans) / Double(goldSpans) }
    public var f1: Double {
        let (p, r) = (precision, recall)
        return p + r == 0 ? 0 : 2 * p * r / (p + r)
    }
}

/// Accumulates conlleval's counts over sentences of tag ids, given the tags' names.
public final class SpanCounter {
    public let tagNames: [String]
    /// The entity types of the tag names (the non-empty parts after the first '-'), sorted.
    public let types: [String]

    /// A tag as conlleval's rules see it: its prefix and a key equal for equal type strings.
    private struct Tag: Equatable {
        var prefix: Substring
        var type: Int
    }
    private let tags: [Tag]
    private static let outside = Tag(prefix: "O", type: 0)  // also the boundary's tags; type 0 is ""
    private var typeKeys: [Substring: Int] = ["": 0]
    /// Per type key; key 0 is the empty type, which conlleval counts but nobody names.
    private var perType: [SpanScores]
    private var overall = SpanScores()
    // The stream's state between tokens.
    private var inCorrect = false
    private var lastGold = outside, lastPredicted = outside

    public init(tagNames: [String]) {
        self.tagNames = tagNames
        var keys: [Substring: Int] = ["": 0]
        var tags: [Tag] = []
        for name in tagNames.map(TagName.init) {
            if keys[name.type] == nil { keys[name.type] = keys.count }
            tags.append(Tag(prefix: name.prefix, type: keys[name.type]!))
        }
        self.tags = tags
        typeKeys = keys
        types = keys.keys.filter { !$0.isEmpty }.map(String.init).sorted()
        perType = [SpanScores](repeating: SpanScores(), count: keys.count)
    }

    /// Adds B sentences of tag ids, batch-major ([b][t] at b * seqLen + t), sentence b being the first
    /// lengths[b] positions (all seqLen without lengths).
    public func add(gold: UnsafePointer<Int32>, predicted: UnsafePointer<Int32>, batchSize: Int, seqLen: Int,
                    lengths: UnsafePointer<Int32>?) throws(SDLSTMError) {
        guard batchSize >= 1, seqLen >= 1 else {
            throw .invalid("batch_size and seq_len must be >= 1, got \(batchSize) and \(seqLen)")
        }
        // Validate everything before counting anything: a failed call changes nothing.
        for b in 0..<batchSize {
            let n = lengths.map { Int($0[b]) } ?? seqLen
            guard n >= 1 && n <= seqLen else { throw .invalid("lengths[\(b)] = \(n) is outside [1, \(seqLen)]") }
            for t in 0..<n {
                for (name, ids) in [("gold", gold), ("predicted", predicted)] {
                    let id = ids[b * seqLen + t]
                    guard id >= 0 && Int(id) < tags.count else {
                        throw .invalid("\(name)[\(b * seqLen + t)] = \(id) is outside [0, \(tags.count))")
                    }
                }
            }
        }
        for b in 0..<batchSize {
            let n = lengths.map { Int($0[b]) } ?? seqLen
            for t in 0..<n {
                let g = Int(gold[b * seqLen + t]), p = Int(predicted[b * seqLen + t])
                token(gold: tags[g], predicted: tags[p], counted: true)
            }
            // The blank line after a sentence: tags O and O, not a token.
            token(gold: Self.outside, predicted: Self.outside, counted: false)
        }
    }

    /// One line of conlleval's main loop.
    private func token(gold: Tag, predicted: Tag, counted: Bool) {
        let goldEnds = Self.endOfChunk(lastGold, gold), predictedEnds = Self.endOfChunk(lastPredicted, predicted)
        if inCorrect {
            if goldEnds && predictedEnds && lastPredicted.type == lastGold.type {
                inCorrect = false
                overall.correctSpans += 1
                perType[lastGold.type].correctSpans += 1
            } else if goldEnds != predictedEnds || predicted.type != gold.type {
                inCorrect = false
            }
        }
        let goldStarts = Self.startOfChunk(lastGold, gold), predictedStarts = Self.startOfChunk(lastPredicted, predicted)
        if goldStarts && predictedStarts && predicted.type == gold.type { inCorrect = true }
        if goldStarts {
            overall.goldSpans += 1
            perType[gold.type].goldSpans += 1
        }
        if predictedStarts {
            overall.predictedSpans += 1
            perType[predicted.type].predictedSpans += 1
        }
        if counted {
            if gold == predicted { overall.correctTags += 1 }  // same prefix and type
            overall.tokens += 1
        }
        lastGold = gold
        lastPredicted = predicted
    }

    /// conlleval's endOfChunk: does a span end between `previous` and `tag`?
    private static func endOfChunk(_ previous: Tag, _ tag: Tag) -> Bool {
        let (p, t) = (previous.prefix, tag.prefix)
        if p == "B" && (t == "B" || t == "O") { return true }
        if p == "I" && (t == "B" || t == "O") { return true }
        if p == "E" && (t == "E" || t == "I" || t == "O") { return true }
        if p != "O" && p != "." && previous.type != tag.type { return true }
        return p == "]" || p == "["
    }

    /// conlleval's startOfChunk: does a span start at `tag`?
    private static func startOfChunk(_ previous: Tag, _ tag: Tag) -> Bool {
        let (p, t) = (previous.prefix, tag.prefix)
        if t == "B" && (p == "B" || p == "I" || p == "O") { return true }
        if t == "I" && p == "O" { return true }
        if t == "E" && (p == "E" || p == "O") { return true }
        if p == "E" && t == "I" { return true }
        if t != "O" && t != "." && previous.type != tag.type { return true }
        return t == "[" || t == "]"
    }

    /// conlleval closes a span still open at the end of its input; so do these, without changing the
    /// stream (more sentences may follow).
    private var pendingCorrect: Int? { inCorrect ? lastGold.type : nil }

    /// Scores over every type.
    public var overallScores: SpanScores {
        var s = overall
        if pendingCorrect != nil { s.correctSpans += 1 }
        return s
    }

    /// Scores of `type` (one of `types`); nil for a type no tag name has.
    public func scores(type: String) -> SpanScores? {
        guard !type.isEmpty, let key = typeKeys[Substring(type)] else { return nil }
        var s = perType[key]
        if pendingCorrect == key { s.correctSpans += 1 }
        return s
    }
}
