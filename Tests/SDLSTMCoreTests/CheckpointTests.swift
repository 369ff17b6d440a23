import CHDF5
import Glibc
import SDLSTMCore
import XCTest

/// Checkpoints in the core: round trip, exact resume, and every kind of bad file, each rejected with
/// E_FORMAT (or E_IO) naming what is wrong, without leaking an HDF5 identifier.
final class CheckpointTests: XCTestCase {
    var dir = ""

    override func setUp() {
        var template = Array("/tmp/sdlstm-ckpt-core-XXXXXX".utf8CString)
        dir = String(cString: mkdtemp(&template)!)
    }

    override func tearDown() {
        _ = dir.withCString { d in
            if let handle = opendir(d) {
                while let e = readdir(handle) {
                    let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                    if name != "." && name != ".." { unlink("\(dir)/\(name)") }
                }
                closedir(handle)
            }
            return rmdir(d)
        }
    }

    // MARK: Round trip and exact resume

    func testRoundTripRestoresEverything() throws {
        let t = try TrainedLM()
        var a = Attachments()
        try a.setStrings("vocab", (0..<t.config.vocabSize).map { "w\($0)-é" })
        try a.setStrings("tags", ["O", "B-PER"])
        try a.setMetadata("corpus", "ptb")
        try a.setMetadata("note", "")
        let path = "\(dir)/m.h5"
        let before = Checkpoint.openHDF5Identifiers
        try Checkpoint.save(t.model, attachments: a, to: path, carriedState: true)
        let loaded = try Checkpoint.load(from: path)
        XCTAssertEqual(Checkpoint.openHDF5Identifiers, before, "save and load leave no HDF5 identifier open")
        let m = try XCTUnwrap(loaded.model as? LanguageModel)
        XCTAssertEqual(loaded.attachments, a)
        XCTAssertEqual(m.config, t.model.config)
        for (p, q) in zip(m.parameters, t.model.parameters) {
            XCTAssertEqual(p.pytorchName, q.pytorchName)
            XCTAssertEqual(p.value.array, q.value.array, p.pytorchName)
        }
        XCTAssertEqual(m.optimizer.kind, t.model.optimizer.kind)
        XCTAssertEqual(m.optimizer.learningRate, 0.7)
        XCTAssertEqual(m.optimizer.clipNorm, 0.5)
        XCTAssertEqual(m.optimizer.progress, t.model.optimizer.progress)
        XCTAssertEqual(m.optimizer.progress.step, 3)
        XCTAssertEqual(m.optimizer.progress.epoch, 2)
        XCTAssertEqual(m.optimizer.progress.epochStep, 1)
        XCTAssertTrue(m.rng.state == t.model.rng.state)
        for site in DropoutSite.allCases { XCTAssertEqual(m.dropout(at: site), t.model.dropout(at: site), "\(site)") }
        XCTAssertEqual(m.carriedStateTensors(), t.model.carriedStateTensors())
        XCTAssertEqual(m.carriedStateTensors().map(\.shape), [[2, 3, 8], [2, 3, 8]])
        // The two go on identically.
        let s1 = try t.step(t.model, salt: 9), s2 = try t.step(m, salt: 9)
        XCTAssertEqual(s1, s2)
    }

    func testWithoutCarriedStateTheLoadedStateIsZero() throws {
        let t = try TrainedLM()
        let path = "\(dir)/m.h5"
        try Checkpoint.save(t.model, to: path)
        let m = try Checkpoint.load(from: path).model
        XCTAssertEqual(m.carriedStateTensors(), [])
        t.model.resetState()
        XCTAssertEqual(try t.evaluate(m), try t.evaluate(t.model))
    }

    /// Train N + M steps straight, or N, save, load, M: bit-identical parameters, on 1 and 2 threads.
    func testExactResume() throws {
        for threads in [1, 2] {
            let straight = try TrainedLM(threads: threads)
            let resumed = try TrainedLM(threads: threads)
            for i in 0..<4 { _ = try straight.step(straight.model, salt: Int32(10 + i)) }
            let path = "\(dir)/resume-\(threads).h5"
            for i in 0..<2 { _ = try resumed.step(resumed.model, salt: Int32(10 + i)) }
            try Checkpoint.save(resumed.model, to: path, carriedState: true)
            let m = try Checkpoint.load(from: path).model
            try m.setNumThreads(threads)
            for i in 2..<4 { _ = try resumed.step(m, salt: Int32(10 + i)) }
            for (p, q) in zip(m.parameters, straight.model.parameters) {
                XCTAssertEqual(p.value.array, q.value.array, "\(threads) threads: \(p.pytorchName) differs after resuming")
            }
            XCTAssertTrue(m.rng.state == straight.model.rng.state)
            XCTAssertEqual(m.optimizer.progress, straight.model.optimizer.progress)
            XCTAssertEqual(m.carriedStateTensors(), straight.model.carriedStateTensors())
        }
    }

    /// Equal models give byte-identical files (no timestamps, sorted tables), so a checkpoint's bytes
    /// identify its state.
    func testSavesAreDeterministic() throws {
        let t = try TrainedLM()
        var a = Attachments()
        for name in ["b", "a", "c"] { try a.setStrings(name, [name]); try a.setMetadata(name, name) }
        try Checkpoint.save(t.model, attachments: a, to: "\(dir)/1.h5", carriedState: true)
        try Checkpoint.save(t.model, attachments: a, to: "\(dir)/2.h5", carriedState: true)
        XCTAssertEqual(try bytes("\(dir)/1.h5"), try bytes("\(dir)/2.h5"))
    }

