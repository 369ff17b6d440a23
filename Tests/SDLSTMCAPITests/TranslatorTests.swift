import CSDLSTM
import Foundation
import XCTest

/// The translation section of the ABI: seq2seq config and batches (both sides padded),
/// sdlstm_translate's options and errors, and checkpoints of a seq2seq model.
final class TranslatorTests: XCTestCase {
    /// Weights near Float.greatestFiniteMagnitude (here from init_scale) overflow to NaN scores:
    /// E_NUMERIC with nothing written, greedy and beam alike, where the beam search used to trap.
    func testOverflowingModelIsNumeric() {
        var c = seq2seqConfig()
        c.init_scale = 3e38
        let m = makeModel(c)
        defer { sdlstm_model_free(m) }
        for beam: Int32 in [1, 3] {
            let (s, tokens, lengths, scores) = translate(m, options: options(beam: beam))
            XCTAssertEqual(s, E_NUMERIC, "beam \(beam): \(statusName(s)) \(lastError())")
            XCTAssertTrue(mentions(lastError(), ["NaN"]), lastError())
            XCTAssertEqual(tokens, [Int32](repeating: 77, count: tokens.count))
            XCTAssertEqual(lengths, [0, 0, 0])
            XCTAssertEqual(scores, [0, 0, 0])
        }
    }

    func testTrainTranslateAndErrors() {
        let model = makeModel(seq2seqConfig())
        defer { sdlstm_model_free(model) }
        XCTAssertEqual(sdlstm_set_dropout(model, SDLSTM_SITE_RECURRENT, SDLSTM_POLICY_STRUCTURED, 0.5), OK)
        XCTAssertEqual(sdlstm_set_dropout(model, SDLSTM_SITE_BETWEEN, SDLSTM_POLICY_STRUCTURED, 0.5), OK)
        var stats = sdlstm_stats()
        stats.struct_size = MemoryLayout<sdlstm_stats>.size
        XCTAssertEqual(PairBatch().with { sdlstm_step(model, $0, &stats) }, OK, lastError())
        XCTAssertEqual(stats.tokens, 3 + 4 + 1)
        XCTAssertGreaterThan(stats.skipped_macs_fraction, 0)
        XCTAssertEqual(PairBatch().with { sdlstm_evaluate(model, $0, &stats) }, OK, lastError())

        let (s, tokens, lengths, scores) = translate(model)
        XCTAssertEqual(s, OK, lastError())
        for b in 0..<3 {
            XCTAssert((0...7).contains(lengths[b]))
            XCTAssert(scores[b] < 0 && scores[b].isFinite)
            for j in 0..<7 { XCTAssertEqual(tokens[b * 7 + j] == -1, j >= lengths[b], "row \(b) column \(j)") }
            for j in 0..<Int(lengths[b]) { XCTAssert((0..<10).contains(tokens[b * 7 + j]) && tokens[b * 7 + j] != 1) }
        }
        // Decoding changes nothing: the same call gives the same result; targets are not read.
        XCTAssertEqual(translate(model).1, tokens)
        XCTAssertEqual(translate(model, edit: { $0.targets = nil }).1, tokens)

        func expectInvalid(_ result: (sdlstm_status, [Int32], [Int32], [Double]), _ fragment: String,
                           line: UInt = #line) {
            XCTAssertEqual(result.0, E_INVALID, line: line)
            XCTAssert(lastError().contains(fragment), "\(lastError()) lacks \(fragment)", line: line)
        }
        var o = options()
        o.bos_id = 10
        expectInvalid(translate(model, options: o), "bos_id")
        o = options(beam: 0)
        expectInvalid(translate(model, options: o), "beam_size")
        o = options(maxLen: 0)
        expectInvalid(translate(model, options: o), "max_len")
        o = options()
        o.length_penalty = .nan
        expectInvalid(translate(model, options: o), "length_penalty")
        o = options()
        o.struct_size = 8
        expectInvalid(translate(model, options: o), "options->struct_size")
        expectInvalid(translate(model, edit: { $0.lengths = nil; $0.inputs = UnsafePointer(bitPattern: 0) }), "inputs")
        var bad = PairBatch()
        bad.sources[0] = 9
        expectInvalid(translate(model, bad), "inputs[0] = 9")
        bad = PairBatch()
        bad.lengths[1] = 6
        expectInvalid(translate(model, bad), "lengths[1] = 6")

        var o2 = options()
        XCTAssertEqual(PairBatch().with { sdlstm_translate(nil, $0, &o2, nil, nil, nil) }, E_INVALID)
        XCTAssertEqual(PairBatch().with { sdlstm_translate(model, $0, &o2, nil, nil, nil) }, E_INVALID)
        XCTAssert(lastError().contains("tokens"))

        // Training batches: target rows need <bos> and <eos> at least, ids in range.
        bad = PairBatch()
        bad.targetLengths[2] = 1
        XCTAssertEqual(bad.with { sdlstm_step(model, $0, nil) }, E_INVALID)
        XCTAssert(lastError().contains("target_lengths[2] = 1"), lastError())
        bad = PairBatch()
        bad.targets[7] = 10
        XCTAssertEqual(bad.with { sdlstm_step(model, $0, nil) }, E_INVALID)
        XCTAssert(lastError().contains("targets[7] = 10"), lastError())
        XCTAssertEqual(PairBatch().with({ $0.target_len = 1 }) { sdlstm_evaluate(model, $0, nil) }, E_INVALID)
        XCTAssertEqual(translate(model).1, tokens, "failed calls changed the model")
    }

