import Foundation
import SDLSTM
import XCTest

/// Trains a small translator through the wrapper (and so through the C ABI) on a synthetic task and
/// scores held-out sentences with the library's BLEU.
///
/// The task: a source sentence of 3 to 8 lowercase letters "translates" into the same letters
/// reversed and uppercased. Nearly every held-out sentence is new (12^3 … 12^8 possibilities), so
/// the model must learn the alignment, which only attention over the whole source gives it.
final class TranslatorTrainingTests: XCTestCase {
    struct Generator {
        var state: UInt64
        mutating func next(_ n: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(n))
        }
    }

    // Source ids 0 … 11 are "a" … "l"; target ids 0 = <bos>, 1 = <eos>, 2 … 13 = "A" … "L".
    let letters = Array("abcdefghijkl")
    func pair(_ g: inout Generator) -> SentencePair {
        let source = (0..<(3 + g.next(6))).map { _ in Int32(g.next(12)) }
        return SentencePair(source: source, target: source.reversed().map { $0 + 2 })
    }
    func text(_ target: [Int32]) -> String {
        target.map { String(letters[Int($0) - 2]).uppercased() }.joined(separator: " ")
    }

    func testReversalIsLearntToBLEUAbove90() throws {
        var g = Generator(state: 99)
        var config = TranslatorConfig()
        (config.sourceVocabSize, config.targetVocabSize) = (12, 14)
        (config.embedSize, config.hiddenSize, config.numLayers, config.seed) = (24, 48, 1, 3)
        let model = try Translator(config, bos: 0, eos: 1)
        XCTAssertEqual(model.config, config)
        try model.setDropout(.structured, p: 0.1, at: .input)
        try model.setDropout(.structured, p: 0.1, at: .output)
        try model.setLearningRate(2)
        try model.setClipNorm(1)
        var first = 0.0, last = 0.0
        for step in 0..<1200 {
            let stats = try model.step((0..<32).map { _ in pair(&g) })
            if step == 0 { first = stats.loss }
            last = stats.loss
        }
        XCTAssertLessThan(last, first / 4, "training loss \(first) → \(last)")

        let heldOut = (0..<200).map { _ in pair(&g) }
        let hypotheses = try model.translate(heldOut.map(\.source), beamSize: 4, maxLength: 20)
        let score = try bleu(hypotheses: hypotheses.map { text($0.tokens.filter { $0 >= 2 }) },
                             references: heldOut.map { text($0.target) }, tokenize: .none)
        print("translator training test: held-out BLEU \(score.score), training loss \(first) → \(last)")
        XCTAssertGreaterThanOrEqual(score.score, 90, "held-out BLEU \(score.score)")
        let greedy = try model.translate(heldOut.map(\.source), beamSize: 1, maxLength: 20, lengthPenalty: 0)
        let beam = try model.translate(heldOut.map(\.source), beamSize: 4, maxLength: 20, lengthPenalty: 0)
        for (gr, be) in zip(greedy, beam) { XCTAssertGreaterThanOrEqual(be.score, gr.score - 1e-5) }

        // A checkpoint holds the translator: the loaded one translates identically.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sdlstm-translator-\(getpid()).h5").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try model.save(to: path)
        let loaded = try Translator.load(from: path, bos: 0, eos: 1)
        XCTAssertEqual(loaded.config, config)
        XCTAssertEqual(try loaded.translate(heldOut.map(\.source), beamSize: 4, maxLength: 20), hypotheses)
        XCTAssertThrowsError(try Tagger.load(from: path))
    }
}