    /// Every ModelConfig field is a root attribute (a new field needs a new attribute).
    func testEveryConfigFieldIsSaved() throws {
        let fields = Mirror(reflecting: ModelConfig()).children.count
        let t = try TrainedLM()
        try Checkpoint.save(t.model, to: "\(dir)/m.h5")
        let names = try attributeNames("\(dir)/m.h5", "/")
        XCTAssertEqual(names.count, fields + 3, "root attributes \(names): format, format_version, library_version and one per ModelConfig field")
    }

    func testSaveFailuresKeepThePreviousFile() throws {
        let t = try TrainedLM()
        let path = "\(dir)/m.h5"
        try Checkpoint.save(t.model, to: path)
        let good = try bytes(path)
        XCTAssertThrowsError(try Checkpoint.save(t.model, to: "\(dir)/no/such/dir/m.h5")) { e in
            guard case .io(let m) = e as? SDLSTMError else { return XCTFail("\(e)") }
            XCTAssertTrue(m.contains("no/such/dir"), m)
        }
        mkdir("\(dir)/sub", 0o755)
        XCTAssertThrowsError(try Checkpoint.save(t.model, to: "\(dir)/sub")) { e in
            guard case .io = e as? SDLSTMError else { return XCTFail("\(e)") }
        }
        rmdir("\(dir)/sub")
        XCTAssertEqual(try bytes(path), good)
        XCTAssertEqual(try listDir(dir), ["m.h5"], "no temporary file is left behind")
        XCTAssertThrowsError(try Checkpoint.save(t.model, to: "")) { e in
            guard case .invalid = e as? SDLSTMError else { return XCTFail("\(e)") }
        }
    }

    /// A save killed before its rename leaves a temporary file; the next save of the target removes
    /// it once its process is gone, and the target was never touched.
    /// A new checkpoint gets 0666 less the process umask (read from /proc/self/status, which
    /// umask() cannot do without changing it); a replaced one keeps its file's mode.
    func testFileModes() throws {
        let t = try TrainedLM()
        let previous = umask(0o027)
        defer { umask(previous) }
        let path = "\(dir)/m.h5"
        var st = stat()
        try Checkpoint.save(t.model, to: path)
        XCTAssertEqual(stat(path, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o640)
        chmod(path, 0o600)
        try Checkpoint.save(t.model, to: path)
        XCTAssertEqual(stat(path, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600)
    }

    func testStaleTemporaryFilesAreRemoved() throws {
        let t = try TrainedLM()
        let path = "\(dir)/m.h5"
        try Checkpoint.save(t.model, to: path)
        // A pid that cannot be alive (above pid_max) and one that is (ours, which is skipped).
        let stale = "\(dir)/.m.h5.sdlstm-tmp-999999999-abcdef", mine = "\(dir)/.m.h5.sdlstm-tmp-\(getpid())-abcdef"
        for p in [stale, mine] { XCTAssertTrue(FILE_write(p, [1, 2, 3])) }
        _ = try Checkpoint.load(from: path)
        try Checkpoint.save(t.model, to: path)
        XCTAssertEqual(try listDir(dir), [".m.h5.sdlstm-tmp-\(getpid())-abcdef", "m.h5"])
    }

    /// Stale temporaries go before the save writes anything, so a save that then fails still
    /// removes them, and the previous checkpoint stays as it was. The failure: a descriptor limit
    /// that leaves one free descriptor, which the temporary file takes, so HDF5 cannot open it.
    func testStaleTemporariesAreRemovedBeforeTheSaveWrites() throws {
        let t = try TrainedLM()
        let path = "\(dir)/m.h5"
        try Checkpoint.save(t.model, to: path)
        let saved = try bytes(path)
        let stale = ["\(dir)/.m.h5.sdlstm-tmp-999999999-abcdef", "\(dir)/.m.h5.sdlstm-tmp-999999998-XyZ123"]
        let other = "\(dir)/.n.h5.sdlstm-tmp-999999999-abcdef"
        for p in stale + [other] { XCTAssertTrue(FILE_write(p, [1, 2, 3])) }
        let lowestFree = dup(0)
        close(lowestFree)
        var limit = rlimit(), one = rlimit()
        XCTAssertEqual(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit), 0)
        (one.rlim_cur, one.rlim_max) = (rlim_t(lowestFree + 1), limit.rlim_max)
        XCTAssertEqual(setrlimit(Int32(RLIMIT_NOFILE.rawValue), &one), 0)
        var failure: SDLSTMError?
        do { try Checkpoint.save(t.model, to: path) } catch { failure = error }
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        guard case .io = failure else { return XCTFail("the save under the descriptor limit gave \(String(describing: failure))") }
        XCTAssertEqual(try listDir(dir), [".n.h5.sdlstm-tmp-999999999-abcdef", "m.h5"])
        XCTAssertEqual(try bytes(path), saved)
        _ = try Checkpoint.load(from: path)
    }

    /// Counters a checkpoint may hold: up to 2^53 (exact in a double, which is how JSON and many
    /// readers see them); beyond it the file is refused by name, and a step at the limit fails cleanly.
    func testCountersBeyondTheirRangeAreRefused() throws {
        try expectBroken(["training/step", "2^53"]) { f in setInt(f, "step", Int64.max, in: "training") }
        try expectBroken(["training/epoch", "2^53"]) { f in setInt(f, "epoch", (1 << 53) + 1, in: "training") }
        for start in [Int64.max, TrainingProgress.maxCount] {
            let t = try TrainedLM()
            t.model.optimizer.progress.step = start
            let before = t.model.parameters.map { $0.value.array }
            XCTAssertThrowsError(try t.step(t.model, salt: 3)) { e in
                guard case .state(let m) = e as? SDLSTMError else { return XCTFail("expected .state, got \(e)") }
                XCTAssertTrue(m.contains("step"), m)
            }
            XCTAssertEqual(t.model.parameters.map { $0.value.array }, before)
            XCTAssertEqual(t.model.optimizer.progress.step, start)
        }
        var progress = TrainingProgress()
        XCTAssertThrowsError(try progress.setEpoch(TrainingProgress.maxCount + 1))
        try progress.setEpoch(TrainingProgress.maxCount)
    }

    // MARK: Bad files

    func testMissingAndUnreadableFilesAreIOErrors() throws {
        expectLoadError("\(dir)/absent.h5", io: true, mentioning: ["absent.h5"])
        expectLoadError(dir, io: true, mentioning: ["regular file"])
    }

    func testNonHDF5AndTruncatedFiles() throws {
        let t = try TrainedLM()
        let path = "\(dir)/m.h5"
        try Checkpoint.save(t.model, to: path, carriedState: true)
        let good = try bytes(path)
        XCTAssertGreaterThan(good.count, 4096)
        for cut in [0, 1, 7, 8, 9, 48, 100, 512, 1000, good.count / 4, good.count / 2, good.count * 3 / 4, good.count - 100, good.count - 1] {
            let p = "\(dir)/cut-\(cut).h5"
            XCTAssertTrue(FILE_write(p, Array(good.prefix(cut))))
            expectLoadError(p, mentioning: ["cut-\(cut).h5"])
        }
        var rng = Random(seed: 5)
        for size in [1, 100, 4096, 100_000] {
            let p = "\(dir)/random-\(size).h5"
            XCTAssertTrue(FILE_write(p, (0..<size).map { _ in UInt8(truncatingIfNeeded: rng.next()) }))
            expectLoadError(p, mentioning: ["not an sdlstm checkpoint"])
        }
        // The HDF5 signature followed by random bytes.
        let signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]
        for size in [100, 4096] {
            let p = "\(dir)/signed-random-\(size).h5"
            XCTAssertTrue(FILE_write(p, signature + (0..<size).map { _ in UInt8(truncatingIfNeeded: rng.next()) }))
            expectLoadError(p, mentioning: ["signed-random"])
        }
        // A valid HDF5 file that is not a checkpoint.
        let other = "\(dir)/other.h5"
        let f = H5Fcreate(other, sdl_h5f_acc_trunc(), hid_t(0), hid_t(0))
        XCTAssertGreaterThanOrEqual(f, 0)
        H5Fclose(f)
        expectLoadError(other, mentioning: ["not an sdlstm checkpoint", "format"])
    }

