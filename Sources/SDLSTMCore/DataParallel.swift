/// Data-parallel training: N replicas of one model, each stepping its shard of a global batch, whose
/// gradients a host-owned reduction (MPI_Allreduce, NCCL, a thread barrier) sums between the
/// backward pass and the update. The library itself never communicates.
///
/// What makes N replicas compute what one process computes on the whole batch:
/// - the reduction sums gradients of the *summed* token loss and the token counts, and the update
///   divides by the global count: the token-mean loss over the global batch;
/// - the norm that clips is that of the reduced gradient;
/// - every replica draws every mask of the global batch from the same stream and keeps its shard's
///   rows (`BatchShard`), so batch-uniform masks (III, IV) agree on every replica, per-sample masks
///   (I, II) of global sample i are those one process draws for sample i, and the streams stay in
///   step. Offset 0 with the global batch equal to the batch draws what a plain model draws.

/// Where a replica's batch lies in the global batch: rows offset ..< offset + batch_size of
/// globalBatch. globalBatch 0: the batch is the whole batch.
public struct BatchShard: Equatable, Sendable {
    public var offset = 0
    public var globalBatch = 0

    public init(offset: Int = 0, globalBatch: Int = 0) { (self.offset, self.globalBatch) = (offset, globalBatch) }

    public static func make(offset: Int, globalBatch: Int) throws(SDLSTMError) -> BatchShard {
        guard globalBatch >= 0, offset >= 0, globalBatch > 0 || offset == 0, offset < max(globalBatch, 1) else {
            throw .invalid("shard offset \(offset) must lie in [0, global_batch_size = \(globalBatch)) (global 0: no shard, offset 0)")
        }
        return BatchShard(offset: offset, globalBatch: globalBatch)
    }

    /// The global rows before and after a batch of `batch` rows (0, 0 without a shard).
    func margins(batch: Int) -> (before: Int, after: Int) {
        globalBatch == 0 ? (0, 0) : (offset, globalBatch - offset - batch)
    }

    func check(batch: Int) throws(SDLSTMError) {
        guard globalBatch == 0 || offset + batch <= globalBatch else {
            throw .invalid("batch_size \(batch) at shard offset \(offset) passes the global batch size \(globalBatch)")
        }
    }
}

/// Sums, in place and identically on every replica, a replica's gradients (every parameter, in
/// `Model.parameters` order, each its gradient of the summed token loss) and its two totals (loss
/// sum, token count). Throws to fail the step.
public typealias GradientReducer = (_ gradients: UnsafeMutableBufferPointer<Float>,
                                    _ totals: UnsafeMutableBufferPointer<Double>) throws(SDLSTMError) -> Void

/// A model's replica settings: its shard and the host's reduction.
public final class DataParallel {
    public var shard = BatchShard()
    public var reducer: GradientReducer?
    /// The gradients handed to the reducer, allocated on the first reduced step.
    private var packed: Buffer?

    public init() {}

    /// Reduces this replica's step: packs its gradients (scaled from the local mean to the local
    /// sum; zeros, and a NaN loss, when its loss is not finite, so that every replica fails
    /// together), calls the reducer, and returns the global stats and the reduced gradient spans
    /// (sums: the caller divides by the global token count). Changes nothing of the model.
    func reduce(_ model: some Model, _ local: StepStats,
                _ reducer: GradientReducer) throws(SDLSTMError) -> (stats: StepStats, spans: [GradientSpan]) {
        let parameters = model.parameters
        let count = parameters.reduce(0) { $0 + $1.count }
        if packed?.count != count { packed = try Buffer(count) }
        let buffer = packed!
        let finite = local.loss.isFinite
        let scale = Float(local.tokens)
        let sparse = Dictionary(uniqueKeysWithValues: model.embeddings.map { (ObjectIdentifier($0.table), $0) })
        var spans: [GradientSpan] = []
        var offset = 0
        for p in parameters {
            let dst = buffer.ptr + offset
            if !finite {
                dst.update(repeating: 0, count: p.count)
            } else if let e = sparse[ObjectIdentifier(p)] {
                // Only the used rows hold this step's gradient; the others may be stale.
                dst.update(repeating: 0, count: p.count)
                for r in e.touchedRows {
                    let o = Int(r) * e.width
                    scaled(p.grad.ptr + o, scale, dst + o, e.width)
                }
            } else {
                scaled(p.grad.ptr, scale, dst, p.count, pool: model.compute.pool)
            }
            spans.append(GradientSpan(grad: dst, value: p.value.ptr, count: p.count))
            offset += p.count
        }
        var totals = [finite ? local.loss * Double(local.tokens) : .nan, Double(local.tokens)]
        try totals.withUnsafeMutableBufferPointer { (t) throws(SDLSTMError) in
            try reducer(UnsafeMutableBufferPointer(start: buffer.ptr, count: count), t)
        }
        var stats = local
        stats.tokens = Int(exactly: totals[1]) ?? 0
        stats.loss = stats.tokens > 0 ? totals[0] / totals[1] : .nan
        return (stats, spans)
    }
}

/// dst = a · src, in parallel chunks for a large span.
private func scaled(_ src: UnsafePointer<Float>, _ a: Float, _ dst: UnsafeMutablePointer<Float>, _ n: Int,
                    pool: ThreadPool? = nil) {
    let chunk = Optimizer.chunk, chunks = (n + chunk - 1) / chunk
    let run = { (r: Range<Int>) in
        for c in r {
            let lo = c * chunk
            for i in lo..<min(lo + chunk, n) { dst[i] = a * src[i] }
        }
    }
    if let pool, chunks > 1 { pool.forChunks(chunks, run) } else { run(0..<chunks) }
}
