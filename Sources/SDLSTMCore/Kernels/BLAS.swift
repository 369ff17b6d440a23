import COpenBLAS

/// Row-major single-precision GEMM: C = alpha · op(A) · op(B) + beta · C, op(A) m × k, op(B) k × n.
/// With a pool, C's columns are split into the pool's thread count of chunks, each running OpenBLAS
/// on one thread: sdlstm owns all of its parallelism (see ThreadPool).
public func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
          alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
          b: UnsafePointer<Float>, ldb: Int,
          beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, pool: ThreadPool? = nil) {
    if m == 0 || n == 0 { return }
    if k == 0 {
        // BLAS leaves C untouched for k = 0 only when beta == 1; make the empty sum explicit.
        if beta == 0 { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
        return
    }
    func call(_ cols: Range<Int>) {
        // One row (an LM's next token for one stream): OpenBLAS 0.3.21's sgemm packs all of B for
        // it, where sgemv streams B once: 11.0 vs 4.8 ms for 1 × 650 · 650 × 10000 (one thread).
        if m == 1 {
            let y = c + cols.lowerBound
            // sgemv may scale y by beta = 0 rather than overwrite it, which would keep a NaN there.
            if beta == 0 { y.update(repeating: 0, count: cols.count) }
            if transB {
                cblas_sgemv(CblasRowMajor, CblasNoTrans, blasint(cols.count), blasint(k), alpha,
                            b + cols.lowerBound * ldb, blasint(ldb), a, blasint(transA ? lda : 1), beta, y, 1)
            } else {
                cblas_sgemv(CblasRowMajor, CblasTrans, blasint(k), blasint(cols.count), alpha,
                            b + cols.lowerBound, blasint(ldb), a, blasint(transA ? lda : 1), beta, y, 1)
            }
            return
        }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(cols.count), blasint(k), alpha, a, blasint(lda),
                    b + (transB ? cols.lowerBound * ldb : cols.lowerBound), blasint(ldb),
                    beta, c + cols.lowerBound, blasint(ldc))
    }
    if let pool, pool.threads > 1, n >= 64 * pool.threads {
        pool.forChunks(n, granule: 16, call)
    } else {
        call(0..<n)
    }
}

/// OpenBLAS on one thread for the whole process, set once, by the first thread pool (every model
/// has one) or runtime query, and never again: sdlstm's own threads run its BLAS calls in
/// parallel. Setting it per call and restoring the host's value raced between models computing at
/// once, and OpenBLAS's results for a shape can differ in the last bit between its thread counts:
/// two models trained in two threads differed from sequential runs by 1 ULP in 4 of 8 runs, in 0 of
/// 8 with OPENBLAS_NUM_THREADS=1.
let blasSingleThreaded: Void = { openblas_set_num_threads(1) }()