    func testStructureErrorsNameTheObject() throws {
        try expectBroken(["missing", "rnn.weight_hh_l1"]) { f in H5Ldelete(f, "rnn.weight_hh_l1", hid_t(0)) }
        try expectBroken(["unexpected", "extra.weight"]) { f in putFloats(f, "extra.weight", [2], [1, 2]) }
        try expectBroken(["expected a dataset", "decoder.bias"]) { f in
            H5Ldelete(f, "decoder.bias", hid_t(0))
            H5Gclose(H5Gcreate2(f, "decoder.bias", hid_t(0), hid_t(0), hid_t(0)))
        }
        try expectBroken(["decoder.bias", "hard-linked"]) { f in
            H5Ldelete(f, "decoder.bias", hid_t(0))
            H5Lcreate_soft("/embedding.weight", f, "decoder.bias", hid_t(0), hid_t(0))
        }
        try expectBroken(["missing group", "training"]) { f in H5Ldelete(f, "training", hid_t(0)) }
        try expectBroken(["training/rng_state"]) { f in H5Ldelete(f, "training/rng_state", hid_t(0)) }
        try expectBroken(["training/momentum"]) { f in putFloats(f, "training/momentum", [1], [0]) }
        try expectBroken(["dropout/extra"]) { f in putFloats(f, "dropout/extra", [1], [0]) }
        try expectBroken(["metadata/x"]) { f in putFloats(f, "metadata/x", [1], [0]) }
    }

