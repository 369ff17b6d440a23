import SDLSTMCore
import XCTest

/// Padded positions must not influence anything real: the loss, every gradient and the decoded
/// tags are the same whatever the padding holds, however much of it there is, and whether a
/// sentence is tagged alone or in a batch. No dropout here: masks depend on the batch's shape.
final class TaggerPaddingTests: XCTestCase {
    struct Result {
        var loss: Double, tokens: Int
        var gradients: [String: [Float]]
        var tags: [[Int32]]
    }

    func run(_ problem: TaggerProblem) throws -> Result {
        let stats = try problem.lossAndGradients()
        return Result(loss: stats.loss, tokens: stats.tokens, gradients: problem.gradients(), tags: try problem.tag())
    }

    /// Embedding rows the batch does not use have unspecified gradients: compare only the used ones.
    func comparable(_ r: Result, _ problem: TaggerProblem) -> [String: [Float]] {
        var g = r.gradients
        let used = problem.usedRows()
        for (name, rows, width) in [("word_embedding.weight", used.words, 3), ("char_embedding.weight", used.chars, 3)] {
            guard var v = g[name] else { continue }
            for r in 0..<(v.count / width) where !rows.contains(r) { for c in 0..<width { v[r * width + c] = 0 } }
            g[name] = v
        }
        return g
    }

    func assertGradientsClose(_ a: [String: [Float]], _ b: [String: [Float]], scale: Float = 1, rtol: Float = 1e-4,
                              _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(Set(a.keys), Set(b.keys), file: file, line: line)
        for (name, x) in a {
            let y = b[name]!
            let worst = zip(x, y).map { abs($0 - scale * $1) - rtol * max(abs($0), 1e-3) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, 1e-7, "\(what): \(name)", file: file, line: line)
        }
    }

    func testGarbageInPaddingChangesNothing() throws {
        for crf in [true, false] {
            let a = try TaggerProblem(lengths: [5, 2, 3, 1], crf: crf)
            let b = try TaggerProblem(lengths: [5, 2, 3, 1], crf: crf)
            b.garbage = -3
            let (ra, rb) = (try run(a), try run(b))
            XCTAssertEqual(ra.loss, rb.loss, "crf \(crf): loss")
            XCTAssertEqual(ra.tokens, 11)
            XCTAssertEqual(ra.tags, rb.tags)
            XCTAssertEqual(comparable(ra, a), comparable(rb, b), "crf \(crf): gradients must be bit-identical")
        }
    }

    func testMorePaddingChangesNothing() throws {
        let a = try TaggerProblem(lengths: [5, 2, 3])
        let b = try TaggerProblem(lengths: [5, 2, 3], seqLen: 9)
        let (ra, rb) = (try run(a), try run(b))
        XCTAssertEqual(ra.loss, rb.loss, accuracy: 1e-6 * abs(ra.loss))
        XCTAssertEqual(ra.tags, rb.tags)
        assertGradientsClose(comparable(ra, a), comparable(rb, b), "T 5 vs 9")
    }

    /// Batched and one by one: the batch's mean loss is the token-weighted mean of the sentences'
    /// losses, its gradient the token-weighted mean of theirs, the tags the same.
    func testBatchEqualsSentencesAlone() throws {
        let lengths = [5, 2, 3, 1]
        let batch = try TaggerProblem(lengths: lengths)
        let full = try run(batch)
        var loss = 0.0, tags: [[Int32]] = [], sum: [String: [Float]] = [:]
        for (i, n) in lengths.enumerated() {
            let alone = try TaggerProblem(lengths: [n])
            copyParameters(from: batch.model, to: alone.model)
            (alone.sentences, alone.tags, alone.words) = ([batch.sentences[i]], [batch.tags[i]], [batch.words[i]])
            let r = try run(alone)
            loss += r.loss * Double(n)
            tags += r.tags
            for (name, g) in comparable(r, alone) {
                let weighted = g.map { $0 * Float(n) }
                sum[name] = sum[name].map { zip($0, weighted).map(+) } ?? weighted
            }
        }
        let total = Float(lengths.reduce(0, +))
        XCTAssertEqual(full.loss, loss / Double(total), accuracy: 1e-6 * abs(full.loss))
        XCTAssertEqual(full.tags, tags)
        assertGradientsClose(comparable(full, batch), sum.mapValues { $0.map { $0 / total } }, rtol: 1e-3, "batch vs alone")
    }

    /// `step` through `Model` with dropout: padding garbage still changes nothing (same masks: same
    /// shape and seed).
    func testStepWithStructuredDropoutIgnoresPadding() throws {
        var losses: [Double] = []
        var params: [[Float]] = []
        for garbage: Int32 in [9_999, 0] {
            let p = try TaggerProblem(lengths: [4, 2, 3])
            p.garbage = garbage
            for site in [DropoutSite.input, .between, .output, .recurrent] {
                try p.model.setDropout(DropoutSetting(policy: .structured, p: 0.3), at: site)
            }
            p.model.seed(5)
            p.model.optimizer.learningRate = 0.5
            losses.append(try p.step().loss)
            losses.append(try p.step().loss)
            params.append(p.model.parameters.flatMap(\.value.array))
        }
        XCTAssertEqual(losses[0], losses[2])
        XCTAssertEqual(losses[1], losses[3])
        XCTAssertEqual(params[0], params[1])
    }
}
