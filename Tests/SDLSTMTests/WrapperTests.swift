import CSDLSTM
import Foundation
import SDLSTM
import XCTest

/// The wrapper's mapping of the C ABI: errors, config, stats.
final class WrapperTests: XCTestCase {
    func small() -> LanguageModelConfig {
        LanguageModelConfig(vocabSize: 20, embedSize: 6, hiddenSize: 8, numLayers: 2, initScale: 0.1, seed: 3)
    }

    func expectError(_ status: SDLSTMError.Status, mentioning word: String,
                     file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            guard let e = error as? SDLSTMError else { return XCTFail("not an SDLSTMError: \(error)", file: file, line: line) }
            XCTAssertEqual(e.status, status, "\(e)", file: file, line: line)
            XCTAssertFalse(e.message.isEmpty, file: file, line: line)
            XCTAssertTrue(e.message.lowercased().contains(word), "\"\(e.message)\" does not mention \(word)", file: file, line: line)
        }
    }

    func testVersion() {
        XCTAssertFalse(SDLSTM.version.isEmpty)
        XCTAssertEqual(SDLSTM.version, String(cString: sdlstm_version()))
    }

    func testDefaultsComeFromConfigInit() {
        let c = LanguageModelConfig()
        XCTAssertEqual(c.vocabSize, 10000)
        XCTAssertEqual(c.hiddenSize, 650)
        XCTAssertEqual(c.numLayers, 2)
        XCTAssertEqual(c.initScale, 0.05)
        XCTAssertEqual(c.seed, 1)
        XCTAssertEqual(LanguageModelConfig(hiddenSize: 5).hiddenSize, 5)
        XCTAssertEqual(LanguageModelConfig(hiddenSize: 5).vocabSize, 10000)
    }

    func testBadConfigThrowsInvalid() {
        var c = small()
        c.vocabSize = 0
        expectError(.invalid, mentioning: "vocab") { _ = try LanguageModel(c) }
        c = small()
        c.numLayers = -1
        expectError(.invalid, mentioning: "layers") { _ = try LanguageModel(c) }
        c = small()
        c.hiddenSize = Int(Int32.max) + 1  // caught by the wrapper: does not fit the C field
        expectError(.invalid, mentioning: "hidden") { _ = try LanguageModel(c) }
    }

    func testModelReportsItsConfigAndSize() throws {
        let c = small()
        let m = try LanguageModel(c)
        XCTAssertEqual(m.config, c)
        let (v, e, h) = (20, 6, 8)
        XCTAssertEqual(m.parameterCount, v * e + (4 * h * (e + h) + 8 * h) + (4 * h * (h + h) + 8 * h) + v * h + v)
    }

    func testSetterErrors() throws {
        let m = try LanguageModel(small())
        expectError(.invalid, mentioning: "dropout p must be in [0, 1), got 1.0") { try m.setDropout(.structured, p: 1.0, at: .input) }
        expectError(.invalid, mentioning: "dropout p must be in [0, 1), got nan") { try m.setDropout(.structured, p: .nan, at: .output) }
        expectError(.invalid, mentioning: "learning") { try m.setLearningRate(0) }
        expectError(.invalid, mentioning: "norm") { try m.setClipNorm(-1) }
        expectError(.invalid, mentioning: "thread") { try m.setNumThreads(0) }
        expectError(.invalid, mentioning: "thread") { try m.setNumThreads(Int(Int32.max) + 1) }
        let one = try LanguageModel(LanguageModelConfig(vocabSize: 20, embedSize: 6, hiddenSize: 8, numLayers: 1))
        expectError(.invalid, mentioning: "layer") { try one.setDropout(.structured, p: 0.5, at: .between) }
        // The good values pass.
        for policy in DropoutPolicy.allCases {
            for site in DropoutSite.allCases { try m.setDropout(policy, p: 0.5, at: site) }
        }
        try m.setOptimizer(.sgd)
        try m.setLearningRate(0.5)
        try m.setClipNorm(0)
        try m.setNumThreads(1)
        try m.seed(99)
    }

    func testStepErrorsAndStats() throws {
        let m = try LanguageModel(small())
        let x: [Int32] = (0..<12).map { $0 % 20 }
        let y: [Int32] = (0..<12).map { ($0 + 1) % 20 }
        // Array length checked by the wrapper.
        expectError(.invalid, mentioning: "inputs") { _ = try m.step(inputs: Array(x.dropLast()), targets: y, batchSize: 3, seqLen: 4) }
        expectError(.invalid, mentioning: "targets") { _ = try m.evaluate(inputs: x, targets: y + [1], batchSize: 3, seqLen: 4) }
        // Ids checked by the library.
        var bad = x
        bad[5] = 20
        expectError(.invalid, mentioning: "input") { _ = try m.step(inputs: bad, targets: y, batchSize: 3, seqLen: 4) }
        expectError(.invalid, mentioning: "batch") { _ = try m.step(inputs: x, targets: y, batchSize: 0, seqLen: 4) }

        let s = try m.step(inputs: x, targets: y, batchSize: 3, seqLen: 4)
        XCTAssertEqual(s.tokens, 12)
        XCTAssertTrue(s.gradNorm > 0)
        XCTAssertEqual(s.perplexity, exp(s.loss), accuracy: 1e-9 * s.perplexity)
        XCTAssertEqual(s.skippedMACsFraction, 0)
        // A different batch size needs a reset first.
        expectError(.state, mentioning: "batch") { _ = try m.step(inputs: x, targets: y, batchSize: 2, seqLen: 6) }
        try m.resetState()
        let e = try m.evaluate(inputs: x, targets: y, batchSize: 2, seqLen: 6)
        XCTAssertEqual(e.tokens, 12)
        XCTAssertEqual(e.gradNorm, 0)
    }

    func testNumericErrorMapsToNumeric() throws {
        let m = try LanguageModel(small())
        try m.setClipNorm(0)
        try m.setLearningRate(1e30)
        let x: [Int32] = (0..<12).map { $0 % 20 }
        let y: [Int32] = (0..<12).map { ($0 * 3 + 1) % 20 }
        var thrown: SDLSTMError?
        for _ in 0..<12 {
            do { _ = try m.step(inputs: x, targets: y, batchSize: 3, seqLen: 4) } catch { thrown = error; break }
        }
        XCTAssertEqual(thrown?.status, .numeric, "\(String(describing: thrown))")
    }

    func testRuntimeInfoMirrorsTheABI() throws {
        let info = try runtimeInfo()
        var c = sdlstm_runtime_info()
        c.struct_size = MemoryLayout<sdlstm_runtime_info>.size
        XCTAssertEqual(sdlstm_get_runtime_info(&c), SDLSTM_OK)
        XCTAssertTrue(["portable", "avx2", "avx512"].contains(info.kernelISA), info.kernelISA)
        XCTAssertEqual(info.kernelISA, String(cString: c.kernel_isa))
        XCTAssertEqual(info.cpuISA, String(cString: c.cpu_isa))
        XCTAssertEqual(info.cpuModel, String(cString: c.cpu_model))
        XCTAssertEqual(info.blasName, "OpenBLAS")
        XCTAssertEqual(info.blasVersion, String(cString: c.blas_version))
        XCTAssertEqual(info.blasCore, String(cString: c.blas_core))
        XCTAssertEqual(info.blasThreads, Int(c.blas_threads))
        XCTAssertEqual(info.blasCoreIsGeneric, c.blas_core_generic != 0)
    }

    func testStatusMapping() {
        for status in SDLSTMError.Status.allCases {
            XCTAssertEqual(SDLSTMError.Status(status.cStatus), status)
        }
        XCTAssertNil(SDLSTMError.Status(SDLSTM_OK))
        let e = SDLSTMError(.state, "batch size 2 differs from the carried 3")
        XCTAssertEqual(e.description, "SDLSTM_E_STATE: batch size 2 differs from the carried 3")
    }
}