    func testShapeTypeAndValueErrorsNameTheDataset() throws {
        try expectBroken(["decoder.bias", "shape [24]", "[23]"]) { f in replaceFloats(f, "decoder.bias", [24], .init(repeating: 0, count: 24)) }
        try expectBroken(["rnn.weight_ih_l0", "[32, 6]"]) { f in replaceFloats(f, "rnn.weight_ih_l0", [6, 32], .init(repeating: 0, count: 192)) }
        try expectBroken(["embedding.weight", "float64", "float32"]) { f in
            H5Ldelete(f, "embedding.weight", hid_t(0))
            putTyped(f, "embedding.weight", [23, 6], sdl_h5t_ieee_f64le(), sdl_h5t_native_double(), [Double](repeating: 0, count: 138))
        }
        try expectBroken(["decoder.bias", "int32"]) { f in
            H5Ldelete(f, "decoder.bias", hid_t(0))
            putTyped(f, "decoder.bias", [23], sdl_h5t_std_i32le(), sdl_h5t_native_int32(), [Int32](repeating: 0, count: 23))
        }
        for bad: Float in [.nan, .infinity, -.infinity] {
            try expectBroken(["rnn.bias_ih_l1", "not finite"]) { f in
                var v = [Float](repeating: 0.1, count: 32)
                v[17] = bad
                replaceFloats(f, "rnn.bias_ih_l1", [32], v)
            }
        }
        try expectBroken(["state/h", "not finite"], carriedState: true) { f in
            replaceFloats(f, "state/h", [2, 3, 8], [Float](repeating: .nan, count: 48))
        }
        try expectBroken(["state/c", "[2, batch, 8]"], carriedState: true) { f in
            replaceFloats(f, "state/c", [2, 3, 7], [Float](repeating: 0, count: 42))
        }
        try expectBroken(["state", "h and c"], carriedState: true) { f in H5Ldelete(f, "state/c", hid_t(0)) }
        try expectBroken(["training/rng_state", "all zero"]) { f in
            H5Ldelete(f, "training/rng_state", hid_t(0))
            putTyped(f, "training/rng_state", [4], sdl_h5t_std_u64le(), sdl_h5t_native_uint64(), [UInt64](repeating: 0, count: 4))
        }
        try expectBroken(["training/rng_state", "[4]"]) { f in
            H5Ldelete(f, "training/rng_state", hid_t(0))
            putTyped(f, "training/rng_state", [3], sdl_h5t_std_u64le(), sdl_h5t_native_uint64(), [UInt64](repeating: 1, count: 3))
        }
        try expectBroken(["strings/vocab", "UTF-8"]) { f in putStrings(f, "strings/vocab", [[0x61], [0xff, 0xfe]]) }
        try expectBroken(["strings/vocab", "expected strings"]) { f in replaceFloats(f, "strings/vocab", [1], [0]) }
        try expectBroken(["strings/bad name", "may hold only"]) { f in putStrings(f, "strings/bad name", [[0x61]]) }
    }

    func testAttributeErrorsNameTheAttribute() throws {
        try expectBroken(["format_version", "3"]) { f in setInt(f, "format_version", 3) }
        try expectBroken(["format_version", "1"]) { f in setInt(f, "format_version", 1) }
        try expectBroken(["format_version"]) { f in H5Adelete(f, "format_version") }
        try expectBroken(["not an sdlstm checkpoint"]) { f in setString(f, "format", "something-else") }
        try expectBroken(["hidden_size", "expected a non-negative integer"]) { f in setString(f, "hidden_size", "8") }
        try expectBroken(["use_crf", "missing"]) { f in H5Adelete(f, "use_crf") }
        try expectBroken(["unexpected attribute", "colour"]) { f in setString(f, "colour", "red") }
        try expectBroken(["task", "unknown task"]) { f in setString(f, "task", "classifier") }
        try expectBroken(["hidden_size", "must be in"]) { f in setInt(f, "hidden_size", 0) }
        try expectBroken(["bidirectional", "0 or 1"]) { f in setInt(f, "bidirectional", 2) }
        // A config that does not match the datasets.
        try expectBroken(["rnn.weight_ih_l0", "config", "hidden_size 9"]) { f in setInt(f, "hidden_size", 9) }
        try expectBroken(["embedding.weight", "config", "embed_size 7"]) { f in setInt(f, "embed_size", 7) }
        try expectBroken(["missing dataset", "rnn.weight_ih_l2", "num_layers 3"]) { f in setInt(f, "num_layers", 3) }
        try expectBroken(["unexpected object", "rnn.", "num_layers 1"]) { f in setInt(f, "num_layers", 1) }
        try expectBroken(["embedding.weight", "vocab_size 24", "[24, 6]"]) { f in setInt(f, "vocab_size", 24) }
        // Training and dropout attributes.
        try expectBroken(["training/learning_rate", "> 0"]) { f in setFloat(f, "training", "learning_rate", -1) }
        try expectBroken(["training/clip_norm", "not finite"]) { f in setFloat(f, "training", "clip_norm", .nan) }
        try expectBroken(["training/optimizer", "adamw"]) { f in setString(f, "optimizer", "adamw", in: "training") }
        try expectBroken(["training/step", "negative"]) { f in setInt(f, "step", -1, in: "training") }
        try expectBroken(["training/epoch_step", "exceeds"]) { f in setInt(f, "epoch_step", 100, in: "training") }
        try expectBroken(["dropout/output_policy", "sometimes"]) { f in setString(f, "output_policy", "sometimes", in: "dropout") }
        try expectBroken(["dropout/input", "[0, 1)"]) { f in setFloat(f, "dropout", "input_p", 1.5) }
        try expectBroken(["dropout/recurrent_p", "float32"]) { f in setString(f, "recurrent_p", "0.5", in: "dropout") }
        try expectBroken(["metadata/corpus", "expected strings"]) { f in replaceFloats(f, "metadata/corpus", [1], [0]) }
        try expectBroken(["metadata/corpus", "unexpected attribute"]) { f in setInt(f, "corpus", 3, in: "metadata") }
    }

    // MARK: The seal, and sizes checked before allocation

    /// A flipped bit anywhere in the file is found by the seal before HDF5 parses a byte.
    func testTheSealRefusesEveryDamagedByte() throws {
        let t = try TrainedLM()
        let path = "\(dir)/m.h5"
        try Checkpoint.save(t.model, to: path, carriedState: true)
        let good = try bytes(path)
        XCTAssertEqual(Array(good[0..<16]), [0x89] + Array("sdlstm-ckpt".utf8) + [0x0d, 0x0a, 0x1a, 0x0a])
        let p = "\(dir)/flipped.h5"
        for at in stride(from: 0, to: good.count, by: max(1, good.count / 300)) {
            var b = good
            b[at] ^= 1 << UInt8(at % 8)
            XCTAssertTrue(FILE_write(p, b))
            expectLoadError(p, mentioning: [at < 512 ? "checkpoint header" : "checksum mismatch"])
        }
        XCTAssertTrue(FILE_write(p, good + [0]))
        expectLoadError(p, mentioning: ["checkpoint header", "appended"])
    }

