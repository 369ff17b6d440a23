import SDLSTMCore
import XCTest

/// A small random translation problem: a model and a batch of sentence pairs of different lengths,
/// both sides right-padded with garbage (ids out of range included) that the model must ignore.
/// Target rows are <bos> y … <eos> with <bos> = 0 and <eos> = 1.
final class TranslatorProblem {
    let model: Translator
    var sources: [[Int32]] = [], targets: [[Int32]] = []
    var sourceLen: Int, targetLen: Int
    var garbage: Int32 = 9_999
    static let (bos, eos): (Int32, Int32) = (0, 1)

    init(sourceLengths: [Int] = [4, 2, 3], targetLengths: [Int] = [3, 4, 2], sourceLen: Int? = nil, targetLen: Int? = nil,
         layers: Int = 2, bidirectional: Bool = true, inputFeeding: Bool = true, embed: Int = 3, hidden: Int = 4,
         vocab: Int = 7, targetVocab: Int = 8, initScale: Float = 0.5, seed: UInt64 = 5) throws {
        var cfg = ModelConfig(task: .seq2seq)
        (cfg.vocabSize, cfg.targetVocabSize, cfg.embedSize, cfg.hiddenSize, cfg.numLayers, cfg.initScale, cfg.seed) =
            (vocab, targetVocab, embed, hidden, layers, initScale, seed)
        (cfg.bidirectional, cfg.inputFeeding) = (bidirectional, inputFeeding)
        model = try Translator(cfg)
        var rng = Random(seed: seed &+ 100)
        func draw(_ lo: Int, _ hi: Int) -> Int32 { Int32(lo + Int(rng.next() % UInt64(hi - lo))) }
        for (n, m) in zip(sourceLengths, targetLengths) {
            sources.append((0..<n).map { _ in draw(0, vocab) })
            targets.append([Self.bos] + (0..<m).map { _ in draw(2, targetVocab) } + [Self.eos])
        }
        self.sourceLen = sourceLen ?? sourceLengths.max()!
        self.targetLen = targetLen ?? (targetLengths.max()! + 2)
    }

    var batchSize: Int { sources.count }

    func withBatch<R>(_ body: (Batch) throws -> R) rethrows -> R {
        let (b, s, t) = (batchSize, sourceLen, targetLen)
        var inputs = [Int32](repeating: garbage, count: b * s), outputs = [Int32](repeating: garbage, count: b * t)
        for i in 0..<b {
            for (j, id) in sources[i].enumerated() { inputs[i * s + j] = id }
            for (j, id) in targets[i].enumerated() { outputs[i * t + j] = id }
        }
        let lengths = sources.map { Int32($0.count) }, targetLengths = targets.map { Int32($0.count) }
        return try inputs.withUnsafeBufferPointer { i in
            try outputs.withUnsafeBufferPointer { o in
                try lengths.withUnsafeBufferPointer { l in
                    try targetLengths.withUnsafeBufferPointer { tl in
                        var batch = Batch(batchSize: b, seqLen: s, inputs: i.baseAddress!, targets: o.baseAddress!)
                        batch.lengths = l.baseAddress!
                        batch.targetLen = t
                        batch.targetLengths = tl.baseAddress!
                        return try body(batch)
                    }
                }
            }
        }
    }

    func lossAndGradients() throws -> StepStats { try withBatch { try model.lossAndGradients($0) } }
    func trainingLoss() throws -> Double { try withBatch { try model.trainingLoss($0).loss } }
    func evaluate() throws -> StepStats { try withBatch { try model.evaluate($0) } }
    func translate(beam: Int, maxLength: Int = 12, lengthPenalty: Float = 0) throws -> [Translation] {
        try withBatch {
            try model.translate($0, options: DecodeOptions(bos: Self.bos, eos: Self.eos, beamSize: beam, maxLength: maxLength,
                                                            lengthPenalty: lengthPenalty))
        }
    }

    /// Gradients by parameter name; embedding rows the batch does not read are zeroed (their sparse
    /// gradient is unspecified).
    func gradients() -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        let usedSource = Set(sources.joined().map(Int.init))
        let usedTarget = Set(targets.flatMap { $0.dropLast() }.map(Int.init))
        for p in model.parameters {
            var g = p.grad.array
            if let used = p.pytorchName == "encoder.embedding.weight" ? usedSource
                : p.pytorchName == "decoder.embedding.weight" ? usedTarget : nil {
                for r in 0..<p.rows where !used.contains(r) { for c in 0..<p.cols { g[r * p.cols + c] = 0 } }
            }
            out[p.pytorchName] = g
        }
        return out
    }
}

