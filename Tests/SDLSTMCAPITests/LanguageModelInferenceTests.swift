import CSDLSTM
import Foundation
import XCTest

/// Applying a trained LM through the ABI: sdlstm_lm_next, sdlstm_lm_score, sdlstm_lm_generate.
final class LanguageModelInferenceTests: XCTestCase {
    static let vocab: Int32 = 29

    /// A 2-layer LM trained for some steps on a patterned stream, so that its distributions are
    /// neither uniform nor one-hot. Dropout is on while training; inference must not use it.
    func trainedModel(file: StaticString = #filePath, line: UInt = #line) -> OpaquePointer {
        let m = makeModel(smallConfig(vocab: Self.vocab, embed: 16, hidden: 16, layers: 2, initScale: 0.4), file: file, line: line)
        XCTAssertEqual(sdlstm_set_learning_rate(m, 5), OK)
        XCTAssertEqual(sdlstm_set_clip_norm(m, 5), OK)
        for site in [SDLSTM_SITE_INPUT, SDLSTM_SITE_BETWEEN, SDLSTM_SITE_OUTPUT] {
            XCTAssertEqual(sdlstm_set_dropout(m, site, SDLSTM_POLICY_STRUCTURED, 0.2), OK)
        }
        for step in 0..<80 {
            var b = Batch(batchSize: 4, seqLen: 8, vocab: Self.vocab)
            for r in 0..<4 {
                let row = chain(9, from: Int32(step * 4 + r) % Self.vocab)
                b.inputs.replaceSubrange((r * 8)..<(r * 8 + 8), with: row.dropLast())
                b.targets.replaceSubrange((r * 8)..<(r * 8 + 8), with: row.dropFirst())
            }
            let (s, _) = runBatch(sdlstm_step, m, b)
            XCTAssertEqual(s, OK, lastError(), file: file, line: line)
        }
        return m
    }

    /// x, 3x + 1, 3(3x + 1) + 1, … mod vocab: the pattern the model learns.
    func chain(_ n: Int, from x: Int32) -> [Int32] {
        var out = [x]
        while out.count < n { out.append((out.last! * 3 + 1) % Self.vocab) }
        return out
    }

    /// Deterministic ids in [0, vocab).
    func sequence(_ n: Int, salt: Int = 0) -> [Int32] {
        (0..<n).map { Int32(($0 * $0 + 5 * $0 + 3 * salt + 1) % Int(Self.vocab)) }
    }

    func score(_ m: OpaquePointer, _ tokens: [Int32]) -> (Double, [Float]) {
        var total = 0.0
        var terms = [Float](repeating: .nan, count: tokens.count - 1)
        let s = sdlstm_lm_score(m, tokens, Int64(tokens.count), &total, &terms)
        XCTAssertEqual(s, OK, lastError())
        return (total, terms)
    }

    func makeState(_ m: OpaquePointer, streams: Int32 = 1) -> OpaquePointer {
        var out: OpaquePointer?
        XCTAssertEqual(sdlstm_lm_state_create(m, streams, &out), OK, lastError())
        return out!
    }

    func next(_ m: OpaquePointer, _ state: OpaquePointer, _ tokens: [Int32]) -> [Float] {
        var out = [Float](repeating: .nan, count: tokens.count * Int(Self.vocab))
        XCTAssertEqual(sdlstm_lm_next(m, state, tokens, &out), OK, lastError())
        return out
    }

    func options(temperature: Float = 1, topK: Int32 = 0, seed: UInt64 = 1, stop: Int32 = -1) -> sdlstm_generate_options {
        var o = sdlstm_generate_options()
        o.struct_size = MemoryLayout<sdlstm_generate_options>.size
        XCTAssertEqual(sdlstm_generate_options_init(&o), OK)
        (o.temperature, o.top_k, o.seed, o.stop_id) = (temperature, topK, seed, stop)
        return o
    }

    func generate(_ m: OpaquePointer, _ prompt: [Int32], _ o: sdlstm_generate_options?, max: Int = 40) -> [Int32] {
        var out = [Int32](repeating: -7, count: max)
        var count: Int64 = -1
        let s: sdlstm_status
        if var o { s = sdlstm_lm_generate(m, prompt, Int64(prompt.count), &o, &out, Int64(max), &count) }
        else { s = sdlstm_lm_generate(m, prompt, Int64(prompt.count), nil, &out, Int64(max), &count) }
        XCTAssertEqual(s, OK, lastError())
        XCTAssertTrue((1...Int64(max)).contains(count), "count \(count)")
        XCTAssertTrue(out[Int(count)...].allSatisfy { $0 == -7 }, "wrote past *count")
        return Array(out.prefix(Int(count)))
    }

    func argmax(_ row: ArraySlice<Float>) -> Int32 {
        Int32(row.indices.max { row[$0] < row[$1] || (row[$0] == row[$1] && $0 > $1) }! - row.startIndex)
    }

    /// The sum of -log p over a sequence is evaluate's mean loss times its tokens: the same model,
    /// read through a 150-token window (evaluate) and through 64-token windows (score).
    func testScoreEqualsEvaluateLoss() {
        let m = trainedModel()
        defer { sdlstm_model_free(m) }
        let tokens = chain(151, from: 2)
        let (total, terms) = score(m, tokens)
        var b = Batch(batchSize: 1, seqLen: 150, vocab: Self.vocab)
        (b.inputs, b.targets) = (Array(tokens.dropLast()), Array(tokens.dropFirst()))
        XCTAssertEqual(sdlstm_reset_state(m), OK)
        let (s, stats) = runBatch(sdlstm_evaluate, m, b)
        XCTAssertEqual(s, OK, lastError())
        XCTAssertEqual(stats.tokens, 150)
        print("score: -log P = \(-total), evaluate: loss × tokens = \(stats.loss * 150)")
        XCTAssertEqual(-total, stats.loss * 150, accuracy: 1e-5 * abs(total))
        XCTAssertEqual(total, terms.reduce(0.0) { $0 + Double($1) }, accuracy: 1e-9 * abs(total))
        XCTAssertTrue(terms.allSatisfy { $0 < 0 })
        // Not a trivial model: far from uniform (log 29 = 3.37 nats a token).
        XCTAssertLessThan(-total / 150, 0.8 * log(Double(Self.vocab)))
        var again = 0.0
        XCTAssertEqual(sdlstm_lm_score(m, tokens, Int64(tokens.count), &again, nil), OK, "token_log_probs may be NULL")
        XCTAssertEqual(again.bitPattern, total.bitPattern)
    }

    /// Token by token through a state gives score's log-probs, and every row is a distribution.
    func testNextAgreesWithScoreAndRowsSumToOne() {
        let m = trainedModel()
        defer { sdlstm_model_free(m) }
        let tokens = sequence(80, salt: 2)
        let (_, terms) = score(m, tokens)
        let state = makeState(m)
        defer { sdlstm_lm_state_free(state) }
        var worst: Float = 0
        for i in 0..<(tokens.count - 1) {
            let row = next(m, state, [tokens[i]])
            XCTAssertEqual(row.reduce(0.0) { $0 + exp(Double($1)) }, 1, accuracy: 1e-5, "row \(i)")
            worst = max(worst, abs(row[Int(tokens[i + 1])] - terms[i]))
        }
        print("lm_next vs lm_score: largest difference \(worst)")
        XCTAssertLessThan(worst, 1e-5)
        // Reset: the same tokens give the same first rows again.
        let first = next(m, state, [tokens[0]])
        XCTAssertEqual(sdlstm_lm_state_reset(state), OK)
        XCTAssertNotEqual(next(m, state, [tokens[0]]), first, "before the reset the state held 80 tokens of history")
        XCTAssertEqual(sdlstm_lm_state_reset(state), OK)
        let fresh = makeState(m)
        defer { sdlstm_lm_state_free(fresh) }
        XCTAssertEqual(next(m, state, [tokens[0]]), next(m, fresh, [tokens[0]]))
    }