    /// The second line: damage the seal does not see (it was recomputed) is found by HDF5's
    /// checksums or the loader's checks; either way a clean E_FORMAT or a good load, never a crash.
    func testResealedDamageIsRefusedOrHarmless() throws {
        let t = try TrainedLM()
        var a = Attachments()
        try a.setStrings("vocab", (0..<23).map { "w\($0)" })
        try a.setMetadata("corpus", "ptb")
        let path = "\(dir)/m.h5"
        try Checkpoint.save(t.model, attachments: a, to: path, carriedState: true)
        let good = try bytes(path)
        let p = "\(dir)/resealed.h5"
        var refused = 0, loaded = 0
        for at in stride(from: 512, to: good.count, by: max(1, good.count / 200)) {
            var b = good
            b[at] ^= 0xff
            XCTAssertTrue(FILE_write(p, b))
            try Checkpoint.reseal(p)
            do {
                _ = try Checkpoint.load(from: p)
                loaded += 1
            } catch {
                guard case .format(let m) = error else { XCTFail("byte \(at): \(error)"); continue }
                XCTAssertTrue(m.hasPrefix(p + ": "), m)
                refused += 1
            }
        }
        XCTAssertGreaterThan(refused, loaded, "most bytes of a small checkpoint are metadata or checksummed data")
    }

    /// A small file that declares a huge model, or a dataset it does not store, is refused by name
    /// before anything of the declared size is allocated.
    func testDeclaredSizesAreCheckedBeforeAllocation() throws {
        try expectBroken(["vocab_size 4194304", "embedding.weight", "bytes of parameter datasets"]) { f in setInt(f, "vocab_size", 1 << 22) }
        try expectBroken(["hidden_size 65536", "bytes of parameter datasets"]) { f in setInt(f, "hidden_size", 65536) }
        // A carried state of batch 2^28, declared but never written.
        try expectBroken(["state/h", "2^31"], carriedState: true) { f in
            H5Ldelete(f, "state/h", hid_t(0))
            putTyped(f, "state/h", [2, 1 << 28, 8], sdl_h5t_ieee_f32le(), sdl_h5t_native_float(), [Float](), chunk: [1, 4096, 8], write: false)
        }
        try expectBroken(["state/h", "larger than the whole"], carriedState: true) { f in
            H5Ldelete(f, "state/h", hid_t(0))
            putTyped(f, "state/h", [2, 1 << 24, 8], sdl_h5t_ieee_f32le(), sdl_h5t_native_float(), [Float](), chunk: [1, 4096, 8], write: false)
        }
        try expectBroken(["state/h", "0 of its 1 chunks are stored"], carriedState: true) { f in
            H5Ldelete(f, "state/h", hid_t(0))
            putTyped(f, "state/h", [2, 3, 8], sdl_h5t_ieee_f32le(), sdl_h5t_native_float(), [Float](), write: false)
        }
        try expectBroken(["decoder.bias", "not chunked"]) { f in
            H5Ldelete(f, "decoder.bias", hid_t(0))
            putTyped(f, "decoder.bias", [23], sdl_h5t_ieee_f32le(), sdl_h5t_native_float(), [Float](repeating: 0, count: 23), contiguous: true)
        }
        try expectBroken(["decoder.bias", "compression"]) { f in
            H5Ldelete(f, "decoder.bias", hid_t(0))
            putTyped(f, "decoder.bias", [23], sdl_h5t_ieee_f32le(), sdl_h5t_native_float(), [Float](repeating: 0, count: 23), deflate: true)
        }
    }

    /// Variable-length strings live in HDF5's unchecked global heap, whose reader damaged files
    /// crash: format 2 refuses them by their type, before reading one.
    func testVariableLengthStringsAreRefusedUnread() throws {
        try expectBroken(["attribute task", "variable-length"]) { f in setString(f, "task", "language_model", variable: true) }
        try expectBroken(["metadata/corpus", "variable-length"]) { f in putVariableStrings(f, "metadata/corpus", [[0x61]]) }
    }

    /// HDF5 1.10's dense link and attribute storage (outside the object header) frees garbage
    /// pointers on some damaged heaps: checkpoints keep both in the object header, and a loader
    /// refuses the dense kind before listing it.
    func testDenseStorageIsRefusedUnread() throws {
        try expectBroken(["group dropout", "attributes kept outside the object header"]) { f in
            H5Ldelete(f, "dropout", hid_t(0))
            let g = H5Gcreate2(f, "dropout", hid_t(0), hid_t(0), hid_t(0))
            for i in 0..<9 { setInt(g, "x\(i)", 1) }
            H5Gclose(g)
        }
        try expectBroken(["group strings", "links kept outside the object header"]) { f in
            H5Ldelete(f, "strings", hid_t(0))
            let g = H5Gcreate2(f, "strings", hid_t(0), hid_t(0), hid_t(0))
            for i in 0..<9 { putStrings(g, "t\(i)", [[0x61]]) }
            H5Gclose(g)
        }
        try expectBroken(["strings/vocab", "variable-length"]) { f in putVariableStrings(f, "strings/vocab", [[0x61]]) }
    }