/// Central finite differences of the training loss against the backward pass for every entry of
/// every parameter, masks frozen, over a batch with padding on both sides.
final class TranslatorGradientCheckTests: XCTestCase {
    func check(_ policy: DropoutPolicy, p: Float = 0.3, layers: Int = 2, bidirectional: Bool = true,
               inputFeeding: Bool = true) throws {
        let problem = try TranslatorProblem(layers: layers, bidirectional: bidirectional, inputFeeding: inputFeeding,
                                            initScale: 1)
        let model = problem.model
        // ∂W_in is a product of small factors (short memories, near-uniform attention); a steeper
        // W_out scales the context's gradient, and with it ∂W_in, into the range the check resolves.
        for i in 0..<model.parameters.count where model.parameters[i].pytorchName.hasSuffix("linear_out.weight") {
            let w = model.parameters[i]
            for j in 0..<w.count { w.value[j] *= 2.5 }
        }
        if policy != .none {
            for site in DropoutSite.allCases where site != .between || layers > 1 {
                try model.setDropout(DropoutSetting(policy: policy, p: p), at: site)
                for m in model.masks(at: site) { m.frozen = true }
            }
        }
        _ = try problem.lossAndGradients()
        let analytic = problem.gradients()
        let atol = 5e-5
        for param in model.parameters {
            let numeric = try numericGradient(param) { try problem.trainingLoss() }
            let a = analytic[param.pytorchName]!
            // Unread embedding rows: the analytic side was zeroed, and their numeric gradient is 0.
            XCTAssertGreaterThan(numeric.map(abs).max()!, 2 * atol, "\(policy) \(param.pytorchName): gradient too small to check")
            assertClose(a, numeric, atol: atol, rtol: 2e-2, "\(policy) \(param.pytorchName)")
        }
    }

    func testNoDropout() throws { try check(.none) }
    func testStandard() throws { try check(.standard) }
    /// p = 0.5 takes the kept-share kernels on the SIMD kernel sets, p = 0.1 the dense path with the mask applied.
    func testStructured() throws { try check(.structured, p: 0.5) }
    func testStructuredBelowKernelLimit() throws { try check(.structured, p: 0.1) }
    func testVariational() throws { try check(.variational) }
    func testStructuredFixed() throws { try check(.structuredFixed, p: 0.4) }
    func testUnidirectionalWithoutInputFeeding() throws {
        try check(.structured, p: 0.5, layers: 1, bidirectional: false, inputFeeding: false)
    }
    func testUnidirectionalWithInputFeeding() throws { try check(.standard, bidirectional: false) }

    func testParameterNames() throws {
        let names = try TranslatorProblem(layers: 1).model.parameters.map(\.pytorchName)
        let lstm = { (name: String, suffixes: [String]) in
            suffixes.flatMap { s in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"].map { "\(name).\($0)_l0\(s)" } }
        }
        XCTAssertEqual(names, ["encoder.embedding.weight"] + lstm("encoder.rnn", ["", "_reverse"])
                       + ["decoder.embedding.weight"] + lstm("decoder.rnn", [""])
                       + ["decoder.attn.linear_in.weight", "decoder.attn.linear_out.weight", "generator.weight", "generator.bias"])
    }
}

/// Padding must not influence anything real: not the loss, not a gradient, not a translation.
/// No dropout: masks depend on the batch's shape.
final class TranslatorPaddingTests: XCTestCase {
    func assertSame(_ a: [String: [Float]], _ b: [String: [Float]], rtol: Float = 1e-4, _ what: String) {
        XCTAssertEqual(Set(a.keys), Set(b.keys))
        for (name, x) in a {
            let worst = zip(x, b[name]!).map { abs($0 - $1) - rtol * max(abs($0), 1e-3) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, 1e-7, "\(what): \(name)")
        }
    }

    func testGarbageInPaddingChangesNothing() throws {
        let a = try TranslatorProblem(), b = try TranslatorProblem()
        b.garbage = -7
        let (sa, sb) = (try a.lossAndGradients(), try b.lossAndGradients())
        XCTAssertEqual(sa.loss, sb.loss)
        XCTAssertEqual(sa.tokens, 3 + 4 + 2 + 3)
        XCTAssertEqual(a.gradients(), b.gradients(), "gradients must be bit-identical")
        XCTAssertEqual(try a.translate(beam: 3), try b.translate(beam: 3))
    }

    func testMorePaddingChangesNothing() throws {
        for (bi, feed) in [(true, true), (false, false)] {
            let a = try TranslatorProblem(bidirectional: bi, inputFeeding: feed)
            let b = try TranslatorProblem(sourceLen: 9, targetLen: 11, bidirectional: bi, inputFeeding: feed)
            let (sa, sb) = (try a.lossAndGradients(), try b.lossAndGradients())
            XCTAssertEqual(sa.loss, sb.loss, accuracy: 1e-6 * abs(sa.loss))
            assertSame(a.gradients(), b.gradients(), "bidirectional \(bi), input feeding \(feed)")
            let (ta, tb) = (try a.translate(beam: 2), try b.translate(beam: 2))
            XCTAssertEqual(ta.map(\.tokens), tb.map(\.tokens))
        }
    }

