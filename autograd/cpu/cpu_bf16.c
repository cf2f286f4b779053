// bfloat16 on the CPU: the conversion, the CPU check, and which products run in bf16. The bf16 products
// themselves are oneDNN primitives (cpu_dnnl_bf16.c): Debian's OpenBLAS 0.3.21 is built without its bf16 GEMM
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
// dli-unet's products 1.1-2.2x faster than cblas_sgemm in CPU time down to 128 x 64 x 64 (1 MFLOP), and 3-10x
// slower at 128 x 128 x 8, where a call's fixed cost dominates (a batch of products pays it once). A product
// with a vector (m or n below 16: a bias gradient summed against ones) is a memory-bound sum, which bf16
// inputs would only make less exact.
#define ND_BF16_MIN_DIM 16
#define ND_BF16_MIN_FLOPS (1 << 20)

bool nd_cpu_gemm_bf16_pays(int64_t m, int64_t n, int64_t k, int64_t batch) {
    return m >= ND_BF16_MIN_DIM && n >= ND_BF16_MIN_DIM && 2 * m * n * k * batch >= ND_BF16_MIN_FLOPS;
}

// Measured with bench/bench_bf16 (bench/README.md) on 2 threads: oneDNN 2.6's bf16 weight gradients ran 1.1-2.1x
// faster than its float32 ones, in CPU time, for the dli-unet's convolutions of 1 to 128 input channels, but
// 1.1-6x slower with 256 or 512 input channels, with one output channel, and for the transposed ones; on one
// thread every bf16 pass was faster, so the difference is in how those kernels share the work between
// threads, and shows most where the cores are shared. Those gradients run in float32.
bool nd_cpu_conv_bf16_weights_pay(int64_t in_c, int64_t out_c, bool transposed) {
    return !transposed && in_c <= 128 && out_c >= 16;
}

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

#ifndef ND_WITH_DNNL
// Built without oneDNN, where nd_cpu_bf16_available refuses bf16: the bf16 products' numbers without their
// speed, for the tests. A product of two bf16 values is exact in float32, so cblas_sgemm over the rounded
// inputs sums the same terms oneDNN's bf16 matmul does.

// A copy of the floats a matrix operand spans (count matrices of rows x cols at row stride ld, `stride`
// apart), rounded to bf16 and back.
static float *rounded_copy(const float *src, int64_t rows, int64_t cols, int64_t ld, int64_t stride, int64_t count) {
    int64_t span = (count - 1) * stride + (rows - 1) * ld + cols;
    float *dst = nd_xmalloc((size_t)span * sizeof(float));
    for (int64_t i = 0; i < span; i++) dst[i] = nd_bf16_to_float(nd_bf16_from_float(src[i]));
    return dst;
}

void nd_cpu_gemm_bf16_always(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                             int64_t lda, int64_t stride_a, const float *b, int64_t ldb, int64_t stride_b, float beta,
                             float *c, int64_t ldc, int64_t stride_c, int64_t batch) {
    if (m == 0 || n == 0) return;
    float *a16 = rounded_copy(a, trans_a ? k : m, trans_a ? m : k, lda, stride_a, stride_a ? batch : 1);
    float *b16 = rounded_copy(b, trans_b ? n : k, trans_b ? k : n, ldb, stride_b, stride_b ? batch : 1);
    nd_cpu_gemm(trans_a, trans_b, m, n, k, alpha, a16, lda, stride_a, b16, ldb, stride_b, beta, c, ldc, stride_c,
                batch);
    free(a16);
    free(b16);
}

// Convolutions then run as im2col + nd_cpu_gemm_bf16 (ops_conv.c), as the float32 ones do without oneDNN.
bool nd_cpu_conv_forward_bf16(float *y, const float *x, const float *w, const float *bias, const nd_conv_geom *g,
                              int64_t batch, int64_t filters, bool transposed, bool inference) {
    return false;
}

bool nd_cpu_conv_backward_bf16(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w,
                               const nd_conv_geom *g, int64_t batch, int64_t filters, bool transposed, bool bias) {
    return false;
}
#endif
