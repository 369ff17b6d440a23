import CSDLSTM
import XCTest

/// Behaviour of step and evaluate through the ABI: determinism, learning, E_NUMERIC, skipped work.
final class TrainingTests: XCTestCase {
    func testEvaluateIsDeterministicAndDoesNotUpdate() {
        let c = smallConfig()
        let m = makeModel(c)
        defer { sdlstm_model_free(m) }
        XCTAssertEqual(sdlstm_set_dropout(m, SDLSTM_SITE_OUTPUT, SDLSTM_POLICY_STRUCTURED, 0.5), OK, lastError())
        let batch = Batch(batchSize: 3, seqLen: 5, vocab: c.vocab_size)
        XCTAssertEqual(sdlstm_reset_state(m), OK)
        let (s1, a) = runBatch(sdlstm_evaluate, m, batch)
        XCTAssertEqual(sdlstm_reset_state(m), OK)
        let (s2, b) = runBatch(sdlstm_evaluate, m, batch)
        XCTAssertEqual(s1, OK, lastError())
        XCTAssertEqual(s2, OK, lastError())
        assertStatsEqual(a, b, "evaluate twice from a reset state")
        XCTAssertEqual(a.tokens, 15)
        XCTAssertEqual(a.skipped_macs_fraction, 0, "evaluate runs without dropout")
        XCTAssertTrue(a.loss.isFinite && a.loss > 0)
        // Near-uniform start: the loss is close to log V.
        XCTAssertEqual(a.loss, log(Double(c.vocab_size)), accuracy: 0.5)
        // The carried state matters: a second evaluate without reset sees different history.
        let (s3, _) = runBatch(sdlstm_evaluate, m, batch)
        XCTAssertEqual(s3, OK)
    }

    func testStepsReduceTheLossOnAFixedBatch() {
        let c = smallConfig(embed: 16, hidden: 16)
        let m = makeModel(c)
        defer { sdlstm_model_free(m) }
        XCTAssertEqual(sdlstm_set_learning_rate(m, 5), OK)
        XCTAssertEqual(sdlstm_set_clip_norm(m, 5), OK)
        let batch = Batch(batchSize: 3, seqLen: 5, vocab: c.vocab_size)
        XCTAssertEqual(sdlstm_reset_state(m), OK)
        let (_, before) = runBatch(sdlstm_evaluate, m, batch)
        for _ in 0..<60 {
            XCTAssertEqual(sdlstm_reset_state(m), OK)
            let (s, stats) = runBatch(sdlstm_step, m, batch)
            XCTAssertEqual(s, OK, lastError())
            XCTAssertEqual(stats.tokens, 15)
            XCTAssertTrue(stats.grad_norm.isFinite && stats.grad_norm > 0)
        }
        XCTAssertEqual(sdlstm_reset_state(m), OK)
        let (_, after) = runBatch(sdlstm_evaluate, m, batch)
        XCTAssertLessThan(after.loss, before.loss * 0.75, "60 steps on one batch should go a good way to fitting it")
    }

