import SDLSTMCore
import XCTest

/// The kept-columns-only GEMMs against the dense computation with the same mask, in double
/// precision: forward, weight gradient and backward data, with row, column and batch tails.
final class StructuredGEMMTests: XCTestCase {
    func check(steps t: Int, batch b: Int, width d: Int, outputs n: Int, policy: DropoutPolicy, p: Float,
               threads: Int = 1) throws {
        try forEachKernelSet { isa in
            try check(steps: t, batch: b, width: d, outputs: n, policy: policy, p: p, threads: threads, isa: isa)
        }
    }

    func check(steps t: Int, batch b: Int, width d: Int, outputs n: Int, policy: DropoutPolicy, p: Float,
               threads: Int, isa: String) throws {
        let pool = ThreadPool(threads: threads)
        var rng = Random(seed: UInt64(t * 1000 + b * 10 + d))
        let linear = try MaskedLinear(width: d, outputs: n)
        let mask = linear.mask
        mask.setting = DropoutSetting(policy: policy, p: p)
        try linear.prepare(steps: t, batch: b, threads: threads)
        mask.sample(steps: t, batch: b, rng: &rng)
        // The drawn mask, given explicitly: every kernel set takes the kernels whatever its rate.
        var drawn: [Float] = []
        for s in 0..<t { for r in 0..<b { drawn += UnsafeBufferPointer(start: mask.multipliers(step: s, sample: r), count: d) } }
        try mask.setExplicit(drawn, steps: t, batch: b)
        XCTAssertTrue(mask.columnar)
        let x = try Buffer((0..<(t * b * d)).map { _ in rng.uniform() - 0.5 })
        let w = try Buffer((0..<(d * n)).map { _ in rng.uniform() - 0.5 })
        let g = try Buffer((0..<(t * b * n)).map { _ in rng.uniform() - 0.5 })
        // X̃ = X ⊙ M, densely.
        var xm = [Double](repeating: 0, count: t * b * d)
        for s in 0..<t {
            for r in 0..<b {
                let m = mask.multipliers(step: s, sample: r)
                for j in 0..<d { xm[(s * b + r) * d + j] = Double(x[(s * b + r) * d + j]) * Double(m[j]) }
            }
        }

        let c = try Buffer(t * b * n)
        linear.gather(x.ptr, steps: 0..<t)
        linear.keptForward(w.ptr, n: n, into: c.ptr, ldc: n, steps: 0..<t, pool: pool)
        var want = [Double](repeating: 0, count: t * b * n)
        for r in 0..<(t * b) { for j in 0..<d where xm[r * d + j] != 0 { for o in 0..<n { want[r * n + o] += xm[r * d + j] * Double(w[j * n + o]) } } }
        assertClose(c.array, want, atol: 1e-5, rtol: 1e-4, "\(isa) " + "forward")

        let dw = try Buffer(d * n)
        dw.array.indices.forEach { dw[$0] = 7 }  // stale values must be overwritten
        linear.keptWeightGradient(g.ptr, n: n, ldg: n, into: dw.ptr, pool: pool)
        want = [Double](repeating: 0, count: d * n)
        for r in 0..<(t * b) { for j in 0..<d where xm[r * d + j] != 0 { for o in 0..<n { want[j * n + o] += xm[r * d + j] * Double(g[r * n + o]) } } }
        assertClose(dw.array, want, atol: 1e-5, rtol: 1e-4, "\(isa) " + "weight gradient")

        let dx = try Buffer(t * b * d)
        linear.keptBackwardData(g.ptr, n: n, ldg: n, w.ptr, into: dx.ptr, steps: 0..<t, pool: pool)
        want = [Double](repeating: 0, count: t * b * d)
        for s in 0..<t {
            for r in 0..<b {
                let m = mask.multipliers(step: s, sample: r)
                for j in 0..<d where m[j] != 0 {
                    var sum = 0.0
                    for o in 0..<n { sum += Double(g[(s * b + r) * n + o]) * Double(w[j * n + o]) }
                    want[(s * b + r) * d + j] = sum * Double(m[j])
                }
            }
        }
        assertClose(dx.array, want, atol: 1e-5, rtol: 1e-4, "\(isa) " + "backward data")
    }

