/*
 * The innermost GEMM micro-kernels of sdlstm: indexed (kept-unit) variants of the three GEMM
 * passes, in C because Swift has no per-function target attribute — a Swift build for baseline
 * x86-64 gets neither AVX2, FMA nor AVX-512. One set of kernels per instruction set: AVX-512F
 * (32 zmm registers, 16 lanes), AVX2 + FMA (16 ymm, 8 lanes) and portable C, the reference. The
 * best one the CPU has is chosen at run time; SDLSTM_ISA or sdk_set_isa may pick a lesser one.
 * The tiling around them is Swift (StructuredGEMM.swift); it reads the block sizes from
 * sdk_blocking(), which belong to the selected set.
 */
#ifndef SDLSTM_CKERNELS_H
#define SDLSTM_CKERNELS_H

#include <stdint.h>

typedef enum sdk_isa_id {
    SDK_ISA_PORTABLE = 0,
    SDK_ISA_AVX2 = 1,    /* AVX2 + FMA */
    SDK_ISA_AVX512 = 2   /* AVX-512F */
} sdk_isa_id;

/* The best instruction set of this CPU (and OS: the registers' state must be enabled). */
sdk_isa_id sdk_cpu_isa(void);
/* The set the kernels run now: the CPU's best until sdk_set_isa says otherwise. */
sdk_isa_id sdk_isa(void);
/* Selects a set; 0 on success, -1 (nothing changed) when the CPU lacks it. Not thread-safe with
 * kernels running: call it before training (SDLSTM_ISA does so at the first model). */
int sdk_set_isa(sdk_isa_id isa);
/* "avx512", "avx2" or "portable". */
const char *sdk_isa_name(sdk_isa_id isa);

/* Block sizes of the selected kernels: a call takes at most this much. */
/* The widest panel of any set: buffers packed for one set are large enough for every set. */
#define SDK_MAX_PANEL 80

typedef struct sdk_block_sizes {
    int forward_rows;     /* rows of C per sdk_forward call */
    int panel;            /* columns per call of sdk_forward and sdk_weight_grad: the panel width */
    int grad_units;       /* kept units per weight-gradient block */
    int dot_rows;         /* rows of G per sdk_backward_data call */
    int dot_units;        /* kept units per sdk_backward_data call */
    int dot_chunk;        /* columns per sdk_backward_data call: a width x chunk slice of W stays in cache for all steps */
} sdk_block_sizes;
sdk_block_sizes sdk_blocking(void);

/* Forward: C[r][0:n] += sum_j A[r][j] * W[idx[j]][0:n] for r < rows, n <= panel columns.
 * A is the step's gathered kept columns (lda), W the input-major weight (ldw), C row-major (ldc). */
void sdk_forward(int rows, int n, int k, const float *A, int lda, const int32_t *idx,
                 const float *W, int ldw, float *C, int ldc);

/* Weight gradient: dW[idx[u]][0:n] += sum_b A[b][u] * G[b][0:n] for u < units (any count: the
 * kernel takes them grad_units at a time), b < rows, n <= panel columns. A holds the kept columns of the step's input (lda), G its gate gradient (ldg). */
void sdk_weight_grad(int units, int n, int rows, const float *A, int lda, const int32_t *idx,
                     const float *G, int ldg, float *dW, int ldw);

/* Backward data: D[r][u] += sum_j G[r][j] * W[idx[u]][j] for r < rows, u < units, j < k:
 * dot products of the step's output-gradient rows (ldg) with kept rows of W (ldw). */
void sdk_backward_data(int rows, int units, int k, const float *G, int ldg, const int32_t *idx,
                       const float *W, int ldw, float *D, int ldd);

#endif
