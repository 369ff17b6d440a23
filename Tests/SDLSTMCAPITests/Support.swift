import CSDLSTM
import XCTest

// Helpers shared by the C ABI tests: small models, fixed batches, and a lockstep "twin" check that a
// failed call left the model exactly as it was.

let OK = SDLSTM_OK
let E_INVALID = SDLSTM_E_INVALID
let E_STATE = SDLSTM_E_STATE
let E_NUMERIC = SDLSTM_E_NUMERIC

func lastError() -> String { String(cString: sdlstm_last_error()) }
func statusName(_ s: sdlstm_status) -> String { String(cString: sdlstm_status_name(s)) }

/// A config filled by sdlstm_config_init and then resized.
func smallConfig(vocab: Int32 = 23, embed: Int32 = 6, hidden: Int32 = 8, layers: Int32 = 2,
                 initScale: Float = 0.1, seed: UInt64 = 42) -> sdlstm_config {
    var c = sdlstm_config()
    c.struct_size = MemoryLayout<sdlstm_config>.size
    let s = sdlstm_config_init(&c, SDLSTM_TASK_LANGUAGE_MODEL)
    precondition(s == SDLSTM_OK, "sdlstm_config_init: \(lastError())")
    c.vocab_size = vocab
    c.embed_size = embed
    c.hidden_size = hidden
    c.num_layers = layers
    c.init_scale = initScale
    c.seed = seed
    return c
}

/// Creates a model or fails the test (and traps: nothing below can run without it).
func makeModel(_ config: sdlstm_config, file: StaticString = #filePath, line: UInt = #line) -> OpaquePointer {
    var c = config
    var out: OpaquePointer?
    let s = sdlstm_model_create(&c, &out)
    XCTAssertEqual(s, OK, "sdlstm_model_create: \(statusName(s)) \(lastError())", file: file, line: line)
    guard let out else { fatalError("sdlstm_model_create failed: \(statusName(s)) \(lastError())") }
    return out
}

/// A batch-major batch of token ids whose buffers live as long as the value.
struct Batch {
    var batchSize: Int32
    var seqLen: Int32
    var inputs: [Int32]
    var targets: [Int32]

    /// Deterministic ids in [0, vocab).
    init(batchSize: Int32, seqLen: Int32, vocab: Int32, salt: Int32 = 0) {
        self.batchSize = batchSize
        self.seqLen = seqLen
        let n = Int32(batchSize * seqLen)
        inputs = (0..<n).map { ($0 * 7 + 3 + salt) % vocab }
        targets = (0..<n).map { ($0 * 5 + 1 + 2 * salt) % vocab }
    }

    /// Calls body with an sdlstm_batch pointing at the buffers; `edit` may corrupt it first.
    func with<R>(_ edit: (inout sdlstm_batch) -> Void = { _ in },
                 _ body: (UnsafePointer<sdlstm_batch>) -> R) -> R {
        inputs.withUnsafeBufferPointer { inp in
            targets.withUnsafeBufferPointer { tgt in
                var b = sdlstm_batch()
                b.struct_size = MemoryLayout<sdlstm_batch>.size
                (b.batch_size, b.seq_len, b.inputs, b.targets) = (batchSize, seqLen, inp.baseAddress, tgt.baseAddress)
                edit(&b)
                return body(&b)
            }
        }
    }
}

func freshStats() -> sdlstm_stats {
    var s = sdlstm_stats()
    s.struct_size = MemoryLayout<sdlstm_stats>.size
    return s
}

typealias BatchCall = (OpaquePointer?, UnsafePointer<sdlstm_batch>?, UnsafeMutablePointer<sdlstm_stats>?) -> sdlstm_status

/// Runs step or evaluate on a batch; returns the status and the stats.
func runBatch(_ fn: BatchCall, _ model: OpaquePointer, _ batch: Batch) -> (sdlstm_status, sdlstm_stats) {
    var stats = freshStats()
    let s = batch.with { fn(model, $0, &stats) }
    return (s, stats)
}

/// Doubles equal bit for bit (NaN equal to the same NaN).
func sameBits(_ a: Double, _ b: Double) -> Bool { a.bitPattern == b.bitPattern || (a.isNaN && b.isNaN) }

/// True if `message` matches one of the case-insensitive regex patterns.
func mentions(_ message: String, _ patterns: [String]) -> Bool {
    patterns.contains { p in
        guard let re = try? Regex(p).ignoresCase() else { return false }
        return message.firstMatch(of: re) != nil
    }
}

/// Two models built and configured identically, driven in lockstep by every successful call. Failing
/// calls go to `model` only; after each one both evaluate a fixed batch, which must give bit-identical
/// results (parameters and carried state unchanged), and `finish()` steps both to check that the
/// hyper-parameters, dropout settings and random stream were unchanged too.
final class Twins {
    let model: OpaquePointer
    let twin: OpaquePointer
    let config: sdlstm_config
    /// The fixed batch both models evaluate after every failure (its batch size must fit the carried state).
    var probe: Batch
    let file: StaticString
    let line: UInt

