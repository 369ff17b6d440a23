/// The checks a model runs on a batch before it reads a buffer: the same for the three models, so
/// a bad batch gets the same words whichever model it reaches. Each failure is `.invalid` naming
/// the offending field and index.
extension Batch {
    /// B ≥ 1 rows of T ≥ 1 positions (`steps`, default seq_len), with B · T · widest small enough
    /// that every buffer's element count fits in the kernels' Int32 sizes.
    func checkShape(steps: Int? = nil, widest: Int, _ name: String = "seq_len") throws(SDLSTMError) {
        let (t, b) = (steps ?? seqLen, batchSize)
        guard b >= 1 && t >= 1 else { throw .invalid("batch_size and \(name) must be >= 1, got \(b) and \(t)") }
        let (rows, overflow) = t.multipliedReportingOverflow(by: b)
        guard !overflow, rows <= Int(Int32.max) / widest else {
            throw .invalid("batch_size × \(name) = \(b) × \(t) is too large for this model")
        }
    }

    /// The B row lengths of `p` (nil: all `max`), each in [min, max].
    func rowLengths(_ p: UnsafePointer<Int32>?, max: Int, min: Int = 1, _ name: String) throws(SDLSTMError) -> [Int] {
        var lengths = [Int](repeating: max, count: batchSize)
        if let p {
            for i in 0..<batchSize {
                guard p[i] >= min && Int(p[i]) <= max else { throw .invalid("\(name)[\(i)] = \(p[i]) is outside [\(min), \(max)]") }
                lengths[i] = Int(p[i])
            }
        }
        return lengths
    }

    /// The targets a loss reads (decoding reads none, so the field may be NULL there).
    func requiredTargets() throws(SDLSTMError) -> UnsafePointer<Int32> {
        guard let targets else { throw .invalid("batch->targets is NULL") }
        return targets
    }
}

/// Every id of the real positions in [0, bound): row i's first lengths[i] ids (nil: all `stride`)
/// of B = lengths.count rows, `stride` apart. The message gives the flat index into `name`.
func checkIDs(_ ids: UnsafePointer<Int32>, rows: Int, stride: Int, lengths: [Int]? = nil, below bound: Int,
              _ name: String) throws(SDLSTMError) {
    for i in 0..<rows {
        for j in 0..<(lengths?[i] ?? stride) where ids[i * stride + j] < 0 || Int(ids[i * stride + j]) >= bound {
            throw .invalid("\(name)[\(i * stride + j)] = \(ids[i * stride + j]) is outside [0, \(bound))")
        }
    }
}

/// What a model's stored id pointer holds before its first batch: valid, never read.
nonisolated(unsafe) let emptyIDs = UnsafePointer<Int32>(UnsafeMutablePointer<Int32>.allocate(capacity: 1))
