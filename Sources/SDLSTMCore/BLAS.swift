import COpenBLAS

/// Row-major single-precision GEMM: C = alpha * op(A) * op(B) + beta * C, with op(A) m × k,
/// op(B) k × n. Leading dimensions are those of the matrices as stored.
@inline(__always)
func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
          alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
          b: UnsafePointer<Float>, ldb: Int,
          beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    if m == 0 || n == 0 { return }
    if k == 0 {
        // BLAS leaves C untouched for k = 0 only when beta == 1; make the empty sum explicit.
        if beta == 0 { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
        return
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb),
                beta, c, blasint(ldc))
}

/// Runs `body` with OpenBLAS on `threads` threads and restores the host's setting afterwards:
/// OpenBLAS's thread count is process-wide, and a library must not change it behind the host's back.
func withBLASThreads<R, E: Error>(_ threads: Int, _ body: () throws(E) -> R) throws(E) -> R {
    let previous = openblas_get_num_threads()
    if previous != threads { openblas_set_num_threads(Int32(threads)) }
    defer { if previous != threads { openblas_set_num_threads(previous) } }
    return try body()
}
