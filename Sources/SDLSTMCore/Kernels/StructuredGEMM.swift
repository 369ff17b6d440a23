import CKernels
import Glibc

/// The three GEMM passes of a layer whose input carries a batch-uniform (structured) mask, doing
/// only the kept share of the work (docs/KERNELS.md has the design and its measurements):
///
///     forward          C_t        += X̃_t[:, S_t] · W[S_t, :]       K shrinks to |S_t|
///     weight gradient  dW[S_t, :] += X̃_t[:, S_t]ᵀ · G_t             only kept rows change
///     backward data    dX_t[:, S_t] = G_t · W[S_t, :]ᵀ · scale      only kept columns are needed
///
/// W is input-major (D × N), so a kept unit is one contiguous row and nothing of W is ever copied.
/// All steps of the window run inside one call, N split into tiles whose D × tile slice of W stays
/// in L2 while every step's micro-kernel (CKernels) sweeps its kept-row list over it: W is read
/// from memory once per window, not once per step. X̃_t[:, S_t] (the gathered, scaled kept
/// columns) is all the backward pass keeps of the masked input. MaskedLinear decides when these
/// run and owns their workspaces.
extension MaskedLinear {
    /// Columns per tile: whole panels of the selected kernels, as many as keep the D × tile slice
    /// of W within half of this CPU's L2 (read at run time); at least one panel, at most 512 columns.
    public static func tileColumns(rows d: Int) -> Int {
        let panel = Int(sdk_blocking().panel)
        let fit = CacheSize.l2Bytes / 2 / (MemoryLayout<Float>.size * max(d, 1))
        return max(panel, min(max(panel, 512 / panel * panel), fit / panel * panel))
    }

    /// Gathers X̃_t[:, S_t] = X_t[:, S_t] · scale of the given steps into `gathered`.
    public func gather(_ x: UnsafePointer<Float>, steps range: Range<Int>) {
        for t in range {
            let k = mask.keptCount[t], idx = mask.keptIndex.ptr + t * width, out = gathered.ptr + mask.gatherOffset[t]
            for b in 0..<mask.batch {
                let row = x + (t * mask.batch + b) * width, o = out + b * k
                for j in 0..<k { o[j] = row[Int(idx[j])] * mask.scale }
            }
        }
    }

    /// C_t (B × n, row stride ldc, time-major) += X̃_t[:, S_t] · W[S_t, :] for the given steps.
    /// Threads take disjoint column tiles.
    public func keptForward(_ w: UnsafePointer<Float>, n: Int, into c: UnsafeMutablePointer<Float>, ldc: Int,
                            steps range: Range<Int>, pool: ThreadPool? = nil) {
        let blocking = sdk_blocking(), panel = Int(blocking.panel), rowBlocks = evenBlocks(mask.batch, Int(blocking.forward_rows))
        forTiles(n, pool: pool) { n0, n1, _, _ in
            // W is read in place: a kept row of a panel is a few adjacent cache lines, which the
            // hardware prefetcher follows, and the tile stays in L2 for all steps. Packing the tile
            // first measured slower (rate_vs_dense 0.88 / 0.76 packed, 0.93 / 0.83 in place, N 2600,
            // keep 0.5 / 0.35, 2 threads).
            for t in range {
                let k = mask.keptCount[t], idx = mask.keptIndex.ptr + t * width, a = gathered.ptr + mask.gatherOffset[t]
                for (r0, rows) in rowBlocks {
                    for c0 in stride(from: n0, to: n1, by: panel) {
                        sdk_forward(Int32(rows), Int32(min(panel, n1 - c0)), Int32(k), a + r0 * k, Int32(k), idx,
                                    w + c0, Int32(n), c + (t * mask.batch + r0) * ldc + c0, Int32(ldc))
                    }
                }
            }
        }
    }

    /// C_t (B × n) += X̃_t[:, S_t] · W[S_t, :] for one gathered step, W in panels (packPanels):
    /// the recurrent pass, where the window's steps cannot share a tile.
    public func keptForwardStep(_ t: Int, panels: UnsafePointer<Float>, n: Int, into c: UnsafeMutablePointer<Float>,
                            ldc: Int, pool: ThreadPool?) {
        let k = mask.keptCount[t]
        panelGEMM(batch: mask.batch, n: n, k: k, a: gathered.ptr + mask.gatherOffset[t], lda: k, idx: mask.keptIndex.ptr + t * width,
                  panels: panels, rows: width, c: c + t * mask.batch * ldc, ldc: ldc, pool: pool)
    }