    /// The streams of one state are independent: each gets the log-probs of its own sequence alone.
    func testStreamsAreIndependent() {
        let m = trainedModel()
        defer { sdlstm_model_free(m) }
        let seqs = (0..<3).map { sequence(20, salt: 3 * $0 + 1) }
        let state = makeState(m, streams: 3)
        defer { sdlstm_lm_state_free(state) }
        let v = Int(Self.vocab)
        var rows: [[Float]] = []
        for t in 0..<19 { rows.append(next(m, state, seqs.map { $0[t] })) }
        for (s, seq) in seqs.enumerated() {
            let (_, terms) = score(m, seq)
            for t in 0..<19 {
                XCTAssertEqual(rows[t][s * v + Int(seq[t + 1])], terms[t], accuracy: 1e-5, "stream \(s) step \(t)")
            }
        }
    }

    /// The model's threads split inference's GEMMs too (by columns: 4H and V are at least 64 per
    /// thread here) and its softmax rows: the same log-probs to float rounding.
    func testThreadsGiveTheSameLogProbs() {
        let v: Int32 = 200
        let m = makeModel(smallConfig(vocab: v, embed: 16, hidden: 64, layers: 2, initScale: 0.3))
        defer { sdlstm_model_free(m) }
        let tokens = (0..<100).map { Int32(($0 * 37 + 11) % Int(v)) }
        func scored() -> (Double, [Float]) {
            var total = 0.0
            var terms = [Float](repeating: .nan, count: tokens.count - 1)
            XCTAssertEqual(sdlstm_lm_score(m, tokens, Int64(tokens.count), &total, &terms), OK, lastError())
            return (total, terms)
        }
        let (one, terms) = scored()
        XCTAssertEqual(sdlstm_set_num_threads(m, 3), OK)
        let (three, threeTerms) = scored()
        XCTAssertEqual(three, one, accuracy: 1e-6 * abs(one))
        for i in terms.indices { XCTAssertEqual(threeTerms[i], terms[i], accuracy: 1e-5) }
        let state = makeState(m, streams: 4)
        defer { sdlstm_lm_state_free(state) }
        var rows = [Float](repeating: 0, count: 4 * Int(v))
        for t in 0..<10 {
            XCTAssertEqual(sdlstm_lm_next(m, state, [tokens[t], 0, tokens[t], 1], &rows), OK, lastError())
            XCTAssertEqual(rows[Int(tokens[t + 1])], terms[t], accuracy: 1e-5)
            XCTAssertEqual(rows[2 * Int(v) + Int(tokens[t + 1])], terms[t], accuracy: 1e-5)
        }
    }

    func testGenerateIsReproducibleBySeed() {
        let m = trainedModel()
        defer { sdlstm_model_free(m) }
        let prompt = sequence(5)
        let a = generate(m, prompt, options(seed: 11))
        XCTAssertEqual(a.count, 40)
        XCTAssertTrue(a.allSatisfy { $0 >= 0 && $0 < Self.vocab })
        XCTAssertEqual(generate(m, prompt, options(seed: 11)), a, "the same seed gives the same tokens")
        XCTAssertNotEqual(generate(m, prompt, options(seed: 12)), a, "another seed gives other tokens")
        XCTAssertEqual(generate(m, prompt, nil), generate(m, prompt, options()), "NULL options are the init's defaults")
        // A prompt longer than one window (64 tokens) feeds as one stream.
        let long = sequence(150, salt: 1)
        XCTAssertEqual(generate(m, long, options(seed: 3)), generate(m, long, options(seed: 3)))
    }

