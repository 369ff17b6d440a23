/*
 * The innermost GEMM micro-kernels of sdlstm's structured-dropout path: indexed (kept-unit)
 * variants of the three GEMM passes, in C because Swift has no per-function target attribute —
 * a Swift build for baseline x86-64 gets neither AVX2 nor FMA. Each kernel is dispatched once at
 * run time: AVX2 + FMA when the CPU has it, portable C otherwise. The tiling around them is Swift.
 */
#ifndef SDLSTM_CKERNELS_H
#define SDLSTM_CKERNELS_H

#include <stdint.h>

/* 1 when the AVX2 + FMA kernels run on this CPU. */
int sdk_has_avx2_fma(void);

/* Forward: C[r][0:n] += sum_j A[r][j] * W[idx[j]][0:n] for r < rows (<= 6), n <= 16 columns.
 * A is the step's gathered kept columns (lda), W the input-major weight (ldw), C row-major (ldc). */
void sdk_forward(int rows, int n, int k, const float *A, int lda, const int32_t *idx,
                 const float *W, int ldw, float *C, int ldc);

/* Weight gradient: dW[idx[u]][0:n] += sum_b A[b][u] * G[b][0:n] for u < units (<= 6), b < rows,
 * n <= 16 columns. A holds the kept columns of the step's input (lda), G its gate gradient (ldg). */
void sdk_weight_grad(int units, int n, int rows, const float *A, int lda, const int32_t *idx,
                     const float *G, int ldg, float *dW, int ldw);

/* Backward data: D[r][u] += sum_j G[r][j] * W[idx[u]][j] for r < rows (<= 3), u < units (<= 4),
 * j < k: dot products of the step's output-gradient rows (ldg) with kept rows of W (ldw). */
void sdk_backward_data(int rows, int units, int k, const float *G, int ldg, const int32_t *idx,
                       const float *W, int ldw, float *D, int ldd);

#endif