    /// dW (width × n) = Σ_t X̃_t[:, S_t]ᵀ · G_t over every step: kept rows accumulate, rows no step
    /// keeps are zero. G is time-major with row stride ldg. Threads take disjoint column tiles,
    /// each accumulating into a packed tile that is copied out once.
    public func keptWeightGradient(_ g: UnsafePointer<Float>, n: Int, ldg: Int, into dw: UnsafeMutablePointer<Float>,
                               pool: ThreadPool? = nil) {
        let panel = Int(sdk_blocking().panel)
        forTiles(n, pool: pool) { n0, n1, pack, ldp in
            pack.update(repeating: 0, count: width * ldp)
            for t in 0..<mask.steps {
                let k = mask.keptCount[t], idx = mask.keptIndex.ptr + t * width, a = gathered.ptr + mask.gatherOffset[t]
                for c0 in stride(from: 0, to: n1 - n0, by: panel) {
                    sdk_weight_grad(Int32(k), Int32(min(panel, n1 - n0 - c0)), Int32(mask.batch), a, Int32(k), idx,
                                    g + t * mask.batch * ldg + n0 + c0, Int32(ldg), pack + c0, Int32(ldp))
                }
            }
            for d in 0..<width { (dw + d * n + n0).update(from: pack + d * ldp, count: n1 - n0) }
        }
    }

    /// dX_t (B × width, time-major) = (G_t · W[S_t, :]ᵀ) · scale on the kept columns, 0 on the
    /// dropped ones, for the given steps: dot products of G_t's rows with W's kept rows (dotGEMM).
    /// Each kept row of W meets all B rows of G_t while it is in L1, so W streams once per step.
    /// Threads take disjoint steps, or for a single step disjoint blocks of kept units.
    public func keptBackwardData(_ g: UnsafePointer<Float>, n: Int, ldg: Int, _ w: UnsafePointer<Float>,
                             into dx: UnsafeMutablePointer<Float>, steps range: Range<Int>, pool: ThreadPool? = nil) {
        let parts = pool?.threads ?? 1
        if range.count >= parts {
            // Column chunks outermost: the width × chunk slice of W serves every step of the range
            // while it is in cache, so W streams from memory once per window, not once per step.
            // Threads take disjoint steps.
            let chunk = Int(sdk_blocking().dot_chunk), chunks = (n + chunk - 1) / chunk
            func run(_ steps: Range<Int>) {
                for i in 0..<chunks {
                    let n0 = n * i / chunks / 16 * 16, n1 = i == chunks - 1 ? n : n * (i + 1) / chunks / 16 * 16
                    for t in steps {
                        dotGEMM(batch: mask.batch, n: n1 - n0, units: mask.keptCount[t], g: g + t * mask.batch * ldg + n0, ldg: ldg,
                                idx: mask.keptIndex.ptr + t * width, w: w + n0, ldw: n, d: gatheredGrad.ptr + mask.gatherOffset[t],
                                ldd: mask.keptCount[t], accumulate: i > 0, pool: nil)
                    }
                }
            }
            if let pool, parts > 1 {
                pool.run(parts) { part in run((range.lowerBound + range.count * part / parts)..<(range.lowerBound + range.count * (part + 1) / parts)) }
            } else {
                run(range)
            }
        } else {
            // Fewer steps than threads (the recurrent pass runs one at a time): nothing of W is
            // reused across steps, so whole rows, and threads split each step's kept units.
            for t in range {
                dotGEMM(batch: mask.batch, n: n, units: mask.keptCount[t], g: g + t * mask.batch * ldg, ldg: ldg, idx: mask.keptIndex.ptr + t * width,
                        w: w, ldw: n, d: gatheredGrad.ptr + mask.gatherOffset[t], ldd: mask.keptCount[t], pool: pool)
            }
        }
        for t in range {
            let k = mask.keptCount[t], idx = mask.keptIndex.ptr + t * width, src = gatheredGrad.ptr + mask.gatherOffset[t]
            for b in 0..<mask.batch {
                let row = dx + (t * mask.batch + b) * width, grad = src + b * k
                row.update(repeating: 0, count: width)
                for u in 0..<k { row[Int(idx[u])] = grad[u] * mask.scale }
            }
        }
    }

    /// Runs body(n0, n1, pack, ldp) over column tiles of at most `tileColumns`, split across the
    /// pool's threads; each part gets its own width × ldp packing buffer (ldp: the tile
    /// rounded up to 16).
    private func forTiles(_ n: Int, pool: ThreadPool?, _ body: (Int, Int, UnsafeMutablePointer<Float>, Int) -> Void) {
        // prepare(threads:) sized the packing buffers for at least one panel of any kernel set.
        let panel = Int(sdk_blocking().panel)
        let tile = min(Self.tileColumns(rows: width), (packs.first?.count ?? 0) / max(width, 1) / panel * panel)
        // Threads split the panels, not the tiles (33 panels: 16 + 17, where 17 tiles of two would
        // split 8 + 9), then each cuts its share into tiles.
        let panels = (n + panel - 1) / panel, parts = max(1, min(pool?.threads ?? 1, panels, packs.count))
        let ldp = min(tile, (n + 15) / 16 * 16)
        func run(_ part: Int) {
            let pack = packs[part].ptr
            let lo = min(n, panels * part / parts * panel), hi = min(n, panels * (part + 1) / parts * panel)
            for n0 in stride(from: lo, to: hi, by: tile) { body(n0, min(n0 + tile, hi), pack, ldp) }
        }
        if let pool, parts > 1 { pool.run(parts, run) } else { run(0) }
    }

    /// Packing room per thread: a tile, and never less than the widest panel of any kernel set.
    static func packCount(rows d: Int) -> Int { d * max(tileColumns(rows: d), Int(SDK_MAX_PANEL)) }
}

