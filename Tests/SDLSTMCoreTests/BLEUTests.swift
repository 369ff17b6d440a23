import Foundation
import SDLSTMCore
import XCTest

/// Corpus BLEU: hand-computed cases for each branch of sacreBLEU's compute_bleu, the 13a rules one
/// at a time, sacreBLEU's own published numbers, and agreement with sacreBLEU 2.6.0 on the fixture
/// of tools/make_bleu_fixtures.py.
final class BLEUTests: XCTestCase {
    func score(_ hyps: [String], _ refs: [String], lowercase: Bool = false,
               tokenizer: BLEUTokenizer = .thirteenA) throws -> BLEUScore {
        try corpusBLEU(hypotheses: hyps, references: refs, lowercase: lowercase, tokenizer: tokenizer)
    }

    func tokens(_ s: String, lowercase: Bool = false, _ tokenizer: BLEUTokenizer = .thirteenA) -> [String] {
        tokenizer.tokens(s, lowercase: lowercase).map { String(String.UnicodeScalarView($0)) }
    }

    func assertClose(_ a: Double, _ b: Double, tolerance: Double = 1e-12, _ what: String = "",
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssert(abs(a - b) <= tolerance, "\(what): \(a) vs \(b)", file: file, line: line)
    }

    // MARK: - compute_bleu, by hand

    func testPerfectMatchIs100() throws {
        let s = try score(["The cat sat on the mat.", "A dog barks."], ["The cat sat on the mat.", "A dog barks."])
        assertClose(s.score, 100, "score")
        XCTAssertEqual(s.precisions, [100, 100, 100, 100])
        XCTAssertEqual(s.brevityPenalty, 1)
        XCTAssertEqual(s.lengthRatio, 1)
        // "The cat sat on the mat ." and "A dog barks .": 7 + 4 tokens.
        XCTAssertEqual(s.statistics, BLEUStatistics(hypothesisLength: 11, referenceLength: 11,
                                                     matches: [11, 9, 7, 5], totals: [11, 9, 7, 5]))
    }

    func testBrevityPenalty() throws {
        // Every n-gram matches, but 4 tokens against 8: BP = exp(1 - 8/4).
        let s = try score(["a b c d"], ["a b c d e f g h"])
        XCTAssertEqual(s.precisions, [100, 100, 100, 100])
        assertClose(s.brevityPenalty, exp(-1.0), "bp")
        assertClose(s.score, 100 * exp(-1.0), "score")
        XCTAssertEqual(s.lengthRatio, 0.5)
        // Longer than the reference: no penalty, the precisions pay instead.
        let long = try score(["a b c d e f g h"], ["a b c d"])
        XCTAssertEqual(long.brevityPenalty, 1)
        XCTAssertEqual(long.statistics.matches, [4, 3, 2, 1])
        XCTAssertEqual(long.statistics.totals, [8, 7, 6, 5])
    }

    func testCountsAreClippedByTheReference() throws {
        // "the" seven times, twice in the reference: 2 of 7 unigrams match, no bigram "the the" does.
        let s = try score(["the the the the the the the"], ["the cat is on the mat"])
        XCTAssertEqual(s.statistics.matches, [2, 0, 0, 0])
        XCTAssertEqual(s.statistics.totals, [7, 6, 5, 4])
        // exp smoothing: the k-th order without a match gets 1 / 2^k of a match.
        let p = [100.0 * 2 / 7, 100 / (2.0 * 6), 100 / (4.0 * 5), 100 / (8.0 * 4)]
        XCTAssertEqual(s.precisions, p)
        XCTAssertEqual(s.brevityPenalty, 1)  // 7 tokens against 6
        assertClose(s.score, exp(p.map(log).reduce(0, +) / 4), "score")
    }

