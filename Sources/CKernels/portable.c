/* The portable kernels: the reference semantics of ckernels.h, and what runs on CPUs without
 * AVX2 + FMA. */
#include "internal.h"


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

static void backward_data_c(int rows, int units, int k, const float *G, int ldg, const int32_t *idx,
                            const float *W, int ldw, float *D, int ldd) {
    for (int r = 0; r < rows; r++)
        for (int u = 0; u < units; u++) {
            const float *w = W + (long)idx[u] * ldw, *g = G + (long)r * ldg;
            float sum = 0;
            for (int j = 0; j < k; j++) sum += g[j] * w[j];
            D[r * ldd + u] += sum;
        }
}

const sdk_kernel_set sdk_portable_kernels = {
    forward_c, weight_grad_c, backward_data_c,
    {.forward_rows = 6, .panel = 16, .grad_units = 6, .dot_rows = 3, .dot_units = 4, .dot_chunk = 1024},
};
