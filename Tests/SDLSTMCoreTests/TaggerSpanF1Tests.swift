import SDLSTMCore
import XCTest

/// conlleval's counting rules on hand-made cases, IOB1 and IOB2. Expected counts are worked out by
/// hand from conlleval's startOfChunk/endOfChunk (and agree with tools/conlleval.py).
final class TaggerSpanF1Tests: XCTestCase {
    let names = ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]

    /// Counts sentences given as tag names.
    func count(_ pairs: [(gold: [String], predicted: [String])]) throws -> SpanCounter {
        let counter = SpanCounter(tagNames: names)
        for (g, p) in pairs {
            XCTAssertEqual(g.count, p.count)
            let gold = g.map { Int32(names.firstIndex(of: $0)!) }, predicted = p.map { Int32(names.firstIndex(of: $0)!) }
            try counter.add(gold: gold, predicted: predicted, batchSize: 1, seqLen: g.count, lengths: nil)
        }
        return counter
    }

    func assertCounts(_ s: SpanScores, gold: Int, predicted: Int, correct: Int, _ what: String,
                      file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual([s.goldSpans, s.predictedSpans, s.correctSpans], [gold, predicted, correct], what, file: file, line: line)
    }

    func testTypesAreSorted() {
        XCTAssertEqual(SpanCounter(tagNames: ["O", "I-PER", "B-ORG", "B-PER", "I-ORG", "B-LOC"]).types, ["LOC", "ORG", "PER"])
    }

    func testPerfectIOB2() throws {
        let c = try count([(["B-PER", "I-PER", "O", "B-LOC"], ["B-PER", "I-PER", "O", "B-LOC"])])
        assertCounts(c.overallScores, gold: 2, predicted: 2, correct: 2, "overall")
        XCTAssertEqual(c.overallScores.f1, 1)
        XCTAssertEqual(c.overallScores.tokens, 4)
        XCTAssertEqual(c.overallScores.correctTags, 4)
        assertCounts(c.scores(type: "PER")!, gold: 1, predicted: 1, correct: 1, "PER")
        assertCounts(c.scores(type: "ORG")!, gold: 0, predicted: 0, correct: 0, "ORG")
        XCTAssertEqual(c.scores(type: "ORG")!.f1, 0)
        XCTAssertNil(c.scores(type: "DATE"))
    }

    func testBoundariesAndTypeMustMatch() throws {
        // Too short, too long, wrong type, split in two: none is correct.
        let c = try count([
            (["B-PER", "I-PER", "O"], ["B-PER", "O", "O"]),
            (["B-PER", "O", "O"], ["B-PER", "I-PER", "O"]),
            (["B-PER", "I-PER"], ["B-ORG", "I-ORG"]),
            (["B-PER", "I-PER", "I-PER"], ["B-PER", "I-PER", "B-PER"]),
        ])
        assertCounts(c.overallScores, gold: 4, predicted: 5, correct: 0, "overall")
        assertCounts(c.scores(type: "PER")!, gold: 4, predicted: 4, correct: 0, "PER")
        assertCounts(c.scores(type: "ORG")!, gold: 0, predicted: 1, correct: 0, "ORG")
        XCTAssertEqual(c.overallScores.tokens, 11)
        XCTAssertEqual(c.overallScores.correctTags, 6)
    }

    /// conlleval is lenient: an I- after O or after another type starts a span, as in IOB1.
    func testIAfterOStartsASpan() throws {
        let c = try count([
            (["O", "B-PER", "I-PER"], ["O", "I-PER", "I-PER"]),  // same span, correct
            (["B-PER", "I-LOC"], ["B-PER", "B-LOC"]),           // I-LOC after PER starts a LOC span
        ])
        assertCounts(c.overallScores, gold: 3, predicted: 3, correct: 3, "overall")
        assertCounts(c.scores(type: "LOC")!, gold: 1, predicted: 1, correct: 1, "LOC")
    }

    func testIOB1() throws {
        // I-PER I-PER B-PER: two adjacent PER spans; predicting one long span gets neither.
        let c = try count([(["I-PER", "I-PER", "B-PER", "O"], ["I-PER", "I-PER", "I-PER", "O"])])
        assertCounts(c.overallScores, gold: 2, predicted: 1, correct: 0, "overall")
        // The same spans in IOB1 and in IOB2 match completely.
        let d = try count([(["I-LOC", "O", "I-LOC", "I-LOC", "B-LOC"], ["B-LOC", "O", "B-LOC", "I-LOC", "B-LOC"])])
        assertCounts(d.overallScores, gold: 3, predicted: 3, correct: 3, "IOB1 vs IOB2")
        XCTAssertEqual(d.overallScores.f1, 1)
        XCTAssertEqual(d.overallScores.correctTags, 3)  // tags differ, spans agree
    }

    /// A sentence boundary ends every span: an I- opening the next sentence starts a new one.
    func testSentenceBoundaryEndsSpans() throws {
        let c = try count([(["O", "B-ORG"], ["O", "B-ORG"]), (["I-ORG", "O"], ["I-ORG", "O"])])
        assertCounts(c.overallScores, gold: 2, predicted: 2, correct: 2, "overall")
        // The same two sentences in one batch with lengths and padding give the same counts.
        let ids: [Int32] = [0, 5, -9, 6, 0, 99]
        let batched = SpanCounter(tagNames: names)
        try batched.add(gold: ids, predicted: ids, batchSize: 2, seqLen: 3, lengths: [2, 2])
        XCTAssertEqual(batched.overallScores, c.overallScores)
        // One sentence of four tokens instead: B-ORG I-ORG is one span.
        let joined = try count([(["O", "B-ORG", "I-ORG", "O"], ["O", "B-ORG", "I-ORG", "O"])])
        assertCounts(joined.overallScores, gold: 1, predicted: 1, correct: 1, "joined")
    }

    func testPrecisionRecallF1() throws {
        // gold: PER(0-1) LOC(3) ORG(5) MISC(7)          = 4
        // pred: PER(0-1) LOC(3) ORG(5-6) MISC(7) PER(8) = 5; correct PER, LOC, MISC = 3
        let gold = ["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG", "O", "B-MISC", "O"]
        let pred = ["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG", "I-ORG", "B-MISC", "B-PER"]
        let s = try count([(gold, pred)]).overallScores
        assertCounts(s, gold: 4, predicted: 5, correct: 3, "overall")
        XCTAssertEqual(s.precision, 0.6, accuracy: 1e-12)
        XCTAssertEqual(s.recall, 0.75, accuracy: 1e-12)
        XCTAssertEqual(s.f1, 2 * 0.6 * 0.75 / 1.35, accuracy: 1e-12)
        XCTAssertEqual(s.tokens, 9)
        XCTAssertEqual(s.correctTags, 7)
        // Nothing predicted: precision 0 (not NaN), recall 0, F1 0.
        let none = try count([(gold, [String](repeating: "O", count: gold.count))]).overallScores
        XCTAssertEqual([none.precision, none.recall, none.f1], [0, 0, 0])
    }

    /// Ill-formed predictions are counted, not rejected: conlleval reads any tag sequence.
    func testIllFormedSequences() throws {
        // pred: I-PER (start) | B-PER | I-LOC (type change: start) I-LOC | O
        let c = try count([(["B-PER", "I-PER", "I-PER", "O", "O"], ["I-PER", "B-PER", "I-LOC", "I-LOC", "O"])])
        assertCounts(c.overallScores, gold: 1, predicted: 3, correct: 0, "overall")
        assertCounts(c.scores(type: "LOC")!, gold: 0, predicted: 1, correct: 0, "LOC")
    }

    func testInvalidIdsCountNothing() throws {
        let c = SpanCounter(tagNames: names)
        XCTAssertThrowsError(try c.add(gold: [0, 1, 9], predicted: [0, 1, 2], batchSize: 1, seqLen: 3, lengths: nil))
        XCTAssertThrowsError(try c.add(gold: [0, 1, 2], predicted: [0, -1, 2], batchSize: 1, seqLen: 3, lengths: nil))
        XCTAssertThrowsError(try c.add(gold: [0, 1, 2], predicted: [0, 1, 2], batchSize: 1, seqLen: 3, lengths: [4]))
        XCTAssertThrowsError(try c.add(gold: [0, 1, 2], predicted: [0, 1, 2], batchSize: 1, seqLen: 3, lengths: [0]))
        XCTAssertEqual(c.overallScores, SpanScores())
    }
}
