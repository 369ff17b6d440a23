/// The text processing sacreBLEU 2.x applies before it counts n-grams, reproduced code point for
/// code point: BLEU's `_preprocess_segment` (Python's `str.lower()` when asked, then `str.rstrip()`),
/// the "13a" tokeniser (`tokenizer_13a.py` and `tokenizer_re.py`, the mteval-v13a rules) or the
/// "none" tokeniser, and the `str.split()` that cuts the result into tokens.
///
/// Everything works on arrays of Unicode scalars because Python strings are sequences of code
/// points: Swift's `String` compares by canonical equivalence ("é" == "e\u{301}"), which sacreBLEU
/// does not, so tokens must never be compared as `String`s.

/// How sentences are cut into tokens (the values of `sdlstm_bleu_options.tokenize`).
public enum BLEUTokenizer: Int32, Sendable, CaseIterable {
    /// sacreBLEU's `--tokenize none`: whitespace only.
    case none = 0
    /// sacreBLEU's default `--tokenize 13a`: the mteval-v13a rules.
    case thirteenA = 1
}

typealias Scalars = [Unicode.Scalar]

extension BLEUTokenizer {
    /// The tokens of one sentence as sacreBLEU counts them.
    public func tokens(_ sentence: String, lowercase: Bool) -> [ArraySlice<Unicode.Scalar>] {
        var s = Scalars(sentence.unicodeScalars)
        if lowercase { s = PythonText.lowercased(s) }
        s = PythonText.rstripped(s)
        if self == .thirteenA { s = Tokenizer13a.tokenize(s) }
        return PythonText.split(s)
    }
}

