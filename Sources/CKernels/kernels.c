#include "ckernels.h"

#include <immintrin.h>

/* ---------------------------------------------------------------------------------------------
 * Portable versions: the reference semantics, and what runs on CPUs without AVX2 + FMA.
 * ------------------------------------------------------------------------------------------- */

static void forward_c(int rows, int n, int k, const float *A, int lda, const int32_t *idx,
                      const float *W, int ldw, float *C, int ldc) {
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < k; j++) {
            const float a = A[r * lda + j], *w = W + (long)idx[j] * ldw;
            for (int c = 0; c < n; c++) C[r * ldc + c] += a * w[c];
        }
}

static void weight_grad_c(int units, int n, int rows, const float *A, int lda, const int32_t *idx,
                          const float *G, int ldg, float *dW, int ldw) {
    for (int u = 0; u < units; u++) {
        float *d = dW + (long)idx[u] * ldw;
        for (int b = 0; b < rows; b++) {
            const float a = A[b * lda + u];
            for (int c = 0; c < n; c++) d[c] += a * G[b * ldg + c];
        }
    }
}

static void backward_data_c(int units, int m, int k, const float *W, int ldw, const int32_t *idx,
                            const float *Gt, int ldg, float *D, int ldd) {
    for (int u = 0; u < units; u++) {
        const float *w = W + (long)idx[u] * ldw;
        for (int j = 0; j < k; j++)
            for (int c = 0; c < m; c++) D[u * ldd + c] += w[j] * Gt[j * ldg + c];
    }
}

/* ---------------------------------------------------------------------------------------------
 * AVX2 + FMA. Register budget (16 ymm): 12 accumulators, the rest for loads and broadcasts.
 * Each kernel is written for a constant block (R rows or units) and specialised by a switch, so
 * the accumulators stay in registers. Column tails go through masked loads and stores.
 * ------------------------------------------------------------------------------------------- */

#define AVX2 __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline))

/* full != 0 (a constant after inlining): plain loads and stores; otherwise masked ones, which
 * are slower on some CPUs and only needed for column tails. */
AVX2 INLINE __m256 load8(const int full, const float *p, __m256i m) {
    return full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m);
}

AVX2 INLINE void store8(const int full, float *p, __m256i m, __m256 v) {
    if (full) _mm256_storeu_ps(p, v); else _mm256_maskstore_ps(p, m, v);
}

/* Specialises a block kernel for a constant block size and full/tail columns. */
#define SPECIALISE(block, full, size, ...)                                   \
    switch (size) {                                                          \
    case 6: block(full, 6, __VA_ARGS__); break;                              \
    case 5: block(full, 5, __VA_ARGS__); break;                              \
    case 4: block(full, 4, __VA_ARGS__); break;                              \
    case 3: block(full, 3, __VA_ARGS__); break;                              \
    case 2: block(full, 2, __VA_ARGS__); break;                              \
    case 1: block(full, 1, __VA_ARGS__); break;                              \
    default: break;                                                          \
    }

AVX2 INLINE __m256i tail_mask(int n) {
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lanes);
}

/* R rows x 16 columns; masks m0, m1 select the valid columns of each 8-wide half. */
AVX2 INLINE void forward_block(const int full, const int R, int k, const float *A, int lda, const int32_t *idx,
                               const float *W, int ldw, float *C, int ldc, __m256i m0, __m256i m1) {
    __m256 c0[6], c1[6];
    for (int r = 0; r < R; r++) {
        c0[r] = load8(full, C + r * ldc, m0);
        c1[r] = load8(full, C + r * ldc + 8, m1);
    }
    for (int j = 0; j < k; j++) {
        const float *w = W + (long)idx[j] * ldw;
        const __m256 w0 = load8(full, w, m0), w1 = load8(full, w + 8, m1);
        for (int r = 0; r < R; r++) {
            const __m256 a = _mm256_broadcast_ss(A + r * lda + j);
            c0[r] = _mm256_fmadd_ps(a, w0, c0[r]);
            c1[r] = _mm256_fmadd_ps(a, w1, c1[r]);
        }
    }
    for (int r = 0; r < R; r++) {
        store8(full, C + r * ldc, m0, c0[r]);
        store8(full, C + r * ldc + 8, m1, c1[r]);
    }
}

AVX2 static void forward_avx2(int rows, int n, int k, const float *A, int lda, const int32_t *idx,
                              const float *W, int ldw, float *C, int ldc) {
    const __m256i m0 = tail_mask(n), m1 = tail_mask(n - 8);
    if (n == 16) {
        SPECIALISE(forward_block, 1, rows, k, A, lda, idx, W, ldw, C, ldc, m0, m1)
    } else {
        SPECIALISE(forward_block, 0, rows, k, A, lda, idx, W, ldw, C, ldc, m0, m1)
    }
}

