import SDLSTMCore
import CSDLSTM

// sdlstm_bleu of the translation section of include/sdlstm.h; the metric itself is SDLSTMCore's
// corpusBLEU.

/// n C strings of `array`, each non-NULL and valid UTF-8; `array` may be NULL only when n is 0.
private func strings(_ array: UnsafePointer<UnsafePointer<CChar>?>?, _ n: Int, _ name: String) throws(SDLSTMError) -> [String] {
    guard n > 0 else { return [] }
    return try swiftStrings(try unwrap(array, name), count: n, name)
}

/// What sdlstm_bleu_options_init fills in, what NULL options mean, and what fields past a caller's
/// struct_size take: 13a, case-sensitive.
private let defaultBLEUOptions = sdlstm_bleu_options(struct_size: MemoryLayout<sdlstm_bleu_options>.size, lowercase: 0,
                                                     tokenize: BLEUTokenizer.thirteenA.rawValue)

@c @implementation
public func sdlstm_bleu(_ hypotheses: UnsafePointer<UnsafePointer<CChar>?>?,
                        _ references: UnsafePointer<UnsafePointer<CChar>?>?, _ n: Int64,
                        _ options: UnsafePointer<sdlstm_bleu_options>?,
                        _ out: UnsafeMutablePointer<sdlstm_bleu_scores>?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let out = try unwrap(out, "out")
        let size = try structSize(of: out, "out")
        guard n >= 0 else { throw .invalid("n must be >= 0, got \(n)") }
        let count = Int(n)
        let o = options == nil ? defaultBLEUOptions : try copyIn(options, "options", defaults: defaultBLEUOptions)
        let lowercase = o.lowercase != 0
        guard let tokenizer = BLEUTokenizer(rawValue: o.tokenize) else {
            throw .invalid("options->tokenize is \(o.tokenize), expected 1 (13a) or 0 (whitespace)")
        }
        let score = try corpusBLEU(hypotheses: try strings(hypotheses, count, "hypotheses"),
                                   references: try strings(references, count, "references"),
                                   lowercase: lowercase, tokenizer: tokenizer)
        let p = score.precisions
        let c = sdlstm_bleu_scores(struct_size: size, bleu: score.score,
                                   precisions: (p[0], p[1], p[2], p[3]), brevity_penalty: score.brevityPenalty,
                                   length_ratio: score.lengthRatio,
                                   hyp_len: Int64(score.statistics.hypothesisLength),
                                   ref_len: Int64(score.statistics.referenceLength))
        copyOut(c, to: out, structSize: size)
    }
}

@c @implementation
public func sdlstm_bleu_options_init(_ options: UnsafeMutablePointer<sdlstm_bleu_options>?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let out = try unwrap(options, "options")
        copyOut(defaultBLEUOptions, to: out, structSize: try structSize(of: out, "options"))
    }
}