    // MARK: Tagger

    /// The CRF's constraints come from the tag names and scheme: a loaded tagger has both, so it
    /// decodes as the saved one did. The same parameters without them decode differently, which is
    /// what a checkpoint that dropped the names would do.
    func testTaggerKeepsTagNamesAndScheme() throws {
        let p = try TaggerProblem()
        let crf = try XCTUnwrap(p.model.crf)
        // Every sentence would rather start with I-A (id 2), which IOB2 forbids.
        var start = crf.start.value.array
        start[2] = 50
        try crf.start.setPyTorchValues(start)
        let constrained = try p.tag()
        XCTAssertTrue(constrained.allSatisfy { $0[0] != 2 }, "\(constrained)")

        let path = "\(dir)/tagger.h5"
        try Checkpoint.save(p.model, to: path)
        let loaded = try XCTUnwrap(try Checkpoint.load(from: path).model as? Tagger)
        XCTAssertEqual(loaded.tagNames, taggerTestTags)
        XCTAssertEqual(loaded.tagScheme, .iob2)
        XCTAssertEqual(try tag(loaded, p), constrained)
        try loaded.setTagNames(taggerTestTags, scheme: .none)
        XCTAssertTrue(try tag(loaded, p).allSatisfy { $0[0] == 2 }, "without the scheme the test shows nothing")

        // Each scheme comes back, and a tagger never named loads without names.
        for scheme in TagScheme.allCases {
            try p.model.setTagNames(["O", "B-Ä", "I-Ä", "B-B", "I-B"], scheme: scheme)
            try Checkpoint.save(p.model, to: path)
            let m = try XCTUnwrap(try Checkpoint.load(from: path).model as? Tagger)
            XCTAssertEqual(m.tagNames, ["O", "B-Ä", "I-Ä", "B-B", "I-B"])
            XCTAssertEqual(m.tagScheme, scheme)
        }
        try Checkpoint.save(try Tagger(p.model.config), to: path)
        let unnamed = try XCTUnwrap(try Checkpoint.load(from: path).model as? Tagger)
        XCTAssertNil(unnamed.tagNames)
        XCTAssertEqual(unnamed.tagScheme, .none)
    }

    func testTagErrorsNameTheObject() throws {
        try expectBroken(["group tags", "only a tagger"]) { f in H5Gclose(H5Gcreate2(f, "tags", hid_t(0), hid_t(0), hid_t(0))) }
        try expectBroken(["tags/scheme", "iob3"], tagger: true) { f in setString(f, "scheme", "iob3", in: "tags") }
        try expectBroken(["group tags", "missing attribute", "scheme"], tagger: true) { f in
            withObject(f, "tags") { H5Adelete($0, "scheme") }
        }
        try expectBroken(["tags/names", "1 tag names", "num_tags = 5"], tagger: true) { f in putStrings(f, "tags/names", [[0x4f]]) }
        try expectBroken(["missing dataset", "tags/names"], tagger: true) { f in H5Ldelete(f, "tags/names", hid_t(0)) }
        try expectBroken(["tags/extra"], tagger: true) { f in putFloats(f, "tags/extra", [1], [0]) }
        try expectBroken(["tags/names", "UTF-8"], tagger: true) { f in
            putStrings(f, "tags/names", [[0x4f], [0xff], [0x61], [0x62], [0x63]])
        }
    }

    /// The decoded tags of `p`'s sentences by another tagger.
    private func tag(_ model: Tagger, _ p: TaggerProblem) throws -> [[Int32]] {
        var out = [Int32](repeating: 7, count: p.batchSize * p.seqLen)
        try p.withBatch { b in try out.withUnsafeMutableBufferPointer { try model.tag(b, into: $0.baseAddress!) } }
        return (0..<p.batchSize).map { i in Array(out[(i * p.seqLen)..<(i * p.seqLen + p.sentences[i].count)]) }
    }

    // MARK: Helpers

    /// Saves a trained model, applies `edit` to the file with HDF5, and expects E_FORMAT mentioning `words`.
    /// `tagger`: a small tagger with named tags (TaggerProblem) instead of the LM.
    private func expectBroken(_ words: [String], carriedState: Bool = false, tagger: Bool = false,
                              file: StaticString = #filePath, line: UInt = #line, _ edit: (hid_t) -> Void) throws {
        let model: any Model = tagger ? try TaggerProblem().model : try TrainedLM().model
        var a = Attachments()
        try a.setStrings("vocab", ["a", "b"])
        try a.setMetadata("corpus", "ptb")
        let path = "\(dir)/broken.h5"
        try Checkpoint.save(model, attachments: a, to: path, carriedState: carriedState)
        let f = H5Fopen(path, sdl_h5f_acc_rdwr(), hid_t(0))
        XCTAssertGreaterThanOrEqual(f, 0, file: file, line: line)
        let quiet = sdl_h5_quiet_begin()  // the edits may delete what is not there
        edit(f)
        sdl_h5_quiet_end(quiet)
        XCTAssertGreaterThanOrEqual(H5Fclose(f), 0, file: file, line: line)
        // The edit changed the bytes the seal covers: recompute it, so the load gets past the seal to
        // the HDF5 object the test broke.
        XCTAssertNoThrow(try Checkpoint.reseal(path), file: file, line: line)
        expectLoadError(path, mentioning: words, file: file, line: line)
    }

