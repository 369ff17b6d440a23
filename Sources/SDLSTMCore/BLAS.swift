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
