import CSDLSTM
import Foundation
import XCTest

/// Models in different threads are independent: two trained at the same time, each on 2 threads of
/// its own (its pool and OpenBLAS both at work), end bit for bit where the same training done one
/// model after the other ends.
final class ConcurrencyTests: XCTestCase {
    /// What a training leaves: every step's loss and gradient norm, and the checkpoint's bytes
    /// (every parameter, the optimizer state and the random stream).
    struct Outcome: Equatable {
        var stats: [UInt64] = []
        var checkpoint: [UInt8] = []
    }

    /// One model's training; `train` runs on whichever thread calls it.
    final class Trainer: @unchecked Sendable {
        let model: OpaquePointer
        let salt: Int32
        var outcome = Outcome()

        /// Model 0 with structured dropout, model 1 with standard: the dense and the kept-share
        /// kernels both run.
        init(_ which: Int) {
            let vocab: Int32 = 400
            // 4 × hidden and the vocabulary reach the width at which a GEMM's columns split over 2 threads.
            model = makeModel(smallConfig(vocab: vocab, embed: 48, hidden: 48, layers: 2, seed: UInt64(11 + which)))
            salt = Int32(which * 1000)
            let policy = which == 0 ? SDLSTM_POLICY_STRUCTURED : SDLSTM_POLICY_STANDARD
            for call in [{ sdlstm_set_num_threads($0, 2) }, { sdlstm_set_learning_rate($0, 0.5) },
                         { sdlstm_set_clip_norm($0, 1) }, { sdlstm_set_seed($0, 5) }] as [(OpaquePointer) -> sdlstm_status] {
                XCTAssertEqual(call(model), OK, lastError())
            }
            for site in [SDLSTM_SITE_INPUT, SDLSTM_SITE_BETWEEN, SDLSTM_SITE_OUTPUT, SDLSTM_SITE_RECURRENT] {
                XCTAssertEqual(sdlstm_set_dropout(model, site, policy, 0.3), OK, lastError())
            }
        }

        deinit { sdlstm_model_free(model) }

        func train(steps: Int) {
            for s in 0..<steps {
                let (status, stats) = runBatch(sdlstm_step, model, Batch(batchSize: 8, seqLen: 16, vocab: 400, salt: salt + Int32(s)))
                XCTAssertEqual(status, OK, lastError())
                outcome.stats += [stats.loss.bitPattern, stats.grad_norm.bitPattern]
            }
        }

        /// On the test's thread, after training: reads back a checkpoint.
        func finish(_ path: String) {
            XCTAssertEqual(sdlstm_save(model, path, 0), OK, lastError())
            outcome.checkpoint = (try? Array(Data(contentsOf: URL(fileURLWithPath: path)))) ?? []
            XCTAssertFalse(outcome.checkpoint.isEmpty, path)
        }
    }

    func testTwoModelsInTwoThreadsMatchSequentialRuns() {
        let dir = makeTemporaryDirectory("sdlstm-concurrency")
        defer { removeDirectory(dir) }
        let steps = 50, runs = 20
        let sequential = (0..<2).map { which in
            let t = Trainer(which)
            t.train(steps: steps)
            t.finish("\(dir)/sequential-\(which).h5")
            return t.outcome
        }
        var differing = 0
        for run in 0..<runs {
            let trainers = (0..<2).map { Trainer($0) }
            let done = DispatchSemaphore(value: 0)
            for t in trainers {
                Thread {
                    t.train(steps: steps)
                    done.signal()
                }.start()
            }
            for _ in trainers { done.wait() }
            for (which, t) in trainers.enumerated() {
                t.finish("\(dir)/run-\(which).h5")
                if t.outcome != sequential[which] {
                    differing += 1
                    let step = t.outcome.stats.indices.first { t.outcome.stats[$0] != sequential[which].stats[$0] }.map { $0 / 2 }
                    XCTFail("run \(run), model \(which): differs from the sequential run (first at step \(step.map(String.init) ?? "none: in the checkpoint"))")
                }
            }
        }
        print("concurrency: \(runs) runs of 2 models in 2 threads x 2 threads each, \(steps) steps: \(differing) of \(2 * runs) trainings differ from sequential runs")
    }

    static let threadsHelperName = "SDLSTMCAPITests.ConcurrencyTests/testThreadsVariableHelper"

    /// A bad SDLSTM_NUM_THREADS warns once per process, naming the variable, the value and the
    /// count used, however many models are created; a good one says nothing.
    func testBadThreadsVariableWarnsOnce() throws {
        let exe = try selfExecutable()
        for (value, warnings) in [("abc", 1), ("0", 1), ("-3", 1), ("1e9", 1), ("2", 0)] {
            let child = try Child(exe, args: [Self.threadsHelperName], env: ["SDLSTM_NUM_THREADS=\(value)", "SDLSTM_THREADS_HELPER=1"],
                                  stderr: true)
            var lines: [String] = []
            while let line = child.readLine(until: now() + 60) { lines.append(line) }
            XCTAssertTrue(lines.contains("THREADS helper done"), "\(value): the helper did not finish: \(lines)")
            let found = lines.filter { $0.contains("SDLSTM_NUM_THREADS") }
            XCTAssertEqual(found.count, warnings, "\(value): \(found)")
            if let w = found.first {
                XCTAssertTrue(w.contains("SDLSTM_NUM_THREADS=\(value) ") && w.contains("using 1"), w)
            }
        }
    }

    /// The child of the test above: three models, each of which reads the default thread count.
    func testThreadsVariableHelper() {
        guard getenv("SDLSTM_THREADS_HELPER") != nil else { return }
        for _ in 0..<3 { sdlstm_model_free(makeModel(smallConfig())) }
        // write(2) at once: the parent reads this line through a pipe, which stdio would buffer.
        _ = "THREADS helper done\n".withCString { write(1, $0, strlen($0)) }
    }
}
