import Foundation
import SDLSTMCore
import XCTest

/// Loss, every gradient and the final state against PyTorch (tools/make_lm_fixtures.py, float64,
/// autograd), with the masks given explicitly: an independent check of forward and backward.
final class GoldenTests: XCTestCase {
    struct Fixture {
        let json: [String: Any]
        subscript(_ key: String) -> Any? { json[key] }
        func int(_ key: String) -> Int { json[key] as! Int }
        func floats(_ any: Any?) -> [Float] { (any as! [NSNumber]).map(\.floatValue) }
        func doubles(_ any: Any?) -> [Double] { (any as! [NSNumber]).map(\.doubleValue) }
        func ints(_ key: String) -> [Int32] { (json[key] as! [NSNumber]).map(\.int32Value) }
    }

    func load(_ name: String) throws -> Fixture {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: "json"))
        return Fixture(json: try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any])
    }

    func run(_ name: String) throws {
        try forEachKernelSet { isa in try run(name, label: "\(isa) \(name)") }
    }

    func run(_ fixture: String, label name: String) throws {
        let f = try load(fixture)
        var cfg = ModelConfig()
        (cfg.vocabSize, cfg.embedSize, cfg.hiddenSize, cfg.numLayers) =
            (f.int("vocab"), f.int("embed"), f.int("hidden"), f.int("layers"))
        let model = try LanguageModel(cfg)
        let params = f["params"] as! [String: [String: Any]]
        XCTAssertEqual(Set(params.keys), Set(model.parameters.map(\.pytorchName)))
        for p in model.parameters {
            XCTAssertEqual(params[p.pytorchName]!["shape"] as! [Int], p.pytorchShape, p.pytorchName)
            try p.setPyTorchValues(f.floats(params[p.pytorchName]!["data"]))
        }
        let (b, t) = (f.int("batch"), f.int("seq_len"))
        try model.setCarriedState(h: (f["h0"] as! [Any]).map(f.floats), c: (f["c0"] as! [Any]).map(f.floats), batchSize: b)

        let masks = f["masks"] as! [String: Any]
        func setMasks(_ key: String, _ targets: [DropoutMask]) throws {
            guard let given = masks[key], !(given is NSNull) else { return }
            let perMask: [Any] = key == "input" || key == "output" ? [given] : given as! [Any]
            XCTAssertEqual(perMask.count, targets.count, key)
            for (m, values) in zip(targets, perMask) { try m.setExplicit(f.floats(values), steps: t, batch: b) }
        }
        try setMasks("input", model.masks(at: .input))
        try setMasks("between", model.masks(at: .between))
        try setMasks("output", model.masks(at: .output))
        try setMasks("recurrent", model.masks(at: .recurrent))

        let inputs = f.ints("inputs"), targets = f.ints("targets")
        let loss = try inputs.withUnsafeBufferPointer { i in
            try targets.withUnsafeBufferPointer { tg in
                try model.lossAndGradients(Batch(batchSize: b, seqLen: t, inputs: i.baseAddress!, targets: tg.baseAddress!)).loss
            }
        }
        XCTAssertEqual(loss, f["loss"] as! Double, accuracy: 1e-5 * (f["loss"] as! Double), "\(name): loss")
        let grads = f["grads"] as! [String: Any]
        for p in model.parameters {
            var ours = p.pytorchValues(p.grad)
            if p === model.embedding.table {
                // The sparse embedding gradient is defined on the rows the batch uses only.
                let used = Set(inputs.map(Int.init))
                for r in 0..<p.rows where !used.contains(r) { for c in 0..<p.cols { ours[r * p.cols + c] = 0 } }
            }
            assertClose(ours, f.doubles(grads[p.pytorchName]), atol: 2e-6, rtol: 1e-4, "\(name): grad \(p.pytorchName)")
        }
        let n = b * cfg.hiddenSize
        for (l, layer) in model.layers.enumerated() {
            assertClose(Array(UnsafeBufferPointer(start: layer.finalHidden, count: n)),
                        f.doubles((f["h_final"] as! [Any])[l]), atol: 1e-6, rtol: 1e-5, "\(name): h_final[\(l)]")
            assertClose(Array(UnsafeBufferPointer(start: layer.finalCell, count: n)),
                        f.doubles((f["c_final"] as! [Any])[l]), atol: 1e-6, rtol: 1e-5, "\(name): c_final[\(l)]")
        }
    }

    func testNoDropout() throws { try run("lm_golden_none") }
    func testStandard() throws { try run("lm_golden_standard") }
    func testStructured() throws { try run("lm_golden_structured") }
    func testVariational() throws { try run("lm_golden_variational") }
}
