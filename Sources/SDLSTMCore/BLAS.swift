import COpenBLAS

/// Row-major single-precision GEMM: C = alpha · op(A) · op(B) + beta · C, op(A) m × k, op(B) k × n.
/// With a pool, C's columns are split across the pool's threads, each running OpenBLAS on one
/// thread: sdlstm owns all of its parallelism (see ThreadPool).
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
    if let pool, pool.width > 1, n >= 64 * pool.width {
        pool.forChunks(n, granule: 16, call)
    } else {
        call(0..<n)
    }
}

/// Runs `body` with OpenBLAS on one thread and restores the host's setting afterwards: OpenBLAS's
/// thread count is process-wide, and a library must not change it behind the host's back.
public func withSingleThreadedBLAS<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
    let previous = openblas_get_num_threads()
    if previous != 1 { openblas_set_num_threads(1) }
    defer { if previous != 1 { openblas_set_num_threads(previous) } }
    return try body()
}
