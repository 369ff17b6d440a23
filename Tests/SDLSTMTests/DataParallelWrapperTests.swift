import CSDLSTM
import SDLSTM
import XCTest

/// The reducer through the wrapper and the C ABI. A reducer that doubles its buffers makes one
/// replica act as two replicas holding the same rows: with masks that do not depend on the row
/// (none, structured), it trains as one model whose batch is those rows twice.
final class DataParallelWrapperTests: XCTestCase {
    let config = LanguageModelConfig(vocabSize: 20, embedSize: 6, hiddenSize: 8, numLayers: 2, initScale: 0.1, seed: 3)

    func rows(_ step: Int) -> (inputs: [Int32], targets: [Int32]) {
        let ids = (0..<(2 * 5)).map { Int32(($0 * 7 + step * 3) % 20) }
        return (ids, ids.map { ($0 + 1) % 20 })
    }

    func testDoublingReducerTrainsAsTheBatchTwice() throws {
        let twice = try LanguageModel(config), replica = try LanguageModel(config)
        var calls = 0
        for m in [twice, replica] {
            try m.setDropout(.structured, p: 0.5, at: .output)
            try m.setLearningRate(1)
            try m.setClipNorm(0.1)
        }
        try replica.setBatchShard(offset: 0, globalBatchSize: 4)
        let vocab = config.vocabSize
        try replica.setGradientReducer { values, totals in
            // First the rows used (with the totals), then the gradients (with zero totals).
            calls += 1
            XCTAssertEqual(totals.count, 2)
            if calls % 2 == 1 {
                XCTAssertEqual(values.count, vocab)
                XCTAssertTrue(values.allSatisfy { $0 == 0 || $0 == 1 })
                XCTAssertEqual(totals[1], 10, "the replica's token count")
            } else {
                XCTAssertEqual(totals[1], 0)
            }
            for i in values.indices { values[i] *= 2 }
            for i in totals.indices { totals[i] *= 2 }
            return true
        }
        for s in 0..<10 {
            let (x, y) = rows(s)
            let a = try twice.step(inputs: x + x, targets: y + y, batchSize: 4, seqLen: 5)
            let b = try replica.step(inputs: x, targets: y, batchSize: 2, seqLen: 5)
            XCTAssertEqual(b.tokens, a.tokens, "the global token count")
            XCTAssertEqual(b.loss, a.loss, accuracy: 1e-5 * a.loss, "step \(s)")
            XCTAssertEqual(b.gradNorm, a.gradNorm, accuracy: 1e-4 * a.gradNorm, "step \(s): the clipped norm is the global one")
        }
        XCTAssertEqual(calls, 20)
        let (x, y) = rows(10)
        XCTAssertEqual(try replica.evaluate(inputs: x, targets: y, batchSize: 2, seqLen: 5).loss,
                       try twice.evaluate(inputs: x + x, targets: y + y, batchSize: 4, seqLen: 5).loss, accuracy: 1e-5)
    }

    func testFailingReducerIsIOAndChangesNothing() throws {
        let m = try LanguageModel(config)
        try m.setGradientReducer { _, _ in false }
        let (x, y) = rows(0)
        XCTAssertThrowsError(try m.step(inputs: x, targets: y, batchSize: 2, seqLen: 5)) {
            XCTAssertEqual(($0 as? SDLSTMError)?.status, .io, "\($0)")
        }
        XCTAssertEqual(m.progress.step, 0)
        try m.setGradientReducer(nil)
        XCTAssertNoThrow(try m.step(inputs: x, targets: y, batchSize: 2, seqLen: 5))
        XCTAssertEqual(m.progress.step, 1)
    }

    func testShardsAreChecked() throws {
        let m = try LanguageModel(config)
        XCTAssertThrowsError(try m.setBatchShard(offset: 4, globalBatchSize: 4))
        XCTAssertThrowsError(try m.setBatchShard(offset: -1, globalBatchSize: 4))
        XCTAssertThrowsError(try m.setBatchShard(offset: 1, globalBatchSize: 0))
        try m.setBatchShard(offset: 3, globalBatchSize: 4)
        let (x, y) = rows(0)
        XCTAssertThrowsError(try m.step(inputs: x, targets: y, batchSize: 2, seqLen: 5)) {
            XCTAssertEqual(($0 as? SDLSTMError)?.status, .invalid, "\($0)")
        }
        XCTAssertEqual(sdlstm_set_batch_shard(nil, 0, 0), SDLSTM_E_INVALID)
        XCTAssertEqual(sdlstm_set_gradient_reducer(nil, nil, nil), SDLSTM_E_INVALID)
    }
}
