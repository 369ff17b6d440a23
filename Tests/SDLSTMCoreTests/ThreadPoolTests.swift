import COpenBLAS
import SDLSTMCore
import XCTest

/// The pool's contract: work is cut by the thread count asked for, so fewer running workers (capped
/// at the CPUs, or failed to start) compute every part once and give the same bits.
final class ThreadPoolTests: XCTestCase {
    func testEveryPartRunsOnceWhateverWorkersStarted() {
        // 4 threads asked for; all workers, the first and third failing (a gap), or none.
        for (failing, width) in [(Set<Int>(), 4), ([1, 3], 2), ([1, 2, 3], 1)] {
            let pool = ThreadPool(threads: 4, cores: 4, failingWorkers: failing)
            XCTAssertEqual(pool.threads, 4)
            XCTAssertEqual(pool.width, width, "failing \(failing)")
            for count in [1, 3, 4, 7, 1000] {
                let hits = UnsafeMutableBufferPointer<Int>.allocate(capacity: count)
                defer { hits.deallocate() }
                hits.initialize(repeating: 0)
                pool.forChunks(count) { r in for i in r { hits[i] += 1 } }
                XCTAssertEqual(Array(hits), [Int](repeating: 1, count: count), "failing \(failing), count \(count)")
            }
            var parts = [Int](repeating: 0, count: 9)
            parts.withUnsafeMutableBufferPointer { p in pool.run(9) { p[$0] += 1 } }
            XCTAssertEqual(parts, [Int](repeating: 1, count: 9), "failing \(failing)")
        }
    }

    func testWorkersAreCappedAtTheCoresAvailable() {
        let cores = ThreadPool.availableCores()
        XCTAssertGreaterThanOrEqual(cores, 1)
        XCTAssertLessThanOrEqual(cores, sysconf(Int32(_SC_NPROCESSORS_CONF)))
        let pool = ThreadPool(threads: 256)
        XCTAssertEqual(pool.threads, 256)
        XCTAssertEqual(pool.width, min(256, cores))
        XCTAssertEqual(ThreadPool(threads: 8, cores: 3).width, 3)
    }

    func testCPUListCount() {
        XCTAssertEqual(ThreadPool.cpuListCount("0"), 1)
        XCTAssertEqual(ThreadPool.cpuListCount("0-1"), 2)
        XCTAssertEqual(ThreadPool.cpuListCount("0-3,8,10-11"), 7)
        for bad in ["", "a", "3-1", "1-", "-1", "1-2-3"] { XCTAssertNil(ThreadPool.cpuListCount(bad), bad) }
    }

    /// Training with 3 threads: all workers, one or both of them failing to start, or capped at
    /// one core, give bit-identical parameters.
    func testFailedWorkersGiveTheSameTraining() throws {
        var results: [[[Float]]] = []
        let pools: [() -> ThreadPool] = [
            { ThreadPool(threads: 3, cores: 3) },
            { ThreadPool(threads: 3, cores: 3, failingWorkers: [1]) },
            { ThreadPool(threads: 3, cores: 3, failingWorkers: [1, 2]) },
            { ThreadPool(threads: 3, cores: 1) },
        ]
        for (i, make) in pools.enumerated() {
            // Wide enough that the GEMMs, structured tiles, softmax rows and optimizer split.
            let problem = try Problem(vocab: 300, embed: 40, hidden: 48, batch: 6, steps: 10)
            problem.model.compute.pool = make()
            XCTAssertEqual(problem.model.compute.pool.width, [3, 2, 1, 1][i])
            for site in [DropoutSite.input, .between, .output, .recurrent] {
                try problem.model.setDropout(DropoutSetting(policy: .structured, p: 0.4), at: site)
            }
            for _ in 0..<4 { _ = try problem.step() }
            results.append(problem.model.parameters.map(\.value.array))
        }
        for i in 1..<results.count { XCTAssertEqual(results[i], results[0], "pool \(i)") }
    }

    /// OpenBLAS's thread count is set to 1 once, by the first pool, and never per call: steps
    /// leave whatever the host set afterwards alone.
    func testStepsNeverChangeOpenBLASThreads() throws {
        let problem = try Problem()
        try problem.model.setNumThreads(2)
        XCTAssertEqual(openblas_get_num_threads(), 1)
        openblas_set_num_threads(2)
        defer { openblas_set_num_threads(1) }
        _ = try problem.step()
        XCTAssertEqual(openblas_get_num_threads(), 2)
    }

    func testThreadsSetting() {
        XCTAssertEqual(threadsSetting("4").threads, 4)
        XCTAssertNil(threadsSetting("4").warning)
        XCTAssertNil(threadsSetting("256").warning)
        for (value, used) in [("abc", 1), ("0", 1), ("-3", 1), ("1e9", 1), ("", 1), (" 2", 1), ("1000", 256)] {
            let (threads, warning) = threadsSetting(value)
            XCTAssertEqual(threads, used, value)
            let w = warning ?? ""
            XCTAssertTrue(w.contains("SDLSTM_NUM_THREADS=\(value) ") && w.contains("using \(used)"), w)
        }
    }
}
