import Foundation
import Glibc
import SDLSTMCore
import XCTest

/// Data parallelism in one process: two replicas stepping half batches on two threads, their
/// gradients summed by a plain Swift sum behind a barrier, must train as one model stepping the
/// whole batch, for every task and every dropout policy.
final class DataParallelTests: XCTestCase {
    static let steps = 20

    /// A global batch as rows, each row's fields contiguous (all batch-major), so that a shard is
    /// a row range of every field.
    struct GlobalBatch {
        var rows: Int
        var seqLen: Int, targetLen = 0, maxWordLen = 0
        var inputs: [Int32], targets: [Int32]
        var lengths: [Int32]? = nil, targetLengths: [Int32]? = nil
        var chars: [Int32]? = nil, wordLengths: [Int32]? = nil

        /// Runs body on rows r of this batch.
        func withRows<R>(_ r: Range<Int>, _ body: (Batch) throws -> R) rethrows -> R {
            func slice(_ a: [Int32]?) -> [Int32]? {
                guard let a else { return nil }
                let per = a.count / rows
                return Array(a[(r.lowerBound * per)..<(r.upperBound * per)])
            }
            let (i, t, l, tl, c, w) = (slice(inputs)!, slice(targets)!, slice(lengths), slice(targetLengths),
                                       slice(chars), slice(wordLengths))
            return try i.withUnsafeBufferPointer { i in
                try t.withUnsafeBufferPointer { t in
                    try withOptional(l) { l in
                        try withOptional(tl) { tl in
                            try withOptional(c) { c in
                                try withOptional(w) { w in
                                    var b = Batch(batchSize: r.count, seqLen: seqLen, inputs: i.baseAddress!, targets: t.baseAddress!)
                                    (b.lengths, b.targetLen, b.targetLengths) = (l, targetLen, tl)
                                    (b.maxWordLen, b.chars, b.wordLengths) = (maxWordLen, c, w)
                                    return try body(b)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    enum Kind: CaseIterable { case languageModel, tagger, translator }

    func makeModel(_ kind: Kind) throws -> any Model {
        switch kind {
        case .languageModel:
            var c = ModelConfig()
            (c.vocabSize, c.embedSize, c.hiddenSize, c.numLayers, c.initScale, c.seed) = (13, 6, 8, 2, 0.3, 3)
            return try LanguageModel(c)
        case .tagger:
            var c = ModelConfig(task: .tagger)
            (c.vocabSize, c.embedSize, c.hiddenSize, c.numLayers, c.initScale, c.seed) = (11, 5, 6, 2, 0.3, 3)
            (c.numTags, c.charVocabSize, c.charEmbedSize, c.charHiddenSize, c.useCRF) = (5, 7, 3, 4, true)
            return try Tagger(c)
        case .translator:
            var c = ModelConfig(task: .seq2seq)
            (c.vocabSize, c.targetVocabSize, c.embedSize, c.hiddenSize, c.numLayers, c.initScale, c.seed) =
                (11, 12, 5, 6, 2, 0.3, 3)
            (c.bidirectional, c.inputFeeding) = (true, true)
            return try Translator(c)
        }
    }

    /// Step s's global batch of 4 rows: random ids, random lengths for the padded tasks.
    func batch(_ kind: Kind, step s: Int) -> GlobalBatch {
        var rng = Random(seed: UInt64(1000 + s))
        func draw(_ n: Int) -> Int32 { Int32(rng.next() % UInt64(n)) }
        let rows = 4
        switch kind {
        case .languageModel:
            let t = 5
            return GlobalBatch(rows: rows, seqLen: t, inputs: (0..<(rows * t)).map { _ in draw(13) },
                               targets: (0..<(rows * t)).map { _ in draw(13) })
        case .tagger:
            let (t, w) = (6, 4)
            var g = GlobalBatch(rows: rows, seqLen: t, maxWordLen: w, inputs: (0..<(rows * t)).map { _ in draw(11) },
                                targets: (0..<(rows * t)).map { _ in draw(5) })
            g.lengths = (0..<rows).map { _ in 1 + draw(t) }
            g.wordLengths = (0..<(rows * t)).map { _ in 1 + draw(w) }
            g.chars = (0..<(rows * t * w)).map { _ in draw(7) }
            return g
        case .translator:
            let (t, tt) = (5, 6)
            var g = GlobalBatch(rows: rows, seqLen: t, targetLen: tt, inputs: (0..<(rows * t)).map { _ in draw(11) },
                                targets: (0..<(rows * tt)).map { _ in draw(12) })
            g.lengths = (0..<rows).map { _ in 1 + draw(t) }
            g.targetLengths = (0..<rows).map { _ in 2 + draw(tt - 1) }
            return g
        }
    }

    func configure(_ m: any Model, _ policy: DropoutPolicy) throws {
        for site in DropoutSite.allCases where !m.masks(at: site).isEmpty {
            try m.setDropout(DropoutSetting(policy: policy, p: site == .recurrent ? 0.25 : 0.5), at: site)
        }
        try m.optimizer.setLearningRate(0.5)
        try m.optimizer.setClipNorm(0.5)  // below the norms of these steps: the global norm clips
        m.seed(42)
    }

    /// The model's parameter values, in order.
    func values(_ m: any Model) -> [[Float]] { m.parameters.map(\.value.array) }

    /// One model on the whole batches against two replicas on halves; `fail` makes replica
    /// `rank` fail step `step` (a NaN gradient or a non-finite loss), which every replica must
    /// skip, as the one model skips that batch.
    func check(_ kind: Kind, _ policy: DropoutPolicy, nanGradient: (rank: Int, step: Int)? = nil,
               nanLoss: (rank: Int, step: Int)? = nil, file: StaticString = #filePath, line: UInt = #line) throws {
        let what = "\(kind) \(policy)"
        let single = try makeModel(kind)
        let replicas = [try makeModel(kind), try makeModel(kind)]
        for m in [single] + replicas { try configure(m, policy) }
        let sum = AllReduce(ranks: 2)
        for (rank, m) in replicas.enumerated() {
            m.dataParallel.shard = try BatchShard.make(offset: 2 * rank, globalBatch: 4)
            m.dataParallel.reducer = sum.reducer(rank: rank)
        }
        let skipped = Set([nanGradient?.step, nanLoss?.step].compactMap { $0 })
        var singleLosses: [Double] = [], replicaLosses: [[Double]] = [[], []]
        for s in 0..<Self.steps {
            let g = batch(kind, step: s)
            if !skipped.contains(s) { singleLosses.append(try g.withRows(0..<4) { try single.step($0) }.loss) }
            sum.poisonRank = nanGradient?.step == s ? nanGradient!.rank : nil
            let before = replicas.map(values)
            let poisoned = nanLoss?.step == s ? replicas[nanLoss!.rank] : nil
            let bias = poisoned?.parameters.last(where: { $0.pytorchName.hasSuffix("bias") })
            let savedBias = bias?.value.array
            if let bias { for i in 0..<bias.count { bias.value[i] = .nan } }
            let results = runConcurrently(2) { rank -> Result<StepStats, Error> in
                do { return .success(try g.withRows((2 * rank)..<(2 * rank + 2)) { try replicas[rank].step($0) }) }
                catch { return .failure(error) }
            }
            if let bias, let savedBias { for i in 0..<bias.count { bias.value[i] = savedBias[i] } }
            for (rank, r) in results.enumerated() {
                switch r {
                case .success(let stats):
                    XCTAssertFalse(skipped.contains(s), "\(what) step \(s): replica \(rank) updated", file: file, line: line)
                    replicaLosses[rank].append(stats.loss)
                case .failure(let e):
                    guard case .numeric = e as? SDLSTMError, skipped.contains(s) else {
                        return XCTFail("\(what) step \(s) replica \(rank): \(e)", file: file, line: line)
                    }
                    // Nothing changed (the poisoned bias is restored above).
                    XCTAssertEqual(values(replicas[rank]), before[rank], "\(what) step \(s)",
                                   file: file, line: line)
                }
            }
        }
        XCTAssertEqual(replicaLosses[0], replicaLosses[1], "\(what): the replicas' global losses", file: file, line: line)
        XCTAssertEqual(singleLosses.count, Self.steps - skipped.count, file: file, line: line)
        assertClose(replicaLosses[0].map(Float.init), singleLosses, atol: 0, rtol: 1e-5, "\(what) losses",
                    file: file, line: line)
        let (a, b, one) = (values(replicas[0]), values(replicas[1]), values(single))
        XCTAssertEqual(a, b, "\(what): the replicas' parameters", file: file, line: line)
        for (i, p) in single.parameters.enumerated() {
            assertClose(a[i], one[i].map(Double.init), atol: 1e-6, rtol: 1e-4, "\(what) \(p.pytorchName)",
                        file: file, line: line)
        }
        XCTAssertEqual(replicas[0].optimizer.progress, single.optimizer.progress, file: file, line: line)
        XCTAssertEqual(replicas[0].rng.state.0, single.rng.state.0, "\(what): the mask streams", file: file, line: line)
    }

    func testLanguageModelEveryPolicy() throws {
        for policy in DropoutPolicy.allCases { try check(.languageModel, policy) }
    }

    func testTaggerEveryPolicy() throws {
        for policy in DropoutPolicy.allCases { try check(.tagger, policy) }
    }

    func testTranslatorEveryPolicy() throws {
        for policy in DropoutPolicy.allCases { try check(.translator, policy) }
    }

    /// A NaN in one replica's gradient (step 7) and a non-finite loss on the other (step 13):
    /// every replica skips that update, and the run goes on as one model that skipped the batch.
    func testOneFailingReplicaMakesEverySkip() throws {
        for kind in Kind.allCases {
            try check(kind, .standard, nanGradient: (0, 7), nanLoss: (1, 13))
        }
    }

    /// A failing reducer's error is the step's, and the step changes nothing.
    func testFailingReducerChangesNothing() throws {
        let m = try makeModel(.languageModel)
        try configure(m, .structured)
        m.dataParallel.reducer = { _, _ throws(SDLSTMError) in throw .io("link down") }
        let before = values(m), rng = m.rng.state.0
        XCTAssertThrowsError(try batch(.languageModel, step: 0).withRows(0..<4) { try m.step($0) }) {
            XCTAssertEqual($0 as? SDLSTMError, .io("link down"))
        }
        XCTAssertEqual(values(m), before)
        XCTAssertEqual(m.rng.state.0, rng)
        XCTAssertEqual(m.optimizer.progress.step, 0)
    }

    /// Offset 0 with the global batch equal to the batch draws what a model without a shard draws,
    /// and a batch that passes the global batch is refused.
    func testShardOfTheWholeBatchIsNoShard() throws {
        let plain = try makeModel(.languageModel), sharded = try makeModel(.languageModel)
        for m in [plain, sharded] { try configure(m, .standard) }
        sharded.dataParallel.shard = try BatchShard.make(offset: 0, globalBatch: 4)
        for s in 0..<3 {
            let g = batch(.languageModel, step: s)
            XCTAssertEqual(try g.withRows(0..<4) { try plain.step($0) }, try g.withRows(0..<4) { try sharded.step($0) })
        }
        XCTAssertEqual(values(plain), values(sharded))
        sharded.dataParallel.shard = try BatchShard.make(offset: 2, globalBatch: 4)
        XCTAssertThrowsError(try batch(.languageModel, step: 3).withRows(0..<4) { try sharded.step($0) })
        XCTAssertThrowsError(try BatchShard.make(offset: 4, globalBatch: 4))
        XCTAssertThrowsError(try BatchShard.make(offset: 1, globalBatch: 0))
    }
}

/// A sum over `ranks` threads: each rank's reducer publishes its buffers, rank 0 adds them up in
/// rank order, and every rank copies the sums back, behind barriers.
final class AllReduce: @unchecked Sendable {
    let ranks: Int
    private let barrier = UnsafeMutablePointer<pthread_barrier_t>.allocate(capacity: 1)
    private var gradients: [UnsafeMutableBufferPointer<Float>?]
    private var totals: [UnsafeMutableBufferPointer<Double>?]
    private var gradientSum: [Float] = [], totalSum: [Double] = []
    /// The rank whose gradient gets a NaN before the sum (a failing replica), if any.
    var poisonRank: Int?

    init(ranks: Int) {
        self.ranks = ranks
        pthread_barrier_init(barrier, nil, UInt32(ranks))
        gradients = Array(repeating: nil, count: ranks)
        totals = Array(repeating: nil, count: ranks)
    }

    deinit {
        pthread_barrier_destroy(barrier)
        barrier.deallocate()
    }

    func reducer(rank: Int) -> GradientReducer {
        { [self] g, t in
            if poisonRank == rank { g[g.count / 2] = .nan }
            gradients[rank] = g
            totals[rank] = t
            pthread_barrier_wait(barrier)
            if rank == 0 {
                gradientSum = Array(gradients[0]!)
                totalSum = Array(totals[0]!)
                for r in 1..<ranks {
                    for i in 0..<gradientSum.count { gradientSum[i] += gradients[r]![i] }
                    for i in 0..<totalSum.count { totalSum[i] += totals[r]![i] }
                }
            }
            pthread_barrier_wait(barrier)
            for i in 0..<g.count { g[i] = gradientSum[i] }
            for i in 0..<t.count { t[i] = totalSum[i] }
            pthread_barrier_wait(barrier)
        }
    }
}

/// body(0), …, body(n - 1), each on its own thread; their results in order.
func runConcurrently<R>(_ n: Int, _ body: @escaping (Int) -> R) -> [R] {
    let results = UnsafeMutableBufferPointer<R?>.allocate(capacity: n)
    results.initialize(repeating: nil)
    defer { results.deallocate() }
    let done = DispatchGroup()
    // Each thread writes its own slot and the group's wait orders the writes before the reads.
    nonisolated(unsafe) let out = results
    nonisolated(unsafe) let run = body
    for i in 0..<n {
        done.enter()
        Thread { out[i] = run(i); done.leave() }.start()
    }
    done.wait()
    return results.map { $0! }
}

private func withOptional<R>(_ a: [Int32]?, _ body: (UnsafePointer<Int32>?) throws -> R) rethrows -> R {
    guard let a else { return try body(nil) }
    return try a.withUnsafeBufferPointer { try body($0.baseAddress!) }
}
