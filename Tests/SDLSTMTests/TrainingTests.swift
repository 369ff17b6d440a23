import Foundation
import SDLSTM
import XCTest

/// Trains a small LM through the wrapper on a tiny committed corpus.
///
/// The corpus (Resources/): `ptb.tiny.train.txt` is the first 1,000 lines of PTB's `ptb.train.txt`,
/// `ptb.tiny.valid.txt` the first 200 lines of `ptb.valid.txt` (Mikolov's PTB, shared/data/ptb/;
/// see Resources/SOURCE.md).
final class TrainingTests: XCTestCase {
    func loadCorpus(maxVocab: Int) throws -> Corpus {
        func text(_ name: String) throws -> String {
            let url = try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: "txt", subdirectory: "Resources"),
                                    "missing resource \(name).txt")
            return try String(contentsOf: url, encoding: .utf8)
        }
        return Corpus(train: try text("ptb.tiny.train"), valid: try text("ptb.tiny.valid"), maxVocab: maxVocab)
    }

    /// Mean validation loss over the whole valid stream, from a zero state.
    func validationLoss(_ model: LanguageModel, _ batches: Batches) throws -> Double {
        try model.resetState()
        var loss = 0.0, tokens = 0
        for (x, y) in batches {
            let s = try model.evaluate(inputs: x, targets: y, batchSize: batches.batchSize, seqLen: batches.seqLen)
            loss += s.loss * Double(s.tokens)
            tokens += s.tokens
        }
        return loss / Double(tokens)
    }

    func testStructuredDropoutTrainingLowersValidationPerplexity() throws {
        // Sized to stay well under 20 s in a debug build on 2 cores (~0.2 ms per token here): the 1,000
        // most frequent words of the tiny train file (the rest <unk>), 2 x 64, the first 8,000 training
        // tokens for 3 epochs, the 4,722 validation tokens before and after.
        let maxVocab = 1000, hidden = 64, layers = 2, trainTokens = 8000, epochs = 3
        let corpus = try loadCorpus(maxVocab: maxVocab)
        let batchSize = 20, seqLen = 20
        let train = Batches(stream: Array(corpus.train.prefix(trainTokens)), batchSize: batchSize, seqLen: seqLen)
        let valid = Batches(stream: corpus.valid, batchSize: batchSize, seqLen: seqLen)

        var config = LanguageModelConfig()
        config.vocabSize = corpus.vocabulary.count
        config.embedSize = hidden
        config.hiddenSize = hidden
        config.numLayers = layers
        config.initScale = 0.1
        config.seed = 1234
        let model = try LanguageModel(config)
        XCTAssertEqual(model.config, config)
        try model.setLearningRate(10)
        try model.setClipNorm(0.25)
        for site in [DropoutSite.input, .between, .output] {
            try model.setDropout(.structured, p: 0.4, at: site)
        }

        let t0 = Date()
        let initial = exp(try validationLoss(model, valid))
        var skipped = 0.0, steps = 0
        for epoch in 1...epochs {
            try model.resetState()
            for (x, y) in train {
                let s = try model.step(inputs: x, targets: y, batchSize: batchSize, seqLen: seqLen)
                XCTAssertTrue(s.loss.isFinite)
                skipped += s.skippedMACsFraction
                steps += 1
            }
            print("epoch \(epoch): \(steps) steps, \(Date().timeIntervalSince(t0)) s")
        }
        let last = exp(try validationLoss(model, valid))
        print("valid perplexity \(initial) -> \(last), vocab \(config.vocabSize), \(Date().timeIntervalSince(t0)) s")
        XCTAssertLessThan(last, 0.6 * initial, "valid perplexity \(initial) -> \(last)")
        XCTAssertGreaterThan(skipped / Double(steps), 0, "structured dropout skipped no work")
    }
}