    private func expectLoadError(_ path: String, io: Bool = false, mentioning words: [String],
                                 file: StaticString = #filePath, line: UInt = #line) {
        let before = Checkpoint.openHDF5Identifiers
        var printer: H5E_auto2_t?, data: UnsafeMutableRawPointer?
        H5Eget_auto2(hid_t(0), &printer, &data)
        defer {
            var after: H5E_auto2_t?, afterData: UnsafeMutableRawPointer?
            H5Eget_auto2(hid_t(0), &after, &afterData)
            XCTAssertTrue(unsafeBitCast(after, to: Int.self) == unsafeBitCast(printer, to: Int.self) && afterData == data,
                          "a load left HDF5's error printing changed", file: file, line: line)
        }
        do {
            _ = try Checkpoint.load(from: path)
            XCTFail("\(path) loaded; expected an error mentioning \(words)", file: file, line: line)
        } catch {
            switch error {
            case .format(let m) where !io, .io(let m) where io:
                for w in words { XCTAssertTrue(m.contains(w), "message \"\(m)\" does not mention \"\(w)\"", file: file, line: line) }
            default:
                XCTFail("expected \(io ? "io" : "format"), got \(error)", file: file, line: line)
            }
        }
        XCTAssertEqual(Checkpoint.openHDF5Identifiers, before, "a failed load leaked HDF5 identifiers", file: file, line: line)
    }

    private func bytes(_ path: String) throws -> [UInt8] {
        // A missing file is a failure, not a skip: the tests that read bytes guard files that must exist.
        guard let f = fopen(path, "rb") else { throw FileMissing(path: path) }
        defer { fclose(f) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n == 0 { break }
            out += buf.prefix(n)
        }
        return out
    }

    private func listDir(_ d: String) throws -> [String] {
        guard let handle = opendir(d) else { return [] }
        defer { closedir(handle) }
        var names: [String] = []
        while let e = readdir(handle) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    private func attributeNames(_ path: String, _ object: String) throws -> [String] {
        let f = H5Fopen(path, sdl_h5f_acc_rdonly(), hid_t(0))
        defer { H5Fclose(f) }
        let o = H5Oopen(f, object, hid_t(0))
        defer { H5Oclose(o) }
        var names: [String] = []
        var idx: hsize_t = 0
        _ = withUnsafeMutablePointer(to: &names) { p in
            H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_INC, &idx, { _, name, _, ctx in
                ctx!.assumingMemoryBound(to: [String].self).pointee.append(String(cString: name!))
                return 0
            }, p)
        }
        return names
    }
}

// MARK: A small trained LM

/// A 2 × 8 LM with dropout on every site, clipping, an epoch set and a few steps taken.
final class TrainedLM {
    let config: ModelConfig
    let model: LanguageModel

    init(threads: Int = 1) throws {
        var c = ModelConfig()
        (c.vocabSize, c.embedSize, c.hiddenSize, c.numLayers, c.initScale, c.seed) = (23, 6, 8, 2, 0.1, 42)
        config = c
        model = try LanguageModel(c)
        try model.setNumThreads(threads)
        try model.setDropout(DropoutSetting(policy: .structured, p: 0.3), at: .input)
        try model.setDropout(DropoutSetting(policy: .standard, p: 0.2), at: .between)
        try model.setDropout(DropoutSetting(policy: .variational, p: 0.25), at: .output)
        try model.setDropout(DropoutSetting(policy: .structuredFixed, p: 0.1), at: .recurrent)
        try model.optimizer.setLearningRate(0.7)
        try model.optimizer.setClipNorm(0.5)
        model.seed(9)
        _ = try step(model, salt: 0)
        try model.optimizer.progress.setEpoch(2)
        _ = try step(model, salt: 1)
        model.resetState()
        try model.optimizer.progress.setEpoch(2)
        _ = try step(model, salt: 2)
    }

    func ids(_ salt: Int32, _ k: Int32) -> [Int32] { (0..<Int32(15)).map { ($0 * k + 3 + salt * 5) % Int32(config.vocabSize) } }

    func step(_ m: any Model, salt: Int32) throws -> StepStats {
        let inputs = ids(salt, 7), targets = ids(salt, 5)
        return try inputs.withUnsafeBufferPointer { i in
            try targets.withUnsafeBufferPointer { t in
                try m.step(Batch(batchSize: 3, seqLen: 5, inputs: i.baseAddress!, targets: t.baseAddress!))
            }
        }
    }

    func evaluate(_ m: any Model) throws -> StepStats {
        let inputs = ids(4, 7), targets = ids(4, 5)
        return try inputs.withUnsafeBufferPointer { i in
            try targets.withUnsafeBufferPointer { t in
                try m.evaluate(Batch(batchSize: 3, seqLen: 5, inputs: i.baseAddress!, targets: t.baseAddress!))
            }
        }
    }
}

// MARK: Writing broken files with the HDF5 C API

private func FILE_write(_ path: String, _ bytes: [UInt8]) -> Bool {
    guard let f = fopen(path, "wb") else { return false }
    defer { fclose(f) }
    return bytes.isEmpty || fwrite(bytes, 1, bytes.count, f) == bytes.count
}

