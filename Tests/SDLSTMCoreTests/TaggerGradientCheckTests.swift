import SDLSTMCore
import XCTest

/// Central finite differences of the tagger's training loss against its backward pass, for every
/// entry of every parameter (word and character embeddings, character BiLSTM, word BiLSTM layers,
/// tag projection, CRF transitions), masks frozen so the loss is one function of the parameters.
/// The batch has sentences of different lengths with garbage in the padding.
final class TaggerGradientCheckTests: XCTestCase {
    func check(_ policy: DropoutPolicy, sites: [DropoutSite], p: Float = 0.3, layers: Int = 2,
               chars: Bool = true, crf: Bool = true, initScale: Float = 1) throws {
        let problem = try TaggerProblem(layers: layers, chars: chars, crf: crf, charHidden: 6, maxWordLen: 6, initScale: initScale)
        let model = problem.model
        for site in sites {
            try model.setDropout(DropoutSetting(policy: policy, p: p), at: site)
            for m in model.masks(at: site) { m.frozen = true }
        }
        _ = try problem.lossAndGradients()
        let used = problem.usedRows()
        let atol = 5e-5
        for param in model.parameters {
            let analytic = param.grad.array
            var numeric = try numericGradient(param) { try problem.trainingLoss() }
            // Rows of an embedding that the batch never uses are unspecified by the sparse gradient.
            let rows: Set<Int>? = param === model.wordEmbedding.table ? used.words
                : param === model.characters?.embedding.table ? used.chars : nil
            if let rows {
                for r in 0..<param.rows where !rows.contains(r) {
                    for c in 0..<param.cols { numeric[r * param.cols + c] = Double(analytic[r * param.cols + c]) }
                }
            }
            XCTAssertGreaterThan(numeric.map(abs).max()!, 10 * atol, "\(policy) \(param.pytorchName): gradient too small to check")
            assertClose(analytic, numeric, atol: atol, rtol: 2e-2, "\(policy) \(param.pytorchName)")
        }
    }

    let allSites: [DropoutSite] = [.input, .between, .output, .recurrent]

    func testParameterNamesFollowPyTorch() throws {
        let names = try TaggerProblem(layers: 2).model.parameters.map(\.pytorchName)
        let lstm = { (name: String, l: Int) in
            ["", "_reverse"].flatMap { s in
                ["weight_ih", "weight_hh", "bias_ih", "bias_hh"].map { "\(name).\($0)_l\(l)\(s)" }
            }
        }
        XCTAssertEqual(names, ["word_embedding.weight", "char_embedding.weight"] + lstm("char_lstm", 0)
                       + lstm("lstm", 0) + lstm("lstm", 1)
                       + ["hidden2tag.weight", "hidden2tag.bias", "crf.start_transitions", "crf.end_transitions", "crf.transitions"])
    }

    func testNoDropout() throws { try check(.none, sites: []) }
    func testStandard() throws { try check(.standard, sites: allSites) }
    func testStructured() throws { try check(.structured, sites: allSites, p: 0.5) }
    func testVariational() throws { try check(.variational, sites: allSites) }
    func testStructuredOneLayerWithoutCharacters() throws {
        try check(.structured, sites: [.input, .output, .recurrent], p: 0.5, layers: 1, chars: false)
    }
    func testSoftmaxWithoutCRF() throws { try check(.standard, sites: allSites, crf: false) }
}
