#include "internal.h"

#include <immintrin.h>

/* ---------------------------------------------------------------------------------------------
 * AVX2 + FMA. Register budget (16 ymm): 12 accumulators, the rest for loads and broadcasts.
 * Each kernel is written for a constant block (R rows or units) and specialised by a switch, so
 * the accumulators stay in registers. Column tails go through masked loads and stores.
 * ------------------------------------------------------------------------------------------- */

#define AVX2 __attribute__((target("avx2,fma")))
#define INLINE SDK_INLINE

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

AVX2 INLINE float hsum(__m256 v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

/* R rows of G x U kept rows of W: dot products along k, 8 columns at a time; the W operand is
 * read once per row pair straight from memory (folded into the FMA), which keeps 12 accumulators
 * and 3 G vectors in the 16 registers without spills. */
AVX2 INLINE void backward_data_block(const int R, const int U, int k, const float *G, int ldg,
                                     const int32_t *idx, const float *W, int ldw, float *D, int ldd) {
    __m256 c[3][4];
    const float *w[4];
    for (int r = 0; r < R; r++)
        for (int u = 0; u < U; u++) c[r][u] = _mm256_setzero_ps();
    for (int u = 0; u < U; u++) w[u] = W + (long)idx[u] * ldw;
    int j = 0;
    for (; j + 8 <= k; j += 8) {
        __m256 g[3];
        for (int r = 0; r < R; r++) g[r] = _mm256_loadu_ps(G + (long)r * ldg + j);
        for (int u = 0; u < U; u++) {
            const __m256 wv = _mm256_loadu_ps(w[u] + j);
            for (int r = 0; r < R; r++) c[r][u] = _mm256_fmadd_ps(g[r], wv, c[r][u]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int u = 0; u < U; u++) {
            float sum = hsum(c[r][u]);
            for (int jj = j; jj < k; jj++) sum += G[(long)r * ldg + jj] * w[u][jj];
            D[r * ldd + u] += sum;
        }
}

#define SPECIALISE_U(R, ...)                                                 \
    switch (units) {                                                         \
    case 4: backward_data_block(R, 4, __VA_ARGS__); break;                   \
    case 3: backward_data_block(R, 3, __VA_ARGS__); break;                   \
    case 2: backward_data_block(R, 2, __VA_ARGS__); break;                   \
    case 1: backward_data_block(R, 1, __VA_ARGS__); break;                   \
    default: break;                                                          \
    }

AVX2 static void backward_data_avx2(int rows, int units, int k, const float *G, int ldg, const int32_t *idx,
                                    const float *W, int ldw, float *D, int ldd) {
    switch (rows) {
    case 3: SPECIALISE_U(3, k, G, ldg, idx, W, ldw, D, ldd) break;
    case 2: SPECIALISE_U(2, k, G, ldg, idx, W, ldw, D, ldd) break;
    case 1: SPECIALISE_U(1, k, G, ldg, idx, W, ldw, D, ldd) break;
    default: break;
    }
}

const sdk_kernel_set sdk_avx2_kernels = {
    forward_avx2, weight_grad_avx2, backward_data_avx2,
    {.forward_rows = 6, .panel = 16, .grad_units = 6, .dot_rows = 3, .dot_units = 4, .dot_chunk = 1024},
};
