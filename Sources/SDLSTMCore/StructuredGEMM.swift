import CKernels
import Glibc

/// The three GEMM passes of a layer whose input carries a batch-uniform (structured) mask, doing
/// only the kept share of the work (METHOD.md, "Why case III saves work"):
///
///     forward          C_t        += X̃_t[:, S_t] · W[S_t, :]       K shrinks to |S_t|
///     weight gradient  dW[S_t, :] += X̃_t[:, S_t]ᵀ · G_t             only kept rows change
///     backward data    dX_t[:, S_t] = G_t · W[S_t, :]ᵀ · scale      only kept columns are needed
///
/// W is input-major (D × N), so a kept unit is one contiguous row and nothing of W is ever copied.
/// All steps of the window run inside one call, N split into tiles whose D × tile slice of W stays
/// in L2 while every step's micro-kernel (CKernels) sweeps its kept-row list over it: W is read
/// from memory once per window, not once per step. X̃_t[:, S_t] (the gathered, scaled kept
/// columns) is all the backward pass keeps of the masked input.
extension DropoutMask {
    /// Columns per tile: the D × tile slice of W fills about half of a 512 KiB L2.
    public static func tileColumns(rows d: Int) -> Int {
        max(16, min(512, (65_536 / max(d, 1)) / 16 * 16))
    }

    /// Gathers X̃_t[:, S_t] = X_t[:, S_t] · scale of the given steps into `gathered`.
    public func gather(_ x: UnsafePointer<Float>, steps range: Range<Int>) {
        for t in range {
            let k = keptCount[t], idx = keptIndex.ptr + t * width, out = gathered.ptr + gatherOffset[t]
            for b in 0..<batch {
                let row = x + (t * batch + b) * width, o = out + b * k
                for j in 0..<k { o[j] = row[Int(idx[j])] * scale }
            }
        }
    }

    /// C_t (B × n, row stride ldc, time-major) += X̃_t[:, S_t] · W[S_t, :] for the given steps.
    /// Threads take disjoint column tiles.
    public func forwardGEMM(_ w: UnsafePointer<Float>, n: Int, into c: UnsafeMutablePointer<Float>, ldc: Int,
                            steps range: Range<Int>, pool: ThreadPool? = nil) {
        let tile = Self.tileColumns(rows: width)
        forTiles(n, tile: tile, pool: pool) { n0, n1 in
            for t in range {
                let k = keptCount[t], idx = keptIndex.ptr + t * width, a = gathered.ptr + gatherOffset[t]
                for r0 in stride(from: 0, to: batch, by: 6) {
                    let rows = min(6, batch - r0)
                    for c0 in stride(from: n0, to: n1, by: 16) {
                        sdk_forward(Int32(rows), Int32(min(16, n1 - c0)), Int32(k), a + r0 * k, Int32(k), idx,
                                    w + c0, Int32(n), c + (t * batch + r0) * ldc + c0, Int32(ldc))
                    }
                }
            }
        }
    }

    /// dW (width × n) = Σ_t X̃_t[:, S_t]ᵀ · G_t over every step: kept rows accumulate, rows no step
    /// keeps are zero. G is time-major with row stride ldg. Threads take disjoint column tiles.
    public func weightGradient(_ g: UnsafePointer<Float>, n: Int, ldg: Int, into dw: UnsafeMutablePointer<Float>,
                               pool: ThreadPool? = nil) {
        let tile = Self.tileColumns(rows: width)
        forTiles(n, tile: tile, pool: pool) { n0, n1 in
            for d in 0..<width { (dw + d * n + n0).update(repeating: 0, count: n1 - n0) }
            for t in 0..<steps {
                let k = keptCount[t], idx = keptIndex.ptr + t * width, a = gathered.ptr + gatherOffset[t]
                for u0 in stride(from: 0, to: k, by: 6) {
                    for c0 in stride(from: n0, to: n1, by: 16) {
                        sdk_weight_grad(Int32(min(6, k - u0)), Int32(min(16, n1 - c0)), Int32(batch), a + u0, Int32(k),
                                        idx + u0, g + t * batch * ldg + c0, Int32(ldg), dw + c0, Int32(n))
                    }
                }
            }
        }
    }

