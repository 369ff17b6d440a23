import CKernels
import SDLSTMCore
import XCTest

/// A small random LM problem: the model, a batch, and storage that keeps the batch's ids alive.
final class Problem {
    let model: LanguageModel
    let inputs: [Int32], targets: [Int32]
    let batchSize: Int, seqLen: Int

    init(vocab: Int = 7, embed: Int = 4, hidden: Int = 5, layers: Int = 2, batch: Int = 2, steps: Int = 3,
         initScale: Float = 0.5, seed: UInt64 = 7) throws {
        var cfg = ModelConfig()
        (cfg.vocabSize, cfg.embedSize, cfg.hiddenSize, cfg.numLayers, cfg.initScale, cfg.seed) =
            (vocab, embed, hidden, layers, initScale, seed)
        model = try LanguageModel(cfg)
        var rng = Random(seed: seed &+ 100)
        func ids() -> [Int32] { (0..<(batch * steps)).map { _ in Int32(rng.next() % UInt64(vocab)) } }
        inputs = ids()
        targets = ids()
        batchSize = batch
        seqLen = steps
        // A non-zero carried state, so that the tests cover the state entering the window.
        func state() -> [[Float]] { (0..<layers).map { _ in (0..<(batch * hidden)).map { _ in rng.uniform() - 0.5 } } }
        try model.setCarriedState(h: state(), c: state(), batchSize: batch)
    }

    func withBatch<R>(_ body: (Batch) throws -> R) rethrows -> R {
        try inputs.withUnsafeBufferPointer { i in
            try targets.withUnsafeBufferPointer { t in
                try body(Batch(batchSize: batchSize, seqLen: seqLen, inputs: i.baseAddress!, targets: t.baseAddress!))
            }
        }
    }

    func step() throws -> StepStats { try withBatch { try model.step($0) } }
    func lossAndGradients() throws -> Double { try withBatch { try model.lossAndGradients($0).loss } }
    func trainingLoss() throws -> Double { try withBatch { try model.trainingLoss($0).loss } }
    func evaluate() throws -> StepStats { try withBatch { try model.evaluate($0) } }
}

func assertClose(_ a: [Float], _ b: [Double], atol: Double, rtol: Double, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, "\(what): sizes", file: file, line: line)
    var worst = 0.0, at = -1
    for i in 0..<min(a.count, b.count) {
        let excess = abs(Double(a[i]) - b[i]) - (atol + rtol * abs(b[i]))
        if excess > worst { worst = excess; at = i }
    }
    XCTAssert(at < 0, "\(what)[\(at)]: \(at < 0 ? 0 : a[at]) vs \(at < 0 ? 0 : b[at])", file: file, line: line)
}

/// Central finite differences of `loss` with respect to every entry of `param`. eps balances
/// truncation (O(eps²)) against float rounding of the loss (~1e-7 / eps).
func numericGradient(_ param: Parameter, eps: Float = 1e-2, _ loss: () throws -> Double) rethrows -> [Double] {
    var numeric = [Double](repeating: 0, count: param.count)
    for i in 0..<param.count {
        let saved = param.value[i]
        param.value[i] = saved + eps
        let up = try loss()
        param.value[i] = saved - eps
        let down = try loss()
        param.value[i] = saved
        numeric[i] = (up - down) / Double(2 * eps)
    }
    return numeric
}

/// Runs body once under every kernel set this CPU has (AVX-512, AVX2, portable C), so that each
/// path is checked on a machine that has it; the CPU's best is selected again afterwards.
func forEachKernelSet(_ body: (String) throws -> Void) rethrows {
    defer { _ = sdk_set_isa(sdk_cpu_isa()) }
    for isa in [SDK_ISA_AVX512, SDK_ISA_AVX2, SDK_ISA_PORTABLE] where isa.rawValue <= sdk_cpu_isa().rawValue {
        XCTAssertEqual(sdk_set_isa(isa), 0)
        try body(String(cString: sdk_isa_name(isa)))
    }
}