    init(_ config: sdlstm_config = smallConfig(), dropout: Bool = true,
         file: StaticString = #filePath, line: UInt = #line) {
        self.config = config
        self.file = file
        self.line = line
        model = makeModel(config, file: file, line: line)
        twin = makeModel(config, file: file, line: line)
        probe = Batch(batchSize: 3, seqLen: 5, vocab: config.vocab_size)
        both { sdlstm_set_num_threads($0, 1) }
        both { sdlstm_set_learning_rate($0, 0.5) }
        both { sdlstm_set_clip_norm($0, 1.0) }
        if dropout {
            var sites = [SDLSTM_SITE_INPUT, SDLSTM_SITE_OUTPUT, SDLSTM_SITE_RECURRENT]
            if config.num_layers >= 2 { sites.append(SDLSTM_SITE_BETWEEN) }
            for site in sites { both { sdlstm_set_dropout($0, site, SDLSTM_POLICY_STRUCTURED, 0.25) } }
        }
        both { sdlstm_set_seed($0, 9) }
        // Give the model some carried state and a used random stream before anything fails.
        both { sdlstm_reset_state($0) }
        bothStep(probe, file: file, line: line)
        assertSame("setup", file: file, line: line)
    }

    deinit {
        sdlstm_model_free(model)
        sdlstm_model_free(twin)
    }

    /// A call that must succeed, made on both models.
    func both(_ call: (OpaquePointer) -> sdlstm_status, file: StaticString? = nil, line: UInt? = nil) {
        for m in [model, twin] {
            let s = call(m)
            XCTAssertEqual(s, OK, "expected OK, got \(statusName(s)): \(lastError())", file: file ?? self.file, line: line ?? self.line)
        }
    }

    /// A step on both models; their stats must agree bit for bit.
    @discardableResult
    func bothStep(_ batch: Batch, file: StaticString = #filePath, line: UInt = #line) -> sdlstm_stats {
        let (s1, a) = runBatch(sdlstm_step, model, batch)
        let (s2, b) = runBatch(sdlstm_step, twin, batch)
        XCTAssertEqual(s1, OK, "step: \(statusName(s1)) \(lastError())", file: file, line: line)
        XCTAssertEqual(s2, OK, "twin step: \(statusName(s2)) \(lastError())", file: file, line: line)
        assertStatsEqual(a, b, "step", file: file, line: line)
        return a
    }

    /// Both models evaluate the probe batch; results must be bit-identical.
    func assertSame(_ context: String = "", file: StaticString? = nil, line: UInt? = nil) {
        let (s1, a) = runBatch(sdlstm_evaluate, model, probe)
        let (s2, b) = runBatch(sdlstm_evaluate, twin, probe)
        XCTAssertEqual(s1, OK, "evaluate after \(context): \(statusName(s1)) \(lastError())", file: file ?? self.file, line: line ?? self.line)
        XCTAssertEqual(s2, OK, "twin evaluate after \(context): \(statusName(s2)) \(lastError())", file: file ?? self.file, line: line ?? self.line)
        assertStatsEqual(a, b, "evaluate after \(context)", file: file ?? self.file, line: line ?? self.line)
    }

    /// `call` on `model` alone must fail with `expected`, set a message that matches one of `patterns`,
    /// and leave the model as it was.
    func expectFailure(_ expected: sdlstm_status, _ what: String, mentioning patterns: [String],
                       file: StaticString = #filePath, line: UInt = #line,
                       _ call: (OpaquePointer) -> sdlstm_status) {
        let s = call(model)
        let message = lastError()
        XCTAssertEqual(s, expected, "\(what): expected \(statusName(expected)), got \(statusName(s)) (\(message))", file: file, line: line)
        if s != OK {
            XCTAssertFalse(message.isEmpty, "\(what): sdlstm_last_error() is empty", file: file, line: line)
            XCTAssertTrue(mentions(message, patterns), "\(what): message \"\(message)\" does not mention \(patterns)",
                          file: file, line: line)
        }
        assertSame(what, file: file, line: line)
    }

    /// Two more steps and an evaluation on both: anything a failed call changed shows up here.
    func finish(file: StaticString = #filePath, line: UInt = #line) {
        bothStep(probe, file: file, line: line)
        bothStep(Batch(batchSize: probe.batchSize, seqLen: probe.seqLen, vocab: config.vocab_size, salt: 4),
                 file: file, line: line)
        assertSame("finish", file: file, line: line)
    }
}

func assertStatsEqual(_ a: sdlstm_stats, _ b: sdlstm_stats, _ context: String,
                      file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertTrue(sameBits(a.loss, b.loss), "\(context): loss \(a.loss) vs twin \(b.loss)", file: file, line: line)
    XCTAssertEqual(a.tokens, b.tokens, "\(context): tokens", file: file, line: line)
    XCTAssertTrue(sameBits(a.grad_norm, b.grad_norm), "\(context): grad_norm \(a.grad_norm) vs twin \(b.grad_norm)",
                  file: file, line: line)
    XCTAssertTrue(sameBits(a.skipped_macs_fraction, b.skipped_macs_fraction),
                  "\(context): skipped_macs_fraction \(a.skipped_macs_fraction) vs twin \(b.skipped_macs_fraction)",
                  file: file, line: line)
}
