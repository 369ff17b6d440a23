// sdlstm-bench: training-step and kernel benchmarks, one JSON line per configuration.
//
//   sdlstm-bench model ptb-medium|ptb-large|ner|nmt [--threads N] [--rounds N] [--p-percent N (nmt)] [--sweep]
//   sdlstm-bench kernels [--threads N] [--rounds N] [--isa avx512|avx2|portable|all]
//
// Variants are interleaved round by round, in a shuffled order, on one model (or one set of
// buffers), so that machine drift hits them alike; each line reports the median of the timed
// rounds. Ratios between lines of one run are the result; absolute times vary with the machine.

import CKernels
import Glibc
import SDLSTMCore

/// Wall-clock time; `--cpu-time` (one thread only) reads this thread's CPU time instead, which a
/// busy shared machine disturbs less while tuning a kernel.
let clock = CommandLine.arguments.contains("--cpu-time") ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC

func now() -> Double {
    var ts = timespec()
    clock_gettime(clock, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// Peak resident set of this process so far (VmHWM), in MiB.
func peakRSSMiB() -> Double {
    guard let f = fopen("/proc/self/status", "r") else { return 0 }
    defer { fclose(f) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, 256, f) != nil {
        let s = line.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        if s.hasPrefix("VmHWM:") {
            let kb = s.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Double($0) } ?? 0
            return kb / 1024
        }
    }
    return 0
}

func json(_ fields: [(String, Any)]) -> String {
    "{" + fields.map { k, v in
        let value: String
        switch v {
        case let s as String: value = "\"\(s)\""
        case let d as Double: value = d.isFinite ? String(format3(d)) : "null"
        default: value = "\(v)"
        }
        return "\"\(k)\":\(value)"
    }.joined(separator: ",") + "}"
}

func format3(_ d: Double) -> String {
    var buf = [CChar](repeating: 0, count: 64)
    _ = withVaList([d]) { vsnprintf(&buf, 64, "%.4g", $0) }
    return buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

var args = Array(CommandLine.arguments.dropFirst())
func option(_ name: String, _ fallback: Int) -> Int {
    guard let i = args.firstIndex(of: name), i + 1 < args.count, let v = Int(args[i + 1]) else { return fallback }
    return v
}
let threads = option("--threads", 2)
let rounds = option("--rounds", 12)
let warmup = 2
var shuffler = Random(seed: 2021)

func shuffled<T>(_ xs: [T]) -> [T] {
    var a = xs
    for i in stride(from: a.count - 1, to: 0, by: -1) { a.swapAt(i, Int(shuffler.next() % UInt64(i + 1))) }
    return a
}

// MARK: - Whole training steps

struct Shape { let name: String; let hidden: Int; let layers: Int; let vocab: Int; let batch: Int; let bptt: Int; let p: Float }

/// A policy on the NR sites (and RH with `rh`); `p` overrides the shape's dropout rate (--sweep).
struct Variant {
    let policy: DropoutPolicy; let rh: Bool; var p: Float? = nil; var times: [Double] = []; var skipped = 0.0
}

/// Times one training step per variant and round, the variants interleaved in a shuffled order;
/// each variant sets `policy` at p on `sites` (and on the recurrent site for the NR+RH ones).
func timeSteps(_ model: any Model, _ batch: Batch, p: Float, sites: [DropoutSite], _ variants: inout [Variant]) throws {
    for round in 0..<(warmup + rounds) {
        for v in shuffled(Array(variants.indices)) {
            let setting = DropoutSetting(policy: variants[v].policy, p: variants[v].p ?? p)
            for site in sites { try model.setDropout(setting, at: site) }
            try model.setDropout(variants[v].rh ? setting : DropoutSetting(), at: .recurrent)
            let start = now()
            let stats = try model.step(batch)
            let elapsed = now() - start
            if round >= warmup { variants[v].times.append(elapsed) }
            variants[v].skipped = stats.skippedMACsFraction
        }
    }
}

/// The variants of a run: `defaults`, of which BENCH_ONLY=standard,structured+rh keeps only those
/// (profiling one configuration; "+rh": on the recurrent site too); or with --sweep, standard and structured dropout on the
/// NR sites at p = 0.1, 0.2 … 0.7, all interleaved (a structured mask must never cost more).
func selectVariants(_ defaults: [Variant]) -> [Variant] {
    if args.contains("--sweep") {
        return (1...7).flatMap { i in [DropoutPolicy.standard, .structured].map { Variant(policy: $0, rh: false, p: Float(i) / 10) } }
    }
    guard let only = getenv("BENCH_ONLY").map({ String(cString: $0).split(separator: ",").map(String.init) }) else { return defaults }
    return defaults.filter { only.contains(policyName($0.policy) + ($0.rh ? "+rh" : "")) }
}

/// One JSON line per variant: the median step, words/s, and the ratio to standard dropout on the same sites.
func report(_ variants: [Variant], _ fields: [(String, Any)], words: Int, p: Float) {
    let rss = peakRSSMiB()
    // BENCH_ONLY may leave out standard dropout: then there is no ratio to report (NaN → null).
    let baseline = { (v: Variant) in
        variants.first { $0.policy == .standard && $0.rh == v.rh && $0.p == v.p }.map { median($0.times) } ?? .nan
    }
    for v in variants {
        let ms = median(v.times) * 1000
        print(json([("model", fields[0].1), ("policy", policyName(v.policy)), ("sites", v.rh ? "NR+RH" : "NR"),
                    ("p", v.policy == .none ? 0.0 : Double(v.p ?? p))] + fields.dropFirst() + machineFields() +
                   [("threads", threads), ("ms_per_step", ms), ("words_per_s", Double(words) / (ms / 1000)),
                    ("speedup_vs_standard", baseline(v) * 1000 / ms),
                    ("skipped_macs_fraction", v.skipped), ("peak_rss_mb", rss), ("steps", v.times.count)]))
    }
}

func benchModel(_ shape: Shape) throws {
    var cfg = ModelConfig()
    (cfg.vocabSize, cfg.embedSize, cfg.hiddenSize, cfg.numLayers) = (shape.vocab, shape.hidden, shape.hidden, shape.layers)
    let model = try LanguageModel(cfg)
    try model.setNumThreads(threads)
    model.optimizer.learningRate = 1
    model.optimizer.clipNorm = 0.25
    var rng = Random(seed: 7)
    let n = shape.batch * shape.bptt
    let inputs = (0..<n).map { _ in Int32(rng.next() % UInt64(shape.vocab)) }
    let targets = (0..<n).map { _ in Int32(rng.next() % UInt64(shape.vocab)) }

    var variants = [Variant(policy: .none, rh: false)]
    for policy in [DropoutPolicy.variational, .standard, .structured, .structuredFixed] {
        variants.append(Variant(policy: policy, rh: false))
    }
    variants.append(Variant(policy: .standard, rh: true))
    variants.append(Variant(policy: .structured, rh: true))
    variants = selectVariants(variants)

    try inputs.withUnsafeBufferPointer { i in
        try targets.withUnsafeBufferPointer { t in
            let batch = Batch(batchSize: shape.batch, seqLen: shape.bptt, inputs: i.baseAddress!, targets: t.baseAddress!)
            try timeSteps(model, batch, p: shape.p, sites: [.input, .between, .output], &variants)
        }
    }
    report(variants, [("model", shape.name), ("batch", shape.batch), ("bptt", shape.bptt)], words: n, p: shape.p)
}

/// The CoNLL-2003 tagger of examples/ner at a fixed batch shape: 32 sentences of 30 words, word
/// embedding 100 over a 20,000-word vocabulary, a character BiLSTM 25 + 25 over 25-wide character
/// embeddings (85 characters, words of 1 to 10 characters, mean 5.5), one BiLSTM layer of 200 + 200,
/// 9 tags and a CRF; dropout p = 0.5 on the word representation and on the BiLSTM output, as
/// ner.c sets it. Random words and tags: the step's cost does not depend on them.
func benchTagger() throws {
    let (b, t, w, vocab, chars, tags) = (32, 30, 10, 20_000, 85, 9)
    let p: Float = 0.5
    var cfg = ModelConfig(task: .tagger)
    (cfg.vocabSize, cfg.embedSize, cfg.hiddenSize, cfg.numLayers, cfg.numTags) = (vocab, 100, 400, 1, tags)
    (cfg.charVocabSize, cfg.charEmbedSize, cfg.charHiddenSize, cfg.useCRF) = (chars, 25, 50, true)
    let model = try Tagger(cfg)
    try model.setNumThreads(threads)
    model.optimizer.learningRate = 1
    model.optimizer.clipNorm = 1
    var rng = Random(seed: 7)
    let n = b * t
    let inputs = (0..<n).map { _ in Int32(rng.next() % UInt64(vocab)) }
    let targets = (0..<n).map { _ in Int32(rng.next() % UInt64(tags)) }
    let wordLengths = (0..<n).map { _ in Int32(1 + rng.next() % UInt64(w)) }
    let charIDs = (0..<(n * w)).map { _ in Int32(rng.next() % UInt64(chars)) }

    var variants = selectVariants([Variant(policy: .none, rh: false), Variant(policy: .standard, rh: false),
                                   Variant(policy: .structured, rh: false)])
    try inputs.withUnsafeBufferPointer { i in
        try targets.withUnsafeBufferPointer { y in
            try wordLengths.withUnsafeBufferPointer { wl in
                try charIDs.withUnsafeBufferPointer { c in
                    var batch = Batch(batchSize: b, seqLen: t, inputs: i.baseAddress!, targets: y.baseAddress!)
                    (batch.maxWordLen, batch.chars, batch.wordLengths) = (w, c.baseAddress, wl.baseAddress)
                    try timeSteps(model, batch, p: p, sites: [.input, .output], &variants)
                }
            }
        }
    }
    report(variants, [("model", "ner"), ("batch", b), ("seq_len", t), ("embed", 100), ("bilstm", "2x200"),
                      ("char_bilstm", "2x25")], words: n, p: p)
}

func policyName(_ p: DropoutPolicy) -> String {
    switch p {
    case .none: return "none"
    case .variational: return "variational"
    case .standard: return "standard"
    case .structured: return "structured"
    case .structuredFixed: return "structured-fixed"
    }
}

// MARK: - Kernels against dense OpenBLAS on the same masked operand

/// The kernel sets to time: the CPU's best, or `--isa NAME` (a lesser one), or `--isa all`.
func kernelSets() -> [sdk_isa_id] {
    let best = sdk_cpu_isa()
    let all = [SDK_ISA_AVX512, SDK_ISA_AVX2, SDK_ISA_PORTABLE].filter { $0.rawValue <= best.rawValue }
    guard let i = args.firstIndex(of: "--isa"), i + 1 < args.count else { return [best] }
    return args[i + 1] == "all" ? all : all.filter { String(cString: sdk_isa_name($0)) == args[i + 1] }
}

/// Each structured kernel against dense OpenBLAS on the masked operand, per kernel set:
/// speedup = dense_ms / ms, and rate_vs_dense = dense_ms · keep / ms, the cost of a kept
/// multiply-add of ours relative to one of OpenBLAS's (1.0: the same; the speedup is then 1/keep).
/// "recurrent-dense" is the own dense recurrent step (W_hh packed once per window, all rows)
/// against one sgemm call per step, keep 1.
func benchKernels() throws {
    let (t, b, d) = (35, 20, 650)
    let pool = ThreadPool(threads: threads)
    for isa in kernelSets() {
        guard sdk_set_isa(isa) == 0 else { continue }
        defer { _ = sdk_set_isa(sdk_cpu_isa()) }
        for n in [2600, 10_000] {
            for keep in [1, 0.5, 0.35] as [Float] {
                if keep == 1 && n != 2600 { continue }
                try benchKernelShape(t: t, b: b, d: d, n: n, keep: keep, isa: isa, pool: pool)
            }
        }
    }
}

func benchKernelShape(t: Int, b: Int, d: Int, n: Int, keep: Float, isa: sdk_isa_id, pool: ThreadPool) throws {
    var rng = Random(seed: UInt64(n) + UInt64(keep * 100))
    let linear = try MaskedLinear(width: d, outputs: n)
    let mask = linear.mask
    mask.setting = DropoutSetting(policy: keep < 1 ? .structured : .none, p: 1 - keep)
    try linear.prepare(steps: t, batch: b, threads: threads)
    mask.sample(steps: t, batch: b, rng: &rng)
    let x = try Buffer((0..<(t * b * d)).map { _ in rng.uniform() - 0.5 })
    let xm = try Buffer(t * b * d)
    if keep < 1 { for s in 0..<t { mask.apply(step: s, x.ptr + s * b * d, xm.ptr + s * b * d) } } else { xm.copy(from: x) }
    let w = try Buffer((0..<(d * n)).map { _ in rng.uniform() - 0.5 })
    let g = try Buffer((0..<(t * b * n)).map { _ in rng.uniform() - 0.5 })
    let c = try Buffer(t * b * n), dw = try Buffer(d * n), dx = try Buffer(t * b * d)
    let panels = try Buffer(panelCount(rows: d, n: n))
    let all = try IndexBuffer(d)
    for u in 0..<d { all.ptr[u] = Int32(u) }

    let perStepSgemm = {
        for s in 0..<t {
            gemm(m: b, n: n, k: d, a: xm.ptr + s * b * d, lda: d, b: w.ptr, ldb: n, beta: 0, c: c.ptr + s * b * n, ldc: n, pool: pool)
        }
    }
    var kernels: [(String, () -> Void, () -> Void)] = []
    if keep == 1 {
        kernels.append(("recurrent-dense",
                        { packPanels(w.ptr, rows: d, n: n, into: panels.ptr)
                          for s in 0..<t {
                              panelGEMM(batch: b, n: n, k: d, a: xm.ptr + s * b * d, lda: d, idx: all.ptr, panels: panels.ptr,
                                        rows: d, c: c.ptr + s * b * n, ldc: n, pool: pool) } },
                        perStepSgemm))
        // Its backward data, dH_{t-1} = dG_t · W_hhᵀ per step: dot products with all rows in place.
        kernels.append(("recurrent-backward-dense",
                        { for s in 0..<t {
                              dotGEMM(batch: b, n: n, units: d, g: g.ptr + s * b * n, ldg: n, idx: all.ptr, w: w.ptr, ldw: n,
                                      d: dx.ptr + s * b * d, ldd: d, pool: pool) } },
                        { for s in 0..<t {
                              gemm(transB: true, m: b, n: d, k: n, a: g.ptr + s * b * n, lda: n, b: w.ptr, ldb: n, beta: 0,
                                   c: dx.ptr + s * b * d, ldc: d, pool: pool) } }))
    } else {
        kernels = [
            ("forward",
             { linear.gather(x.ptr, steps: 0..<t); c.zero(); linear.keptForward(w.ptr, n: n, into: c.ptr, ldc: n, steps: 0..<t, pool: pool) },
             { gemm(m: t * b, n: n, k: d, a: xm.ptr, lda: d, b: w.ptr, ldb: n, beta: 0, c: c.ptr, ldc: n, pool: pool) }),
            ("weight-gradient",
             { linear.gather(x.ptr, steps: 0..<t); linear.keptWeightGradient(g.ptr, n: n, ldg: n, into: dw.ptr, pool: pool) },
             { gemm(transA: true, m: d, n: n, k: t * b, a: xm.ptr, lda: d, b: g.ptr, ldb: n, beta: 0, c: dw.ptr, ldc: n, pool: pool) }),
            ("backward-data",
             { linear.keptBackwardData(g.ptr, n: n, ldg: n, w.ptr, into: dx.ptr, steps: 0..<t, pool: pool) },
             { gemm(transB: true, m: t * b, n: d, k: n, a: g.ptr, lda: n, b: w.ptr, ldb: n, beta: 0, c: dx.ptr, ldc: d, pool: pool)
               for s in 0..<t { mask.apply(step: s, dx.ptr + s * b * d, dx.ptr + s * b * d) } }),
        ]
        // The RH site: W_hh packed into panels once per window, then one step after another, against
        // OpenBLAS per step on the masked copy. W_hh is H × 4H: N = 4H only.
        if n == 2600 {
            kernels.append(("recurrent",
                            { packPanels(w.ptr, rows: d, n: n, into: panels.ptr)
                              for s in 0..<t {
                                  linear.gather(x.ptr, steps: s..<(s + 1))
                                  linear.keptForwardStep(s, panels: panels.ptr, n: n, into: c.ptr, ldc: n, pool: pool) } },
                            perStepSgemm))
        }
    }
    for (name, masked, dense) in kernels {
        var tm: [Double] = [], td: [Double] = []
        for round in 0..<(warmup + rounds) {
            let order = shuffler.next() % 2 == 0
            for which in order ? [0, 1] : [1, 0] {
                let start = now()
                if which == 0 { masked() } else { dense() }
                let e = now() - start
                if round >= warmup { if which == 0 { tm.append(e) } else { td.append(e) } }
            }
        }
        let ms = median(tm) * 1000, denseMs = median(td) * 1000
        print(json([("kernel", name)] + machineFields() +
                   [("T", t), ("B", b), ("D", d), ("N", n), ("keep", Double(keep)), ("threads", threads), ("ms", ms),
                    ("dense_ms", denseMs), ("speedup", denseMs / ms), ("ideal", 1 / Double(keep)),
                    ("rate_vs_dense", denseMs * Double(keep) / ms), ("peak_rss_mb", peakRSSMiB())]))
    }
}

/// cpu, isa (the kernels sdlstm runs) and blas_core, on every line: a ratio means nothing without them.
func machineFields() -> [(String, Any)] {
    [("cpu", Platform.current.cpuModel), ("isa", String(cString: sdk_isa_name(sdk_isa()))), ("blas_core", Platform.current.blasCore)]
}

func warn(_ s: String) { _ = (s + "\n").withCString { write(2, $0, strlen($0)) } }

// MARK: - The forward micro-kernel in Swift SIMD, against the C one (why CKernels exists)

/// The same 5 × 16 block as sdk_forward, written with Swift's SIMD8<Float>. Swift compiles the
/// library for baseline x86-64, so this runs on SSE2 without FMA whatever the CPU has.
@inline(never)
func swiftForward5x16(k: Int, a: UnsafePointer<Float>, lda: Int, idx: UnsafePointer<Int32>,
                      w: UnsafePointer<Float>, ldw: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
    typealias V = SIMD8<Float>
    func ld(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    var c0 = (ld(c), ld(c + ldc), ld(c + 2 * ldc), ld(c + 3 * ldc), ld(c + 4 * ldc))
    var c1 = (ld(c + 8), ld(c + ldc + 8), ld(c + 2 * ldc + 8), ld(c + 3 * ldc + 8), ld(c + 4 * ldc + 8))
    for j in 0..<k {
        let row = w + Int(idx[j]) * ldw
        let w0 = ld(row), w1 = ld(row + 8)
        let a0 = V(repeating: a[j]), a1 = V(repeating: a[lda + j]), a2 = V(repeating: a[2 * lda + j])
        let a3 = V(repeating: a[3 * lda + j]), a4 = V(repeating: a[4 * lda + j])
        c0.0 += a0 * w0; c1.0 += a0 * w1
        c0.1 += a1 * w0; c1.1 += a1 * w1
        c0.2 += a2 * w0; c1.2 += a2 * w1
        c0.3 += a3 * w0; c1.3 += a3 * w1
        c0.4 += a4 * w0; c1.4 += a4 * w1
    }
    func st(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }
    st(c0.0, c); st(c0.1, c + ldc); st(c0.2, c + 2 * ldc); st(c0.3, c + 3 * ldc); st(c0.4, c + 4 * ldc)
    st(c1.0, c + 8); st(c1.1, c + ldc + 8); st(c1.2, c + 2 * ldc + 8); st(c1.3, c + 3 * ldc + 8); st(c1.4, c + 4 * ldc + 8)
}

/// The selected set's forward micro-kernel on its full block, and the 5 × 16 block in Swift SIMD,
/// on data that stays in L1/L2 (a block of A with 325 kept columns, 325 kept rows of a 650-row
/// panel): the raw speed of each, interleaved, in GFLOP/s.
func benchMicroKernel() throws {
    let (k, rows) = (325, 650)
    let blocking = sdk_blocking(), mr = Int(blocking.forward_rows), nr = Int(blocking.panel)
    var rng = Random(seed: 3)
    let a = try Buffer((0..<(max(5, mr) * k)).map { _ in rng.uniform() })
    let w = try Buffer((0..<(rows * max(16, nr))).map { _ in rng.uniform() })
    let c = try Buffer(max(5, mr) * max(16, nr))
    let idx = try IndexBuffer(k)
    for j in 0..<k { idx.ptr[j] = Int32(2 * j) }
    let calls = 20_000
    var ts: [[Double]] = [[], []]
    for round in 0..<(warmup + rounds) {
        for which in shuffled([0, 1]) {
            let start = now()
            for _ in 0..<calls {
                if which == 0 {
                    sdk_forward(Int32(mr), Int32(nr), Int32(k), a.ptr, Int32(k), idx.ptr, w.ptr, Int32(nr), c.ptr, Int32(nr))
                } else {
                    swiftForward5x16(k: k, a: a.ptr, lda: k, idx: idx.ptr, w: w.ptr, ldw: 16, c: c.ptr, ldc: 16)
                }
            }
            if round >= warmup { ts[which].append(now() - start) }
        }
    }
    let cGflops = Double(2 * mr * nr * k * calls) / median(ts[0]) / 1e9
    let swiftGflops = Double(2 * 5 * 16 * k * calls) / median(ts[1]) / 1e9
    print(json([("microkernel", "forward \(mr)x\(nr)")] + machineFields() +
               [("c_gflops", cGflops), ("swift_simd_gflops", swiftGflops), ("c_over_swift", cGflops / swiftGflops)]))
}

// MARK: - Main

let shapes = [
    Shape(name: "ptb-medium", hidden: 650, layers: 2, vocab: 10_000, batch: 20, bptt: 35, p: 0.5),
    Shape(name: "ptb-large", hidden: 1500, layers: 2, vocab: 10_000, batch: 20, bptt: 35, p: 0.65),
]

do {
    // As a model creation does: SDLSTM_ISA, and the warning about a generic OpenBLAS core.
    try prepareProcess()
    switch args.first {
    case "model":
        if args.count >= 2 && args[1] == "ner" {
            try benchTagger()
            break
        }
        if args.count >= 2 && args[1] == "nmt" {
            try benchTranslator()
            break
        }
        guard args.count >= 2, let shape = shapes.first(where: { $0.name == args[1] }) else {
            warn("sdlstm-bench model: shapes are \(shapes.map(\.name) + ["ner", "nmt"])")
            exit(2)
        }
        try benchModel(shape)
    case "kernels":
        for isa in kernelSets() where sdk_set_isa(isa) == 0 { try benchMicroKernel() }
        _ = sdk_set_isa(sdk_cpu_isa())
        try benchKernels()
    default:
        warn("usage: sdlstm-bench model ptb-medium|ptb-large|ner|nmt | kernels [--threads N] [--rounds N]")
        exit(2)
    }
} catch {
    warn("sdlstm-bench: \(error)")
    exit(1)
}