    /// Temperature 0 and top_k 1 both follow the argmax of lm_next, whatever the seed.
    func testTemperatureZeroAndTopKOneAreGreedy() {
        let m = trainedModel()
        defer { sdlstm_model_free(m) }
        let prompt = sequence(70, salt: 4)
        let state = makeState(m)
        defer { sdlstm_lm_state_free(state) }
        var row: [Float] = []
        for t in prompt { row = next(m, state, [t]) }
        var greedy: [Int32] = []
        for _ in 0..<30 {
            greedy.append(argmax(row[...]))
            row = next(m, state, [greedy.last!])
        }
        XCTAssertEqual(generate(m, prompt, options(temperature: 0, seed: 5), max: 30), greedy)
        XCTAssertEqual(generate(m, prompt, options(temperature: 0, seed: 6), max: 30), greedy)
        XCTAssertEqual(generate(m, prompt, options(temperature: 1, topK: 1, seed: 7), max: 30), greedy)
        XCTAssertNotEqual(generate(m, prompt, options(temperature: 1, seed: 7), max: 30), greedy,
                          "sampling at temperature 1 should leave the greedy path somewhere in 30 tokens")
    }

    /// With top_k 3 every sampled token is among the 3 most likely of its step; stop_id ends the
    /// sampled stream at its first occurrence, which is written.
    func testTopKAndStopID() {
        let m = trainedModel()
        defer { sdlstm_model_free(m) }
        let prompt = sequence(3)
        let sampled = generate(m, prompt, options(temperature: 1.5, topK: 3, seed: 21))
        let state = makeState(m)
        defer { sdlstm_lm_state_free(state) }
        var row: [Float] = []
        for t in prompt { row = next(m, state, [t]) }
        var outsideTop1 = 0
        for tok in sampled {
            let rank = row.filter { $0 > row[Int(tok)] }.count
            XCTAssertLessThan(rank, 3, "token \(tok) is not among the 3 most likely")
            if rank > 0 { outsideTop1 += 1 }
            row = next(m, state, [tok])
        }
        XCTAssertGreaterThan(outsideTop1, 0, "temperature 1.5 over 3 tokens should not always pick the best")

        let free = generate(m, prompt, options(seed: 8))
        let stop = free[10]
        let first = free.firstIndex(of: stop)!
        let stopped = generate(m, prompt, options(seed: 8, stop: stop))
        XCTAssertEqual(stopped, Array(free[...first]))
    }