    /// With a huge learning rate and no clipping the parameters blow up; the step that meets a
    /// non-finite loss or gradient returns E_NUMERIC and changes nothing, carried state included.
    /// lr 1e38 makes the gradient overflow while the loss is still finite, so evaluate can still
    /// compare parameters; lr 1e30 grows them until the loss itself turns NaN.
    func testNonFiniteStepReturnsNumericAndChangesNothing() {
        for lr: Float in [1e38, 1e30] {
            let t = Twins(smallConfig(), dropout: false)
            t.both { sdlstm_set_clip_norm($0, 0) }
            t.both { sdlstm_set_learning_rate($0, lr) }
            var failedAt: Int?
            for i in 0..<12 {
                let (s, stats) = runBatch(sdlstm_step, t.model, t.probe)
                if s == E_NUMERIC {
                    failedAt = i
                    XCTAssertFalse(lastError().isEmpty)
                    print("lr \(lr): E_NUMERIC at step \(i): \(lastError())")
                    break
                }
                XCTAssertEqual(s, OK, "lr \(lr) step \(i): \(statusName(s)) \(lastError())")
                XCTAssertTrue(stats.loss.isFinite, "lr \(lr) step \(i) returned OK with loss \(stats.loss)")
                let (s2, _) = runBatch(sdlstm_step, t.twin, t.probe)
                XCTAssertEqual(s2, OK)
            }
            XCTAssertNotNil(failedAt, "no E_NUMERIC within 12 steps at learning rate \(lr) without clipping")
            guard failedAt != nil else { continue }
            // The twin never took the failed step: evaluating both, first with the carried state and
            // then from a reset state, must agree bit for bit (or fail alike).
            for reset in [false, true] {
                if reset { t.both { sdlstm_reset_state($0) } }
                let (sa, a) = runBatch(sdlstm_evaluate, t.model, t.probe)
                let (sb, b) = runBatch(sdlstm_evaluate, t.twin, t.probe)
                print("lr \(lr): evaluate after E_NUMERIC (reset \(reset)): \(statusName(sa)) loss \(a.loss)")
                XCTAssertEqual(sa, sb, "lr \(lr) reset \(reset)")
                assertStatsEqual(a, b, "lr \(lr): evaluate after E_NUMERIC (reset \(reset))")
            }
            // The failing step fails again the same way: nothing moved.
            let (again, _) = runBatch(sdlstm_step, t.model, t.probe)
            XCTAssertEqual(again, E_NUMERIC, "lr \(lr): \(lastError())")
        }
    }

    /// Structured masks skip multiply-adds; per-sample masks and no dropout skip none.
    func testSkippedMACsFraction() {
        let c = smallConfig(vocab: 40, embed: 16, hidden: 16, layers: 2)
        let batch = Batch(batchSize: 4, seqLen: 6, vocab: c.vocab_size)
        let cases: [(sdlstm_policy, Float, Bool)] = [
            (SDLSTM_POLICY_NONE, 0.5, false), (SDLSTM_POLICY_STRUCTURED, 0, false),
            (SDLSTM_POLICY_VARIATIONAL, 0.5, false), (SDLSTM_POLICY_STANDARD, 0.5, false),
            (SDLSTM_POLICY_STRUCTURED, 0.5, true), (SDLSTM_POLICY_STRUCTURED_FIXED, 0.5, true),
        ]
        for (policy, p, skips) in cases {
            let m = makeModel(c)
            defer { sdlstm_model_free(m) }
            for site in [SDLSTM_SITE_INPUT, SDLSTM_SITE_BETWEEN, SDLSTM_SITE_OUTPUT, SDLSTM_SITE_RECURRENT] {
                XCTAssertEqual(sdlstm_set_dropout(m, site, policy, p), OK, lastError())
            }
            let (s, stats) = runBatch(sdlstm_step, m, batch)
            XCTAssertEqual(s, OK, lastError())
            let f = stats.skipped_macs_fraction
            if skips {
                XCTAssertGreaterThan(f, 0, "policy \(policy.rawValue) p \(p)")
                XCTAssertLessThan(f, 1, "policy \(policy.rawValue) p \(p)")
            } else {
                XCTAssertEqual(f, 0, "policy \(policy.rawValue) p \(p)")
            }
            let (se, eval) = runBatch(sdlstm_evaluate, m, batch)
            XCTAssertEqual(se, OK)
            XCTAssertEqual(eval.skipped_macs_fraction, 0, "evaluate runs without dropout")
        }
        // One structured site alone also skips work.
        let m = makeModel(c)
        defer { sdlstm_model_free(m) }
        XCTAssertEqual(sdlstm_set_dropout(m, SDLSTM_SITE_OUTPUT, SDLSTM_POLICY_STRUCTURED, 0.5), OK)
        let (s, stats) = runBatch(sdlstm_step, m, batch)
        XCTAssertEqual(s, OK)
        XCTAssertGreaterThan(stats.skipped_macs_fraction, 0)
    }
}
