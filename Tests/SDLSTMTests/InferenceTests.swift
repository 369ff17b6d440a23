import CSDLSTM
import Foundation
import SDLSTM
import XCTest

/// The wrapper's LM inference (State, score, generate) and the calls every model type shares.
final class WrapperInferenceTests: XCTestCase {
    /// A small LM after some steps on a fixed pattern, so that its distributions are not uniform.
    func trained() throws -> LanguageModel {
        let model = try LanguageModel(LanguageModelConfig(vocabSize: 17, embedSize: 12, hiddenSize: 12, numLayers: 2,
                                                          initScale: 0.4, seed: 5))
        try model.setLearningRate(5)
        try model.setClipNorm(5)
        let inputs = (0..<24).map { Int32($0 * 5 % 17) }
        for _ in 0..<40 {
            _ = try model.step(inputs: inputs, targets: inputs.map { ($0 * 2 + 3) % 17 }, batchSize: 3, seqLen: 8)
        }
        return model
    }

    func testStateScoreAndGenerateAgree() throws {
        let model = try trained()
        let tokens = (0..<90).map { Int32($0 * $0 % 17) }
        let scored = try model.score(tokens)
        XCTAssertEqual(scored.tokenLogProbs.count, 89)
        XCTAssertEqual(scored.logProb, scored.tokenLogProbs.reduce(0.0) { $0 + Double($1) }, accuracy: 1e-6 * abs(scored.logProb))
        XCTAssertEqual(scored.perplexity, exp(-scored.logProb / 89), accuracy: 1e-9)

        let state = try LanguageModel.State(for: model, streams: 2)
        XCTAssertEqual(state.streams, 2)
        for i in 0..<89 {
            let rows = try state.nextLogProbs([tokens[i], 0])
            XCTAssertEqual(rows.count, 34)
            XCTAssertEqual(rows[Int(tokens[i + 1])], scored.tokenLogProbs[i], accuracy: 1e-5, "token \(i)")
            XCTAssertEqual(rows[17...].reduce(0.0) { $0 + exp(Double($1)) }, 1, accuracy: 1e-5)
        }
        try state.reset()
        let fresh = try LanguageModel.State(for: model, streams: 2)
        XCTAssertEqual(try state.nextLogProbs([3, 4]), try fresh.nextLogProbs([3, 4]))

        let a = try model.generate(prompt: [1, 2], maxTokens: 25, options: GenerateOptions(seed: 9))
        XCTAssertEqual(a.count, 25)
        XCTAssertEqual(try model.generate(prompt: [1, 2], maxTokens: 25, options: GenerateOptions(seed: 9)), a)
        XCTAssertNotEqual(try model.generate(prompt: [1, 2], maxTokens: 25, options: GenerateOptions(seed: 10)), a)
        // Greedy generation is the argmax path of nextLogProbs.
        let greedy = try model.generate(prompt: [1, 2], maxTokens: 10, options: GenerateOptions(temperature: 0))
        let one = try LanguageModel.State(for: model)
        _ = try one.nextLogProbs([1])
        var row = try one.nextLogProbs([2])
        for token in greedy {
            XCTAssertEqual(token, Int32(row.indices.max { row[$0] < row[$1] }!))
            row = try one.nextLogProbs([token])
        }
        let stopped = try model.generate(prompt: [1, 2], maxTokens: 25, options: GenerateOptions(seed: 9, stopID: a[4]))
        XCTAssertEqual(stopped, Array(a[...a.firstIndex(of: a[4])!]))
    }

    func testDefaultsAndErrors() throws {
        let o = GenerateOptions()
        XCTAssertEqual(o, GenerateOptions(temperature: 1, topK: 0, seed: 1, stopID: nil))
        let model = try trained()
        let state = try LanguageModel.State(for: model, streams: 2)
        func expect(_ status: SDLSTMError.Status, _ word: String, line: UInt = #line, _ body: () throws -> Void) {
            XCTAssertThrowsError(try body(), line: line) { e in
                XCTAssertEqual((e as? SDLSTMError)?.status, status, "\(e)", line: line)
                XCTAssertTrue("\(e)".contains(word), "\(e) does not mention \(word)", line: line)
            }
        }
        expect(.invalid, "one per stream") { _ = try state.nextLogProbs([1]) }
        expect(.invalid, "tokens[1]") { _ = try state.nextLogProbs([1, 17]) }
        expect(.invalid, "at least 2") { _ = try model.score([3]) }
        expect(.invalid, "tokens[2]") { _ = try model.score([3, 4, -1]) }
        expect(.invalid, "prompt") { _ = try model.generate(prompt: [], maxTokens: 3) }
        expect(.invalid, "maxTokens") { _ = try model.generate(prompt: [1], maxTokens: 0) }
        expect(.invalid, "temperature") { _ = try model.generate(prompt: [1], maxTokens: 3, options: GenerateOptions(temperature: -1)) }
        expect(.invalid, "stop_id") { _ = try model.generate(prompt: [1], maxTokens: 3, options: GenerateOptions(stopID: 17)) }
        expect(.invalid, "streams") { _ = try LanguageModel.State(for: model, streams: 0) }
    }

    /// Tagger and Translator have the LM's progress, string tables and metadata, and save them.
    func testEveryModelTypeKeepsProgressStringsAndMetadata() throws {
        var tc = TaggerConfig()
        (tc.vocabSize, tc.embedSize, tc.hiddenSize, tc.numTags, tc.charVocabSize) = (10, 4, 4, 3, 0)
        var nc = TranslatorConfig()
        (nc.sourceVocabSize, nc.targetVocabSize, nc.embedSize, nc.hiddenSize, nc.numLayers) = (9, 8, 4, 6, 1)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sdlstm-shared-\(getpid())-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }

        let tagger = try Tagger(tc)
        try check(tagger, dir.appendingPathComponent("tagger.h5").path, step: {
            _ = try tagger.step([TaggedSentence(words: [1, 2, 3], tags: [0, 1, 2])])
        }, load: { try Tagger.load(from: $0) })
        let translator = try Translator(nc, bos: 0, eos: 1)
        try check(translator, dir.appendingPathComponent("nmt.h5").path, step: {
            _ = try translator.step([SentencePair(source: [1, 2, 3], target: [4, 5])])
        }, load: { try Translator.load(from: $0, bos: 0, eos: 1) })
    }

    private func check<M: TrainableModel>(_ model: M, _ path: String, step: () throws -> Void,
                                          load: (String) throws -> M, line: UInt = #line) throws {
        try model.setLearningRate(0.25)
        try model.setEpoch(2)
        try step()
        try step()
        XCTAssertEqual(model.progress, TrainingProgress(step: 2, epoch: 2, epochStep: 2, learningRate: 0.25, clipNorm: 0),
                       line: line)
        try model.setStrings(["a", "b", "ü"], named: "vocab.src")
        try model.setMetadata("note", forKey: "corpus")
        XCTAssertEqual(try model.strings(named: "vocab.src"), ["a", "b", "ü"], line: line)
        XCTAssertNil(try model.metadata(forKey: "absent"), line: line)
        try model.save(to: path)
        let loaded = try load(path)
        XCTAssertEqual(loaded.progress, model.progress, line: line)
        XCTAssertEqual(try loaded.strings(named: "vocab.src"), ["a", "b", "ü"], line: line)
        XCTAssertEqual(try loaded.metadata(forKey: "corpus"), "note", line: line)
        XCTAssertThrowsError(try model.setMetadata("x", forKey: "bad key"), line: line)
    }
}
