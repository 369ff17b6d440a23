import Glibc

/// Corpus BLEU exactly as sacreBLEU 2.x computes it by default (`BLEU().corpus_score` with one
/// reference per sentence): 1- to 4-gram counts of each hypothesis clipped by its reference's counts,
/// summed over the corpus, then `BLEU.compute_bleu` with "exp" smoothing and without effective order.
/// Tokenisation is in BLEUTokenizer.swift.

/// The sufficient statistics of a sentence or a corpus; corpus statistics are sums of sentence ones.
public struct BLEUStatistics: Equatable, Sendable {
    public static let maxOrder = 4

    /// Tokens of the hypotheses (sacreBLEU's sys_len) and of the references (ref_len).
    public var hypothesisLength = 0, referenceLength = 0
    /// Per order 1 … 4: hypothesis n-grams found in the reference, each counted at most as often as
    /// the reference has it (sacreBLEU's counts) …
    public var matches = [Int](repeating: 0, count: maxOrder)
    /// … and all hypothesis n-grams (totals).
    public var totals = [Int](repeating: 0, count: maxOrder)

    public init() {}

    public init(hypothesisLength: Int, referenceLength: Int, matches: [Int], totals: [Int]) {
        precondition(matches.count == Self.maxOrder && totals.count == Self.maxOrder)
        (self.hypothesisLength, self.referenceLength, self.matches, self.totals) =
            (hypothesisLength, referenceLength, matches, totals)
    }

    /// One sentence pair, already tokenised.
    public init<Token: Hashable>(hypothesis: [Token], reference: [Token]) {
        hypothesisLength = hypothesis.count
        referenceLength = reference.count
        // Both sides' tokens as small integers, so that an n-gram is one hashable vector.
        var ids: [Token: Int32] = [:]
        func intern(_ tokens: [Token]) -> [Int32] {
            tokens.map { t in
                if let id = ids[t] { return id }
                let id = Int32(ids.count)
                ids[t] = id
                return id
            }
        }
        let hyp = intern(hypothesis), ref = intern(reference)
        let refCounts = Self.ngramCounts(ref)
        for (ngram, count) in Self.ngramCounts(hyp) {
            let order = Self.order(of: ngram)
            totals[order - 1] += count
            matches[order - 1] += min(count, refCounts[ngram] ?? 0)
        }
    }

    /// The 1- to 4-grams of a sentence with their counts; -1 fills the places an n < 4 leaves free.
    private static func ngramCounts(_ ids: [Int32]) -> [SIMD4<Int32>: Int] {
        var counts: [SIMD4<Int32>: Int] = [:]
        for n in 1...maxOrder where ids.count >= n {
            for start in 0...(ids.count - n) {
                var ngram = SIMD4<Int32>(repeating: -1)
                for k in 0..<n { ngram[k] = ids[start + k] }
                counts[ngram, default: 0] += 1
            }
        }
        return counts
    }

    private static func order(of ngram: SIMD4<Int32>) -> Int {
        var n = 0
        while n < maxOrder && ngram[n] >= 0 { n += 1 }
        return n
    }

    public static func + (a: BLEUStatistics, b: BLEUStatistics) -> BLEUStatistics {
        BLEUStatistics(hypothesisLength: a.hypothesisLength + b.hypothesisLength,
                       referenceLength: a.referenceLength + b.referenceLength,
                       matches: zip(a.matches, b.matches).map(+), totals: zip(a.totals, b.totals).map(+))
    }

    public static func += (a: inout BLEUStatistics, b: BLEUStatistics) { a = a + b }
}

/// A BLEU score and its parts, on sacreBLEU's 0 … 100 scale.
public struct BLEUScore: Equatable, Sendable {
    public var score: Double
    /// Per order 1 … 4, in percent; smoothed where an order has no match.
    public var precisions: [Double]
    public var brevityPenalty: Double
    /// hypothesisLength / referenceLength, 0 without reference tokens.
    public var lengthRatio: Double
    public var statistics: BLEUStatistics

    /// `BLEU.compute_bleu(..., smooth_method='exp', effective_order=False)`, operation for operation so
    /// that the doubles agree bit for bit, not just closely.
    public init(_ stats: BLEUStatistics) {
        statistics = stats
        let sys = stats.hypothesisLength, ref = stats.referenceLength
        brevityPenalty = sys < ref ? (sys > 0 ? exp(1 - Double(ref) / Double(sys)) : 0) : 1
        lengthRatio = ref > 0 ? Double(sys) / Double(ref) : 0
        precisions = [Double](repeating: 0, count: BLEUStatistics.maxOrder)
        // sacreBLEU returns 0 at once when nothing matches (its issue #141), leaving every precision 0
        // rather than reporting smoothed ones.
        guard stats.matches.contains(where: { $0 != 0 }) else {
            score = 0
            return
        }
        // "exp" smoothing (mteval-v13a's): the k-th order without a match counts as 1 / 2^k matches.
        var smooth = 1.0
        for n in 0..<BLEUStatistics.maxOrder {
            // An order the hypotheses are too short to have ends the loop; it and the orders above keep
            // precision 0, whose log sacreBLEU floors at -9999999999, which makes the score 0.
            if stats.totals[n] == 0 { break }
            if stats.matches[n] == 0 {
                smooth *= 2
                precisions[n] = 100 / (smooth * Double(stats.totals[n]))
            } else {
                precisions[n] = 100 * Double(stats.matches[n]) / Double(stats.totals[n])
            }
        }
        let logSum = precisions.reduce(0.0) { $0 + ($1 == 0 ? -9_999_999_999 : log($1)) }
        score = brevityPenalty * exp(logSum / Double(BLEUStatistics.maxOrder))
    }
}
/// How corpusBLEU compares: sacreBLEU's defaults, case-sensitive with 13a tokenisation.
public struct BLEUOptions: Equatable, Sendable {
    public var lowercase = false
    public var tokenizer = BLEUTokenizer.thirteenA
    public init() {}
}


/// Corpus BLEU of hypotheses[i] against references[i].
public func corpusBLEU(hypotheses: [String], references: [String], lowercase: Bool = BLEUOptions().lowercase,
                       tokenizer: BLEUTokenizer = BLEUOptions().tokenizer) throws(SDLSTMError) -> BLEUScore {
    guard hypotheses.count == references.count else {
        throw .invalid("\(hypotheses.count) hypotheses but \(references.count) references")
    }
    var total = BLEUStatistics()
    for (h, r) in zip(hypotheses, references) {
        total += BLEUStatistics(hypothesis: tokenizer.tokens(h, lowercase: lowercase),
                                reference: tokenizer.tokens(r, lowercase: lowercase))
    }
    return BLEUScore(total)
}
