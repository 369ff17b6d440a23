import CSDLSTM
import XCTest

/// The sequence-labelling section of the ABI: tagger config and batches (lengths, characters),
/// sdlstm_set_tag_names, sdlstm_tag, and the conlleval span-F1 counter.
final class TaggerTests: XCTestCase {
    let names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]

    func taggerConfig(vocab: Int32 = 11, embed: Int32 = 6, hidden: Int32 = 8, layers: Int32 = 1,
                      chars: Int32 = 9, crf: Bool = true) -> sdlstm_config {
        var c = sdlstm_config()
        c.struct_size = MemoryLayout<sdlstm_config>.size
        let s = sdlstm_config_init(&c, SDLSTM_TASK_TAGGER)
        precondition(s == SDLSTM_OK, "sdlstm_config_init: \(lastError())")
        (c.vocab_size, c.embed_size, c.hidden_size, c.num_layers) = (vocab, embed, hidden, layers)
        (c.num_tags, c.char_vocab_size, c.char_embed_size, c.char_hidden_size) = (Int32(names.count), chars, 4, 6)
        c.use_crf = crf ? 1 : 0
        c.init_scale = 0.3
        c.seed = 5
        return c
    }

    /// A padded tagger batch: 3 sentences of lengths 4, 2, 3 in T = 5, garbage in the padding.
    struct TagBatch {
        var inputs: [Int32] = [1, 2, 3, 4, -1, 5, 6, 99, 99, 99, 7, 8, 9, -5, 0]
        var targets: [Int32] = [0, 1, 2, 0, 77, 3, 4, -2, 9, 9, 1, 0, 3, 50, 50]
        var lengths: [Int32] = [4, 2, 3]
        var wordLengths: [Int32] = [2, 3, 1, 3, 0, 1, 2, 0, 0, 0, 3, 3, 2, -4, 9]
        var chars: [Int32]
        let maxWordLen: Int32 = 3

        init() {
            chars = (0..<45).map { Int32(($0 * 5 + 1) % 9) }
            chars[4 * 3] = -8  // inside padding: never read
        }

        func with<R>(_ edit: (inout sdlstm_batch) -> Void = { _ in }, _ body: (UnsafePointer<sdlstm_batch>) -> R) -> R {
            inputs.withUnsafeBufferPointer { i in
                targets.withUnsafeBufferPointer { y in
                    lengths.withUnsafeBufferPointer { l in
                        chars.withUnsafeBufferPointer { c in
                            wordLengths.withUnsafeBufferPointer { w in
                                var b = sdlstm_batch()
                                b.struct_size = MemoryLayout<sdlstm_batch>.size
                                (b.batch_size, b.seq_len, b.inputs, b.targets, b.lengths) = (3, 5, i.baseAddress, y.baseAddress, l.baseAddress)
                                (b.max_word_len, b.chars, b.word_lengths) = (maxWordLen, c.baseAddress, w.baseAddress)
                                edit(&b)
                                return body(&b)
                            }
                        }
                    }
                }
            }
        }
    }

    func run(_ call: BatchCall, _ model: OpaquePointer, _ batch: TagBatch, _ edit: (inout sdlstm_batch) -> Void = { _ in })
        -> (sdlstm_status, sdlstm_stats) {
        var stats = freshStats()
        let s = batch.with(edit) { call(model, $0, &stats) }
        return (s, stats)
    }

    func setNames(_ m: OpaquePointer, _ names: [String], count: Int32? = nil, scheme: sdlstm_tag_scheme = SDLSTM_TAG_SCHEME_IOB2) -> sdlstm_status {
        let copies = names.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        let pointers = copies.map { UnsafePointer($0) }
        return pointers.withUnsafeBufferPointer { sdlstm_set_tag_names(m, $0.baseAddress, count ?? Int32(names.count), scheme) }
    }

    func tag(_ m: OpaquePointer, _ batch: TagBatch, _ edit: (inout sdlstm_batch) -> Void = { _ in }) -> (sdlstm_status, [Int32]) {
        var out = [Int32](repeating: 42, count: 15)
        let s = out.withUnsafeMutableBufferPointer { o in batch.with(edit) { sdlstm_tag(m, $0, o.baseAddress) } }
        return (s, out)
    }

    func testConfigInitDefaults() {
        var c = sdlstm_config()
        c.struct_size = MemoryLayout<sdlstm_config>.size
        XCTAssertEqual(sdlstm_config_init(&c, SDLSTM_TASK_TAGGER), OK, lastError())
        XCTAssertEqual(c.task, SDLSTM_TASK_TAGGER)
        XCTAssertEqual([c.embed_size, c.hidden_size, c.num_layers], [100, 200, 1])
        XCTAssertEqual([c.num_tags, c.char_embed_size, c.char_hidden_size, c.use_crf], [9, 25, 50, 1])
        XCTAssertGreaterThan(c.vocab_size, 0)
        XCTAssertGreaterThan(c.char_vocab_size, 0)
        XCTAssertEqual(c.init_scale, 0.1)
        let m = makeModel(c)
        sdlstm_model_free(m)
    }

    func testParameterCountFormula() {
        for (layers, chars, crf) in [(1, true, true), (2, true, false), (1, false, true)] {
            let c = taggerConfig(layers: Int32(layers), chars: chars ? 9 : 0, crf: crf)
            let m = makeModel(c)
            defer { sdlstm_model_free(m) }
            var count: Int64 = -1
            XCTAssertEqual(sdlstm_get_parameter_count(m, &count), OK, lastError())
            let (v, e, hh, k) = (Int64(c.vocab_size), Int64(c.embed_size), Int64(c.hidden_size), Int64(c.num_tags))
            func bilstm(_ input: Int64, _ h: Int64) -> Int64 { 2 * (4 * h * (input + h) + 8 * h) }
            var expected = v * e + hh * k + k + (crf ? k * k + 2 * k : 0)
            var input = e
            if chars {
                expected += 9 * 4 + bilstm(4, 3)
                input += 6
            }
            for l in 0..<Int64(layers) { expected += bilstm(l == 0 ? input : hh, hh / 2) }
            XCTAssertEqual(count, expected, "layers \(layers) chars \(chars) crf \(crf)")
        }
    }

    func testBadConfigs() {
        for (edit, pattern) in [({ (c: inout sdlstm_config) in c.hidden_size = 7 }, "hidden_size"),
                                ({ $0.num_tags = 0 }, "num_tags"),
                                ({ $0.char_hidden_size = 5 }, "char_hidden_size"),
                                ({ $0.char_vocab_size = -1 }, "char_vocab_size")] {
            var c = taggerConfig()
            edit(&c)
            var out: OpaquePointer?
            XCTAssertEqual(sdlstm_model_create(&c, &out), E_INVALID)
            XCTAssertNil(out)
            XCTAssertTrue(mentions(lastError(), [pattern]), lastError())
        }
    }

    func testStepEvaluateAndTag() {
        let m = makeModel(taggerConfig())
        defer { sdlstm_model_free(m) }
        XCTAssertEqual(setNames(m, names), OK, lastError())
        XCTAssertEqual(sdlstm_set_dropout(m, SDLSTM_SITE_INPUT, SDLSTM_POLICY_STRUCTURED, 0.5), OK, lastError())
        XCTAssertEqual(sdlstm_set_dropout(m, SDLSTM_SITE_OUTPUT, SDLSTM_POLICY_STANDARD, 0.3), OK, lastError())
        XCTAssertEqual(sdlstm_set_dropout(m, SDLSTM_SITE_RECURRENT, SDLSTM_POLICY_STRUCTURED, 0.5), OK, lastError())
        XCTAssertEqual(sdlstm_set_dropout(m, SDLSTM_SITE_BETWEEN, SDLSTM_POLICY_STRUCTURED, 0.3), E_INVALID, "one layer has no between site")
        XCTAssertEqual(sdlstm_set_learning_rate(m, 2), OK)
        let batch = TagBatch()
        let (s0, before) = run(sdlstm_evaluate, m, batch)
        XCTAssertEqual(s0, OK, lastError())
        XCTAssertEqual(before.tokens, 9)
        XCTAssertEqual(before.skipped_macs_fraction, 0)
        var skipped = 0.0
        for _ in 0..<100 {
            let (s, st) = run(sdlstm_step, m, batch)
            XCTAssertEqual(s, OK, lastError())
            XCTAssertEqual(st.tokens, 9)
            XCTAssertTrue(st.grad_norm.isFinite && st.grad_norm > 0)
            skipped += st.skipped_macs_fraction
        }
        XCTAssertGreaterThan(skipped, 0, "structured masks skipped no work")
        let (_, after) = run(sdlstm_evaluate, m, batch)
        XCTAssertLessThan(after.loss, 0.5 * before.loss, "100 steps on one batch should fit it")

        let (st, tags) = tag(m, batch)
        XCTAssertEqual(st, OK, lastError())
        XCTAssertEqual(tags, [0, 1, 2, 0, -1, 3, 4, -1, -1, -1, 1, 0, 3, -1, -1], "the fitted batch's gold tags, -1 in padding")
        // Decoding reads no targets.
        let (st2, tags2) = tag(m, batch) { $0.targets = nil }
        XCTAssertEqual(st2, OK, lastError())
        XCTAssertEqual(tags2, tags)
    }

    func testNoLengthsMeansFullRows() {
        let m = makeModel(taggerConfig(chars: 0))
        defer { sdlstm_model_free(m) }
        var batch = TagBatch()
        batch.inputs = batch.inputs.map { max(0, min($0, 10)) }
        batch.targets = [Int32](repeating: 0, count: 15)
        let (s, st) = run(sdlstm_evaluate, m, batch) { $0.lengths = nil; $0.chars = nil; $0.word_lengths = nil }
        XCTAssertEqual(s, OK, lastError())
        XCTAssertEqual(st.tokens, 15)
    }

    /// Every bad batch fails with E_INVALID and a message naming the problem, and changes nothing:
    /// afterwards the model steps exactly like a twin that never saw the failures.
    func testBadBatchesChangeNothing() {
        let c = taggerConfig()
        let m = makeModel(c), twin = makeModel(c)
        defer { sdlstm_model_free(m); sdlstm_model_free(twin) }
        for x in [m, twin] {
            XCTAssertEqual(setNames(x, names), OK, lastError())
            XCTAssertEqual(sdlstm_set_dropout(x, SDLSTM_SITE_INPUT, SDLSTM_POLICY_STRUCTURED, 0.3), OK)
            XCTAssertEqual(sdlstm_set_seed(x, 3), OK)
        }
        let good = TagBatch()
        var cases: [(String, [String], (inout TagBatch) -> Void, (inout sdlstm_batch) -> Void)] = [
            ("length 0", ["lengths\\[1\\]"], { $0.lengths[1] = 0 }, { _ in }),
            ("length > T", ["lengths\\[2\\]"], { $0.lengths[2] = 6 }, { _ in }),
            ("word id", ["inputs\\[5\\]"], { $0.inputs[5] = 11 }, { _ in }),
            ("negative word id", ["inputs\\[1\\]"], { $0.inputs[1] = -1 }, { _ in }),
            ("tag id", ["targets\\[11\\]"], { $0.targets[11] = 5 }, { _ in }),
            ("IOB2", ["forbids", "I-LOC"], { $0.targets[6] = 4; $0.targets[5] = 0 }, { _ in }),
            ("word length 0", ["word_lengths\\[1\\]"], { $0.wordLengths[1] = 0 }, { _ in }),
            ("word length > W", ["word_lengths\\[2\\]"], { $0.wordLengths[2] = 4 }, { _ in }),
            ("char id", ["chars"], { $0.chars[0] = 9 }, { _ in }),
            ("no chars", ["chars"], { _ in }, { $0.chars = nil }),
            ("no word lengths", ["word_lengths"], { _ in }, { $0.word_lengths = nil }),
            ("max_word_len 0", ["max_word_len"], { _ in }, { $0.max_word_len = 0 }),
            ("no inputs", ["inputs"], { _ in }, { $0.inputs = nil }),
            ("no targets", ["targets"], { _ in }, { $0.targets = nil }),
        ]
        cases.append(("batch 0", ["batch_size"], { _ in }, { $0.batch_size = 0 }))
        for (what, patterns, editBatch, editStruct) in cases {
            var bad = good
            editBatch(&bad)
            for call in [sdlstm_step, sdlstm_evaluate] as [BatchCall] {
                let (s, _) = run(call, m, bad, editStruct)
                XCTAssertEqual(s, E_INVALID, "\(what): \(statusName(s))")
                XCTAssertTrue(mentions(lastError(), patterns), "\(what): \"\(lastError())\" does not mention \(patterns)")
            }
            if what != "tag id" && what != "IOB2" && what != "no targets" {
                let (s, _) = tag(m, bad, editStruct)
                XCTAssertEqual(s, E_INVALID, "tag, \(what)")
            }
        }
        for _ in 0..<2 {
            let (s1, a) = run(sdlstm_step, m, good)
            let (s2, b) = run(sdlstm_step, twin, good)
            XCTAssertEqual(s1, OK, lastError())
            XCTAssertEqual(s2, OK, lastError())
            assertStatsEqual(a, b, "step after failures")
        }
    }

    /// Weights near Float.greatestFiniteMagnitude (here from init_scale) overflow to NaN tag scores:
    /// E_NUMERIC with the tags untouched, where sdlstm_tag used to answer tag 0 everywhere.
    func testOverflowingModelIsNumeric() {
        for crf in [true, false] {
            var c = taggerConfig(crf: crf)
            c.init_scale = 3e38
            let m = makeModel(c)
            defer { sdlstm_model_free(m) }
            let (s, out) = tag(m, TagBatch())
            XCTAssertEqual(s, E_NUMERIC, "crf \(crf): \(statusName(s)) \(lastError())")
            XCTAssertTrue(mentions(lastError(), ["not finite"]), lastError())
            XCTAssertEqual(out, [Int32](repeating: 42, count: 15))
        }
    }

    func testTagNamesAndTagValidation() {
        let m = makeModel(taggerConfig())
        defer { sdlstm_model_free(m) }
        XCTAssertEqual(setNames(m, Array(names.prefix(4))), E_INVALID)
        XCTAssertTrue(mentions(lastError(), ["num_tags"]), lastError())
        XCTAssertEqual(sdlstm_set_tag_names(m, nil, 5, SDLSTM_TAG_SCHEME_IOB2), E_INVALID)
        XCTAssertEqual(setNames(m, names, scheme: sdlstm_tag_scheme(rawValue: 7)), E_INVALID)
        XCTAssertTrue(mentions(lastError(), ["scheme"]), lastError())
        var withNull: [UnsafePointer<CChar>?] = [nil, nil]
        XCTAssertEqual(sdlstm_set_tag_names(m, &withNull, 2, SDLSTM_TAG_SCHEME_NONE), E_INVALID)
        XCTAssertEqual(setNames(m, names, scheme: SDLSTM_TAG_SCHEME_IOB1), OK, lastError())
        // IOB1: the batch's IOB2 tags are not valid IOB1 (B-PER after O); the same spans in IOB1 are.
        var iob1 = TagBatch()
        XCTAssertEqual(run(sdlstm_evaluate, m, iob1).0, E_INVALID)
        XCTAssertTrue(mentions(lastError(), ["B-PER after O"]), lastError())
        iob1.targets = [0, 2, 2, 0, 77, 4, 4, -2, 9, 9, 2, 0, 4, 50, 50]
        XCTAssertEqual(run(sdlstm_evaluate, m, iob1).0, OK, lastError())
        XCTAssertEqual(setNames(m, names, scheme: SDLSTM_TAG_SCHEME_NONE), OK, lastError())

        XCTAssertEqual(sdlstm_tag(nil, nil, nil), E_INVALID)
        XCTAssertEqual(TagBatch().with { sdlstm_tag(m, $0, nil) }, E_INVALID)
        XCTAssertTrue(mentions(lastError(), ["tags"]), lastError())
        var out = [Int32](repeating: 0, count: 15)
        XCTAssertEqual(sdlstm_tag(m, nil, &out), E_INVALID)

        // A language model is not a tagger.
        let lm = makeModel(smallConfig())
        defer { sdlstm_model_free(lm) }
        XCTAssertEqual(setNames(lm, names), E_INVALID)
        XCTAssertTrue(mentions(lastError(), ["tagger"]), lastError())
        let (s, _) = tag(lm, TagBatch())
        XCTAssertEqual(s, E_INVALID)
        XCTAssertTrue(mentions(lastError(), ["tagger"]), lastError())
    }

    func tagNames(_ m: OpaquePointer) -> (sdlstm_status, [String]?, sdlstm_tag_scheme) {
        var out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
        var count: Int32 = -1
        var scheme = sdlstm_tag_scheme(rawValue: 99)
        let s = sdlstm_get_tag_names(m, &out, &count, &scheme)
        guard let out else { return (s, count == 0 ? nil : [], scheme) }
        defer { sdlstm_free(out) }
        XCTAssertNil(out[Int(count)], "the array ends with NULL")
        return (s, (0..<Int(count)).map { String(cString: out[$0]!) }, scheme)
    }

    /// A checkpoint keeps the tag names and the scheme, and with them the CRF's constraints: a tagger
    /// fitted to tags that IOB2 forbids decodes them freely until IOB2 is set, and the loaded copy
    /// decodes as the constrained original, not as the free one.
    func testCheckpointKeepsTagNamesAndScheme() {
        let dir = makeTemporaryDirectory("sdlstm-tagger-ckpt")
        defer { removeDirectory(dir) }
        let m = makeModel(taggerConfig())
        defer { sdlstm_model_free(m) }
        let (s0, none, noScheme) = tagNames(m)
        XCTAssertEqual(s0, OK, lastError())
        XCTAssertNil(none, "never named")
        XCTAssertEqual(noScheme, SDLSTM_TAG_SCHEME_NONE)

        XCTAssertEqual(setNames(m, names, scheme: SDLSTM_TAG_SCHEME_NONE), OK, lastError())
        XCTAssertEqual(sdlstm_set_learning_rate(m, 2), OK)
        var batch = TagBatch()
        // Sentence 0 starts with I-PER, sentence 2 has I-LOC after O: both invalid IOB2.
        batch.targets = [2, 2, 0, 4, 77, 3, 4, -2, 9, 9, 0, 4, 0, 50, 50]
        for _ in 0..<150 { XCTAssertEqual(run(sdlstm_step, m, batch).0, OK, lastError()) }
        let free = tag(m, batch).1
        XCTAssertEqual(free, [2, 2, 0, 4, -1, 3, 4, -1, -1, -1, 0, 4, 0, -1, -1], "fits the tags IOB2 forbids")
        XCTAssertEqual(setNames(m, names, scheme: SDLSTM_TAG_SCHEME_IOB2), OK, lastError())
        let constrained = tag(m, batch).1
        // IOB2: I-PER (2) only after B-PER (1) or I-PER, I-LOC (4) only after B-LOC (3) or I-LOC.
        for (b, n) in batch.lengths.enumerated() {
            let y = Array(constrained[(b * 5)..<(b * 5 + Int(n))])
            for (t, tag) in y.enumerated() where tag == 2 || tag == 4 {
                XCTAssertTrue(t > 0 && (y[t - 1] == tag - 1 || y[t - 1] == tag), "sentence \(b): \(y) is not IOB2")
            }
        }

        let path = "\(dir)/tagger.h5", again = "\(dir)/again.h5"
        XCTAssertEqual(sdlstm_save(m, path, 0), OK, lastError())
        var loaded: OpaquePointer?
        XCTAssertEqual(sdlstm_load(path, &loaded), OK, lastError())
        guard let loaded else { return }
        defer { sdlstm_model_free(loaded) }
        let (s1, restored, scheme) = tagNames(loaded)
        XCTAssertEqual(s1, OK, lastError())
        XCTAssertEqual(restored, names)
        XCTAssertEqual(scheme, SDLSTM_TAG_SCHEME_IOB2)
        XCTAssertEqual(tag(loaded, batch).1, constrained, "the loaded tagger decodes with the same constraints")
        XCTAssertEqual(sdlstm_save(loaded, again, 0), OK, lastError())
        XCTAssertEqual(try readBytes(path), try readBytes(again), "a loaded tagger saves to the same bytes")

        // The scheme pointer is optional; the others are not, and only a tagger has tag names.
        var out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
        var count: Int32 = 0
        XCTAssertEqual(sdlstm_get_tag_names(loaded, &out, &count, nil), OK, lastError())
        XCTAssertEqual(count, 5)
        sdlstm_free(out)
        XCTAssertEqual(sdlstm_get_tag_names(loaded, nil, &count, nil), E_INVALID)
        XCTAssertEqual(sdlstm_get_tag_names(loaded, &out, nil, nil), E_INVALID)
        let lm = makeModel(smallConfig())
        defer { sdlstm_model_free(lm) }
        XCTAssertEqual(sdlstm_get_tag_names(lm, &out, &count, nil), E_INVALID)
        XCTAssertTrue(mentions(lastError(), ["tagger"]), lastError())
    }

    func makeCounter(_ names: [String]) -> OpaquePointer? {
        let copies = names.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        let pointers = copies.map { UnsafePointer($0) }
        var out: OpaquePointer?
        let s = pointers.withUnsafeBufferPointer { sdlstm_span_f1_create($0.baseAddress, Int32(names.count), &out) }
        XCTAssertEqual(s, OK, lastError())
        return out
    }

    func scores(_ f1: OpaquePointer?, _ type: Int32) -> (sdlstm_status, sdlstm_span_scores) {
        var s = sdlstm_span_scores()
        s.struct_size = MemoryLayout<sdlstm_span_scores>.size
        let status = sdlstm_span_f1_get_scores(f1, type, &s)
        return (status, s)
    }

    func testSpanF1() {
        guard let f1 = makeCounter(["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]) else { return }
        defer { sdlstm_span_f1_free(f1) }
        var n: Int32 = -1
        XCTAssertEqual(sdlstm_span_f1_get_type_count(f1, &n), OK)
        XCTAssertEqual(n, 3)
        let types = (0..<n).map { i -> String in
            var p: UnsafePointer<CChar>?
            XCTAssertEqual(sdlstm_span_f1_get_type_name(f1, i, &p), OK)
            return String(cString: p!)
        }
        XCTAssertEqual(types, ["LOC", "MISC", "PER"])
        // gold: PER(0-1) LOC(3) | MISC(0)      predicted: PER(0-1) LOC(2-3) | MISC(0) PER(1)
        let gold: [Int32] = [1, 2, 0, 3, 5, 0, 0, 0]
        let pred: [Int32] = [1, 2, 3, 4, 5, 1, 9, 9]
        let lengths: [Int32] = [4, 2]
        XCTAssertEqual(sdlstm_span_f1_add(f1, gold, pred, 2, 4, lengths), OK, lastError())
        let (s, overall) = scores(f1, -1)
        XCTAssertEqual(s, OK, lastError())
        XCTAssertEqual([overall.gold_spans, overall.predicted_spans, overall.correct_spans], [3, 4, 2])
        XCTAssertEqual(overall.precision, 0.5)
        XCTAssertEqual(overall.recall, 2.0 / 3.0, accuracy: 1e-12)
        XCTAssertEqual(overall.f1, 2 * 0.5 * (2.0 / 3.0) / (0.5 + 2.0 / 3.0), accuracy: 1e-12)
        XCTAssertEqual([overall.tokens, overall.correct_tags], [6, 3])
        let (_, loc) = scores(f1, 0)
        XCTAssertEqual([loc.gold_spans, loc.predicted_spans, loc.correct_spans, loc.tokens], [1, 1, 0, 0])
        let (_, per) = scores(f1, 2)
        XCTAssertEqual([per.gold_spans, per.predicted_spans, per.correct_spans], [1, 2, 1])

        // Failures count nothing.
        XCTAssertEqual(sdlstm_span_f1_add(f1, gold, pred, 2, 4, [4, 5]), E_INVALID)
        XCTAssertEqual(sdlstm_span_f1_add(f1, gold, [1, 2, 3, 7, 5, 1, 9, 9], 2, 4, lengths), E_INVALID)
        XCTAssertTrue(mentions(lastError(), ["predicted\\[3\\]"]), lastError())
        XCTAssertEqual(sdlstm_span_f1_add(f1, nil, pred, 2, 4, lengths), E_INVALID)
        XCTAssertEqual(sdlstm_span_f1_add(f1, gold, pred, 0, 4, lengths), E_INVALID)
        XCTAssertEqual(scores(f1, -1).1.gold_spans, 3)
        // Without lengths every row is whole.
        XCTAssertEqual(sdlstm_span_f1_add(f1, [0, 3, 4, 0], [0, 3, 4, 0], 1, 4, nil), OK, lastError())
        XCTAssertEqual(scores(f1, 0).1.correct_spans, 1)

        XCTAssertEqual(scores(f1, 3).0, E_INVALID)
        XCTAssertEqual(scores(f1, -2).0, E_INVALID)
        XCTAssertEqual(scores(nil, -1).0, E_INVALID)
        var small = sdlstm_span_scores()
        small.struct_size = 8
        XCTAssertEqual(sdlstm_span_f1_get_scores(f1, -1, &small), E_INVALID)
        var p: UnsafePointer<CChar>?
        XCTAssertEqual(sdlstm_span_f1_get_type_name(f1, 3, &p), E_INVALID)
        XCTAssertEqual(sdlstm_span_f1_get_type_name(f1, 0, nil), E_INVALID)
        XCTAssertEqual(sdlstm_span_f1_get_type_count(f1, nil), E_INVALID)
        var out: OpaquePointer?
        XCTAssertEqual(sdlstm_span_f1_create(nil, 3, &out), E_INVALID)
        XCTAssertNil(out)
        sdlstm_span_f1_free(nil)
    }
}
