import CSDLSTM
import XCTest

/// Every bad input returns its error, names the offending argument in sdlstm_last_error(), and leaves
/// the model unchanged (checked against an identically driven twin, see `Twins`).
final class ValidationTests: XCTestCase {
    // Patterns a message must match (regex, case-insensitive), one list per argument.
    let modelArg = ["model"]
    let batchArg = ["batch"]
    let structSize = ["struct_size", "struct size"]
    let pArg = [#"\bp\b"#, "probability"]

    // MARK: config_init, model_create

    func testConfigInitRejectsNullAndBadTask() {
        XCTAssertEqual(sdlstm_config_init(nil, SDLSTM_TASK_LANGUAGE_MODEL), E_INVALID)
        XCTAssertTrue(mentions(lastError(), ["cfg", "config"]), lastError())
        for raw: UInt32 in [0, 4, 99, UInt32.max] {
            var c = sdlstm_config()
            c.struct_size = MemoryLayout<sdlstm_config>.size
            XCTAssertEqual(sdlstm_config_init(&c, sdlstm_task(rawValue: raw)), E_INVALID, "task \(raw)")
            XCTAssertTrue(mentions(lastError(), ["task"]), "task \(raw): \(lastError())")
        }
        // The caller states how large its struct is; the library never writes past it.
        var unsized = sdlstm_config()
        XCTAssertEqual(sdlstm_config_init(&unsized, SDLSTM_TASK_LANGUAGE_MODEL), E_INVALID)
        XCTAssertTrue(mentions(lastError(), ["struct_size"]), lastError())
        XCTAssertEqual(unsized.vocab_size, 0, "nothing written on failure")
    }

    func testModelCreateRejectsBadArguments() {
        func expect(_ what: String, _ patterns: [String], outNull: Bool = false, _ edit: (inout sdlstm_config) -> Void,
                    file: StaticString = #filePath, line: UInt = #line) {
            var c = smallConfig()
            edit(&c)
            var out: OpaquePointer?
            let s = outNull ? sdlstm_model_create(&c, nil) : sdlstm_model_create(&c, &out)
            let message = lastError()
            XCTAssertEqual(s, E_INVALID, "\(what): got \(statusName(s)) (\(message))", file: file, line: line)
            XCTAssertNil(out, "\(what): a model was returned", file: file, line: line)
            if let out { sdlstm_model_free(out) }
            XCTAssertFalse(message.isEmpty, "\(what): empty message", file: file, line: line)
            XCTAssertTrue(mentions(message, patterns), "\(what): \"\(message)\" does not mention \(patterns)",
                          file: file, line: line)
        }
        var out: OpaquePointer?
        XCTAssertEqual(sdlstm_model_create(nil, &out), E_INVALID)
        XCTAssertNil(out)
        XCTAssertTrue(mentions(lastError(), ["cfg", "config"]), lastError())

        expect("out NULL", ["out"], outNull: true) { _ in }
        for size in [0, 8, MemoryLayout<sdlstm_config>.size - 1] {
            expect("struct_size \(size)", structSize) { $0.struct_size = size }
        }
        for raw: UInt32 in [0, 4, 99] {
            expect("task \(raw)", ["task"]) { $0.task = sdlstm_task(rawValue: raw) }
        }
        // A language-model config read as seq2seq lacks the target vocabulary.
        expect("seq2seq without a target vocabulary", ["target_vocab_size"]) { $0.task = SDLSTM_TASK_SEQ2SEQ }
        for v: Int32 in [0, -1, Int32.min] {
            expect("vocab_size \(v)", ["vocab"]) { $0.vocab_size = v }
            expect("embed_size \(v)", ["embed"]) { $0.embed_size = v }
            expect("hidden_size \(v)", ["hidden"]) { $0.hidden_size = v }
            expect("num_layers \(v)", ["layers"]) { $0.num_layers = v }
        }
    }

    // MARK: get_config, parameter_count, model_free

    func testQueriesRejectNull() {
        let t = Twins()
        var c = sdlstm_config()
        c.struct_size = MemoryLayout<sdlstm_config>.size
        var count: Int64 = -7
        t.expectFailure(E_INVALID, "get_config model NULL", mentioning: modelArg) { _ in sdlstm_get_config(nil, &c) }
        t.expectFailure(E_INVALID, "get_config cfg NULL", mentioning: ["cfg", "config"]) { sdlstm_get_config($0, nil) }
        for size in [0, 8, MemoryLayout<sdlstm_config>.size - 1] {
            c.struct_size = size
            t.expectFailure(E_INVALID, "get_config struct_size \(size)", mentioning: structSize) { sdlstm_get_config($0, &c) }
        }
        t.expectFailure(E_INVALID, "parameter_count model NULL", mentioning: modelArg) { _ in sdlstm_get_parameter_count(nil, &count) }
        t.expectFailure(E_INVALID, "parameter_count out NULL", mentioning: ["out"]) { sdlstm_get_parameter_count($0, nil) }
        XCTAssertEqual(count, -7, "parameter_count wrote its output on failure")
        sdlstm_model_free(nil)  // ignored, must not crash
        t.finish()
    }

    // MARK: setters

    func testSetDropoutRejectsBadArguments() {
        let t = Twins()
        t.expectFailure(E_INVALID, "set_dropout model NULL", mentioning: modelArg) { _ in
            sdlstm_set_dropout(nil, SDLSTM_SITE_INPUT, SDLSTM_POLICY_STRUCTURED, 0.5)
        }
        for raw: UInt32 in [4, 99, UInt32.max] {
            t.expectFailure(E_INVALID, "site \(raw)", mentioning: ["site"]) {
                sdlstm_set_dropout($0, sdlstm_site(rawValue: raw), SDLSTM_POLICY_STRUCTURED, 0.5)
            }
        }
        for raw: UInt32 in [5, 99, UInt32.max] {
            t.expectFailure(E_INVALID, "policy \(raw)", mentioning: ["policy"]) {
                sdlstm_set_dropout($0, SDLSTM_SITE_INPUT, sdlstm_policy(rawValue: raw), 0.5)
            }
        }
        for p: Float in [-0.1, -Float.leastNonzeroMagnitude, 1.0, 1.5, .nan, .infinity, -.infinity] {
            for policy in [SDLSTM_POLICY_STRUCTURED, SDLSTM_POLICY_STANDARD] {
                t.expectFailure(E_INVALID, "p \(p) policy \(policy.rawValue)", mentioning: pArg) {
                    sdlstm_set_dropout($0, SDLSTM_SITE_OUTPUT, policy, p)
                }
            }
        }
        t.finish()
    }

    func testBetweenSiteNeedsTwoLayers() {
        let t = Twins(smallConfig(layers: 1))
        for policy in [SDLSTM_POLICY_STRUCTURED, SDLSTM_POLICY_VARIATIONAL] {
            t.expectFailure(E_INVALID, "BETWEEN on 1 layer", mentioning: ["between", "site", "layer"]) {
                sdlstm_set_dropout($0, SDLSTM_SITE_BETWEEN, policy, 0.5)
            }
        }
        t.finish()
        // The same call is fine on two layers.
        let two = Twins(smallConfig(layers: 2))
        two.both { sdlstm_set_dropout($0, SDLSTM_SITE_BETWEEN, SDLSTM_POLICY_STRUCTURED, 0.5) }
        two.finish()
    }

    func testSetOptimizerRejectsBadArguments() {
        let t = Twins()
        t.expectFailure(E_INVALID, "set_optimizer model NULL", mentioning: modelArg) { _ in
            sdlstm_set_optimizer(nil, SDLSTM_OPTIMIZER_SGD)
        }
        for raw: UInt32 in [0, 4, 99, UInt32.max] {
            t.expectFailure(E_INVALID, "optimizer \(raw)", mentioning: ["optimizer"]) {
                sdlstm_set_optimizer($0, sdlstm_optimizer(rawValue: raw))
            }
        }
        t.both { sdlstm_set_optimizer($0, SDLSTM_OPTIMIZER_SGD) }
        t.finish()
    }

    func testSetLearningRateRejectsBadArguments() {
        let t = Twins()
        t.expectFailure(E_INVALID, "set_learning_rate model NULL", mentioning: modelArg) { _ in
            sdlstm_set_learning_rate(nil, 0.1)
        }
        for lr: Float in [0, -0.0, -1, -.infinity, .nan] {
            t.expectFailure(E_INVALID, "learning_rate \(lr)", mentioning: ["learning.rate", #"\blr\b"#]) {
                sdlstm_set_learning_rate($0, lr)
            }
        }
        t.finish()
    }

    func testSetClipNormRejectsBadArguments() {
        let t = Twins()
        t.expectFailure(E_INVALID, "set_clip_norm model NULL", mentioning: modelArg) { _ in
            sdlstm_set_clip_norm(nil, 1)
        }
        for clip: Float in [-1, -Float.leastNonzeroMagnitude, -.infinity, .nan] {
            t.expectFailure(E_INVALID, "max_norm \(clip)", mentioning: ["max_norm", "clip"]) {
                sdlstm_set_clip_norm($0, clip)
            }
        }
        t.finish()
    }

    func testSetNumThreadsRejectsBadArguments() {
        let t = Twins()
        t.expectFailure(E_INVALID, "set_num_threads model NULL", mentioning: modelArg) { _ in
            sdlstm_set_num_threads(nil, 1)
        }
        for n: Int32 in [0, -1, Int32.min] {
            t.expectFailure(E_INVALID, "threads \(n)", mentioning: ["thread"]) { sdlstm_set_num_threads($0, n) }
        }
        t.finish()
    }

    func testSeedAndResetRejectNull() {
        let t = Twins()
        t.expectFailure(E_INVALID, "seed model NULL", mentioning: modelArg) { _ in sdlstm_set_seed(nil, 5) }
        t.expectFailure(E_INVALID, "reset_state model NULL", mentioning: modelArg) { _ in sdlstm_reset_state(nil) }
        t.finish()
    }

    // MARK: step, evaluate

    func testStepRejectsBadBatches() { checkBadBatches(sdlstm_step, "step") }

    func testEvaluateRejectsBadBatches() { checkBadBatches(sdlstm_evaluate, "evaluate") }

    private func checkBadBatches(_ call: @escaping BatchCall, _ fn: String) {
        let t = Twins()
        let good = t.probe
        let v = t.config.vocab_size
        let n = Int(good.batchSize * good.seqLen)

        func expect(_ what: String, _ patterns: [String], batch: Batch? = nil,
                    editBatch: @escaping (inout sdlstm_batch) -> Void = { _ in },
                    editStats: @escaping (inout sdlstm_stats) -> Void = { _ in },
                    file: StaticString = #filePath, line: UInt = #line) {
            t.expectFailure(E_INVALID, "\(fn) \(what)", mentioning: patterns, file: file, line: line) { m in
                var stats = freshStats()
                editStats(&stats)
                return (batch ?? good).with(editBatch) { call(m, $0, &stats) }
            }
        }

        var stats = freshStats()
        t.expectFailure(E_INVALID, "\(fn) model NULL", mentioning: modelArg) { _ in good.with { call(nil, $0, &stats) } }
        t.expectFailure(E_INVALID, "\(fn) batch NULL", mentioning: batchArg) { call($0, nil, &stats) }
        // stats may be NULL (header): the call succeeds; made on both models so they stay in lockstep.
        t.both { m in good.with { call(m, $0, nil) } }
        t.assertSame("\(fn) with stats NULL")
        // ... but a NULL stats does not excuse a bad batch.
        t.expectFailure(E_INVALID, "\(fn) batch NULL, stats NULL", mentioning: batchArg) { call($0, nil, nil) }
        var bad = good
        bad.inputs[0] = -1
        t.expectFailure(E_INVALID, "\(fn) bad id, stats NULL", mentioning: ["input"]) { m in bad.with { call(m, $0, nil) } }
        for size in [0, 8, MemoryLayout<sdlstm_batch>.size - 1] {
            expect("batch struct_size \(size)", structSize, editBatch: { $0.struct_size = size })
        }
        for size in [0, 8, MemoryLayout<sdlstm_stats>.size - 1] {
            expect("stats struct_size \(size)", structSize, editStats: { $0.struct_size = size })
        }
        for bad: Int32 in [0, -1, Int32.min] {
            expect("batch_size \(bad)", ["batch_size", "batch size"], editBatch: { $0.batch_size = bad })
            expect("seq_len \(bad)", ["seq_len", "seq len", "sequence length"], editBatch: { $0.seq_len = bad })
        }
        expect("inputs NULL", ["input"], editBatch: { $0.inputs = nil })
        expect("targets NULL", ["target"], editBatch: { $0.targets = nil })
        for bad in [-1, v, v + 1000, Int32.min, Int32.max] {
            for position in [0, n / 2, n - 1] {
                var b = good
                b.inputs[position] = bad
                expect("input id \(bad) at \(position)", ["input"], batch: b)
                b = good
                b.targets[position] = bad
                expect("target id \(bad) at \(position)", ["target"], batch: b)
            }
        }
        t.finish()
    }

    /// A batch size that differs from the carried state's fails with E_STATE until reset_state.
    func testBatchSizeMismatchNeedsReset() {
        let t = Twins()  // carries state of batch size 3
        let other = Batch(batchSize: 2, seqLen: 5, vocab: t.config.vocab_size)
        for (call, fn) in [(sdlstm_step as BatchCall, "step"), (sdlstm_evaluate as BatchCall, "evaluate")] {
            t.expectFailure(E_STATE, "\(fn) with batch size 2 on state of 3", mentioning: ["batch"]) {
                runBatch(call, $0, other).0
            }
        }
        // The carried batch size still works; so does another window length (only the batch size is carried).
        t.bothStep(t.probe)
        t.bothStep(Batch(batchSize: 3, seqLen: 4, vocab: t.config.vocab_size))
        t.expectFailure(E_STATE, "step with batch size 2, again", mentioning: ["batch"]) { runBatch(sdlstm_step, $0, other).0 }
        // After a reset the new size is accepted and then carried.
        t.both { sdlstm_reset_state($0) }
        let three = t.probe
        t.probe = other
        t.bothStep(other)
        t.expectFailure(E_STATE, "step with batch size 3 on state of 2", mentioning: ["batch"]) {
            runBatch(sdlstm_step, $0, three).0
        }
        t.both { sdlstm_reset_state($0) }
        t.finish()
    }
}
