import CSDLSTM
import XCTest

/// Structs that carry their size can grow (docs/ABI.md): every struct-taking call works with the
/// struct cut to its first released size and with a larger struct whose unknown tail is garbage,
/// and writes no byte past the size the caller gave — nor, in a larger struct, past the fields the
/// library knows.
final class StructSizeTests: XCTestCase {
    /// The sizes of 0.2.0, the first release under the ABI policy; frozen here as in the library.
    static let firstSizes: [String: Int] = [
        "config": 72, "batch": 80, "stats": 40, "runtime_info": 64, "span_scores": 72, "decode_options": 32,
        "bleu_options": 16, "bleu_scores": 80, "progress": 40, "generate_options": 32,
    ]

    /// The first released size of T and a larger one (as a newer header would pass).
    func sizes<T>(_ type: T.Type, _ name: String) -> [Int] {
        [Self.firstSizes[name]!, MemoryLayout<T>.size + 24]
    }

    /// Out-struct calls: the bytes the library knows match a normal call's, nothing else is written.
    func checkOut<T>(_ name: String, _ type: T.Type, _ call: (UnsafeMutablePointer<T>) -> sdlstm_status,
                     file: StaticString = #filePath, line: UInt = #line) {
        let reference = Raw<T>(size: MemoryLayout<T>.size)
        XCTAssertEqual(call(reference.pointer), OK, "\(name): \(lastError())", file: file, line: line)
        for size in sizes(type, name) {
            let raw = Raw<T>(size: size)
            XCTAssertEqual(call(raw.pointer), OK, "\(name) size \(size): \(lastError())", file: file, line: line)
            let known = min(size, MemoryLayout<T>.size)
            XCTAssertEqual(raw.storedSize, size, "\(name) size \(size): struct_size changed", file: file, line: line)
            XCTAssertEqual(raw.bytes(8..<known), reference.bytes(8..<known), "\(name) size \(size)", file: file, line: line)
            XCTAssertTrue(raw.untouched(from: known), "\(name) size \(size): written past the known fields", file: file, line: line)
        }
    }

    /// In-struct calls: `value` cut to the first size or grown with a garbage tail gives `expect`'s result.
    func withSizes<T>(_ name: String, _ value: T, _ body: (UnsafeMutablePointer<T>, Int) -> Void) {
        for size in sizes(T.self, name) {
            let raw = Raw<T>(size: size, value: value)
            body(raw.pointer, size)
        }
    }

    func testOutStructs() throws {
        checkOut("config", sdlstm_config.self) { sdlstm_config_init($0, SDLSTM_TASK_TAGGER) }
        let model = makeModel(smallConfig())
        defer { sdlstm_model_free(model) }
        checkOut("config", sdlstm_config.self) { sdlstm_get_config(model, $0) }
        checkOut("progress", sdlstm_progress.self) { sdlstm_get_progress(model, $0) }
        checkOut("runtime_info", sdlstm_runtime_info.self) { sdlstm_get_runtime_info($0) }
        checkOut("stats", sdlstm_stats.self) { stats in
            sdlstm_reset_state(model)  // every call evaluates from the same (zero) carried state
            return Batch(batchSize: 2, seqLen: 3, vocab: 23).with { sdlstm_evaluate(model, $0, stats) }
        }
        var hyp: [UnsafePointer<CChar>?] = [UnsafePointer(strdup("a cat sat")!)]
        var ref: [UnsafePointer<CChar>?] = [UnsafePointer(strdup("a cat sat down")!)]
        defer { (hyp + ref).forEach { free(UnsafeMutableRawPointer(mutating: $0)) } }
        checkOut("bleu_scores", sdlstm_bleu_scores.self) { sdlstm_bleu(&hyp, &ref, 1, nil, $0) }
        var names: [UnsafePointer<CChar>?] = ["O", "B-PER", "I-PER"].map { (n: String) -> UnsafePointer<CChar>? in UnsafePointer(strdup(n)!) }
        defer { names.forEach { free(UnsafeMutableRawPointer(mutating: $0)) } }
        var f1: OpaquePointer?
        XCTAssertEqual(sdlstm_span_f1_create(&names, 3, &f1), OK)
        defer { sdlstm_span_f1_free(f1) }
        var gold: [Int32] = [1, 2, 0], predicted: [Int32] = [1, 0, 0]
        XCTAssertEqual(sdlstm_span_f1_add(f1, &gold, &predicted, 1, 3, nil), OK)
        checkOut("span_scores", sdlstm_span_scores.self) { sdlstm_span_f1_get_scores(f1, -1, $0) }
        checkOut("decode_options", sdlstm_decode_options.self) { sdlstm_decode_options_init($0) }
        checkOut("bleu_options", sdlstm_bleu_options.self) { sdlstm_bleu_options_init($0) }
        checkOut("generate_options", sdlstm_generate_options.self) { sdlstm_generate_options_init($0) }
    }

