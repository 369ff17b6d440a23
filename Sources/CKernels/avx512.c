/* ---------------------------------------------------------------------------------------------
 * AVX-512F kernels: 32 zmm registers of 16 floats. Blocks fill the register file — forward
 * 5 rows x 5 vectors (25 accumulators, 5 weight vectors), weight gradient 4 units x 5 vectors,
 * backward data 6 rows x 4 units — and a panel is 80 columns, five adjacent cache lines per kept
 * row, so an indexed row is one short sequential burst instead of a lone line at a random
 * address. Every block size is a constant after the switch below (no variable-length arrays),
 * and only the last vector of a row is masked (a k-mask costs nothing on full vectors).
 * ------------------------------------------------------------------------------------------- */
#include "internal.h"

#include <immintrin.h>

/* VL too: without it the compiler cannot zero or move zmm16-31 with short encodings and keeps
 * accumulators in zmm0-15, spilling the rest (every AVX-512 CPU but Xeon Phi has VL). */
#define AVX512 __attribute__((target("avx512f,avx512vl")))

/* Up to 5 x 5 accumulators in forward and weight-gradient blocks, 6 x 4 in backward data. The
 * forward kernel prefetches the kept row PREFETCH_AHEAD iterations ahead (about 200 cycles of FMAs,
 * an L3 hit's latency). */
enum { MAX_ROWS = 5, MAX_VECTORS = 5, PANEL = 16 * MAX_VECTORS, DOT_ROWS = 6, DOT_UNITS = 4, PREFETCH_AHEAD = 8 };
_Static_assert(PANEL <= SDK_MAX_PANEL, "SDK_MAX_PANEL bounds every panel");

AVX512 SDK_INLINE __m512 load(int last, const float *p, __mmask16 tail) {
    return last ? _mm512_maskz_loadu_ps(tail, p) : _mm512_loadu_ps(p);
}

AVX512 SDK_INLINE void store(int last, float *p, __mmask16 tail, __m512 v) {
    if (last) _mm512_mask_storeu_ps(p, tail, v); else _mm512_storeu_ps(p, v);
}

/* Calls block(R, V, ...) with constant R (1..5) and V (1..5). */
#define CASE_V(block, R, V, ...) case V: block(R, V, __VA_ARGS__); break;
#define SWITCH_V(block, R, v, ...)                                                  \
    switch (v) {                                                                    \
    CASE_V(block, R, 1, __VA_ARGS__) CASE_V(block, R, 2, __VA_ARGS__)               \
    CASE_V(block, R, 3, __VA_ARGS__) CASE_V(block, R, 4, __VA_ARGS__)               \
    CASE_V(block, R, 5, __VA_ARGS__) default: break;                                \
    }
#define CASE_R(block, R, v, ...) case R: SWITCH_V(block, R, v, __VA_ARGS__) break;
#define SPECIALISE(block, r, v, ...)                                                \
    switch (r) {                                                                    \
    CASE_R(block, 1, v, __VA_ARGS__) CASE_R(block, 2, v, __VA_ARGS__)               \
    CASE_R(block, 3, v, __VA_ARGS__) CASE_R(block, 4, v, __VA_ARGS__)               \
    CASE_R(block, 5, v, __VA_ARGS__)                                                \
    default: break;                                                                 \
    }

/* C[R rows][V vectors] += A[R][k] · W[idx[0..k)][V vectors]. */
AVX512 SDK_INLINE void forward_block(const int R, const int V, int k, const float *A, int lda,
                                     const int32_t *idx, const float *W, int ldw, float *C, int ldc,
                                     __mmask16 tail) {
    __m512 c[MAX_ROWS][MAX_VECTORS];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < V; v++) c[r][v] = load(v == V - 1, C + r * ldc + 16 * v, tail);
    for (int j = 0; j < k; j++) {
        const float *w = W + (long)idx[j] * ldw;
        if (j + PREFETCH_AHEAD < k) {
            const char *next = (const char *)(W + (long)idx[j + PREFETCH_AHEAD] * ldw);
            for (int v = 0; v < V; v++) _mm_prefetch(next + 64 * v, _MM_HINT_T0);
        }
        __m512 wv[MAX_VECTORS];
        for (int v = 0; v < V; v++) wv[v] = load(v == V - 1, w + 16 * v, tail);
        for (int r = 0; r < R; r++) {
            const __m512 a = _mm512_set1_ps(A[r * lda + j]);
            for (int v = 0; v < V; v++) c[r][v] = _mm512_fmadd_ps(a, wv[v], c[r][v]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < V; v++) store(v == V - 1, C + r * ldc + 16 * v, tail, c[r][v]);
}

static __mmask16 tail_mask(int n, int *vectors) {
    *vectors = (n + 15) / 16;
    const int last = n - 16 * (*vectors - 1);
    return (__mmask16)((1u << last) - 1);
}

AVX512 static void forward_avx512(int rows, int n, int k, const float *A, int lda, const int32_t *idx,
                                  const float *W, int ldw, float *C, int ldc) {
    int vectors;
    const __mmask16 tail = tail_mask(n, &vectors);
    SPECIALISE(forward_block, rows, vectors, k, A, lda, idx, W, ldw, C, ldc, tail)
}

/* dW[idx[u]][V vectors] += Σ_b A[b][u] · G[b][V vectors] for U units. */
AVX512 SDK_INLINE void weight_grad_block(const int U, const int V, int rows, const float *A, int lda,
                                         const int32_t *idx, const float *G, int ldg, float *dW, int ldw,
                                         __mmask16 tail) {
    __m512 c[MAX_ROWS][MAX_VECTORS];
    for (int u = 0; u < U; u++)
        for (int v = 0; v < V; v++) c[u][v] = _mm512_setzero_ps();
    for (int b = 0; b < rows; b++) {
        __m512 g[MAX_VECTORS];
        for (int v = 0; v < V; v++) g[v] = load(v == V - 1, G + (long)b * ldg + 16 * v, tail);
        for (int u = 0; u < U; u++) {
            const __m512 a = _mm512_set1_ps(A[b * lda + u]);
            for (int v = 0; v < V; v++) c[u][v] = _mm512_fmadd_ps(a, g[v], c[u][v]);
        }
    }
    for (int u = 0; u < U; u++) {
        float *d = dW + (long)idx[u] * ldw;
        for (int v = 0; v < V; v++) {
            const int last = v == V - 1;
            store(last, d + 16 * v, tail, _mm512_add_ps(load(last, d + 16 * v, tail), c[u][v]));
        }
    }
}

AVX512 static void weight_grad_avx512(int units, int n, int rows, const float *A, int lda, const int32_t *idx,
                                      const float *G, int ldg, float *dW, int ldw) {
    int vectors;
    const __mmask16 tail = tail_mask(n, &vectors);
    SPECIALISE(weight_grad_block, units, vectors, rows, A, lda, idx, G, ldg, dW, ldw, tail)
}

/* The four lane sums of a0..a3. */
AVX512 SDK_INLINE __m128 sum4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
#define HALVES(a) _mm256_add_ps(_mm512_castps512_ps256(a), \
                                _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)))
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(HALVES(a0), HALVES(a1)), _mm256_hadd_ps(HALVES(a2), HALVES(a3)));
#undef HALVES
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* One vector of columns j..j+15 (those in m) of the dot products. */
AVX512 SDK_INLINE void dot_columns(const int R, const int U, __m512 c[DOT_ROWS][DOT_UNITS], const float *G, int ldg,
                                   const float *const w[DOT_UNITS], int j, __mmask16 m) {
    __m512 wv[DOT_UNITS];
    for (int u = 0; u < U; u++) wv[u] = _mm512_maskz_loadu_ps(m, w[u] + j);
    for (int r = 0; r < R; r++) {
        const __m512 g = _mm512_maskz_loadu_ps(m, G + (long)r * ldg + j);
        for (int u = 0; u < U; u++) c[r][u] = _mm512_fmadd_ps(g, wv[u], c[r][u]);
    }
}

/* D[R rows][U units] += G[R][0:k] · W[idx[u]][0:k]: 24 accumulators, each W vector meets R rows. */
AVX512 SDK_INLINE void backward_data_block(const int R, const int U, int k, const float *G, int ldg,
                                           const int32_t *idx, const float *W, int ldw, float *D, int ldd) {
    __m512 c[DOT_ROWS][DOT_UNITS];
    const float *w[DOT_UNITS];
    for (int r = 0; r < R; r++)
        for (int u = 0; u < DOT_UNITS; u++) c[r][u] = _mm512_setzero_ps();
    for (int u = 0; u < U; u++) w[u] = W + (long)idx[u] * ldw;
    int j = 0;
    for (; j + 16 <= k; j += 16) dot_columns(R, U, c, G, ldg, w, j, 0xFFFF);
    if (j < k) dot_columns(R, U, c, G, ldg, w, j, (__mmask16)((1u << (k - j)) - 1));
    for (int r = 0; r < R; r++) {
        float s[4];
        _mm_storeu_ps(s, sum4(c[r][0], c[r][1], c[r][2], c[r][3]));
        for (int u = 0; u < U; u++) D[r * ldd + u] += s[u];
    }
}

AVX512 static void backward_data_avx512(int rows, int units, int k, const float *G, int ldg, const int32_t *idx,
                                        const float *W, int ldw, float *D, int ldd) {
#define BD(R, U) backward_data_block(R, U, k, G, ldg, idx, W, ldw, D, ldd)
#define UNITS(R) switch (units) { case 4: BD(R, 4); break; case 3: BD(R, 3); break; \
                                  case 2: BD(R, 2); break; case 1: BD(R, 1); break; }
    switch (rows) {
    case 6: UNITS(6) break;
    case 5: UNITS(5) break;
    case 4: UNITS(4) break;
    case 3: UNITS(3) break;
    case 2: UNITS(2) break;
    case 1: UNITS(1) break;
    default: break;
    }
#undef UNITS
#undef BD
}

const sdk_kernel_set sdk_avx512_kernels = {
    forward_avx512, weight_grad_avx512, backward_data_avx512,
    {.forward_rows = 5, .panel = PANEL, .grad_units = 4, .dot_rows = DOT_ROWS, .dot_units = DOT_UNITS, .dot_chunk = 1024},
};
