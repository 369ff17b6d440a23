import SDLSTMCore
import XCTest

/// The numerics of LM inference: score against evaluation under every kernel set, the sampler's
/// distribution, top-k selection, and the refusal of a diverged model.
final class LanguageModelInferenceTests: XCTestCase {
    func model(vocab: Int = 7, layers: Int = 2, initScale: Float = 1) throws -> LanguageModel {
        var cfg = ModelConfig()
        (cfg.vocabSize, cfg.embedSize, cfg.hiddenSize, cfg.numLayers, cfg.initScale, cfg.seed) =
            (vocab, 5, 6, layers, initScale, 3)
        return try LanguageModel(cfg)
    }

    func ids(_ n: Int, vocab: Int, seed: UInt64) -> [Int32] {
        var rng = Random(seed: seed)
        return (0..<n).map { _ in Int32(rng.next() % UInt64(vocab)) }
    }

    func score(_ m: LanguageModel, _ tokens: [Int32]) throws -> (Double, [Float]) {
        var terms = [Float](repeating: .nan, count: tokens.count - 1)
        let total = try tokens.withUnsafeBufferPointer { t in
            try terms.withUnsafeMutableBufferPointer { try m.score(t.baseAddress!, count: tokens.count, tokenLogProbs: $0.baseAddress) }
        }
        return (total, terms)
    }

    func next(_ m: LanguageModel, _ state: LanguageModelState, _ tokens: [Int32]) throws -> [Float] {
        var out = [Float](repeating: .nan, count: tokens.count * m.config.vocabSize)
        try tokens.withUnsafeBufferPointer { t in
            try out.withUnsafeMutableBufferPointer { try m.nextLogProbabilities(t.baseAddress!, state: state, into: $0.baseAddress!) }
        }
        return out
    }

    func generate(_ m: LanguageModel, _ prompt: [Int32], _ o: GenerateOptions, max: Int) throws -> [Int32] {
        var out = [Int32](repeating: -1, count: max)
        let n = try prompt.withUnsafeBufferPointer { p in
            try out.withUnsafeMutableBufferPointer {
                try m.generate(prompt: p.baseAddress!, count: prompt.count, options: o, into: $0.baseAddress!, maxTokens: max)
            }
        }
        return Array(out.prefix(n))
    }

    /// Windows of 64 carrying their state (score), one window of 200 (evaluate) and one token at a
    /// time (next) agree, with every kernel set's GEMMs.
    func testScoreEvaluateAndNextAgreeUnderEveryKernelSet() throws {
        let tokens = ids(201, vocab: 7, seed: 5)
        try forEachKernelSet { isa in
            let m = try model()
            let (total, terms) = try score(m, tokens)
            let stats = try Array(tokens.dropLast()).withUnsafeBufferPointer { i in
                try Array(tokens.dropFirst()).withUnsafeBufferPointer { t in
                    try m.evaluate(Batch(batchSize: 1, seqLen: 200, inputs: i.baseAddress!, targets: t.baseAddress!))
                }
            }
            XCTAssertEqual(-total, stats.loss * 200, accuracy: 1e-5 * abs(total), isa)
            let state = try m.makeState(streams: 1)
            var worst: Float = 0
            for i in 0..<200 { worst = max(worst, abs(try next(m, state, [tokens[i]])[Int(tokens[i + 1])] - terms[i])) }
            XCTAssertLessThan(worst, 1e-5, isa)
        }
    }

    /// The first sampled token over many seeds follows softmax(logp / T) restricted to the top k:
    /// every frequency within 0.015 of its probability (4.5 standard deviations at 10000 draws).
    func testSampledFrequenciesFollowTheDistribution() throws {
        let m = try model()
        let prompt: [Int32] = [2, 5, 1]
        let state = try m.makeState(streams: 1)
        var logp: [Float] = []
        for t in prompt { logp = try next(m, state, [t]) }
        let order = logp.indices.sorted { logp[$0] > logp[$1] }
        XCTAssertGreaterThan(exp(logp[order[0]]) - exp(logp[order[6]]), 0.1, "a distribution far from uniform")
        for (temperature, k) in [(Float(1), 0), (0.5, 0), (2, 3), (1, 6)] {
            var expected = [Double](repeating: 0, count: 7)
            for (rank, j) in order.enumerated() where k == 0 || rank < k { expected[j] = exp(Double(logp[j]) / Double(temperature)) }
            let z = expected.reduce(0, +)
            expected = expected.map { $0 / z }
            var counts = [Int](repeating: 0, count: 7)
            let draws = 10_000
            for seed in 0..<draws {
                let o = GenerateOptions(temperature: temperature, topK: k, seed: UInt64(seed))
                counts[Int(try generate(m, prompt, o, max: 1)[0])] += 1
            }
            for j in 0..<7 {
                let f = Double(counts[j]) / Double(draws)
                XCTAssertEqual(f, expected[j], accuracy: 0.015, "T \(temperature) k \(k) token \(j)")
                if expected[j] == 0 { XCTAssertEqual(counts[j], 0, "T \(temperature) k \(k): token \(j) is outside the top k") }
            }
        }
    }

    func testKthLargestMatchesSorting() {
        var rng = Random(seed: 8)
        for n in [1, 2, 7, 50, 333] {
            // Few distinct values: many ties, the case a two-way quickselect degrades on.
            let values = (0..<n).map { _ in Float(rng.next() % 5) - 2 }
            let sorted = values.sorted(by: >)
            for k in 1...n {
                var copy = values
                XCTAssertEqual(kthLargest(&copy, count: n, k: k), sorted[k - 1], "n \(n) k \(k)")
            }
        }
    }

    /// A NaN parameter makes every call E_NUMERIC; the state a failed next call had is kept.
    func testDivergedModelIsNumericAndKeepsTheState() throws {
        let m = try model()
        let state = try m.makeState(streams: 2), twin = try m.makeState(streams: 2)
        _ = try next(m, state, [1, 2])
        _ = try next(m, twin, [1, 2])
        let saved = m.output.bias.value[3]
        m.output.bias.value[3] = .nan
        func isNumeric(_ e: Error) { guard case .numeric? = e as? SDLSTMError else { return XCTFail("\(e)") } }
        XCTAssertThrowsError(try next(m, state, [3, 4]), "next", isNumeric)
        XCTAssertThrowsError(try score(m, [1, 2, 3]), "score", isNumeric)
        XCTAssertThrowsError(try generate(m, [1], GenerateOptions(), max: 3), "generate", isNumeric)
        m.output.bias.value[3] = saved
        XCTAssertEqual(try next(m, state, [3, 4]), try next(m, twin, [3, 4]))
    }
}