    func testExpSmoothingOfOrdersWithoutMatches() throws {
        // All four unigrams match, nothing longer: orders 2, 3, 4 are smoothed by 2, 4, 8.
        let s = try score(["a c e g"], ["a b c d e f g h"])
        XCTAssertEqual(s.statistics.matches, [4, 0, 0, 0])
        XCTAssertEqual(s.statistics.totals, [4, 3, 2, 1])
        XCTAssertEqual(s.precisions, [100, 100 / 6.0, 100 / 8.0, 100 / 8.0])
        assertClose(s.score, exp(-1.0) * exp((log(100) + log(100 / 6.0) + log(12.5) + log(12.5)) / 4), "score")
        // The factor doubles only at orders without matches: order 3 matches here, order 4 gets 1/2.
        let t = try score(["a b c x a b c"], ["a b c d a b c"])
        XCTAssertEqual(t.statistics.matches, [6, 4, 2, 0])
        XCTAssertEqual(t.precisions[3], 100 / (2.0 * 4))
    }

    func testNoUnigramMatchIsZeroWithoutSmoothedPrecisions() throws {
        // sacreBLEU stops before smoothing when nothing matches (its issue #141): precisions stay 0.
        let s = try score(["p q r s t u"], ["a b c d e f g h"])
        XCTAssertEqual(s.score, 0)
        XCTAssertEqual(s.precisions, [0, 0, 0, 0])
        XCTAssertEqual(s.statistics.totals, [6, 5, 4, 3])
        assertClose(s.brevityPenalty, exp(1 - 8 / 6.0), "bp is still reported")
    }

    func testEmptyHypotheses() throws {
        let s = try score(["", "   "], ["a b c d e", "f"])
        XCTAssertEqual(s.score, 0)
        XCTAssertEqual(s.brevityPenalty, 0)
        XCTAssertEqual(s.lengthRatio, 0)
        XCTAssertEqual(s.statistics.hypothesisLength, 0)
        XCTAssertEqual(s.statistics.referenceLength, 6)
        // Nothing at all, and no sentences at all: zero statistics, BP 1 and ratio 0 as sacreBLEU has them.
        for empty in [try score([""], [""]), try score([], [])] {
            XCTAssertEqual(empty.score, 0)
            XCTAssertEqual(empty.brevityPenalty, 1)
            XCTAssertEqual(empty.lengthRatio, 0)
        }
    }

    func testOrdersTheCorpusIsTooShortForMakeItZero() throws {
        // Three tokens have no 4-gram: that order's precision is 0, not smoothed, and so is the score.
        let s = try score(["a b c"], ["a b c"])
        XCTAssertEqual(s.precisions, [100, 100, 100, 0])
        XCTAssertEqual(s.score, 0)
        // Statistics are summed over the corpus first: one long sentence provides the 4-grams.
        let t = try score(["a b c", "d e f g"], ["a b c", "d e f g"])
        XCTAssertEqual(t.statistics.totals, [7, 5, 3, 1])
        assertClose(t.score, 100, "score")
    }

    func testMismatchedCorpusSizesAreInvalid() {
        XCTAssertThrowsError(try score(["a"], ["a", "b"])) { error in
            XCTAssertEqual(error as? SDLSTMError, .invalid("1 hypotheses but 2 references"))
        }
    }

    // MARK: - Tokenisation

    func test13aSplitsPunctuationButNotApostropheHyphenOrInnerPeriods() {
        XCTAssertEqual(tokens("Hello, world!"), ["Hello", ",", "world", "!"])
        XCTAssertEqual(tokens("(a) [b] {c} a/b a:b a;b a@b a$b a#b a%b a*b a+b a=b a?b a^b a_b a`b a~b a|b a\\b"),
                       ["(", "a", ")", "[", "b", "]", "{", "c", "}"]
                           + "/:;@$#%*+=?^_`~|\\".flatMap { ["a", String($0), "b"] })
        XCTAssertEqual(tokens("it's x-y U.S."), ["it's", "x-y", "U", ".", "S", "."])
        XCTAssertEqual(tokens("end.  "), ["end", "."])
    }

    func test13aNumbers() {
        // Periods and commas between digits stay; a hyphen after a digit is split, before one it is not.
        XCTAssertEqual(tokens("3.14 and 1,000"), ["3.14", "and", "1,000"])
        XCTAssertEqual(tokens("2-3 x-y -5 5-"), ["2", "-", "3", "x-y", "-5", "5", "-"])
        XCTAssertEqual(tokens("5.x x.5 5,"), ["5", ".", "x", "x", ".", "5", "5", ","])
    }