    func testBadArgumentsAreRefusedAndChangeNothing() {
        let m = trainedModel()
        defer { sdlstm_model_free(m) }
        let v = Self.vocab
        let state = makeState(m, streams: 2), twin = makeState(m, streams: 2)
        defer { sdlstm_lm_state_free(state); sdlstm_lm_state_free(twin) }
        _ = next(m, state, [1, 2])
        _ = next(m, twin, [1, 2])
        func expect(_ s: sdlstm_status, _ word: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertEqual(s, E_INVALID, "\(word): \(statusName(s)) \(lastError())", file: file, line: line)
            XCTAssertTrue(lastError().contains(word), "\"\(lastError())\" does not name \(word)", file: file, line: line)
        }
        var out = [Float](repeating: 0, count: 2 * Int(v))
        let before = out
        for bad in [[-1, 0], [0, v], [Int32.min, 3]] {
            expect(sdlstm_lm_next(m, state, bad, &out), "tokens[")
        }
        XCTAssertEqual(out, before, "log_probs written by a failed call")
        expect(sdlstm_lm_next(m, nil, [0, 1], &out), "state")
        expect(sdlstm_lm_next(m, state, nil, &out), "tokens")
        expect(sdlstm_lm_next(m, state, [0, 1], nil), "log_probs")
        expect(sdlstm_lm_next(nil, state, [0, 1], &out), "model")
        XCTAssertEqual(next(m, state, [3, 4]), next(m, twin, [3, 4]), "a failed lm_next changed the state")

        var total = 0.0
        expect(sdlstm_lm_score(m, [1, 2, 3, v], 4, &total, nil), "tokens[3]")
        expect(sdlstm_lm_score(m, [1], 1, &total, nil), "n must")
        expect(sdlstm_lm_score(m, [1, 2], -5, &total, nil), "n must")
        expect(sdlstm_lm_score(m, nil, 2, &total, nil), "tokens")
        expect(sdlstm_lm_score(m, [1, 2], 2, nil, nil), "log_prob")
        expect(sdlstm_lm_score(nil, [1, 2], 2, &total, nil), "model")

        var created: OpaquePointer?
        for streams: Int32 in [0, -3, Int32.max] {
            expect(sdlstm_lm_state_create(m, streams, &created), "streams")
        }
        XCTAssertNil(created)
        expect(sdlstm_lm_state_create(nil, 1, &created), "model")
        expect(sdlstm_lm_state_create(m, 1, nil), "out")
        expect(sdlstm_lm_state_reset(nil), "state")
        sdlstm_lm_state_free(nil)

        var ids = [Int32](repeating: 0, count: 4)
        var count: Int64 = -1
        func gen(_ prompt: [Int32]?, _ n: Int64, _ o: sdlstm_generate_options?, max: Int64 = 4,
                 out: Bool = true, countOut: Bool = true) -> sdlstm_status {
            ids.withUnsafeMutableBufferPointer { idsOut in
                withUnsafeMutablePointer(to: &count) { c in
                    let (o1, o2) = (out ? idsOut.baseAddress : nil, countOut ? c : nil)
                    guard var o else { return sdlstm_lm_generate(m, prompt, n, nil, o1, max, o2) }
                    return sdlstm_lm_generate(m, prompt, n, &o, o1, max, o2)
                }
            }
        }
        expect(gen([0, v], 2, nil), "prompt[1]")
        expect(gen([0], 0, nil), "prompt_len")
        expect(gen(nil, 1, nil), "prompt")
        expect(gen([0], 1, nil, max: 0), "max_tokens")
        expect(gen([0], 1, nil, out: false), "out")
        expect(gen([0], 1, nil, countOut: false), "count")
        for t: Float in [-1, .nan, .infinity] { expect(gen([0], 1, options(temperature: t)), "temperature") }
        expect(gen([0], 1, options(topK: -1)), "top_k")
        for stop in [-2, v] { expect(gen([0], 1, options(stop: stop)), "stop_id") }
        var small = options()
        small.struct_size = 8
        expect(gen([0], 1, small), "struct_size")
        XCTAssertEqual(count, -1, "*count written by a failed call")
        var none = sdlstm_generate_options()
        expect(sdlstm_generate_options_init(&none), "struct_size")
        expect(sdlstm_generate_options_init(nil), "options")
    }

    func testOtherTasksAndOtherModelsAreRefused() {
        var c = sdlstm_config()
        c.struct_size = MemoryLayout<sdlstm_config>.size
        XCTAssertEqual(sdlstm_config_init(&c, SDLSTM_TASK_TAGGER), OK)
        (c.vocab_size, c.char_vocab_size, c.embed_size, c.hidden_size) = (20, 0, 4, 6)
        let tagger = makeModel(c)
        defer { sdlstm_model_free(tagger) }
        var state: OpaquePointer?
        XCTAssertEqual(sdlstm_lm_state_create(tagger, 1, &state), E_INVALID)
        XCTAssertTrue(lastError().contains("language model"), lastError())
        XCTAssertNil(state)
        var total = 0.0
        XCTAssertEqual(sdlstm_lm_score(tagger, [1, 2], 2, &total, nil), E_INVALID)
        XCTAssertTrue(lastError().contains("language model"), lastError())
        var ids = [Int32](repeating: 0, count: 2)
        var count: Int64 = 0
        XCTAssertEqual(sdlstm_lm_generate(tagger, [1], 1, nil, &ids, 2, &count), E_INVALID)
        XCTAssertTrue(lastError().contains("language model"), lastError())

        let a = trainedModel(), b = makeModel(smallConfig(vocab: Self.vocab, embed: 10, hidden: 12, layers: 2))
        defer { sdlstm_model_free(a); sdlstm_model_free(b) }
        let s = makeState(a)
        defer { sdlstm_lm_state_free(s) }
        var out = [Float](repeating: 0, count: Int(Self.vocab))
        XCTAssertEqual(sdlstm_lm_next(b, s, [1], &out), E_INVALID)
        XCTAssertTrue(lastError().contains("another model"), lastError())
        XCTAssertEqual(sdlstm_lm_next(tagger, s, [1], &out), E_INVALID)
        XCTAssertTrue(lastError().contains("language model"), lastError())
    }

