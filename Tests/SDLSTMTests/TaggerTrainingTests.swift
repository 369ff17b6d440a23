import Foundation
import SDLSTM
import XCTest

/// Trains a small tagger through the wrapper (and so through the C ABI) on a synthetic entity task
/// and scores held-out sentences with the library's conlleval span F1.
///
/// The task: lowercase filler words, and after a trigger word ("mr" → PER, "in" → LOC, "at" → ORG)
/// one or two capitalised names forming one entity of the trigger's type (B-, then I-). A
/// capitalised sentence opener ("The") is not an entity. Held-out sentences use names never seen
/// in training, so their words are <unk>: the tagger has to read the capital letter from the
/// characters and the type from the context.
final class TaggerTrainingTests: XCTestCase {
    let tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    let fillers = ["the", "a", "said", "was", "to", "of", "and", "on", "for", "with", "met", "today", "went", "from"]
    let triggers = [("mr", 1), ("in", 3), ("at", 5)]

    struct Generator {
        var state: UInt64
        mutating func next(_ n: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(n))
        }
    }

    func name(_ g: inout Generator) -> String {
        let letters = Array("abcdefghijklmnopqrstuvwxyz")
        let tail = String((0..<(2 + g.next(5))).map { _ in letters[g.next(26)] })
        return String(letters[g.next(26)]).uppercased() + tail
    }

    /// Sentences as (word, tag id) pairs.
    func sentences(_ count: Int, names: [String], _ g: inout Generator) -> [[(String, Int32)]] {
        (0..<count).map { _ in
            var s: [(String, Int32)] = g.next(3) == 0 ? [("The", 0)] : []
            for _ in 0..<(1 + g.next(3)) {
                for _ in 0..<g.next(3) { s.append((fillers[g.next(fillers.count)], 0)) }
                let (trigger, begin) = triggers[g.next(triggers.count)]
                s.append((trigger, 0))
                for i in 0..<(1 + g.next(2)) { s.append((names[g.next(names.count)], Int32(i == 0 ? begin : begin + 1))) }
            }
            for _ in 0..<g.next(3) { s.append((fillers[g.next(fillers.count)], 0)) }
            return s
        }
    }

    func testTaggerLearnsSyntheticEntitiesAndGeneralisesToUnseenNames() throws {
        var g = Generator(state: 2024)
        let trainNames = (0..<30).map { _ in name(&g) }, testNames = (0..<30).map { _ in name(&g) }
        let train = sentences(400, names: trainNames, &g), test = sentences(100, names: testNames, &g)

        // Word ids: 0 is <unk>; characters: 0 is <unk>, then a-z and A-Z.
        let vocabulary = ["<unk>", "The"] + fillers + triggers.map(\.0) + trainNames
        let wordID = Dictionary(uniqueKeysWithValues: vocabulary.enumerated().map { ($1, Int32($0)) })
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
        let charID = Dictionary(uniqueKeysWithValues: alphabet.enumerated().map { ($1, Int32($0 + 1)) })
        func encode(_ s: [(String, Int32)], unk: Double = 0) -> TaggedSentence {
            TaggedSentence(words: s.map { w in
                               // Some training names read as <unk>, so that <unk> learns to be a name.
                               trainNames.contains(w.0) && g.next(1000) < Int(unk * 1000) ? 0 : wordID[w.0] ?? 0
                           },
                           characters: s.map { w in w.0.map { charID[$0] ?? 0 } },
                           tags: s.map(\.1))
        }

        var config = TaggerConfig()
        config.vocabSize = vocabulary.count
        config.embedSize = 16
        config.hiddenSize = 32
        config.numTags = tags.count
        config.charVocabSize = alphabet.count + 1
        config.charEmbedSize = 8
        config.charHiddenSize = 16
        config.seed = 7
        let tagger = try Tagger(config)
        XCTAssertEqual(tagger.config, config)
        XCTAssertGreaterThan(tagger.parameterCount, 0)
        try tagger.setTagNames(tags, scheme: .iob2)
        try tagger.setDropout(.structured, p: 0.2, at: .input)
        try tagger.setDropout(.structured, p: 0.2, at: .output)
        try tagger.setLearningRate(1)
        try tagger.setClipNorm(5)

        let t0 = Date()
        let heldOut = test.map { encode($0) }
        let before = try tagger.evaluate(heldOut)
        for epoch in 1...25 {
            for start in stride(from: 0, to: train.count, by: 10) {
                let s = try tagger.step(train[start..<min(start + 10, train.count)].map { encode($0, unk: 0.3) })
                XCTAssertTrue(s.loss.isFinite)
            }
            print("epoch \(epoch): held-out loss \(try tagger.evaluate(heldOut).loss), \(Date().timeIntervalSince(t0)) s")
        }
        let after = try tagger.evaluate(heldOut)
        XCTAssertLessThan(after.loss, 0.2 * before.loss)

        let predicted = try tagger.tag(heldOut)
        XCTAssertEqual(predicted.map(\.count), heldOut.map(\.words.count))
        let f1 = try SpanF1(tagNames: tags)
        XCTAssertEqual(f1.types, ["LOC", "ORG", "PER"])
        try f1.add(gold: heldOut.map(\.tags), predicted: predicted)
        let overall = f1.overall
        print("held-out span F1 \(overall.f1) (P \(overall.precision), R \(overall.recall), \(overall.goldSpans) spans), \(Date().timeIntervalSince(t0)) s")
        XCTAssertGreaterThanOrEqual(overall.f1, 0.95)
        for type in f1.types { XCTAssertGreaterThan(f1.scores(type: type)!.goldSpans, 0, type) }
    }

    func testWrapperRejectsMismatchedSentences() throws {
        var config = TaggerConfig()
        (config.vocabSize, config.embedSize, config.hiddenSize, config.numTags, config.charVocabSize) = (10, 4, 4, 3, 5)
        let tagger = try Tagger(config)
        let good = TaggedSentence(words: [1, 2], characters: [[1], [2, 3]], tags: [0, 1])
        XCTAssertNoThrow(try tagger.evaluate([good]))
        XCTAssertThrowsError(try tagger.step([TaggedSentence(words: [1, 2], characters: [[1], [2]], tags: [0])]))
        XCTAssertThrowsError(try tagger.step([TaggedSentence(words: [1, 2], characters: [[1]], tags: [0, 1])]))
        XCTAssertThrowsError(try tagger.step([]))
        XCTAssertThrowsError(try tagger.tag([TaggedSentence(words: [1, 2])])) { error in
            XCTAssertEqual((error as? SDLSTMError)?.status, .invalid)  // characters missing
        }
        XCTAssertThrowsError(try tagger.setTagNames(["O", "B-X"], scheme: .iob2))
        XCTAssertNoThrow(try tagger.setTagNames(["O", "B-X", "I-X"], scheme: .iob2))
        XCTAssertThrowsError(try SpanF1(tagNames: []))
        let f1 = try SpanF1(tagNames: ["O", "B-X", "I-X"])
        XCTAssertThrowsError(try f1.add(gold: [[0, 1]], predicted: [[0]]))
        XCTAssertThrowsError(try f1.add(gold: [[0, 3]], predicted: [[0, 1]]))
        try f1.add(gold: [[0, 1, 2], []], predicted: [[0, 1, 2], []])
        XCTAssertEqual(f1.overall.f1, 1)
        XCTAssertEqual(f1.scores(type: "X")?.correctSpans, 1)
        XCTAssertNil(f1.scores(type: "Y"))
    }

    /// The wrapper's save and load keep the tag names and scheme; a language model is not a tagger.
    func testSaveAndLoadKeepTagNames() throws {
        var config = TaggerConfig()
        (config.vocabSize, config.embedSize, config.hiddenSize, config.numTags, config.charVocabSize) = (10, 4, 4, 3, 5)
        let tagger = try Tagger(config)
        XCTAssertNil(tagger.tagNames)
        try tagger.setTagNames(["O", "B-X", "I-X"], scheme: .iob1)
        let path = NSTemporaryDirectory() + "sdlstm-wrapper-tagger-\(getpid()).h5"
        defer { unlink(path) }
        try tagger.save(to: path)
        let loaded = try Tagger.load(from: path)
        XCTAssertEqual(loaded.tagNames?.names, ["O", "B-X", "I-X"])
        XCTAssertEqual(loaded.tagNames?.scheme, .iob1)
        XCTAssertEqual(loaded.config, tagger.config)
        XCTAssertThrowsError(try LanguageModel.load(from: path))
    }
}
