import SDLSTMCore
import XCTest

/// Decoding with a model whose parameters hold NaN (a diverged run, a corrupted copy) fails with
/// `.numeric` instead of trapping or returning made-up output, and changes neither the model nor the
/// caller's output.
final class NonFiniteDecodingTests: XCTestCase {
    private func snapshot(_ model: any Model) -> [[UInt32]] {
        model.parameters.map { $0.value.array.map(\.bitPattern) }
    }

    private func poison(_ p: Parameter, at index: Int? = nil) {
        for i in index.map({ [$0] }) ?? Array(0..<p.count) { p.value.ptr[i] = .nan }
    }

    private func expectNumeric(_ what: String, _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("\(what): decoding succeeded")
        } catch let error as SDLSTMError {
            guard case .numeric(let m) = error else { return XCTFail("\(what): expected .numeric, got \(error)") }
            XCTAssertFalse(m.isEmpty, what)
        } catch {
            XCTFail("\(what): \(error)")
        }
    }

    func testTranslateWithNaNParametersIsNumeric() throws {
        for (name, whole) in [("encoder.embedding.weight", true), ("generator.bias", false), ("generator.bias", true)] {
            for beam in [1, 3] {
                let p = try TranslatorProblem()
                let param = try XCTUnwrap(p.model.parameters.first { $0.pytorchName.hasSuffix(name) }, name)
                poison(param, at: whole ? nil : 2)
                let before = snapshot(p.model)
                expectNumeric("\(name) (\(whole ? "all" : "one entry")) NaN, beam \(beam)") {
                    _ = try p.translate(beam: beam, maxLength: 6)
                }
                XCTAssertEqual(snapshot(p.model), before)
            }
        }
    }

    func testTagWithNaNParametersIsNumeric() throws {
        for crf in [true, false] {
            for pick in ["hidden2tag.weight", "word_embedding.weight"] + (crf ? ["crf.transitions", "crf.end_transitions"] : []) {
                let p = try TaggerProblem(crf: crf)
                let param = try XCTUnwrap(p.model.parameters.first { $0.pytorchName == pick }, pick)
                poison(param)
                let before = snapshot(p.model)
                var out = [Int32](repeating: 7, count: p.batchSize * p.seqLen)
                expectNumeric("\(pick) NaN, crf \(crf)") {
                    try p.withBatch { b in try out.withUnsafeMutableBufferPointer { try p.model.tag(b, into: $0.baseAddress!) } }
                }
                XCTAssertEqual(out, [Int32](repeating: 7, count: out.count), "\(pick): the output was written")
                XCTAssertEqual(snapshot(p.model), before)
            }
        }
    }
}
