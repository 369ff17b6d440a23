import CSDLSTM

/// How BLEU cuts sentences into tokens.
public enum BLEUTokenizer: Sendable, Equatable {
    /// sacreBLEU's default "13a" (the mteval-v13a rules: punctuation split off, HTML entities decoded).
    case thirteenA
    /// sacreBLEU's "none": split on whitespace only, for text that is already tokenised.
    case none

    var cValue: Int32 { self == .thirteenA ? 1 : 0 }
}

/// A corpus BLEU score and its parts, on sacreBLEU's scales.
public struct BLEUScore: Equatable, Sendable {
    /// 0 … 100.
    public var score: Double
    /// 1- to 4-gram precisions, 0 … 100 ("exp"-smoothed for an order without matches).
    public var precisions: [Double]
    /// min(1, exp(1 - referenceLength / hypothesisLength)).
    public var brevityPenalty: Double
    /// hypothesisLength / referenceLength.
    public var lengthRatio: Double
    /// Tokens in the hypotheses and in the references.
    public var hypothesisLength: Int, referenceLength: Int

    init(_ s: sdlstm_bleu_scores) {
        score = s.bleu
        precisions = [s.precisions.0, s.precisions.1, s.precisions.2, s.precisions.3]
        brevityPenalty = s.brevity_penalty
        lengthRatio = s.length_ratio
        hypothesisLength = Int(s.hyp_len)
        referenceLength = Int(s.ref_len)
    }
}

/// Corpus BLEU of `hypotheses[i]` against `references[i]` as sacreBLEU computes it by default (4-grams,
/// "exp" smoothing, one reference per sentence), by the library's `sdlstm_bleu`.
public func bleu(hypotheses: [String], references: [String], lowercase: Bool = false,
                 tokenize: BLEUTokenizer = .thirteenA) throws(SDLSTMError) -> BLEUScore {
    guard hypotheses.count == references.count else {
        throw SDLSTMError(.invalid, "\(hypotheses.count) hypotheses but \(references.count) references")
    }
    // A C string ends at its first NUL: passing the rest silently would score different text.
    for (side, strings) in [("hypotheses", hypotheses), ("references", references)] {
        if let i = strings.firstIndex(where: { $0.utf8.contains(0) }) {
            throw SDLSTMError(.invalid, "\(side)[\(i)] contains a NUL character, which a C string cannot hold")
        }
    }
    var options = sdlstm_bleu_options()
    options.struct_size = MemoryLayout<sdlstm_bleu_options>.size
    options.lowercase = lowercase ? 1 : 0
    options.tokenize = tokenize.cValue
    var out = sdlstm_bleu_scores()
    out.struct_size = MemoryLayout<sdlstm_bleu_scores>.size
    let hyp = CStringArray(hypotheses), ref = CStringArray(references)
    let status = hyp.withPointers { h in ref.withPointers { r in sdlstm_bleu(h, r, Int64(hypotheses.count), &options, &out) } }
    try SDLSTMError.check(status)
    return BLEUScore(out)
}

/// Strings as one buffer of NUL-terminated UTF-8 and pointers into it: a test set has thousands of
/// sentences, too many for `withCStrings`' one nested closure per string.
private struct CStringArray {
    var bytes: [CChar] = []
    var offsets: [Int] = []

    init(_ strings: [String]) {
        for s in strings {
            offsets.append(bytes.count)
            bytes.append(contentsOf: s.utf8.map { CChar(bitPattern: $0) })
            bytes.append(0)
        }
    }

    func withPointers<R>(_ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
        bytes.withUnsafeBufferPointer { b in
            // One extra NULL keeps the array non-empty, so that its base address exists for n = 0.
            let pointers: [UnsafePointer<CChar>?] = offsets.map { b.baseAddress! + $0 } + [nil]
            return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
        }
    }
}
