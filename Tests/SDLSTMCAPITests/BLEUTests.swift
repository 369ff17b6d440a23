import CSDLSTM
import XCTest

/// sdlstm_bleu through the C ABI: argument checking and its messages, struct_size in both
/// directions, and scores that sacreBLEU 2.6.0 printed for the same text.
final class BLEUTests: XCTestCase {
    // sacreBLEU's test/test_sentence_bleu.py example (one sentence, non-ASCII).
    let ref = "producţia de zahăr brut se exprimă în zahăr alb;"
    let sys = "Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;"

    func options(lowercase: Int32 = 0, tokenize: Int32 = 1) -> sdlstm_bleu_options {
        var o = sdlstm_bleu_options()
        o.struct_size = MemoryLayout<sdlstm_bleu_options>.size
        (o.lowercase, o.tokenize) = (lowercase, tokenize)
        return o
    }

    func freshScores() -> sdlstm_bleu_scores {
        var s = sdlstm_bleu_scores()
        s.struct_size = MemoryLayout<sdlstm_bleu_scores>.size
        return s
    }

    /// Byte strings as C strings (nil: a NULL entry; a nil array: a NULL array) for the duration of body.
    func withCArray<R>(_ strings: [[UInt8]?]?, _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
        guard let strings else { return body(nil) }
        let copies: [UnsafeMutablePointer<CChar>?] = strings.map { bytes in
            bytes.map { b in
                let p = UnsafeMutablePointer<CChar>.allocate(capacity: b.count + 1)
                for (i, byte) in b.enumerated() { p[i] = CChar(bitPattern: byte) }
                p[b.count] = 0
                return p
            }
        }
        defer { copies.forEach { $0?.deallocate() } }
        let pointers: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0) } } + [nil]
        return pointers.withUnsafeBufferPointer { body($0.baseAddress) }
    }

    func bytes(_ strings: [String]) -> [[UInt8]?] { strings.map { Array($0.utf8) } }

    func bleu(_ hyps: [[UInt8]?]?, _ refs: [[UInt8]?]?, n: Int64? = nil, options: sdlstm_bleu_options? = nil,
              _ out: UnsafeMutablePointer<sdlstm_bleu_scores>?) -> sdlstm_status {
        let count = n ?? Int64(hyps?.count ?? 0)
        return withCArray(hyps) { h in
            withCArray(refs) { r in
                if var o = options { return sdlstm_bleu(h, r, count, &o, out) }
                return sdlstm_bleu(h, r, count, nil, out)
            }
        }
    }

    func assertScores(_ s: sdlstm_bleu_scores, bleu: Double, precisions: [Double], bp: Double, ratio: Double,
                      hypLen: Int64, refLen: Int64, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(s.bleu, bleu, accuracy: 1e-12, "\(what): bleu", file: file, line: line)
        let p = [s.precisions.0, s.precisions.1, s.precisions.2, s.precisions.3]
        for i in 0..<4 { XCTAssertEqual(p[i], precisions[i], accuracy: 1e-12, "\(what): precision \(i + 1)", file: file, line: line) }
        XCTAssertEqual(s.brevity_penalty, bp, accuracy: 1e-12, "\(what): bp", file: file, line: line)
        XCTAssertEqual(s.length_ratio, ratio, accuracy: 1e-12, "\(what): ratio", file: file, line: line)
        XCTAssertEqual([s.hyp_len, s.ref_len], [hypLen, refLen], "\(what): lengths", file: file, line: line)
    }

    // MARK: - Scores

    func testSacreBLEUExample() {
        // sacreBLEU 2.6.0: BLEU = 8.49 35.7/15.4/4.2/2.3 (BP = 1.000 ratio = 1.400 hyp_len = 14 ref_len = 10).
        let expected = (bleu: 8.493098745313148, precisions: [500 / 14.0, 200 / 13.0, 100 / (2 * 12.0), 100 / (4 * 11.0)])
        for (what, opts) in [("options NULL", nil), ("13a, case-sensitive", options())] as [(String, sdlstm_bleu_options?)] {
            var out = freshScores()
            XCTAssertEqual(bleu(bytes([sys]), bytes([ref]), options: opts, &out), OK, lastError())
            assertScores(out, bleu: expected.bleu, precisions: expected.precisions, bp: 1, ratio: 1.4, hypLen: 14, refLen: 10, what)
            XCTAssertEqual(out.struct_size, MemoryLayout<sdlstm_bleu_scores>.size)
        }
        // Whitespace tokenisation: BLEU = 7.35 30.8/8.3/4.5/2.5 (BP = 1.000 ratio = 1.444 hyp_len = 13 ref_len = 9).
        var out = freshScores()
        XCTAssertEqual(bleu(bytes([sys]), bytes([ref]), options: options(tokenize: 0), &out), OK, lastError())
        assertScores(out, bleu: 7.347053125977879, precisions: [400 / 13.0, 100 / 12.0, 100 / (2 * 11.0), 100 / (4 * 10.0)],
                     bp: 1, ratio: 13 / 9.0, hypLen: 13, refLen: 9, "tokenize 0")
    }

    func testCorpusPairsSentencesByIndexAndLowercases() {
        // sacreBLEU's README corpus with its first reference set only; sacreBLEU 2.6.0:
        // BLEU = 45.07 70.6/42.9/36.4/37.5 (BP = 1.000 ratio = 1.000 hyp_len = 17 ref_len = 17).
        let refs = ["The dog bit the man.", "It was not unexpected.", "The man bit him first."]
        let hyps = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
        let precisions = [1200 / 17.0, 600 / 14.0, 400 / 11.0, 300 / 8.0]
        var out = freshScores()
        XCTAssertEqual(bleu(bytes(hyps), bytes(refs), &out), OK, lastError())
        assertScores(out, bleu: 45.06750632106114, precisions: precisions, bp: 1, ratio: 1, hypLen: 17, refLen: 17, "as given")
        // Upper-cased hypotheses: the same with lowercase = 1; without, only the periods match
        // (BLEU = 3.87 17.6/3.6/2.3/1.6).
        let upper = hyps.map { $0.uppercased() }
        XCTAssertEqual(bleu(bytes(upper), bytes(refs), options: options(lowercase: 1), &out), OK, lastError())
        assertScores(out, bleu: 45.06750632106114, precisions: precisions, bp: 1, ratio: 1, hypLen: 17, refLen: 17, "lowercase")
        XCTAssertEqual(bleu(bytes(upper), bytes(refs), &out), OK, lastError())
        XCTAssertEqual(out.bleu, 3.867857032414505, accuracy: 1e-12)
        // Each hypothesis is clipped against its own reference only: reversed, BLEU = 5.09 52.9/3.6/2.3/1.6.
        XCTAssertEqual(bleu(bytes(hyps.reversed()), bytes(refs), &out), OK, lastError())
        XCTAssertEqual(out.bleu, 5.090386126176276, accuracy: 1e-12)
        XCTAssertEqual(out.precisions.0, 900 / 17.0, accuracy: 1e-12)
    }

    func testNoSentences() {
        // n = 0 reads neither array: the score of empty statistics (BLEU 0, BP 1, ratio 0).
        var out = freshScores()
        XCTAssertEqual(bleu(nil, nil, n: 0, &out), OK, lastError())
        assertScores(out, bleu: 0, precisions: [0, 0, 0, 0], bp: 1, ratio: 0, hypLen: 0, refLen: 0, "n = 0")
    }

    // MARK: - Errors

    /// The call must fail with E_INVALID, a message matching one of patterns, and an untouched out.
    func expectInvalid(_ what: String, _ patterns: [String], file: StaticString = #filePath, line: UInt = #line,
                       _ call: (UnsafeMutablePointer<sdlstm_bleu_scores>) -> sdlstm_status) {
        var out = freshScores()
        out.bleu = -7
        let s = call(&out)
        let message = lastError()
        XCTAssertEqual(s, E_INVALID, "\(what): got \(statusName(s)) (\(message))", file: file, line: line)
        XCTAssertTrue(mentions(message, patterns), "\(what): \"\(message)\" does not mention \(patterns)", file: file, line: line)
        XCTAssertEqual(out.bleu, -7, "\(what): out was written", file: file, line: line)
    }

    func testNullArraysAndEntries() {
        let one = bytes(["a b c d"]), two = bytes(["a b", "c d"])
        expectInvalid("hypotheses NULL", [#"hypotheses is NULL"#]) { bleu(nil, one, n: 1, $0) }
        expectInvalid("references NULL", [#"references is NULL"#]) { bleu(one, nil, n: 1, $0) }
        expectInvalid("hypotheses[1] NULL", [#"hypotheses\[1\] is NULL"#]) { bleu([two[0], nil], two, $0) }
        expectInvalid("references[0] NULL", [#"references\[0\] is NULL"#]) { bleu(two, [nil, two[1]], $0) }
        XCTAssertEqual(withCArray(one) { p in sdlstm_bleu(p, p, 1, nil, nil) }, E_INVALID)
        XCTAssertTrue(mentions(lastError(), [#"\bout\b"#]), lastError())
    }

    func testNegativeCount() {
        let one = bytes(["a"])
        for n: Int64 in [-1, Int64.min] {
            expectInvalid("n \(n)", [#"\bn\b.*>= 0"#]) { bleu(one, one, n: n, $0) }
        }
    }

    func testInvalidUTF8() {
        let good = Array("fine".utf8)
        // A stray continuation byte, a truncated sequence, an overlong "/", an encoded surrogate.
        for bad: [UInt8] in [[0x80], [0x61, 0xC3], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xFF]] {
            expectInvalid("hypothesis \(bad)", [#"hypotheses\[1\].*UTF-8"#]) { bleu([good, bad], [good, good], $0) }
            expectInvalid("reference \(bad)", [#"references\[0\].*UTF-8"#]) { bleu([good, good], [bad, good], $0) }
        }
    }

    func testStructSizes() {
        let one = bytes(["a b c d"])
        for size in [0, 8, MemoryLayout<sdlstm_bleu_scores>.size - 1] {
            expectInvalid("out struct_size \(size)", ["struct_size"]) { out in
                out.pointee.struct_size = size
                return bleu(one, one, out)
            }
        }
        for size in [0, MemoryLayout<sdlstm_bleu_options>.size - 1] {
            var o = options()
            o.struct_size = size
            expectInvalid("options struct_size \(size)", ["options.*struct_size"]) { bleu(one, one, options: o, $0) }
        }
        for t: Int32 in [2, -1] {
            expectInvalid("tokenize \(t)", ["tokenize"]) { bleu(one, one, options: options(tokenize: t), $0) }
        }
    }

    func testLargerOutStructIsWrittenOnlyAsFarAsThisVersionKnows() {
        // A caller built against a newer header passes a larger struct: the bytes past this version's
        // fields must stay as they were.
        let known = MemoryLayout<sdlstm_bleu_scores>.size, extra = 32
        let raw = UnsafeMutableRawPointer.allocate(byteCount: known + extra, alignment: 16)
        defer { raw.deallocate() }
        raw.initializeMemory(as: UInt8.self, repeating: 0xAB, count: known + extra)
        let out = raw.bindMemory(to: sdlstm_bleu_scores.self, capacity: 1)
        out.pointee.struct_size = known + extra
        XCTAssertEqual(bleu(bytes(["a b c d"]), bytes(["a b c d"]), out), OK, lastError())
        XCTAssertEqual(out.pointee.bleu, 100, accuracy: 1e-12)
        XCTAssertEqual(out.pointee.struct_size, known + extra)
        let tail = UnsafeRawBufferPointer(start: raw + known, count: extra)
        XCTAssertTrue(tail.allSatisfy { $0 == 0xAB }, "bytes past sizeof(sdlstm_bleu_scores) were written")
    }
}