    func testInStructs() throws {
        // model_create: the same model from a cut and from a grown config.
        let reference = makeModel(smallConfig())
        defer { sdlstm_model_free(reference) }
        var want = sdlstm_config()
        want.struct_size = MemoryLayout<sdlstm_config>.size
        XCTAssertEqual(sdlstm_get_config(reference, &want), OK)
        let batch = Batch(batchSize: 2, seqLen: 3, vocab: 23)
        let (_, wantStats) = runBatch(sdlstm_step, reference, batch)
        withSizes("config", smallConfig()) { cfg, size in
            batch.with { b in
                withSizes("batch", b.pointee) { grown, batchSize in
                    var out: OpaquePointer?
                    XCTAssertEqual(sdlstm_model_create(cfg, &out), OK, "config size \(size): \(lastError())")
                    defer { sdlstm_model_free(out) }
                    var got = sdlstm_config()
                    got.struct_size = MemoryLayout<sdlstm_config>.size
                    XCTAssertEqual(sdlstm_get_config(out, &got), OK)
                    XCTAssertEqual(bytes(of: got), bytes(of: want), "config size \(size)")
                    // step: a cut or grown batch trains as the reference did.
                    var stats = freshStats()
                    XCTAssertEqual(sdlstm_step(out, grown, &stats), OK, "batch size \(batchSize): \(lastError())")
                    XCTAssertTrue(sameBits(stats.loss, wantStats.loss), "config size \(size), batch size \(batchSize)")
                }
            }
        }
        // translate: the decode options, cut or grown, decode as a normal call does.
        let seq2seq = makeModel(seq2seqConfig())
        defer { sdlstm_model_free(seq2seq) }
        let normal = translate(seq2seq)
        XCTAssertEqual(normal.0, OK, lastError())
        withSizes("decode_options", options()) { o, size in
            var tokens = [Int32](repeating: 77, count: normal.1.count), lengths = [Int32](repeating: 0, count: 3)
            let s = PairBatch().with { b in sdlstm_translate(seq2seq, b, o, &tokens, &lengths, nil) }
            XCTAssertEqual(s, OK, "decode_options size \(size): \(lastError())")
            XCTAssertEqual(tokens, normal.1, "decode_options size \(size)")
        }
        // bleu: the options, cut or grown, score as a normal call does.
        var hyp: [UnsafePointer<CChar>?] = [UnsafePointer(strdup("A cat sat")!)]
        var ref: [UnsafePointer<CChar>?] = [UnsafePointer(strdup("a cat sat down")!)]
        defer { (hyp + ref).forEach { free(UnsafeMutableRawPointer(mutating: $0)) } }
        var o = sdlstm_bleu_options(struct_size: MemoryLayout<sdlstm_bleu_options>.size, lowercase: 1, tokenize: 1)
        var wantBLEU = sdlstm_bleu_scores()
        wantBLEU.struct_size = MemoryLayout<sdlstm_bleu_scores>.size
        XCTAssertEqual(sdlstm_bleu(&hyp, &ref, 1, &o, &wantBLEU), OK)
        withSizes("bleu_options", o) { options, size in
            var got = sdlstm_bleu_scores()
            got.struct_size = MemoryLayout<sdlstm_bleu_scores>.size
            XCTAssertEqual(sdlstm_bleu(&hyp, &ref, 1, options, &got), OK, "bleu_options size \(size): \(lastError())")
            XCTAssertEqual(got.bleu, wantBLEU.bleu, "bleu_options size \(size)")
        }
        // lm_generate: the options, cut or grown, sample as a normal call does.
        let lm = makeModel(smallConfig())
        defer { sdlstm_model_free(lm) }
        var g = sdlstm_generate_options()
        g.struct_size = MemoryLayout<sdlstm_generate_options>.size
        XCTAssertEqual(sdlstm_generate_options_init(&g), OK)
        (g.temperature, g.top_k, g.seed, g.stop_id) = (0.8, 5, 17, 3)
        let prompt: [Int32] = [1, 2]
        func sampled(_ o: UnsafePointer<sdlstm_generate_options>) -> [Int32] {
            var out = [Int32](repeating: -1, count: 20)
            var count: Int64 = 0
            XCTAssertEqual(sdlstm_lm_generate(lm, prompt, 2, o, &out, 20, &count), OK, lastError())
            return Array(out.prefix(Int(count)))
        }
        let wantTokens = sampled(&g)
        withSizes("generate_options", g) { o, size in XCTAssertEqual(sampled(o), wantTokens, "generate_options size \(size)") }
        // Below the first size is refused, naming the struct.
        var small = smallConfig()
        small.struct_size = Self.firstSizes["config"]! - 1
        var out: OpaquePointer?
        XCTAssertEqual(sdlstm_model_create(&small, &out), E_INVALID)
        XCTAssertTrue(lastError().contains("cfg->struct_size"), lastError())
    }
}

/// A T in `size` bytes of its own memory followed by 64 guard bytes; every byte `value` does not
/// fill (a grown struct's unknown tail, the guard) holds 0xAB, and struct_size holds `size`.
final class Raw<T> {
    let size: Int
    private let raw: UnsafeMutableRawPointer
    private var total: Int { max(size, MemoryLayout<T>.size) + 64 }

    init(size: Int, value: T? = nil) {
        self.size = size
        raw = .allocate(byteCount: max(size, MemoryLayout<T>.size) + 64, alignment: 16)
        raw.initializeMemory(as: UInt8.self, repeating: 0xAB, count: max(size, MemoryLayout<T>.size) + 64)
        if var value {
            withUnsafeBytes(of: &value) { raw.copyMemory(from: $0.baseAddress!, byteCount: min(size, MemoryLayout<T>.size)) }
        }
        raw.storeBytes(of: size, as: Int.self)
    }

    deinit { raw.deallocate() }

    var pointer: UnsafeMutablePointer<T> { raw.bindMemory(to: T.self, capacity: 1) }
    var storedSize: Int { raw.load(as: Int.self) }
    func bytes(_ r: Range<Int>) -> [UInt8] { r.map { raw.load(fromByteOffset: $0, as: UInt8.self) } }
    func untouched(from offset: Int) -> Bool { bytes(offset..<total).allSatisfy { $0 == 0xAB } }
}

func bytes<T>(of value: T) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }
