/* One instruction set's kernels and block sizes; dispatch.c picks the table. */
#ifndef SDLSTM_CKERNELS_INTERNAL_H
#define SDLSTM_CKERNELS_INTERNAL_H

#include "ckernels.h"

typedef struct sdk_kernel_set {
    void (*forward)(int, int, int, const float *, int, const int32_t *, const float *, int, float *, int);
    void (*weight_grad)(int, int, int, const float *, int, const int32_t *, const float *, int, float *, int);
    void (*backward_data)(int, int, int, const float *, int, const int32_t *, const float *, int, float *, int);
    sdk_block_sizes blocking;
} sdk_kernel_set;

extern const sdk_kernel_set sdk_portable_kernels;
extern const sdk_kernel_set sdk_avx2_kernels;
extern const sdk_kernel_set sdk_avx512_kernels;

#define SDK_INLINE static inline __attribute__((always_inline))

#endif