/// 0..<count in `(count + most - 1) / most` blocks of nearly equal size (20 = 5 + 5 + 5 + 5 for
/// at most 6, not 6 + 6 + 6 + 2): (start, size) of each.
func evenBlocks(_ count: Int, _ most: Int) -> LazyMapSequence<Range<Int>, (Int, Int)> {
    let blocks = (count + most - 1) / most
    return (0..<blocks).lazy.map { (count * $0 / blocks, count * ($0 + 1) / blocks - count * $0 / blocks) }
}

/// The per-core L2 size the tiles are sized for.
enum CacheSize {
    static let l2Bytes: Int = {
        let reported = sysconf(Int32(_SC_LEVEL2_CACHE_SIZE))
        return reported >= 64 * 1024 ? reported : 512 * 1024
    }()
}

// MARK: - Panels and dot products
//
// A structured recurrent input (RH site) changes its kept rows every step, and the steps run one
// after another, so no tile of W_hh can serve several of them. W_hh is packed once per window
// into panels as wide as the kernels' register block (H rows × panel floats each, contiguous),
// and each step's indexed micro-kernel walks its kept rows through them — or all rows, for the
// dense recurrent product, which then skips the repacking that a per-step sgemm call repeats.
// The backward data pass reads W rows in place with the dot-product kernel.

/// Floats of the panel form of a rows × n matrix, for any kernel set's panel width.
public func panelCount(rows: Int, n: Int) -> Int {
    let widest = Int(SDK_MAX_PANEL)
    return rows * ((n + widest - 1) / widest * widest)
}

/// Packs W (rows × n, row stride ldw, default n) into panels of the selected kernels' width,
/// the last one zero-padded.
public func packPanels(_ w: UnsafePointer<Float>, rows: Int, n: Int, ldw: Int? = nil, into p: UnsafeMutablePointer<Float>) {
    let ldw = ldw ?? n, panel = Int(sdk_blocking().panel)
    for c0 in stride(from: 0, to: n, by: panel) {
        let block = p + c0 * rows, cols = min(panel, n - c0)
        for r in 0..<rows {
            (block + r * panel).update(from: w + r * ldw + c0, count: cols)
            if cols < panel { (block + r * panel + cols).update(repeating: 0, count: panel - cols) }
        }
    }
}

/// C (batch × n, row stride ldc) += A (batch × k, row stride lda) · W[idx[0..<k], :], W in panels
/// of `rows` rows (packPanels). Threads take disjoint panels.
public func panelGEMM(batch: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, idx: UnsafePointer<Int32>,
                      panels: UnsafePointer<Float>, rows: Int, c: UnsafeMutablePointer<Float>, ldc: Int,
                      pool: ThreadPool?) {
    let blocking = sdk_blocking(), panel = Int(blocking.panel)
    let strips = (n + panel - 1) / panel, rowBlocks = evenBlocks(batch, Int(blocking.forward_rows))
    func run(_ r: Range<Int>) {
        for s in r {
            let c0 = s * panel
            for (r0, m) in rowBlocks {
                sdk_forward(Int32(m), Int32(min(panel, n - c0)), Int32(k), a + r0 * lda, Int32(lda), idx,
                            panels + c0 * rows, Int32(panel), c + r0 * ldc + c0, Int32(ldc))
            }
        }
    }
    if let pool, pool.threads > 1 { pool.forChunks(strips, run) } else { run(0..<strips) }
}

/// D (batch × units, row stride ldd) = G (batch × n, row stride ldg) · W[idx[0..<units], :]ᵀ, or
/// += with `accumulate`: dot products of G's rows with W's rows (row stride ldw). Each block of
/// W's rows meets all of G's rows while it is in L1. Threads take disjoint blocks of units.
public func dotGEMM(batch: Int, n: Int, units: Int, g: UnsafePointer<Float>, ldg: Int, idx: UnsafePointer<Int32>,
                    w: UnsafePointer<Float>, ldw: Int, d: UnsafeMutablePointer<Float>, ldd: Int, accumulate: Bool = false,
                    pool: ThreadPool?) {
    let blocking = sdk_blocking(), per = Int(blocking.dot_units)
    let rowBlocks = evenBlocks(batch, Int(blocking.dot_rows)), blocks = (units + per - 1) / per
    func run(_ r: Range<Int>) {
        let lo = r.lowerBound * per, hi = min(r.upperBound * per, units)
        guard lo < hi else { return }
        if !accumulate { for b in 0..<batch { (d + b * ldd + lo).update(repeating: 0, count: hi - lo) } }
        for u0 in stride(from: lo, to: hi, by: per) {
            for (r0, m) in rowBlocks {
                sdk_backward_data(Int32(m), Int32(min(per, hi - u0)), Int32(n), g + r0 * ldg, Int32(ldg),
                                  idx + u0, w, Int32(ldw), d + r0 * ldd + u0, Int32(ldd))
            }
        }
    }
    if let pool, pool.threads > 1 { pool.forChunks(blocks, run) } else { run(0..<blocks) }
}
