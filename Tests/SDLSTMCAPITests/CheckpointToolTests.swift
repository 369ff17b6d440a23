import CSDLSTM
import Foundation
import Glibc
import XCTest

/// Other tools read checkpoints without sdlstm: h5dump shows the documented layout, and
/// tools/checkpoint_to_torch.py (h5py + PyTorch) computes the loss sdlstm_evaluate computes.
/// Each test skips, saying so, when its tool is missing; `make test` installs them
/// (hdf5-tools, python3-torch, python3-h5py).
final class CheckpointToolTests: XCTestCase {
    var dir = ""
    static let repo: String = {
        // Tests/SDLSTMCAPITests/CheckpointToolTests.swift -> the repository root.
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()

    override func setUp() { dir = makeTemporaryDirectory("sdlstm-ckpt-tools") }
    override func tearDown() { removeDirectory(dir) }

    /// A trained 2-layer LM over a small word vocabulary, with the vocabulary attached.
    private func trainedModel() -> (OpaquePointer, [String]) {
        let vocab = ["<eos>", "<unk>"] + (0..<38).map { "w\($0)" }
        let m = makeModel(smallConfig(vocab: Int32(vocab.count), embed: 12, hidden: 16, layers: 2, initScale: 0.3))
        XCTAssertEqual(setStrings(m, "vocab", vocab), OK)
        XCTAssertEqual(sdlstm_set_dropout(m, SDLSTM_SITE_INPUT, SDLSTM_POLICY_STRUCTURED, 0.3), OK)
        XCTAssertEqual(sdlstm_set_learning_rate(m, 1), OK)
        for i in 0..<5 { XCTAssertEqual(runBatch(sdlstm_step, m, Batch(batchSize: 4, seqLen: 6, vocab: Int32(vocab.count), salt: Int32(i))).0, OK) }
        return (m, vocab)
    }

    func testH5DumpShowsTheDocumentedLayout() throws {
        guard let h5dump = ["/usr/bin/h5dump", "/usr/local/bin/h5dump"].first(where: { (p: String) in access(p, X_OK) == 0 }) else {
            throw XCTSkip("h5dump is not installed (Debian: hdf5-tools): skipping the layout check")
        }
        let (m, _) = trainedModel()
        defer { sdlstm_model_free(m) }
        XCTAssertEqual(sdlstm_set_metadata(m, "corpus", "synthetic"), OK)
        let path = "\(dir)/m.h5"
        XCTAssertEqual(sdlstm_save(m, path, UInt32(SDLSTM_SAVE_CARRIED_STATE.rawValue)), OK, lastError())
        let (rc, out) = runCommand([h5dump, "-H", path])
        XCTAssertEqual(rc, 0, out)
        let text = out.replacingOccurrences(of: " +", with: " ", options: .regularExpression)
        // One float32 dataset per parameter, named and shaped as PyTorch's state_dict (V 40, E 12, H 16).
        let shapes: [(String, String)] = [
            ("embedding.weight", "( 40, 12 )"),
            ("rnn.weight_ih_l0", "( 64, 12 )"), ("rnn.weight_hh_l0", "( 64, 16 )"),
            ("rnn.bias_ih_l0", "( 64 )"), ("rnn.bias_hh_l0", "( 64 )"),
            ("rnn.weight_ih_l1", "( 64, 16 )"), ("rnn.weight_hh_l1", "( 64, 16 )"),
            ("rnn.bias_ih_l1", "( 64 )"), ("rnn.bias_hh_l1", "( 64 )"),
            ("decoder.weight", "( 40, 16 )"), ("decoder.bias", "( 40 )"),
            ("state/h", "( 2, 4, 16 )"), ("state/c", "( 2, 4, 16 )"),
        ]
        for (name, dims) in shapes {
            let leaf = name.split(separator: "/").last!
            let block = "DATASET \"\(leaf)\" {\n DATATYPE H5T_IEEE_F32LE\n DATASPACE SIMPLE { \(dims) / \(dims) }"
            XCTAssertTrue(text.contains(block), "h5dump -H lacks \(block)\n\(text)")
        }
        XCTAssertTrue(text.contains("DATASET \"rng_state\" {\n DATATYPE H5T_STD_U64LE\n DATASPACE SIMPLE { ( 4 ) / ( 4 ) }"))
        XCTAssertTrue(text.contains("DATASET \"vocab\" {\n DATATYPE H5T_STRING {"))
        XCTAssertTrue(text.contains("DATASET \"corpus\" {\n DATATYPE H5T_STRING {"))
        for group in ["training", "dropout", "state", "strings", "metadata"] {
            XCTAssertTrue(text.contains("GROUP \"\(group)\" {"), "no group \(group)")
        }
        for attr in ["format", "format_version", "library_version", "task", "vocab_size", "embed_size", "hidden_size",
                     "num_layers", "init_scale", "seed", "learning_rate", "clip_norm", "step", "epoch", "epoch_step",
                     "optimizer", "input_policy", "input_p", "recurrent_policy"] {
            XCTAssertTrue(text.contains("ATTRIBUTE \"\(attr)\" {"), "no attribute \(attr)")
        }
        let (rc2, full) = runCommand([h5dump, "-a", "/format", "-a", "/format_version", "-a", "/task", "-a", "/hidden_size",
                                      "-a", "/library_version", path])
        XCTAssertEqual(rc2, 0, full)
        // library_version is the core's Checkpoint.libraryVersion: it must be sdlstm_version().
        let version = "\"\(String(cString: sdlstm_version()))\""
        for value in ["\"sdlstm-checkpoint\"", "(0): 2\n", "\"language_model\"", "(0): 16\n", version] {
            XCTAssertTrue(full.contains(value), "h5dump -a lacks \(value)\n\(full)")
        }
        // The seal is a 512-byte user block; every dataset is chunked with a Fletcher-32 checksum,
        // and no string is variable-length.
        let (rc3, props) = runCommand([h5dump, "-B", "-p", "-H", path])
        XCTAssertEqual(rc3, 0, props)
        XCTAssertTrue(props.contains("USERBLOCK_SIZE 512"), props)
        let lines = props.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        let datasets = lines.filter { $0.hasPrefix("DATASET \"") }.count
        XCTAssertEqual(datasets, shapes.count + 3, "datasets: the parameters, state, rng_state, vocab, corpus")
        XCTAssertEqual(lines.filter { $0 == "CHECKSUM FLETCHER32" }.count, datasets, props)
        XCTAssertEqual(lines.filter { $0.hasPrefix("CHUNKED (") }.count, datasets, props)
        XCTAssertFalse(props.contains("H5T_VARIABLE"), props)
        // The seal checks with the standard library alone (tools/sdlstm_checkpoint.py).
        let python = "/usr/bin/python3"
        if access(python, X_OK) == 0 {
            let tool = "\(Self.repo)/tools/sdlstm_checkpoint.py"
            XCTAssertEqual(runCommand([python, tool, "verify", path]).0, 0)
            var bytes = try readBytes(path)
            bytes[bytes.count / 2] ^= 4
            XCTAssertTrue(writeBytes(path, bytes))
            let (bad, message) = runCommand([python, tool, "verify", path])
            XCTAssertEqual(bad, 1, message)
            XCTAssertTrue(message.contains("checksum mismatch"), message)
        }
    }

    /// The PyTorch model the tool builds from the checkpoint gives sdlstm_evaluate's loss to 1e-4
    /// relative: on a batch from the saved carried state, and over a text tokenised with the
    /// checkpoint's own vocabulary, batched as examples/lm/lm.c does from a zero state. (Each run of
    /// the tool costs seconds of `import torch`, hence two.)
    func testPyTorchCrossCheck() throws {
        let python = "/usr/bin/python3"
        guard access(python, X_OK) == 0, runCommand([python, "-c", "import torch, h5py"]).0 == 0 else {
            throw XCTSkip("python3-torch and python3-h5py are not installed: skipping the PyTorch cross-check")
        }
        let tool = "\(Self.repo)/tools/checkpoint_to_torch.py"
        let (m, vocab) = trainedModel()
        defer { sdlstm_model_free(m) }
        let path = "\(dir)/m.h5"
        XCTAssertEqual(sdlstm_save(m, path, UInt32(SDLSTM_SAVE_CARRIED_STATE.rawValue)), OK, lastError())
        let batch = Batch(batchSize: 4, seqLen: 9, vocab: Int32(vocab.count), salt: 11)
        let batchFile = "\(dir)/batch.json"
        func rows(_ ids: [Int32]) -> String {
            "[" + (0..<Int(batch.batchSize)).map { b in
                "[" + ids[b * Int(batch.seqLen)..<(b + 1) * Int(batch.seqLen)].map(String.init).joined(separator: ",") + "]"
            }.joined(separator: ",") + "]"
        }
        XCTAssertTrue(writeBytes(batchFile, Array("{\"inputs\": \(rows(batch.inputs)), \"targets\": \(rows(batch.targets))}".utf8)))

        // From the carried state: the saved model goes on where it stopped.
        let (s1, carried) = runBatch(sdlstm_evaluate, m, batch)
        XCTAssertEqual(s1, OK, lastError())
        try crossCheck(python, tool, [path, "--batch", batchFile, "--carried-state"], carried.loss, "batch, carried state")

        // A text (from a zero state), tokenised by the tool with the stored vocabulary (unknown words become <unk>).
        var rng = SystemRandomNumberGenerator()
        var lines: [String] = []
        for _ in 0..<60 {
            lines.append((0..<Int.random(in: 3...12, using: &rng)).map { _ in
                Int.random(in: 0..<20, using: &rng) == 0 ? "oov\(Int.random(in: 0..<5, using: &rng))" : vocab[Int.random(in: 2..<vocab.count, using: &rng)]
            }.joined(separator: " "))
        }
        let textFile = "\(dir)/text.txt"
        XCTAssertTrue(writeBytes(textFile, Array((lines.joined(separator: "\n") + "\n").utf8)))
        let index = Dictionary(uniqueKeysWithValues: vocab.enumerated().map { ($1, Int32($0)) })
        let ids = lines.flatMap { $0.split(separator: " ").map { index[String($0)] ?? 1 } + [0] }
        let (streams, bptt) = (5, 7)
        let length = ids.count / streams
        XCTAssertEqual(sdlstm_reset_state(m), OK)
        var sum = 0.0, tokens = 0
        for t0 in stride(from: 0, to: length - 1, by: bptt) {
            let t = min(bptt, length - 1 - t0)
            var b = Batch(batchSize: Int32(streams), seqLen: Int32(t), vocab: 2)
            b.inputs = []
            b.targets = []
            for r in 0..<streams {
                let start: Int = r * length + t0
                b.inputs += ids[start..<start + t]
                b.targets += ids[start + 1..<start + 1 + t]
            }
            let (s, st) = runBatch(sdlstm_evaluate, m, b)
            XCTAssertEqual(s, OK, lastError())
            sum += st.loss * Double(st.tokens)
            tokens += Int(st.tokens)
        }
        try crossCheck(python, tool, [path, "--text", textFile, "--batch-size", "\(streams)", "--bptt", "\(bptt)"],
                       sum / Double(tokens), "text, \(tokens) tokens")
    }

    private func crossCheck(_ python: String, _ tool: String, _ args: [String], _ expected: Double, _ what: String) throws {
        let (rc, out) = runCommand([python, tool] + args)
        XCTAssertEqual(rc, 0, "\(what): \(out)")
        guard let line = out.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
              let range = line.range(of: #""loss": [-0-9.eE+]+"#, options: .regularExpression),
              let torchLoss = Double(line[range].dropFirst(8)) else {
            return XCTFail("\(what): no loss in the tool's output: \(out)")
        }
        let rel = abs(torchLoss - expected) / abs(expected)
        print("PyTorch cross-check (\(what)): sdlstm \(expected), PyTorch \(torchLoss), relative difference \(rel)")
        XCTAssertLessThan(rel, 1e-4, "\(what): sdlstm \(expected) vs PyTorch \(torchLoss)")
    }
}

/// Runs a command, returning its exit status and its stdout and stderr together.
func runCommand(_ argv: [String]) -> (Int32, String) {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { return (-1, "pipe failed") }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
    posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
    posix_spawn_file_actions_addclose(&actions, fds[0])
    posix_spawn_file_actions_addclose(&actions, fds[1])
    let args = argv.map { strdup($0) } + [nil]
    defer { args.forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, argv[0], &actions, nil, args, environ)
    close(fds[1])
    guard rc == 0 else { close(fds[0]); return (-1, "cannot run \(argv[0]): \(String(cString: strerror(rc)))") }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(fds[0], &chunk, chunk.count)
        if n <= 0 { break }
        out += chunk.prefix(n)
    }
    close(fds[0])
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    let exited = status & 0x7f == 0
    return (exited ? (status >> 8) & 0xff : -1, String(decoding: out, as: UTF8.self))
}
