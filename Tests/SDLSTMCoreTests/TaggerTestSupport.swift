import SDLSTMCore
import XCTest

/// Five tags of two entity types, IOB2.
let taggerTestTags = ["O", "B-A", "I-A", "B-B", "I-B"]

/// A small random tagging problem: a tagger and a padded batch of sentences of different lengths,
/// whose padded positions hold garbage (ids out of range included) that the tagger must ignore.
final class TaggerProblem {
    let model: Tagger
    var sentences: [[Int32]] = [], tags: [[Int32]] = [], words: [[[Int32]]] = []
    let seqLen: Int, maxWordLen: Int
    var garbage: Int32 = 9_999
    let vocab: Int, charVocab: Int

    init(lengths: [Int] = [5, 2, 3], seqLen: Int? = nil, layers: Int = 2, chars: Bool = true, crf: Bool = true,
         embed: Int = 3, hidden: Int = 4, charEmbed: Int = 3, charHidden: Int = 4, maxWordLen: Int = 4,
         vocab: Int = 7, charVocab: Int = 6, initScale: Float = 0.5, seed: UInt64 = 11) throws {
        var cfg = ModelConfig(task: .tagger)
        (cfg.vocabSize, cfg.embedSize, cfg.hiddenSize, cfg.numLayers, cfg.initScale, cfg.seed) =
            (vocab, embed, hidden, layers, initScale, seed)
        (cfg.numTags, cfg.charVocabSize, cfg.charEmbedSize, cfg.charHiddenSize, cfg.useCRF) =
            (taggerTestTags.count, chars ? charVocab : 0, charEmbed, charHidden, crf)
        model = try Tagger(cfg)
        try model.setTagNames(taggerTestTags, scheme: .iob2)
        self.seqLen = seqLen ?? lengths.max()!
        self.maxWordLen = maxWordLen
        self.vocab = vocab
        self.charVocab = charVocab
        var rng = Random(seed: seed &+ 100)
        func draw(_ n: Int) -> Int32 { Int32(rng.next() % UInt64(n)) }
        for n in lengths {
            sentences.append((0..<n).map { _ in draw(vocab) })
            words.append((0..<n).map { _ in (0..<(1 + Int(draw(maxWordLen)))).map { _ in draw(charVocab) } })
            // Random tags made valid IOB2: an I- that may not follow becomes its B-.
            var y: [Int32] = []
            for t in 0..<n {
                var tag = draw(taggerTestTags.count)
                let previous = t == 0 ? Int32(0) : y[t - 1]
                if tag == 2 && previous != 1 && previous != 2 { tag = 1 }
                if tag == 4 && previous != 3 && previous != 4 { tag = 3 }
                y.append(tag)
            }
            tags.append(y)
        }
    }

    var batchSize: Int { sentences.count }
    var lengths: [Int32] { sentences.map { Int32($0.count) } }

    /// The padded batch-major arrays; padded cells hold `garbage`.
    func arrays() -> (inputs: [Int32], targets: [Int32], lengths: [Int32], chars: [Int32], wordLengths: [Int32]) {
        let (b, t, w) = (batchSize, seqLen, maxWordLen)
        var inputs = [Int32](repeating: garbage, count: b * t), targets = inputs, wordLengths = inputs
        var chars = [Int32](repeating: garbage, count: b * t * w)
        for i in 0..<b {
            for j in 0..<sentences[i].count {
                inputs[i * t + j] = sentences[i][j]
                targets[i * t + j] = tags[i][j]
                wordLengths[i * t + j] = Int32(words[i][j].count)
                for (c, id) in words[i][j].enumerated() { chars[(i * t + j) * w + c] = id }
            }
        }
        return (inputs, targets, lengths, chars, wordLengths)
    }

    func withBatch<R>(_ body: (Batch) throws -> R) rethrows -> R {
        let a = arrays()
        return try a.inputs.withUnsafeBufferPointer { i in
            try a.targets.withUnsafeBufferPointer { y in
                try a.lengths.withUnsafeBufferPointer { l in
                    try a.chars.withUnsafeBufferPointer { c in
                        try a.wordLengths.withUnsafeBufferPointer { wl in
                            var batch = Batch(batchSize: batchSize, seqLen: seqLen, inputs: i.baseAddress!, targets: y.baseAddress!)
                            batch.lengths = l.baseAddress
                            batch.maxWordLen = maxWordLen
                            batch.chars = c.baseAddress
                            batch.wordLengths = wl.baseAddress
                            return try body(batch)
                        }
                    }
                }
            }
        }
    }

    func trainingLoss() throws -> Double { try withBatch { try model.trainingLoss($0).loss } }
    func lossAndGradients() throws -> StepStats { try withBatch { try model.lossAndGradients($0) } }
    func evaluate() throws -> StepStats { try withBatch { try model.evaluate($0) } }
    func step() throws -> StepStats { try withBatch { try model.step($0) } }

    /// The decoded tags of each sentence (its real positions) and whether padding came back as −1.
    func tag() throws -> [[Int32]] {
        var out = [Int32](repeating: 7, count: batchSize * seqLen)
        try withBatch { b in try out.withUnsafeMutableBufferPointer { try model.tag(b, into: $0.baseAddress!) } }
        for i in 0..<batchSize {
            for j in sentences[i].count..<seqLen { XCTAssertEqual(out[i * seqLen + j], -1, "padded tag") }
        }
        return (0..<batchSize).map { i in Array(out[(i * seqLen)..<(i * seqLen + sentences[i].count)]) }
    }

    /// Every parameter's gradient, by name.
    func gradients() -> [String: [Float]] {
        Dictionary(uniqueKeysWithValues: model.parameters.map { ($0.pytorchName, $0.grad.array) })
    }

    /// Rows of the two embedding tables that a batch uses (others have unspecified sparse gradients).
    func usedRows() -> (words: Set<Int>, chars: Set<Int>) {
        (Set(sentences.joined().map(Int.init)), Set(words.joined().joined().map(Int.init)))
    }
}

/// Copies the parameter values of `from` into `to` (same architecture).
func copyParameters(from: Tagger, to: Tagger) {
    for (a, b) in zip(from.parameters, to.parameters) { b.value.copy(from: a.value) }
}