/// A dataset stored as checkpoints store them (chunked, Fletcher-32) unless `contiguous`.
private func putTyped<T>(_ loc: hid_t, _ name: String, _ shape: [Int], _ fileType: hid_t, _ memType: hid_t, _ values: [T],
                         contiguous: Bool = false, deflate: Bool = false, chunk: [Int]? = nil, write: Bool = true) {
    var dims = shape.map { hsize_t($0) }
    let space = H5Screate_simple(Int32(dims.count), &dims, nil)
    let dcpl = H5Pcreate(sdl_h5p_dataset_create())
    if !contiguous {
        var c = (chunk ?? shape).map { hsize_t($0) }
        H5Pset_chunk(dcpl, Int32(c.count), &c)
        if deflate { H5Pset_deflate(dcpl, 6) }
        H5Pset_fletcher32(dcpl)
    }
    let d = H5Dcreate2(loc, name, fileType, space, hid_t(0), dcpl, hid_t(0))
    precondition(d >= 0, "cannot create \(name)")
    if write { _ = values.withUnsafeBytes { H5Dwrite(d, memType, hid_t(0), hid_t(0), hid_t(0), $0.baseAddress) } }
    H5Dclose(d)
    H5Pclose(dcpl)
    H5Sclose(space)
}

private func putFloats(_ loc: hid_t, _ name: String, _ shape: [Int], _ values: [Float]) {
    putTyped(loc, name, shape, sdl_h5t_ieee_f32le(), sdl_h5t_native_float(), values)
}

private func replaceFloats(_ loc: hid_t, _ name: String, _ shape: [Int], _ values: [Float]) {
    H5Ldelete(loc, name, hid_t(0))
    putFloats(loc, name, shape, values)
}

/// A 1-D dataset of fixed-length UTF-8 strings from raw bytes (which need not be valid UTF-8).
private func putStrings(_ loc: hid_t, _ name: String, _ values: [[UInt8]]) {
    H5Ldelete(loc, name, hid_t(0))
    let width = values.map(\.count).max()!
    let type = H5Tcopy(sdl_h5t_c_s1())
    H5Tset_size(type, width)
    H5Tset_strpad(type, H5T_STR_NULLPAD)
    H5Tset_cset(type, H5T_CSET_UTF8)
    var bytes = [UInt8](repeating: 0, count: values.count * width)
    for (i, v) in values.enumerated() { bytes.replaceSubrange((i * width)..<(i * width + v.count), with: v) }
    putTyped(loc, name, [values.count], type, type, bytes)
    H5Tclose(type)
}

/// A 1-D dataset of variable-length strings, the format-1 kind that format 2 refuses unread.
private func putVariableStrings(_ loc: hid_t, _ name: String, _ values: [[UInt8]]) {
    H5Ldelete(loc, name, hid_t(0))
    let type = H5Tcopy(sdl_h5t_c_s1())
    H5Tset_size(type, sdl_h5t_variable())
    H5Tset_cset(type, H5T_CSET_UTF8)
    let copies: [UnsafeMutablePointer<CChar>?] = values.map { v in
        let p = UnsafeMutablePointer<CChar>.allocate(capacity: v.count + 1)
        for (i, b) in v.enumerated() { p[i] = CChar(bitPattern: b) }
        p[v.count] = 0
        return p
    }
    putTyped(loc, name, [values.count], type, type, copies, contiguous: true)
    for p in copies { p?.deallocate() }
    H5Tclose(type)
}

private func replaceAttribute<T>(_ obj: hid_t, _ name: String, _ fileType: hid_t, _ memType: hid_t, _ value: T) {
    H5Adelete(obj, name)
    let space = H5Screate(H5S_SCALAR)
    let a = H5Acreate2(obj, name, fileType, space, hid_t(0), hid_t(0))
    precondition(a >= 0, "cannot create attribute \(name)")
    var v = value
    _ = withUnsafeBytes(of: &v) { H5Awrite(a, memType, $0.baseAddress) }
    H5Aclose(a)
    H5Sclose(space)
}

private func withObject(_ f: hid_t, _ group: String?, _ body: (hid_t) -> Void) {
    guard let group else { return body(f) }
    let g = H5Gopen2(f, group, hid_t(0))
    body(g)
    H5Gclose(g)
}

private func setInt(_ f: hid_t, _ name: String, _ value: Int64, in group: String? = nil) {
    withObject(f, group) { replaceAttribute($0, name, sdl_h5t_std_i64le(), sdl_h5t_native_int64(), value) }
}

private func setFloat(_ f: hid_t, _ group: String, _ name: String, _ value: Float) {
    withObject(f, group) { replaceAttribute($0, name, sdl_h5t_ieee_f32le(), sdl_h5t_native_float(), value) }
}

/// A fixed-length string attribute, as checkpoints store them; `variable`: the format-1 kind.
private func setString(_ f: hid_t, _ name: String, _ value: String, in group: String? = nil, variable: Bool = false) {
    withObject(f, group) { obj in
        let type = H5Tcopy(sdl_h5t_c_s1())
        if variable {
            H5Tset_size(type, sdl_h5t_variable())
            let copy = strdup(value)
            replaceAttribute(obj, name, type, type, UnsafePointer(copy))
            free(copy)
        } else {
            let bytes = Array(value.utf8)
            H5Tset_size(type, bytes.count)
            H5Tset_strpad(type, H5T_STR_NULLPAD)
            H5Adelete(obj, name)
            let space = H5Screate(H5S_SCALAR)
            let a = H5Acreate2(obj, name, type, space, hid_t(0), hid_t(0))
            precondition(a >= 0, "cannot create attribute \(name)")
            _ = bytes.withUnsafeBytes { H5Awrite(a, type, $0.baseAddress) }
            H5Aclose(a)
            H5Sclose(space)
        }
        H5Tclose(type)
    }
}

/// A file a test expected to read is not there.
struct FileMissing: Error, CustomStringConvertible {
    let path: String
    var description: String { "cannot open \(path)" }
}