    /// Each pair alone gives the same summed loss, gradients and translation as in the batch.
    func testAloneEqualsInBatch() throws {
        let batch = try TranslatorProblem()
        let stats = try batch.lossAndGradients()
        let together = batch.gradients(), translations = try batch.translate(beam: 3)
        var summed: [String: [Float]] = [:]
        var loss = 0.0
        for i in 0..<batch.batchSize {
            let alone = try TranslatorProblem()
            (alone.sources, alone.targets) = ([batch.sources[i]], [batch.targets[i]])
            let s = try alone.lossAndGradients()
            loss += s.loss * Double(s.tokens)
            for (name, g) in alone.gradients() {
                // Each alone-gradient is of its own mean: weigh it back to the batch's mean.
                let w = Float(s.tokens) / Float(stats.tokens)
                summed[name] = zip(summed[name] ?? [Float](repeating: 0, count: g.count), g).map { $0 + w * $1 }
            }
            XCTAssertEqual(try alone.translate(beam: 3), [translations[i]], "sentence \(i)")
        }
        XCTAssertEqual(loss / Double(stats.tokens), stats.loss, accuracy: 1e-6 * stats.loss)
        assertSame(together, summed, rtol: 1e-3, "alone vs batch")
    }
}

/// Decoding agrees with the training forward pass and with its own definition.
final class TranslatorDecodingTests: XCTestCase {
    /// A model trained a little on a copy task, so that its distributions are far from uniform.
    func trainedProblem() throws -> TranslatorProblem {
        let problem = try TranslatorProblem(sourceLengths: [5, 3, 6, 4], targetLengths: [5, 3, 6, 4], hidden: 8,
                                            vocab: 10, targetVocab: 10, initScale: 0.3)
        for i in 0..<problem.batchSize {
            problem.targets[i] = [TranslatorProblem.bos] + problem.sources[i].map { 2 + $0 % 8 } + [TranslatorProblem.eos]
        }
        try problem.model.setNumThreads(1)
        for _ in 0..<40 { _ = try problem.withBatch { try problem.model.step($0) } }
        return problem
    }

    /// A translation's score is the log-probability that teacher forcing gives the same tokens.
    func testScoreIsTheTeacherForcedLogProbability() throws {
        let problem = try trainedProblem()
        for beam in [1, 4] {
            let out = try problem.translate(beam: beam)
            for (i, t) in out.enumerated() {
                let check = try TranslatorProblem(sourceLengths: [problem.sources[i].count], targetLengths: [t.tokens.count],
                                                  hidden: 8, vocab: 10, targetVocab: 10, initScale: 0.3)
                for (p, q) in zip(check.model.parameters, problem.model.parameters) { p.value.copy(from: q.value) }
                check.sources = [problem.sources[i]]
                check.targets = [[TranslatorProblem.bos] + t.tokens + [TranslatorProblem.eos]]
                let stats = try check.evaluate()
                XCTAssertEqual(-stats.loss * Double(stats.tokens), t.score, accuracy: 1e-4 * abs(t.score) + 1e-5,
                               "beam \(beam), sentence \(i)")
            }
        }
    }

    func testBeamScoresAtLeastGreedy() throws {
        let problem = try trainedProblem()
        let greedy = try problem.translate(beam: 1)
        for beam in [2, 3, 5] {
            for (g, b) in zip(greedy, try problem.translate(beam: beam)) {
                XCTAssertGreaterThanOrEqual(b.score, g.score - 1e-6, "beam \(beam)")
            }
        }
    }

    /// max_len bounds the tokens, and greedy's first choice does not depend on it: with max_len 1
    /// the single token is the one the unbounded greedy run starts with.
    func testMaxLength() throws {
        let problem = try trainedProblem()
        let greedy = try problem.translate(beam: 1)
        XCTAssertFalse(greedy.allSatisfy { $0.tokens.isEmpty }, "the trained model should emit tokens")
        let short = try problem.translate(beam: 1, maxLength: 1)
        for (g, s) in zip(greedy, short) { XCTAssertEqual(s.tokens, Array(g.tokens.prefix(1))) }
        XCTAssertTrue(try problem.translate(beam: 3, maxLength: 2).allSatisfy { $0.tokens.count <= 2 })
    }

    func testCopyTaskIsLearnt() throws {
        let problem = try trainedProblem()
        try problem.model.optimizer.setLearningRate(3)
        for _ in 0..<500 { _ = try problem.withBatch { try problem.model.step($0) } }
        let out = try problem.translate(beam: 3, lengthPenalty: 1)
        XCTAssertEqual(out.map(\.tokens), problem.targets.map { Array($0.dropFirst().dropLast()) })
    }
}