    func test13aMarkupAndLineBreaks() {
        XCTAssertEqual(tokens("&quot;hi&quot; &amp;lt;"), ["\"", "hi", "\"", "<"])  // entities, one after another
        XCTAssertEqual(tokens("a<skipped>b"), ["ab"])
        XCTAssertEqual(tokens("state-of-the-\nart\nnow"), ["state-of-theart", "now"])  // "-\n" goes, hyphen too
        XCTAssertEqual(tokens("&QUOT;"), ["&", "QUOT", ";"])
        XCTAssertEqual(tokens("&QUOT;", lowercase: true), ["\""])  // lowercasing comes first
    }

    func testWhitespaceIsPythons() {
        // NBSP separates tokens (Python's str.split), a zero-width space does not.
        XCTAssertEqual(tokens("a\u{00A0}b\u{200B}c"), ["a", "b\u{200B}c"])
        XCTAssertEqual(tokens("a\u{1C}b\u{3000}c", .none), ["a", "b", "c"])
    }

    func testNonASCIIText() {
        XCTAssertEqual(tokens("Ein Boston Terrier läuft über saftig-grünes Gras vor einem weißen Zaun."),
                       ["Ein", "Boston", "Terrier", "läuft", "über", "saftig-grünes", "Gras", "vor", "einem", "weißen", "Zaun", "."])
        XCTAssertEqual(tokens("ÄÖÜ ẞ ΟΔΟΣ Σ İ", lowercase: true), ["äöü", "ß", "οδος", "σ", "i\u{307}"])
        XCTAssertEqual(tokens("Grüße, Jürgen!", .none), ["Grüße,", "Jürgen!"])
    }

    func testCanonicallyEquivalentTokensDoNotMatch() throws {
        // Python compares code points; Swift's String == would call these equal.
        let s = try score(["caf\u{E9}"], ["cafe\u{301}"])
        XCTAssertEqual(s.statistics.matches, [0, 0, 0, 0])
    }

    // MARK: - sacreBLEU's published numbers

    func testSacreBLEUSentenceBLEUExample() throws {
        // test/test_sentence_bleu.py (its issue #98): 8.493 with 13a, 7.347 with none, to 1e-3. All four
        // orders have n-grams, so its effective_order=True changes nothing.
        let ref = "producţia de zahăr brut se exprimă în zahăr alb;"
        let sys = "Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;"
        assertClose(try score([sys], [ref]).score, 8.493, tolerance: 1e-3, "13a")
        assertClose(try score([sys], [ref], tokenizer: .none).score, 7.347, tolerance: 1e-3, "none")
        // Its issue #141: no match at all is 0.
        XCTAssertEqual(try score(["this is a cat"], ["okay thanks"]).score, 0)
    }

    func testSacreBLEUStatisticsAndScoringExamples() throws {
        // test/test_bleu.py, test_case_statistics.
        let s = try score(["am I am a character sequence"], ["I am a symbol string sequence a a"], tokenizer: .none)
        XCTAssertEqual(s.statistics.matches, [4, 2, 1, 0])
        XCTAssertEqual(s.statistics.totals, [6, 5, 4, 3])
        // test_case_scoring: these statistics with 11 and 11 tokens give 0.8375922397 (x 100 here).
        let t = BLEUScore(BLEUStatistics(hypothesisLength: 11, referenceLength: 11, matches: [9, 7, 5, 3], totals: [10, 8, 6, 4]))
        assertClose(t.score, 83.75922397, tolerance: 1e-8, "score")
    }

    // MARK: - Agreement with sacreBLEU 2.6.0

    struct Fixture: Decodable {
        struct Corpus: Decodable { let hypotheses: [String], references: [String] }
        struct Expected: Decodable {
            let score: Double, precisions: [Double], bp: Double, ratio: Double
            let sys_len: Int, ref_len: Int, counts: [Int], totals: [Int]
        }
        struct Case: Decodable { let corpus: String, lowercase: Bool, tokenize: String, expected: Expected }
        struct Tokenization: Decodable { let text: String, lowercase: Bool, tokenize: String, tokens: [String] }
        /// The Unicode version of the Python that ran sacreBLEU, "14.0.0".
        let unicode: String
        let corpora: [String: Corpus]
        let cases: [Case]
        let tokenizations: [Tokenization]
        let lowercase: [Lowercase]

