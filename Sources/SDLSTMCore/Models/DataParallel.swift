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

/// Sums, in place and identically on every replica, a buffer of floats and the step's two totals
/// (loss sum, token count); throws to fail the step. Each reduced step calls it twice, in the same
/// order on every replica: first with the embeddings' row counts (how many replicas used each row)
/// and the totals, then with the gradients (of the summed token loss: the dense parameters in
/// `Model.parameters` order, then each embedding's rows that any replica used, ascending) and zero
/// totals.
public typealias GradientReducer = (_ values: UnsafeMutableBufferPointer<Float>,
                                    _ totals: UnsafeMutableBufferPointer<Double>) throws(SDLSTMError) -> Void

/// What a reduced step updates with: the global stats, the summed gradients of the dense
/// parameters, and of each embedding the rows any replica used with their summed gradients.
struct ReducedGradients {
    var stats: StepStats
    var dense: [GradientSpan] = []
    var rows: [(embedding: Embedding, rows: [Int32], grad: UnsafePointer<Float>)] = []
    /// The spans whose squares make the gradient norm (dense, then each embedding's used rows).
    var normSpans: [GradientSpan] {
        dense + rows.map { GradientSpan(grad: $0.grad, value: $0.embedding.table.value.ptr, count: $0.rows.count * $0.embedding.width) }
    }
}

/// A model's replica settings: its shard and the host's reduction.
public final class DataParallel {
    public var shard = BatchShard()
    public var reducer: GradientReducer?
    /// What the reducer sums, allocated when it grows.
    private var packed: Buffer?

    public init() {}

    private func buffer(_ count: Int) throws(SDLSTMError) -> Buffer {
        if let packed, packed.count >= count { return packed }
        let b = try Buffer(count)
        packed = b
        return b
    }

    /// Reduces this replica's step without changing the model. The embeddings' gradients are sparse
    /// (a step uses at most B × T rows of a vocabulary), so the first sum finds the rows any replica
    /// used and the second sums only those with the dense gradients. A replica whose loss is not
    /// finite counts no rows and sends a NaN loss sum: every replica then stops after the first sum.
    /// The sums are of the summed token loss; the caller divides by the global token count.
    func reduce(_ model: some Model, _ local: StepStats, _ reducer: GradientReducer) throws(SDLSTMError) -> ReducedGradients {
        let finite = local.loss.isFinite
        let embeddings = model.embeddings
        let vocabulary = embeddings.reduce(0) { $0 + $1.vocabSize }
        var totals = [finite ? local.loss * Double(local.tokens) : .nan, Double(local.tokens)]
        var zero = [0.0, 0.0]
        let used = try buffer(vocabulary)
        used.ptr.update(repeating: 0, count: vocabulary)
        if finite {
            var base = 0
            for e in embeddings {
                for r in e.touchedRows { used[base + Int(r)] = 1 }
                base += e.vocabSize
            }
        }
        try totals.withUnsafeMutableBufferPointer { (t) throws(SDLSTMError) in
            try reducer(UnsafeMutableBufferPointer(start: used.ptr, count: vocabulary), t)
        }
        var out = ReducedGradients(stats: local)
        out.stats.tokens = Int(exactly: totals[1]) ?? 0
        out.stats.loss = out.stats.tokens > 0 ? totals[0] / totals[1] : .nan
        var rows: [[Int32]] = []
        var base = 0
        for e in embeddings {
            rows.append((0..<e.vocabSize).compactMap { used[base + $0] > 0 ? Int32($0) : nil })
            base += e.vocabSize
        }
        // Every replica has the same totals now: all go on to the gradients, or all stop here (a
        // replica whose own loss is not finite made the sum NaN).
        guard out.stats.loss.isFinite else { return out }

        let dense = model.denseParameters
        let count = dense.reduce(0) { $0 + $1.count } + zip(embeddings, rows).reduce(0) { $0 + $1.1.count * $1.0.width }
        let buffer = try buffer(count)
        let scale = Float(local.tokens)
        var offset = 0
        for p in dense {
            let dst = buffer.ptr + offset
            scaled(p.grad.ptr, scale, dst, p.count, pool: model.compute.pool)
            out.dense.append(GradientSpan(grad: dst, value: p.value.ptr, count: p.count))
            offset += p.count
        }
        for (e, used) in zip(embeddings, rows) {
            let dst = buffer.ptr + offset, w = e.width
            for (i, r) in used.enumerated() {
                // The grad table's rows this replica did not use may hold an earlier step's values.
                if e.isTouched(Int(r)) { scaled(e.table.grad.ptr + Int(r) * w, scale, dst + i * w, w) }
                else { (dst + i * w).update(repeating: 0, count: w) }
            }
            out.rows.append((e, used, UnsafePointer(dst)))
            offset += used.count * w
        }
        try zero.withUnsafeMutableBufferPointer { (t) throws(SDLSTMError) in
            try reducer(UnsafeMutableBufferPointer(start: buffer.ptr, count: count), t)
        }
        return out
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
