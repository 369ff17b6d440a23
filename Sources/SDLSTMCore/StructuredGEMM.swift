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
        forTiles(n, pool: pool) { n0, n1, pack, ldp in
            // Several steps share the tile: pack it, one aligned cache line per kept row and strip
            // and few pages. A single step (the recurrent pass) reads W in place.
            let packed = range.count > 1
            if packed {
                for d in 0..<width {
                    let dst = pack + d * ldp
                    dst.update(from: w + d * n + n0, count: n1 - n0)
                    if ldp > n1 - n0 { (dst + (n1 - n0)).update(repeating: 0, count: ldp - (n1 - n0)) }
                }
            }
            let tileW = packed ? UnsafePointer(pack) : w + n0, ldw = packed ? ldp : n
            for t in range {
                let k = keptCount[t], idx = keptIndex.ptr + t * width, a = gathered.ptr + gatherOffset[t]
                // Rows in even blocks of at most 6 (20 = 5 + 5 + 5 + 5, not 6 + 6 + 6 + 2).
                let blocks = (batch + 5) / 6
                for blk in 0..<blocks {
                    let r0 = batch * blk / blocks, rows = batch * (blk + 1) / blocks - r0
                    for c0 in stride(from: 0, to: n1 - n0, by: 16) {
                        sdk_forward(Int32(rows), Int32(min(16, n1 - n0 - c0)), Int32(k), a + r0 * k, Int32(k), idx,
                                    tileW + c0, Int32(ldw), c + (t * batch + r0) * ldc + n0 + c0, Int32(ldc))
                    }
                }
            }
        }
    }

    /// dW (width × n) = Σ_t X̃_t[:, S_t]ᵀ · G_t over every step: kept rows accumulate, rows no step
    /// keeps are zero. G is time-major with row stride ldg. Threads take disjoint column tiles,
    /// each accumulating into a packed tile that is copied out once.
    public func weightGradient(_ g: UnsafePointer<Float>, n: Int, ldg: Int, into dw: UnsafeMutablePointer<Float>,
                               pool: ThreadPool? = nil) {
        forTiles(n, pool: pool) { n0, n1, pack, ldp in
            pack.update(repeating: 0, count: width * ldp)
            for t in 0..<steps {
                let k = keptCount[t], idx = keptIndex.ptr + t * width, a = gathered.ptr + gatherOffset[t]
                for u0 in stride(from: 0, to: k, by: 6) {
                    for c0 in stride(from: 0, to: n1 - n0, by: 16) {
                        sdk_weight_grad(Int32(min(6, k - u0)), Int32(min(16, n1 - n0 - c0)), Int32(batch), a + u0, Int32(k),
                                        idx + u0, g + t * batch * ldg + n0 + c0, Int32(ldg), pack + c0, Int32(ldp))
                    }
                }
            }
            for d in 0..<width { (dw + d * n + n0).update(from: pack + d * ldp, count: n1 - n0) }
        }
    }

    /// dX_t (B × width, time-major) = (G_t · W[S_t, :]ᵀ) · scale on the kept columns, 0 on the
    /// dropped ones, for the given steps: dot products of G_t's rows with W's kept rows. Each kept
    /// row of W meets all B rows of G_t while it is in L1, so W streams once per step. Threads take
    /// disjoint steps, or for a single step disjoint blocks of kept units.
    public func backwardData(_ g: UnsafePointer<Float>, n: Int, ldg: Int, _ w: UnsafePointer<Float>,
                             into dx: UnsafeMutablePointer<Float>, steps range: Range<Int>, pool: ThreadPool? = nil) {
        let parts = pool?.width ?? 1
        if range.count >= parts {
            let run = { (part: Int) in
                let lo = range.lowerBound + range.count * part / parts, hi = range.lowerBound + range.count * (part + 1) / parts
                for t in lo..<hi { self.backwardDataStep(t, g, n: n, ldg: ldg, w, units: 0..<self.keptCount[t]) }
            }
            if let pool, parts > 1 { pool.run(run) } else { run(0) }
        } else {
            // Few steps (the recurrent pass runs one at a time): split each step's kept units.
            for t in range {
                let blocks = (keptCount[t] + 3) / 4
                let run = { (part: Int) in
                    let units = (4 * (blocks * part / parts))..<min(4 * (blocks * (part + 1) / parts), self.keptCount[t])
                    if !units.isEmpty { self.backwardDataStep(t, g, n: n, ldg: ldg, w, units: units) }
                }
                if let pool, parts > 1 { pool.run(run) } else { run(0) }
            }
        }
        for t in range {
            let k = keptCount[t], idx = keptIndex.ptr + t * width, src = gatheredGrad.ptr + gatherOffset[t]
            for b in 0..<batch {
                let row = dx + (t * batch + b) * width, grad = src + b * k
                row.update(repeating: 0, count: width)
                for u in 0..<k { row[Int(idx[u])] = grad[u] * scale }
            }
        }
    }

    /// Columns of G_t and W per pass of backwardDataStep: 20 rows of G stay in L2, 4 rows of W in L1.
    static let backwardChunk = 512

    /// Kept units `units` (positions in step t's list) of one step:
    /// out[b][u] = Σ_j G_t[b][j] · W[idx[u]][j], into gatheredGrad (B × k at gatherOffset[t]).
    private func backwardDataStep(_ t: Int, _ g: UnsafePointer<Float>, n: Int, ldg: Int, _ w: UnsafePointer<Float>,
                                  units: Range<Int>) {
        let k = keptCount[t], idx = keptIndex.ptr + t * width, out = gatheredGrad.ptr + gatherOffset[t]
        for b in 0..<batch { (out + b * k + units.lowerBound).update(repeating: 0, count: units.count) }
        for n0 in stride(from: 0, to: n, by: Self.backwardChunk) {
            let cols = min(Self.backwardChunk, n - n0)
            for u0 in stride(from: units.lowerBound, to: units.upperBound, by: 4) {
                for r0 in stride(from: 0, to: batch, by: 3) {
                    sdk_backward_data(Int32(min(3, batch - r0)), Int32(min(4, units.upperBound - u0)), Int32(cols),
                                      g + (t * batch + r0) * ldg + n0, Int32(ldg), idx + u0, w + n0, Int32(n),
                                      out + r0 * k + u0, Int32(k))
                }
            }
        }
    }

    /// Runs body(n0, n1, pack, ldp) over column tiles, tiles split across the pool's threads; each
    /// participant gets its own width × ldp packing buffer (ldp: the tile rounded up to 16).
    private func forTiles(_ n: Int, pool: ThreadPool?, _ body: (Int, Int, UnsafeMutablePointer<Float>, Int) -> Void) {
        let tile = Self.tileColumns(rows: width)
        // prepare(threads:) sized the packing buffers; fewer participants if it was told fewer threads.
        let tiles = (n + tile - 1) / tile, parts = max(1, min(pool?.width ?? 1, tiles, packs.count))
        let ldp = min(tile, (n + 15) / 16 * 16)
        func run(_ part: Int) {
            let pack = packs[part].ptr
            for i in (tiles * part / parts)..<(tiles * (part + 1) / parts) {
                body(i * tile, min((i + 1) * tile, n), pack, ldp)
            }
        }
        if let pool, parts > 1 { pool.run { if $0 < parts { run($0) } } } else { run(0) }
    }

}