    /// The recurrent product: C += A · W[idx, :] with W in panels, for every row and panel tail,
    /// all rows (the dense recurrent step) or a kept subset (the RH site).
    func testPanelGEMM() throws {
        try forEachKernelSet { isa in
            for (batch, k, rows, n, all) in [(20, 37, 37, 150, true), (7, 11, 23, 81, false), (3, 40, 40, 16, true)] {
                var rng = Random(seed: UInt64(batch * 100 + n))
                let idx = try IndexBuffer(k)
                for j in 0..<k { idx.ptr[j] = Int32(all ? j : j * rows / k) }
                let a = try Buffer((0..<(batch * k)).map { _ in rng.uniform() - 0.5 })
                let w = try Buffer((0..<(rows * n)).map { _ in rng.uniform() - 0.5 })
                let c = try Buffer((0..<(batch * n)).map { _ in rng.uniform() - 0.5 })
                var want = c.array.map(Double.init)
                for r in 0..<batch { for j in 0..<k { for o in 0..<n { want[r * n + o] += Double(a[r * k + j]) * Double(w[Int(idx.ptr[j]) * n + o]) } } }
                let panels = try Buffer(panelCount(rows: rows, n: n))
                packPanels(w.ptr, rows: rows, n: n, into: panels.ptr)
                panelGEMM(batch: batch, n: n, k: k, a: a.ptr, lda: k, idx: idx.ptr, panels: panels.ptr, rows: rows,
                          c: c.ptr, ldc: n, pool: ThreadPool(threads: 2))
                assertClose(c.array, want, atol: 1e-5, rtol: 1e-4, "\(isa) panelGEMM \(batch)x\(n)")
            }
        }
    }

    func testStructuredBatchTwenty() throws { try check(steps: 5, batch: 20, width: 37, outputs: 150, policy: .structured, p: 0.5) }
    func testStructuredWideBatch() throws { try check(steps: 3, batch: 30, width: 19, outputs: 64, policy: .structured, p: 0.45) }
    func testStructuredFixedSmall() throws { try check(steps: 4, batch: 3, width: 11, outputs: 7, policy: .structuredFixed, p: 0.6) }
    func testStructuredTilesAcrossOutputs() throws {
        // More outputs than one tile holds for this width, so several tiles accumulate.
        let d = 300
        XCTAssertLessThan(MaskedLinear.tileColumns(rows: d), 700)
        try check(steps: 2, batch: 7, width: d, outputs: 700, policy: .structured, p: 0.5)
    }

    func testThreeThreadsSplitTilesAndSteps() throws {
        try check(steps: 5, batch: 20, width: 37, outputs: 150, policy: .structured, p: 0.5, threads: 3)
    }

    func testThreadsSplitTheUnitsOfASingleStep() throws {
        try check(steps: 1, batch: 9, width: 45, outputs: 100, policy: .structured, p: 0.4, threads: 2)
    }

    /// Threads split columns and steps, never a sum: any thread count gives the same bits.
    func testTrainingIsBitIdenticalAcrossThreadCounts() throws {
        var params: [[[Float]]] = []
        for threads in [1, 2, 3] {
            let problem = try Problem(vocab: 50, embed: 24, hidden: 40, batch: 5, steps: 6)
            try problem.model.setNumThreads(threads)
            for site in [DropoutSite.input, .between, .output, .recurrent] {
                try problem.model.setDropout(DropoutSetting(policy: .structured, p: 0.4), at: site)
            }
            for _ in 0..<3 { _ = try problem.step() }
            params.append(problem.model.parameters.map(\.value.array))
        }
        XCTAssertEqual(params[0], params[1])
        XCTAssertEqual(params[0], params[2])
    }
}