/// The parts of Python's `str` behaviour that sacreBLEU's results depend on.
enum PythonText {
    /// `str.isspace()`, which decides what `str.split()` and `str.rstrip()` remove: characters of
    /// bidirectional class WS, B or S, or of category Zs. Not Swift's `isWhitespace`, which differs
    /// (U+001C…U+001F are Python whitespace; U+180E and U+200B are neither).
    static func isSpace(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    static func rstripped(_ s: Scalars) -> Scalars {
        var end = s.count
        while end > 0 && isSpace(s[end - 1]) { end -= 1 }
        return Scalars(s[..<end])
    }

    /// `str.split()` with no argument: runs of whitespace separate tokens, none are empty.
    static func split(_ s: Scalars) -> [ArraySlice<Unicode.Scalar>] {
        var tokens: [ArraySlice<Unicode.Scalar>] = []
        var start: Int? = nil
        for i in s.indices {
            if isSpace(s[i]) {
                if let b = start { tokens.append(s[b..<i]); start = nil }
            } else if start == nil {
                start = i
            }
        }
        if let b = start { tokens.append(s[b...]) }
        return tokens
    }

    /// `str.lower()`: each code point's full lowercase mapping (so "İ" becomes two code points), except
    /// that capital sigma becomes final sigma "ς" where CPython's `handle_capital_sigma` says so —
    /// after a cased letter and not before one, case-ignorable characters skipped both ways.
    /// The mappings are those of Swift's Unicode tables; letters added to Unicode after the version
    /// of the Python that runs sacreBLEU (14.0 for Python 3.11) are lowercased here but not there.
    static func lowercased(_ s: Scalars) -> Scalars {
        var out = Scalars()
        out.reserveCapacity(s.count)
        for (i, c) in s.enumerated() {
            if c.isASCII {
                out.append(c.value >= 0x41 && c.value <= 0x5A ? Unicode.Scalar(c.value + 0x20)! : c)
            } else if c == "\u{03A3}" {
                out.append(isFinalSigma(s, at: i) ? "\u{03C2}" : "\u{03C3}")
            } else {
                out.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return out
    }

    private static func isFinalSigma(_ s: Scalars, at i: Int) -> Bool {
        var j = i - 1
        while j >= 0 && s[j].properties.isCaseIgnorable { j -= 1 }
        guard j >= 0 && s[j].properties.isCased else { return false }
        j = i + 1
        while j < s.count && s[j].properties.isCaseIgnorable { j += 1 }
        return j == s.count || !s[j].properties.isCased
    }

    /// `str.replace(old, new)`: every non-overlapping occurrence, left to right.
    static func replacing(_ old: Scalars, with new: Scalars, in s: Scalars) -> Scalars {
        guard !old.isEmpty, s.count >= old.count else { return s }
        var out = Scalars()
        out.reserveCapacity(s.count)
        var i = 0
        while i < s.count {
            if i + old.count <= s.count && s[i] == old[0] && s[i..<(i + old.count)].elementsEqual(old) {
                out.append(contentsOf: new)
                i += old.count
            } else {
                out.append(s[i])
                i += 1
            }
        }
        return out
    }
}

/// sacreBLEU's `Tokenizer13a`, whose last step is `TokenizerRegexp`.
enum Tokenizer13a {
    static func tokenize(_ line: Scalars) -> Scalars {
        var s = PythonText.replacing(Scalars("<skipped>".unicodeScalars), with: [], in: line)
        s = PythonText.replacing(["-", "\n"], with: [], in: s)
        s = PythonText.replacing(["\n"], with: [" "], in: s)
        if s.contains("&") {
            // In this order, one after the other: "&amp;lt;" ends up as "<", as in sacreBLEU.
            for (entity, character) in [("&quot;", "\""), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">")] {
                s = PythonText.replacing(Scalars(entity.unicodeScalars), with: Scalars(character.unicodeScalars), in: s)
            }
        }
        return regexpRules([" "] + s + [" "])
    }

    /// `[\{-\~\[-\` -\&\(-\+\:-\@\/]`: { | } ~, [ \ ] ^ _ `, space ! " # $ % &, ( ) * +, : ; < = > ? @
    /// and /. Not among them: the apostrophe, comma, hyphen and period (and every non-ASCII character).
    static func isSplitPunctuation(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x7B...0x7E, 0x5B...0x60, 0x20...0x26, 0x28...0x2B, 0x3A...0x40, 0x2F: return true
        default: return false
        }
    }

    static func isDigit(_ c: Unicode.Scalar) -> Bool { c.value >= 0x30 && c.value <= 0x39 }  // [0-9]: ASCII only
    static func isPeriodOrComma(_ c: Unicode.Scalar) -> Bool { c == "." || c == "," }

    /// The four `re.sub` passes of `TokenizerRegexp`, each over the whole output of the previous one,
    /// then `' '.join(line.split())` (which `split` then repeats for n-gram counting).
    static func regexpRules(_ line: Scalars) -> Scalars {
        var s = Scalars()
        s.reserveCapacity(line.count * 2)
        for c in line {
            if isSplitPunctuation(c) { s += [" ", c, " "] } else { s.append(c) }
        }
        // r'([^0-9])([\.,])' -> r'\1 \2 '
        s = substitutePairs(s, { !isDigit($0) }, isPeriodOrComma) { a, b in [a, " ", b, " "] }
        // r'([\.,])([^0-9])' -> r' \1 \2'
        s = substitutePairs(s, isPeriodOrComma, { !isDigit($0) }) { a, b in [" ", a, " ", b] }
        // r'([0-9])(-)' -> r'\1 \2 '
        s = substitutePairs(s, isDigit, { $0 == "-" }) { a, b in [a, " ", b, " "] }
        return s
    }

    /// `re.sub` of a pattern of two single-character groups: matches are tried left to right and do not
    /// overlap, so after a match the scan resumes behind its second character, which cannot also begin
    /// the next match (in "a.,b" the second pass splits "a." but then finds no match at ",b").
    static func substitutePairs(_ s: Scalars, _ first: (Unicode.Scalar) -> Bool, _ second: (Unicode.Scalar) -> Bool,
                                _ replacement: (Unicode.Scalar, Unicode.Scalar) -> Scalars) -> Scalars {
        var out = Scalars()
        out.reserveCapacity(s.count + s.count / 2)
        var i = 0
        while i < s.count {
            if i + 1 < s.count && first(s[i]) && second(s[i + 1]) {
                out += replacement(s[i], s[i + 1])
                i += 2
            } else {
                out.append(s[i])
                i += 1
            }
        }
        return out
    }
}
