import SDLSTMCore
import XCTest

/// `gemm` against a float64 reference, in particular its one-row case (sgemv), which must follow
/// the same conventions as sgemm: transposes, alpha, beta 0 overwriting whatever C held, beta 1
/// accumulating, and column ranges split across a pool's threads.
final class GEMMTests: XCTestCase {
    func testOneRowAndManyRowsMatchTheReference() {
        var rng = Random(seed: 2)
        for (m, n, k) in [(1, 300, 17), (1, 5, 1), (2, 300, 17), (1, 1, 40)] {
            for transA in [false, true] {
                for transB in [false, true] {
                    for (beta, threads) in [(Float(0), 1), (1, 1), (0, 3)] {
                        let (lda, ldb, ldc) = ((transA ? m : k) + 2, (transB ? k : n) + 3, n + 1)
                        let a = (0..<((transA ? k : m) * lda)).map { _ in rng.uniform() - 0.5 }
                        let b = (0..<((transB ? n : k) * ldb)).map { _ in rng.uniform() - 0.5 }
                        let c0 = (0..<(m * ldc)).map { _ in beta == 0 ? Float.nan : rng.uniform() }
                        var c = c0
                        let pool = ThreadPool(threads: threads)
                        gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.75, a: a, lda: lda, b: b, ldb: ldb,
                             beta: beta, c: &c, ldc: ldc, pool: pool)
                        var worst = 0.0
                        for i in 0..<m {
                            for j in 0..<n {
                                var sum = 0.0
                                for p in 0..<k {
                                    let x = Double(transA ? a[p * lda + i] : a[i * lda + p])
                                    let y = Double(transB ? b[j * ldb + p] : b[p * ldb + j])
                                    sum += x * y
                                }
                                let expected = 0.75 * sum + (beta == 0 ? 0 : Double(beta) * Double(c0[i * ldc + j]))
                                worst = max(worst, abs(Double(c[i * ldc + j]) - expected))
                            }
                            XCTAssertEqual(c[i * ldc + n].isNaN, c0[i * ldc + n].isNaN, "the padding column was written")
                        }
                        XCTAssertLessThan(worst, 1e-5, "m \(m) n \(n) k \(k) transA \(transA) transB \(transB) beta \(beta) threads \(threads)")
                    }
                }
            }
        }
    }
}