        /// [code point, its str.lower()].
        struct Lowercase: Decodable {
            let scalar: Unicode.Scalar, lower: String
            init(from decoder: Decoder) throws {
                var c = try decoder.unkeyedContainer()
                scalar = Unicode.Scalar(try c.decode(UInt32.self))!
                lower = try c.decode(String.self)
            }
        }
    }

    static let fixture: Fixture = {
        let url = Bundle.module.url(forResource: "Fixtures/bleu_cases", withExtension: "json")!
        return try! JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }()

    func tokenizer(_ name: String) -> BLEUTokenizer { name == "13a" ? .thirteenA : .none }

    func scalars(_ s: String) -> [Unicode.Scalar] { Array(s.unicodeScalars) }

    func testFixtureCorporaAgreeWithSacreBLEU() throws {
        let f = Self.fixture
        XCTAssertGreaterThan(f.cases.count, 600)
        var worst = 0.0, identical = 0
        for c in f.cases {
            let corpus = try XCTUnwrap(f.corpora[c.corpus])
            let what = "\(c.corpus) lowercase=\(c.lowercase) tokenize=\(c.tokenize)"
            let s = try corpusBLEU(hypotheses: corpus.hypotheses, references: corpus.references,
                                   lowercase: c.lowercase, tokenizer: tokenizer(c.tokenize))
            let e = c.expected
            XCTAssertEqual(s.statistics, BLEUStatistics(hypothesisLength: e.sys_len, referenceLength: e.ref_len,
                                                        matches: e.counts, totals: e.totals), what)
            let got = [s.score, s.brevityPenalty, s.lengthRatio] + s.precisions
            let expected = [e.score, e.bp, e.ratio] + e.precisions
            let error = zip(got, expected).map { abs($0 - $1) }.max()!
            XCTAssertLessThanOrEqual(error, 1e-9, "\(what): \(got) vs sacreBLEU \(expected)")
            worst = max(worst, error)
            if got == expected { identical += 1 }
        }
        // The arithmetic follows compute_bleu step by step: expect the very same doubles.
        XCTAssertEqual(identical, f.cases.count, "cases whose doubles all equal sacreBLEU's; largest difference \(worst)")
        print("BLEU fixture: \(f.cases.count) cases, \(identical) bit-identical, largest difference \(worst)")
    }

    func testFixtureTokenizationsAgreeWithSacreBLEU() {
        for t in Self.fixture.tokenizations {
            let got = tokenizer(t.tokenize).tokens(t.text, lowercase: t.lowercase).map(Array.init)
            XCTAssertEqual(got, t.tokens.map(scalars),
                           "\(t.text.debugDescription) lowercase=\(t.lowercase) tokenize=\(t.tokenize)")
        }
    }

    func testLowercaseIsPythonsStrLower() {
        let table = Self.fixture.lowercase
        XCTAssertGreaterThan(table.count, 1000)
        for entry in table {
            let got = BLEUTokenizer.none.tokens(String(Character(entry.scalar)), lowercase: true).flatMap { $0 }
            XCTAssertEqual(got, scalars(entry.lower), "U+\(String(entry.scalar.value, radix: 16, uppercase: true))")
        }
        // The other way round: what Swift's tables lowercase and the fixture's Python does not must be
        // letters that Python's Unicode version (14.0 for Python 3.11) did not have yet.
        let version = Self.fixture.unicode.split(separator: ".").map { Int($0)! }
        let python = (version[0], version[1])
        let known = Set(table.map(\.scalar))
        var newer = 0
        for v in UInt32(0)...0x10FFFF {
            guard let c = Unicode.Scalar(v), !known.contains(c), c.properties.lowercaseMapping != String(c) else { continue }
            let age = c.properties.age
            XCTAssertTrue(age.map { $0 > python } ?? false, "U+\(String(v, radix: 16, uppercase: true)) of Unicode \(String(describing: age))")
            newer += 1
        }
        print("BLEU lowercase: \(table.count) mappings as Python's, \(newer) letters newer than Unicode \(Self.fixture.unicode)")
    }
}