    /// Inference between two training steps changes nothing a checkpoint holds (parameters,
    /// optimizer, progress, dropout, random stream, carried state) and nothing the next step sees.
    func testInferenceLeavesTheModelUnchanged() throws {
        let m = trainedModel(), twin = trainedModel()
        defer { sdlstm_model_free(m); sdlstm_model_free(twin) }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sdlstm-inference-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let before = dir.appendingPathComponent("before.h5").path, after = dir.appendingPathComponent("after.h5").path
        let flags = UInt32(SDLSTM_SAVE_CARRIED_STATE.rawValue)
        XCTAssertEqual(sdlstm_save(m, before, flags), OK, lastError())

        let state = makeState(m, streams: 5)
        for t in 0..<70 { _ = next(m, state, (0..<5).map { Int32(($0 + t) % Int(Self.vocab)) }) }
        sdlstm_lm_state_free(state)
        _ = score(m, sequence(200))
        _ = generate(m, sequence(100), options(temperature: 0.7, topK: 5, seed: 4), max: 30)

        XCTAssertEqual(sdlstm_save(m, after, flags), OK, lastError())
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: before)), try Data(contentsOf: URL(fileURLWithPath: after)),
                       "the checkpoints before and after inference differ")
        // The next steps continue as if nothing had run between them.
        let probe = Batch(batchSize: 4, seqLen: 8, vocab: Self.vocab, salt: 1)
        for _ in 0..<2 {
            let (s1, a) = runBatch(sdlstm_step, m, probe)
            let (s2, b) = runBatch(sdlstm_step, twin, probe)
            XCTAssertEqual(s1, OK)
            XCTAssertEqual(s2, OK)
            assertStatsEqual(a, b, "step after inference")
        }
    }

    func testOptionsInitsFillTheDocumentedDefaults() {
        var g = sdlstm_generate_options()
        g.struct_size = MemoryLayout<sdlstm_generate_options>.size
        g.temperature = 9
        XCTAssertEqual(sdlstm_generate_options_init(&g), OK)
        XCTAssertEqual(g.struct_size, MemoryLayout<sdlstm_generate_options>.size)
        XCTAssertEqual(g.temperature, 1)
        XCTAssertEqual(g.top_k, 0)
        XCTAssertEqual(g.seed, 1)
        XCTAssertEqual(g.stop_id, -1)

        var d = sdlstm_decode_options()
        d.struct_size = MemoryLayout<sdlstm_decode_options>.size
        XCTAssertEqual(sdlstm_decode_options_init(&d), OK)
        XCTAssertEqual([d.bos_id, d.eos_id, d.beam_size, d.max_len], [-1, -1, 5, 100])
        XCTAssertEqual(d.length_penalty, 0)
        d.struct_size = 4
        XCTAssertEqual(sdlstm_decode_options_init(&d), E_INVALID)
        XCTAssertTrue(lastError().contains("struct_size"), lastError())
        XCTAssertEqual(sdlstm_decode_options_init(nil), E_INVALID)

        var b = sdlstm_bleu_options()
        b.struct_size = MemoryLayout<sdlstm_bleu_options>.size
        b.lowercase = 1
        XCTAssertEqual(sdlstm_bleu_options_init(&b), OK)
        XCTAssertEqual(b.lowercase, 0)
        XCTAssertEqual(b.tokenize, 1)
        b.struct_size = 0
        XCTAssertEqual(sdlstm_bleu_options_init(&b), E_INVALID)
        XCTAssertEqual(sdlstm_bleu_options_init(nil), E_INVALID)
    }
}