/* U kept units x 16 columns, summed over the batch rows. */
AVX2 INLINE void weight_grad_block(const int full, const int U, int rows, const float *A, int lda, const int32_t *idx,
                                   const float *G, int ldg, float *dW, int ldw, __m256i m0, __m256i m1) {
    __m256 c0[6], c1[6];
    for (int u = 0; u < U; u++) c0[u] = c1[u] = _mm256_setzero_ps();
    for (int b = 0; b < rows; b++) {
        const __m256 g0 = load8(full, G + b * ldg, m0), g1 = load8(full, G + b * ldg + 8, m1);
        for (int u = 0; u < U; u++) {
            const __m256 a = _mm256_broadcast_ss(A + b * lda + u);
            c0[u] = _mm256_fmadd_ps(a, g0, c0[u]);
            c1[u] = _mm256_fmadd_ps(a, g1, c1[u]);
        }
    }
    for (int u = 0; u < U; u++) {
        float *d = dW + (long)idx[u] * ldw;
        store8(full, d, m0, _mm256_add_ps(load8(full, d, m0), c0[u]));
        store8(full, d + 8, m1, _mm256_add_ps(load8(full, d + 8, m1), c1[u]));
    }
}

AVX2 static void weight_grad_avx2(int units, int n, int rows, const float *A, int lda, const int32_t *idx,
                                  const float *G, int ldg, float *dW, int ldw) {
    const __m256i m0 = tail_mask(n), m1 = tail_mask(n - 8);
    if (n == 16) {
        SPECIALISE(weight_grad_block, 1, units, rows, A, lda, idx, G, ldg, dW, ldw, m0, m1)
    } else {
        SPECIALISE(weight_grad_block, 0, units, rows, A, lda, idx, G, ldg, dW, ldw, m0, m1)
    }
}

/* U kept units x 24 batch columns (three vectors), summed over k. */
AVX2 INLINE void backward_data_block(const int full, const int U, int k, const float *W, int ldw, const int32_t *idx,
                                     const float *Gt, int ldg, float *D, int ldd,
                                     __m256i m0, __m256i m1, __m256i m2) {
    __m256 c0[4], c1[4], c2[4];
    const float *w[4];
    for (int u = 0; u < U; u++) {
        c0[u] = load8(full, D + u * ldd, m0);
        c1[u] = load8(full, D + u * ldd + 8, m1);
        c2[u] = load8(full, D + u * ldd + 16, m2);
        w[u] = W + (long)idx[u] * ldw;
    }
    for (int j = 0; j < k; j++) {
        const float *g = Gt + (long)j * ldg;
        const __m256 g0 = load8(full, g, m0), g1 = load8(full, g + 8, m1),
                     g2 = load8(full, g + 16, m2);
        for (int u = 0; u < U; u++) {
            const __m256 a = _mm256_broadcast_ss(w[u] + j);
            c0[u] = _mm256_fmadd_ps(a, g0, c0[u]);
            c1[u] = _mm256_fmadd_ps(a, g1, c1[u]);
            c2[u] = _mm256_fmadd_ps(a, g2, c2[u]);
        }
    }
    for (int u = 0; u < U; u++) {
        store8(full, D + u * ldd, m0, c0[u]);
        store8(full, D + u * ldd + 8, m1, c1[u]);
        store8(full, D + u * ldd + 16, m2, c2[u]);
    }
}

AVX2 static void backward_data_avx2(int units, int m, int k, const float *W, int ldw, const int32_t *idx,
                                    const float *Gt, int ldg, float *D, int ldd) {
    const __m256i m0 = tail_mask(m), m1 = tail_mask(m - 8), m2 = tail_mask(m - 16);
    if (m == 24) {
        SPECIALISE(backward_data_block, 1, units, k, W, ldw, idx, Gt, ldg, D, ldd, m0, m1, m2)
    } else {
        SPECIALISE(backward_data_block, 0, units, k, W, ldw, idx, Gt, ldg, D, ldd, m0, m1, m2)
    }
}

/* ---------------------------------------------------------------------------------------------
 * Dispatch, decided once.
 * ------------------------------------------------------------------------------------------- */

int sdk_has_avx2_fma(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return cached;
}

void sdk_forward(int rows, int n, int k, const float *A, int lda, const int32_t *idx,
                 const float *W, int ldw, float *C, int ldc) {
    (sdk_has_avx2_fma() ? forward_avx2 : forward_c)(rows, n, k, A, lda, idx, W, ldw, C, ldc);
}

void sdk_weight_grad(int units, int n, int rows, const float *A, int lda, const int32_t *idx,
                     const float *G, int ldg, float *dW, int ldw) {
    (sdk_has_avx2_fma() ? weight_grad_avx2 : weight_grad_c)(units, n, rows, A, lda, idx, G, ldg, dW, ldw);
}

void sdk_backward_data(int units, int m, int k, const float *W, int ldw, const int32_t *idx,
                       const float *Gt, int ldg, float *D, int ldd) {
    (sdk_has_avx2_fma() ? backward_data_avx2 : backward_data_c)(units, m, k, W, ldw, idx, Gt, ldg, D, ldd);
}
