// bfloat16 on the CPU: the conversion, the CPU check, and which products run in bf16. The bf16 products
// themselves are oneDNN primitives (cpu_dnnl.c): Debian's OpenBLAS 0.3.21 is built without its bf16 GEMM
// (cblas_sbgemm is in cblas.h but not in the library).
#include <stdio.h>
#include <stdlib.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#ifdef ND_WITH_DNNL
#include <dnnl.h>
#endif

#include "cpu_bf16.h"

void nd_cpu_to_bf16(uint16_t *dst, const float *src, int64_t n) {
#pragma omp parallel for if (n > ND_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) dst[i] = nd_bf16_from_float(src[i]);
}

bool nd_cpu_has_avx512_bf16(void) {
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE)) return false;
    // XCR0: the OS saves the SSE, AVX, opmask and both halves of the ZMM state
    unsigned xcr0, xcr0_high;
    __asm__ volatile("xgetbv" : "=a"(xcr0), "=d"(xcr0_high) : "c"(0));
    if ((xcr0 & 0xe6u) != 0xe6u) return false;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & bit_AVX512F) || a < 1) return false;
    __get_cpuid_count(7, 1, &a, &b, &c, &d);
    return (a >> 5) & 1u;
#else
    return false;
#endif
}

bool nd_cpu_bf16_available(char *why, size_t size) {
    if (!nd_cpu_has_avx512_bf16()) {
        snprintf(why, size,
                 "bf16 needs a CPU with AVX512_BF16 (Intel Cooper Lake, Sapphire Rapids and later; AMD Zen 4 and "
                 "later), and this one has none (cpuid leaf 7.1, EAX bit 5); use --precision f32");
        return false;
    }
#ifdef ND_WITH_DNNL
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    if ((isa & dnnl_cpu_isa_avx512_core_bf16) != dnnl_cpu_isa_avx512_core_bf16) {
        const char *cap = getenv("ONEDNN_MAX_CPU_ISA");
        snprintf(why, size,
                 "bf16 runs through oneDNN, which is limited to instructions without AVX512_BF16 here "
                 "(ONEDNN_MAX_CPU_ISA=%s) and would emulate them, slower than float32; unset it or use --precision f32",
                 cap ? cap : "(unset)");
        return false;
    }
    return true;
#else
    snprintf(why, size,
             "bf16 products run through oneDNN, and this build has none (install libdnnl-dev, then configure and "
             "build again); use --precision f32");
    return false;
#endif
}

// Measured with bench/bench_bf16 (bench/README.md): oneDNN's bf16 matmul, input conversions included, ran the
// dli-unet's products 1.6-2.2x faster than cblas_sgemm in CPU time down to 128 x 64 x 64 (1 MFLOP), and 2.6x
// slower at 128 x 128 x 8, where a call's fixed cost dominates (a batch of products pays it once). A product
// with a vector (m or n below 16: a bias gradient summed against ones) is a memory-bound sum, which bf16
// inputs would only make less exact.
#define ND_BF16_MIN_DIM 16
#define ND_BF16_MIN_FLOPS (1 << 20)

bool nd_cpu_gemm_bf16_pays(int64_t m, int64_t n, int64_t k, int64_t batch) {
    return m >= ND_BF16_MIN_DIM && n >= ND_BF16_MIN_DIM && 2 * m * n * k * batch >= ND_BF16_MIN_FLOPS;
}

#ifdef ND_WITH_DNNL
void nd_cpu_gemm_bf16(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                      int64_t lda, int64_t stride_a, const float *b, int64_t ldb, int64_t stride_b, float beta,
                      float *c, int64_t ldc, int64_t stride_c, int64_t batch) {
    if (nd_cpu_gemm_bf16_pays(m, n, k, batch))
        nd_cpu_gemm_bf16_always(trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c, ldc,
                                stride_c, batch);
    else
        nd_cpu_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c, ldc, stride_c,
                    batch);
}
#endif
