import SDLSTMCore
import XCTest

/// Central finite differences of the training loss against the hand-written backward pass, for
/// every parameter entry, every policy on every site, masks frozen so the loss is one function.
final class GradientCheckTests: XCTestCase {
    func check(_ policy: DropoutPolicy, sites: [DropoutSite], p: Float = 0.3, layers: Int = 2) throws {
        try forEachKernelSet { isa in try check(policy, sites: sites, p: p, layers: layers, isa: isa) }
    }

    func check(_ policy: DropoutPolicy, sites: [DropoutSite], p: Float, layers: Int, isa: String) throws {
        let problem = try Problem(layers: layers)
        let model = problem.model
        for site in sites {
            try model.setDropout(DropoutSetting(policy: policy, p: p), at: site)
            for m in model.masks(at: site) { m.frozen = true }
        }
        _ = try problem.lossAndGradients()
        let atol = 5e-5
        for param in model.parameters {
            let analytic = param.grad.array
            var numeric = try numericGradient(param) { try problem.trainingLoss() }
            // Rows of the embedding the batch never uses are unspecified by the sparse gradient.
            if param === model.embedding.table {
                let used = Set(problem.inputs.map(Int.init))
                for r in 0..<param.rows where !used.contains(r) {
                    for c in 0..<param.cols { numeric[r * param.cols + c] = Double(analytic[r * param.cols + c]) }
                }
            }
            // A check of near-zero gradients would pass whatever the code did.
            XCTAssertGreaterThan(numeric.map(abs).max()!, 10 * atol, "\(isa) \(policy) \(param.pytorchName): gradient too small to check")
            assertClose(analytic, numeric, atol: atol, rtol: 2e-2, "\(isa) \(policy) \(param.pytorchName)")
        }
    }

    let allSites: [DropoutSite] = [.input, .between, .output, .recurrent]

    func testNoDropout() throws { try check(.none, sites: []) }
    func testVariational() throws { try check(.variational, sites: allSites) }
    func testStandard() throws { try check(.standard, sites: allSites) }
    /// p = 0.5 takes the kept-share kernels on SIMD sets (MaskedLinear.kernelsPay), p = 0.1 the dense
    /// path with the mask applied.
    func testStructured() throws { try check(.structured, sites: allSites, p: 0.5) }
    func testStructuredBelowKernelLimit() throws {
        XCTAssertFalse(MaskedLinear.kernelsPay(keep: 0.9))
        try check(.structured, sites: allSites, p: 0.1)
    }
    func testStructuredFixed() throws { try check(.structuredFixed, sites: allSites, p: 0.4) }
    func testSingleLayerStructured() throws { try check(.structured, sites: [.input, .output, .recurrent], p: 0.5, layers: 1) }
}
