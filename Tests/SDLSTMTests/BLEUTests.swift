import SDLSTM
import XCTest

/// The wrapper's `bleu`: options reach the library, results come back whole, bad input is refused.
/// Expected numbers are what sacreBLEU 2.6.0 prints for the same text.
final class BLEUTests: XCTestCase {
    // sacreBLEU's README corpus with its first reference set only.
    let refs = ["The dog bit the man.", "It was not unexpected.", "The man bit him first."]
    let hyps = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]

    func testScoreAndParts() throws {
        // BLEU = 45.07 70.6/42.9/36.4/37.5 (BP = 1.000 ratio = 1.000 hyp_len = 17 ref_len = 17)
        let s = try bleu(hypotheses: hyps, references: refs)
        XCTAssertEqual(s.score, 45.06750632106114, accuracy: 1e-12)
        XCTAssertEqual(s.precisions, [1200 / 17.0, 600 / 14.0, 400 / 11.0, 300 / 8.0])
        XCTAssertEqual(s.brevityPenalty, 1)
        XCTAssertEqual(s.lengthRatio, 1)
        XCTAssertEqual([s.hypothesisLength, s.referenceLength], [17, 17])
    }

    func testOptions() throws {
        // --tokenize none: BLEU = 44.43 (hyp_len = 14 ref_len = 14)
        let none = try bleu(hypotheses: hyps, references: refs, tokenize: .none)
        XCTAssertEqual(none.score, 44.428088917702794, accuracy: 1e-12)
        XCTAssertEqual([none.hypothesisLength, none.referenceLength], [14, 14])
        let upper = hyps.map { $0.uppercased() }
        XCTAssertEqual(try bleu(hypotheses: upper, references: refs, lowercase: true).score, 45.06750632106114, accuracy: 1e-12)
        // Case-sensitive, only the three periods match: BLEU = 3.87 17.6/3.6/2.3/1.6
        XCTAssertEqual(try bleu(hypotheses: upper, references: refs).score, 3.867857032414505, accuracy: 1e-12)
    }

    func testThousandsOfSentences() throws {
        // The corpus 1000 times over: every count scales alike, so the score does not move.
        let n = 1000
        let s = try bleu(hypotheses: Array(repeating: hyps, count: n).flatMap { $0 },
                         references: Array(repeating: refs, count: n).flatMap { $0 })
        XCTAssertEqual(s.score, 45.06750632106114, accuracy: 1e-12)
        XCTAssertEqual([s.hypothesisLength, s.referenceLength], [17 * n, 17 * n])
    }

    func testEmptyCorpus() throws {
        let s = try bleu(hypotheses: [], references: [])
        XCTAssertEqual(s.score, 0)
        XCTAssertEqual(s.brevityPenalty, 1)
        XCTAssertEqual([s.hypothesisLength, s.referenceLength], [0, 0])
    }

    func testBadInput() {
        func expectInvalid(_ mentioning: String, _ body: () throws -> Void, line: UInt = #line) {
            XCTAssertThrowsError(try body(), line: line) { error in
                guard let e = error as? SDLSTMError else { return XCTFail("not an SDLSTMError: \(error)", line: line) }
                XCTAssertEqual(e.status, .invalid, line: line)
                XCTAssertTrue(e.message.contains(mentioning), "\"\(e.message)\" does not mention \(mentioning)", line: line)
            }
        }
        expectInvalid("references") { _ = try bleu(hypotheses: hyps, references: Array(refs.dropLast())) }
        // C strings end at NUL: the wrapper refuses rather than score a truncated sentence.
        expectInvalid("hypotheses[1]") { _ = try bleu(hypotheses: ["a", "b\0c"], references: ["a", "b"]) }
        expectInvalid("references[0]") { _ = try bleu(hypotheses: ["a"], references: ["\0"]) }
    }
}