    /// dX_t (B × width, time-major) = (G_t · W[S_t, :]ᵀ) · scale on the kept columns, 0 on the
    /// dropped ones, for the given steps. `scratch` holds backwardScratchCount floats. Threads take
    /// disjoint steps, or for a single step disjoint blocks of kept units.
    public func backwardData(_ g: UnsafePointer<Float>, n: Int, ldg: Int, _ w: UnsafePointer<Float>,
                             into dx: UnsafeMutablePointer<Float>, steps range: Range<Int>, scratch: Buffer,
                             pool: ThreadPool? = nil) {
        let grad = gatheredGrad.ptr
        for t in range { (grad + gatherOffset[t]).update(repeating: 0, count: keptCount[t] * batch) }
        let parts = pool?.width ?? 1
        if range.count >= parts {
            let body = { (steps: Range<Int>) in
                self.backwardDataBlock(g, n: n, ldg: ldg, w, steps: steps, first: range.lowerBound, units: 0..<self.width,
                                       scratch: scratch)
            }
            if let pool, parts > 1 {
                pool.forChunks(range.count) { r in body((range.lowerBound + r.lowerBound)..<(range.lowerBound + r.upperBound)) }
            } else {
                body(range)
            }
        } else {
            // Few steps (the recurrent pass runs one at a time): split the kept units, in blocks of 4.
            for t in range {
                let blocks = (keptCount[t] + 3) / 4
                let body = { (r: Range<Int>) in
                    self.backwardDataBlock(g, n: n, ldg: ldg, w, steps: t..<(t + 1), first: range.lowerBound,
                                           units: (r.lowerBound * 4)..<min(r.upperBound * 4, self.keptCount[t]),
                                           scratch: scratch)
                }
                if let pool { pool.forChunks(blocks, body) } else { body(0..<blocks) }
            }
        }
        for t in range {
            let k = keptCount[t], idx = keptIndex.ptr + t * width, src = grad + gatherOffset[t]
            for b in 0..<batch {
                let row = dx + (t * batch + b) * width
                row.update(repeating: 0, count: width)
                for u in 0..<k { row[Int(idx[u])] = src[u * batch + b] * scale }
            }
        }
    }

    /// The kept units `units` (positions in each step's list) of the given steps, every column tile.
    private func backwardDataBlock(_ g: UnsafePointer<Float>, n: Int, ldg: Int, _ w: UnsafePointer<Float>,
                                   steps range: Range<Int>, first: Int, units: Range<Int>, scratch: Buffer) {
        let tile = Self.tileColumns(rows: width)
        let grad = gatheredGrad.ptr
        // Each participant transposes into its own scratch: the slot of its first step, or for a
        // split single step, the slot of its first unit block.
        let slot = units.lowerBound == 0 ? range.lowerBound - first : units.lowerBound / 4
        for n0 in stride(from: 0, to: n, by: tile) {
            let n1 = min(n0 + tile, n), cols = n1 - n0
            for t in range {
                let k = min(keptCount[t], units.upperBound), idx = keptIndex.ptr + t * width, out = grad + gatherOffset[t]
                guard units.lowerBound < k else { continue }
                // G_t[:, tile] transposed (cols × B), so the kernel reads the batch as vectors.
                let gt = scratch.ptr + (units.lowerBound == 0 ? t - first : slot) * tile * batch
                for b in 0..<batch {
                    let row = g + (t * batch + b) * ldg + n0
                    for j in 0..<cols { gt[j * batch + b] = row[j] }
                }
                for u0 in stride(from: units.lowerBound, to: k, by: 4) {
                    for b0 in stride(from: 0, to: batch, by: 24) {
                        sdk_backward_data(Int32(min(4, k - u0)), Int32(min(24, batch - b0)), Int32(cols), w + n0, Int32(n),
                                          idx + u0, gt + b0, Int32(batch), out + u0 * batch + b0, Int32(batch))
                    }
                }
            }
        }
    }

    /// Runs body(n0, n1) over column tiles, tiles split across the pool's threads.
    private func forTiles(_ n: Int, tile: Int, pool: ThreadPool?, _ body: (Int, Int) -> Void) {
        let tiles = (n + tile - 1) / tile
        func run(_ r: Range<Int>) { for i in r { body(i * tile, min((i + 1) * tile, n)) } }
        if let pool { pool.forChunks(tiles, run) } else { run(0..<tiles) }
    }

    /// Floats of transposition scratch `backwardData` needs for `steps` steps of `batch` rows: one
    /// tile per step, or per block of 4 kept units when a single step is split across threads.
    public func backwardScratchCount(steps: Int, batch: Int) -> Int {
        Self.tileColumns(rows: width) * batch * max(steps, (width + 3) / 4)
    }
}
