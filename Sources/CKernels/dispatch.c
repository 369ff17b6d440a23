/* Chooses the kernel set: the CPU's best by default, a lesser one on request. */
#include "internal.h"

#include <stdatomic.h>
#include <stddef.h>

static const sdk_kernel_set *const sets[] = {&sdk_portable_kernels, &sdk_avx2_kernels, &sdk_avx512_kernels};
static _Atomic(const sdk_kernel_set *) active = NULL;

sdk_isa_id sdk_cpu_isa(void) {
    static _Atomic int cached = -1;
    int isa = atomic_load_explicit(&cached, memory_order_relaxed);
    if (isa < 0) {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) isa = SDK_ISA_AVX512;
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) isa = SDK_ISA_AVX2;
        else isa = SDK_ISA_PORTABLE;
        atomic_store_explicit(&cached, isa, memory_order_relaxed);
    }
    return (sdk_isa_id)isa;
}

static const sdk_kernel_set *kernels(void) {
    const sdk_kernel_set *k = atomic_load_explicit(&active, memory_order_relaxed);
    if (k == NULL) {
        k = sets[sdk_cpu_isa()];
        atomic_store_explicit(&active, k, memory_order_relaxed);
    }
    return k;
}

sdk_isa_id sdk_isa(void) {
    const sdk_kernel_set *k = kernels();
    for (int i = 0; i < 3; i++) if (sets[i] == k) return (sdk_isa_id)i;
    return SDK_ISA_PORTABLE;
}

int sdk_set_isa(sdk_isa_id isa) {
    if ((int)isa < 0 || isa > sdk_cpu_isa()) return -1;
    atomic_store_explicit(&active, sets[isa], memory_order_relaxed);
    return 0;
}

const char *sdk_isa_name(sdk_isa_id isa) {
    switch (isa) {
    case SDK_ISA_AVX512: return "avx512";
    case SDK_ISA_AVX2: return "avx2";
    default: return "portable";
    }
}

sdk_block_sizes sdk_blocking(void) { return kernels()->blocking; }

void sdk_forward(int rows, int n, int k, const float *A, int lda, const int32_t *idx,
                 const float *W, int ldw, float *C, int ldc) {
    kernels()->forward(rows, n, k, A, lda, idx, W, ldw, C, ldc);
}

/* The blocks of units loop here, not in Swift: a block is only B x grad_units x panel
 * multiply-adds (B = 20: 400 FMAs), so the cost of each call from Swift would show. */
void sdk_weight_grad(int units, int n, int rows, const float *A, int lda, const int32_t *idx,
                     const float *G, int ldg, float *dW, int ldw) {
    const sdk_kernel_set *k = kernels();
    const int per = k->blocking.grad_units;
    for (int u0 = 0; u0 < units; u0 += per)
        k->weight_grad(units - u0 < per ? units - u0 : per, n, rows, A + u0, lda, idx + u0, G, ldg, dW, ldw);
}

void sdk_backward_data(int rows, int units, int k, const float *G, int ldg, const int32_t *idx,
                       const float *W, int ldw, float *D, int ldd) {
    kernels()->backward_data(rows, units, k, G, ldg, idx, W, ldw, D, ldd);
}
