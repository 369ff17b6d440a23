import CSDLSTM
import Glibc
import XCTest

/// A process killed with SIGKILL in the middle of saving leaves the previous checkpoint intact.
///
/// The test runs this test binary again as a child (`testSaveLoopHelper`, selected by name, with
/// SDLSTM_CKPT_SAVE_LOOP set), which saves one checkpoint over and over and reports each save on
/// stdout; the parent kills it at a random moment, then loads the file. Saves dominate the child's
/// loop, so most kills land inside one (the test requires at least one to).
final class CheckpointCrashTests: XCTestCase {
    static let helperName = "SDLSTMCAPITests.CheckpointCrashTests/testSaveLoopHelper"

    func testKillDuringSaveLeavesALoadableCheckpoint() throws {
        let dir = makeTemporaryDirectory("sdlstm-ckpt-kill")
        defer { removeDirectory(dir) }
        let path = "\(dir)/model.h5"
        let exe = try selfExecutable()
        var rng = SystemRandomNumberGenerator()
        var killedMidSave = 0
        let rounds = 10
        for round in 0..<rounds {
            let base = round * 1_000_000
            let child = try Child(exe, args: [Self.helperName],
                                  env: ["SDLSTM_CKPT_SAVE_LOOP=\(path)", "SDLSTM_CKPT_GENERATION_BASE=\(base)"])
            // Wait for the child's first complete save, then kill it at a random moment.
            var lastSaved = -1, lastBegun = -1
            let deadline = now() + 30
            while lastSaved < 0 {
                guard let line = child.readLine(until: deadline) else {
                    child.kill()
                    return XCTFail("round \(round): the helper reported no save within 30 s")
                }
                parse(line, &lastBegun, &lastSaved)
            }
            usleep(UInt32.random(in: 0...40_000, using: &rng))
            child.kill()
            while let line = child.readLine(until: now() + 10) { parse(line, &lastBegun, &lastSaved) }
            if lastBegun > lastSaved { killedMidSave += 1 }

            // The file loads, complete, and is the last save that finished or the one under way.
            var m: OpaquePointer?
            let s = sdlstm_load(path, &m)
            XCTAssertEqual(s, OK, "round \(round): \(statusName(s)) \(lastError())")
            guard let m else { continue }
            defer { sdlstm_model_free(m) }
            let generation = getMetadata(m, "generation").flatMap { Int($0) } ?? -1
            XCTAssertTrue(generation == lastSaved || generation == lastBegun,
                          "round \(round): loaded generation \(generation), last saved \(lastSaved), last begun \(lastBegun)")
            XCTAssertEqual(progress(m).epoch, Int64(generation))
            XCTAssertEqual(runBatch(sdlstm_evaluate, m, Batch(batchSize: 2, seqLen: 4, vocab: 500)).0, OK, lastError())
        }
        print("kill -9 during saves: \(killedMidSave) of \(rounds) kills landed inside a save; leftovers \(dirEntries(dir))")
        XCTAssertGreaterThan(killedMidSave, 0, "no kill landed inside a save: the test proved nothing")
        // A killed save can leave its temporary file; the next save of the target removes them.
        var m: OpaquePointer?
        XCTAssertEqual(sdlstm_load(path, &m), OK)
        XCTAssertEqual(sdlstm_save(m, path, 0), OK, lastError())
        sdlstm_model_free(m)
        XCTAssertEqual(dirEntries(dir), ["model.h5"])
    }

    /// The child of the test above; does nothing unless SDLSTM_CKPT_SAVE_LOOP names a file.
    func testSaveLoopHelper() throws {
        guard let target = getenv("SDLSTM_CKPT_SAVE_LOOP").map({ String(cString: $0) }) else { return }
        let base = getenv("SDLSTM_CKPT_GENERATION_BASE").flatMap { Int(String(cString: $0)) } ?? 0
        let m = makeModel(smallConfig(vocab: 500, embed: 64, hidden: 96, layers: 2))
        defer { sdlstm_model_free(m) }
        XCTAssertEqual(setStrings(m, "vocab", (0..<500).map { "word\($0)" }), OK)
        let start = now()
        var g = base
        while now() - start < 60 {
            XCTAssertEqual(sdlstm_set_epoch(m, Int64(g)), OK)
            XCTAssertEqual(sdlstm_set_metadata(m, "generation", "\(g)"), OK)
            say("CKPT begin \(g)")
            XCTAssertEqual(sdlstm_save(m, target, 0), OK, lastError())
            say("CKPT saved \(g)")
            g += 1
        }
    }

    private func parse(_ line: String, _ begun: inout Int, _ saved: inout Int) {
        let parts = line.split(separator: " ")
        guard parts.count == 3, parts[0] == "CKPT", let g = Int(parts[2]) else { return }
        if parts[1] == "begin" { begun = g } else if parts[1] == "saved" { saved = g }
    }

    private func say(_ s: String) {
        let line = s + "\n"
        _ = line.withCString { write(1, $0, strlen($0)) }
    }
}

/// This test binary, to run one of its tests as a child process.
func selfExecutable() throws -> String {
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    guard n > 0 else { throw XCTSkip("cannot find this test binary (/proc/self/exe)") }
    return String(decoding: buf.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// A child process whose stdout is a pipe read line by line; stderr goes to /dev/null, or with
/// `stderr: true` into the same pipe.
final class Child {
    let pid: pid_t
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var reaped = false

    init(_ exe: String, args: [String], env extra: [String], stderr: Bool = false) throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw XCTSkip("pipe failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        posix_spawn_file_actions_addclose(&actions, fds[1])
        if stderr {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        } else {
            posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        }
        var env: [String] = []
        var e = environ
        while let p = e.pointee { env.append(String(cString: p)); e += 1 }
        let argv = ([exe] + args).map { strdup($0) } + [nil]
        let envp = (env + extra).map { strdup($0) } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, exe, &actions, nil, argv, envp)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            throw XCTSkip("posix_spawn \(exe) failed: \(rc)")
        }
        self.pid = pid
        self.fd = fds[0]
    }

    deinit {
        kill()
        close(fd)
    }

    func kill() {
        guard !reaped else { return }
        _ = Glibc.kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
        reaped = true
    }

    /// The next line of output, or nil at end of file or at the deadline.
    func readLine(until deadline: Double) -> String? {
        while true {
            if let nl = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[..<nl], as: UTF8.self)
                buffer.removeSubrange(...nl)
                return line
            }
            let left = deadline - now()
            guard left > 0 else { return nil }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, Int32(left * 1000) + 1) > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = read(fd, &chunk, chunk.count)
            if n <= 0 {
                if buffer.isEmpty { return nil }
                let line = String(decoding: buffer, as: UTF8.self)
                buffer.removeAll()
                return line
            }
            buffer += chunk.prefix(n)
        }
    }
}
