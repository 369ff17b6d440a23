import CSDLSTM
import Foundation
import SDLSTM
import XCTest

/// The wrapper's checkpoints: save(to:) / load(from:), progress, string tables and metadata.
final class WrapperCheckpointTests: XCTestCase {
    func testSaveAndLoad() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sdlstm-wrapper-\(getpid())-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("lm.h5").path

        let config = LanguageModelConfig(vocabSize: 20, embedSize: 6, hiddenSize: 8, numLayers: 2, initScale: 0.1, seed: 3)
        let model = try LanguageModel(config)
        try model.setDropout(.structured, p: 0.4, at: .input)
        try model.setLearningRate(0.5)
        try model.setStrings((0..<20).map { "w\($0)" }, named: "vocab")
        try model.setMetadata("tiny", forKey: "corpus")
        try model.setEpoch(4)
        let inputs = (0..<12).map { Int32($0 * 7 % 20) }, targets = (0..<12).map { Int32($0 * 3 % 20) }
        for _ in 0..<3 { _ = try model.step(inputs: inputs, targets: targets, batchSize: 3, seqLen: 4) }
        XCTAssertEqual(model.progress, TrainingProgress(step: 3, epoch: 4, epochStep: 3, learningRate: 0.5, clipNorm: 0))

        try model.save(to: path, includingCarriedState: true)
        let loaded = try LanguageModel.load(from: path)
        XCTAssertEqual(loaded.config, config)
        XCTAssertEqual(loaded.progress, model.progress)
        XCTAssertEqual(try loaded.strings(named: "vocab"), (0..<20).map { "w\($0)" })
        XCTAssertNil(try loaded.strings(named: "tags"))
        XCTAssertEqual(try loaded.metadata(forKey: "corpus"), "tiny")
        XCTAssertNil(try loaded.metadata(forKey: "absent"))
        // Same parameters, dropout, random stream and carried state: the next steps agree bit for bit.
        for _ in 0..<2 {
            let a = try model.step(inputs: inputs, targets: targets, batchSize: 3, seqLen: 4)
            let b = try loaded.step(inputs: inputs, targets: targets, batchSize: 3, seqLen: 4)
            XCTAssertEqual(a, b)
        }

        XCTAssertThrowsError(try LanguageModel.load(from: dir.appendingPathComponent("absent.h5").path)) { e in
            XCTAssertEqual((e as? SDLSTMError)?.status, .io)
        }
        try Data("garbage".utf8).write(to: dir.appendingPathComponent("junk.h5"))
        XCTAssertThrowsError(try LanguageModel.load(from: dir.appendingPathComponent("junk.h5").path)) { e in
            XCTAssertEqual((e as? SDLSTMError)?.status, .format)
        }
        XCTAssertThrowsError(try model.setStrings(["x"], named: "bad name")) { e in
            XCTAssertEqual((e as? SDLSTMError)?.status, .invalid)
        }
    }
}