    func testTranslateNeedsASeq2SeqModel() {
        let lm = makeModel(smallConfig())
        defer { sdlstm_model_free(lm) }
        XCTAssertEqual(translate(lm).0, E_INVALID)
        XCTAssert(lastError().contains("SDLSTM_TASK_SEQ2SEQ"), lastError())
    }

    func testCheckpointRoundTripTranslatesTheSame() throws {
        let model = makeModel(seq2seqConfig())
        defer { sdlstm_model_free(model) }
        XCTAssertEqual(PairBatch().with { sdlstm_step(model, $0, nil) }, OK, lastError())
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sdlstm-seq2seq-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("model.h5").path
        XCTAssertEqual(sdlstm_save(model, path, 0), OK, lastError())
        var loaded: OpaquePointer?
        XCTAssertEqual(sdlstm_load(path, &loaded), OK, lastError())
        defer { sdlstm_model_free(loaded) }
        var c = sdlstm_config()
        c.struct_size = MemoryLayout<sdlstm_config>.size
        XCTAssertEqual(sdlstm_get_config(loaded, &c), OK)
        XCTAssertEqual(c.bidirectional, 1)
        XCTAssertEqual(c.input_feeding, 1)
        XCTAssertEqual(c.target_vocab_size, 10)
        let (a, b) = (translate(model), translate(loaded))
        XCTAssertEqual(a.1, b.1)
        XCTAssertEqual(a.3, b.3)
        // Both train on identically.
        var sa = sdlstm_stats(), sb = sdlstm_stats()
        (sa.struct_size, sb.struct_size) = (MemoryLayout<sdlstm_stats>.size, MemoryLayout<sdlstm_stats>.size)
        XCTAssertEqual(PairBatch().with { sdlstm_step(model, $0, &sa) }, OK)
        XCTAssertEqual(PairBatch().with { sdlstm_step(loaded, $0, &sb) }, OK)
        XCTAssertEqual(sa.loss, sb.loss)
    }
}

// Shared with StructSizeTests: a small seq2seq model, a padded batch of pairs, decode options.

func seq2seqConfig() -> sdlstm_config {
    var c = sdlstm_config()
    c.struct_size = MemoryLayout<sdlstm_config>.size
    let s = sdlstm_config_init(&c, SDLSTM_TASK_SEQ2SEQ)
    precondition(s == SDLSTM_OK, "sdlstm_config_init: \(lastError())")
    (c.vocab_size, c.target_vocab_size, c.embed_size, c.hidden_size, c.num_layers) = (9, 10, 6, 8, 2)
    (c.init_scale, c.seed) = (0.3, 3)
    return c
}

/// 3 pairs: sources of lengths 4, 2, 3 in 5 columns, targets <bos>=0 … <eos>=1 of lengths 4, 5, 2
/// in 6 columns; garbage in the padding.
struct PairBatch {
    var sources: [Int32] = [2, 3, 4, 5, -1, 6, 7, 99, 99, 99, 8, 2, 3, -5, 40]
    var targets: [Int32] = [0, 4, 5, 1, 70, 70, 0, 6, 7, 8, 1, -3, 0, 1, 50, 50, 50, 50]
    var lengths: [Int32] = [4, 2, 3]
    var targetLengths: [Int32] = [4, 5, 2]

    func with<R>(_ edit: (inout sdlstm_batch) -> Void = { _ in }, _ body: (UnsafePointer<sdlstm_batch>) -> R) -> R {
        sources.withUnsafeBufferPointer { s in
            targets.withUnsafeBufferPointer { t in
                lengths.withUnsafeBufferPointer { l in
                    targetLengths.withUnsafeBufferPointer { tl in
                        var b = sdlstm_batch()
                        b.struct_size = MemoryLayout<sdlstm_batch>.size
                        (b.batch_size, b.seq_len, b.target_len) = (3, 5, 6)
                        (b.inputs, b.targets, b.lengths, b.target_lengths) = (s.baseAddress, t.baseAddress, l.baseAddress, tl.baseAddress)
                        edit(&b)
                        return body(&b)
                    }
                }
            }
        }
    }
}

func options(beam: Int32 = 3, maxLen: Int32 = 7) -> sdlstm_decode_options {
    var o = sdlstm_decode_options()
    o.struct_size = MemoryLayout<sdlstm_decode_options>.size
    (o.bos_id, o.eos_id, o.beam_size, o.max_len, o.length_penalty) = (0, 1, beam, maxLen, 1)
    return o
}

/// Translates the batch's sources: tokens (B × max_len), lengths, scores.
func translate(_ model: OpaquePointer?, _ batch: PairBatch = PairBatch(), options o: sdlstm_decode_options? = nil,
               edit: (inout sdlstm_batch) -> Void = { _ in }) -> (sdlstm_status, [Int32], [Int32], [Double]) {
    var o = o ?? options()
    var tokens = [Int32](repeating: 77, count: 3 * Int(max(o.max_len, 1))), lengths = [Int32](repeating: 0, count: 3)
    var scores = [Double](repeating: 0, count: 3)
    let s = batch.with(edit) { b in sdlstm_translate(model, b, &o, &tokens, &lengths, &scores) }
    return (s, tokens, lengths, scores)
}
