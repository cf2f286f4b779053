// bfloat16 on the CPU (ND_PRECISION_BF16): the conversion, the check for AVX512_BF16, and the matrix
// products and convolutions that read bf16 copies of their inputs and accumulate and write float32.
#ifndef ND_CPU_BF16_H
#define ND_CPU_BF16_H

#include <string.h>

#include "cpu.h"

// float32 to bfloat16 bits, rounded to nearest even (as torch's and oneDNN's conversions): the upper half of
// the float32 bits, plus one where the lower half is above 0x8000 or exactly 0x8000 with the kept half odd.
// Infinities stay infinite, finite values past bf16's largest round to infinity, subnormals are kept, and a
// NaN stays a NaN of its sign (quieted, so no payload rounds into infinity).
static inline uint16_t nd_bf16_from_float(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static inline float nd_bf16_to_float(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

// dst (n) = src (n) in bf16 (nd_bf16_from_float).
void nd_cpu_to_bf16(uint16_t *dst, const float *src, int64_t n);

// Whether this CPU has AVX512_BF16 (cpuid leaf 7, sub-leaf 1, EAX bit 5) with AVX-512 enabled by the OS.
bool nd_cpu_has_avx512_bf16(void);

// Whether this build and CPU run bf16 products at full speed: AVX512_BF16, and oneDNN (the products' library)
// built in and allowed those instructions (ONEDNN_MAX_CPU_ISA may cap it); else false with why.
bool nd_cpu_bf16_available(char *why, size_t size);

// The bf16 versions of the entries gemm, conv_forward and conv_backward (contracts in backend_list.h): inputs
// rounded to bf16, products accumulated in float32, outputs and gradients float32. oneDNN's matmul and
// convolution primitives (cpu_dnnl_bf16.c); built without oneDNN, where bf16 is refused, the GEMM is emulated
// (cpu_bf16.c) and the convolutions fall back to im2col + GEMM.
void nd_cpu_gemm_bf16(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                      int64_t lda, int64_t stride_a, const float *b, int64_t ldb, int64_t stride_b, float beta,
                      float *c, int64_t ldc, int64_t stride_c, int64_t batch);
bool nd_cpu_conv_forward_bf16(float *y, const float *x, const float *w, const float *bias, const nd_conv_geom *g,
                              int64_t batch, int64_t filters, bool transposed, bool inference);
bool nd_cpu_conv_backward_bf16(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w,
                               const nd_conv_geom *g, int64_t batch, int64_t filters, bool transposed, bool bias);

// Whether nd_cpu_gemm_bf16 runs a batch of m x n x k products in bf16: where a call's fixed cost is more than
// bf16 saves, and for products with a vector (sums against a vector of ones), it runs cblas_sgemm.
bool nd_cpu_gemm_bf16_pays(int64_t m, int64_t n, int64_t k, int64_t batch);
// nd_cpu_gemm_bf16 without that rule: every product in bf16 (benchmarks, tests).
void nd_cpu_gemm_bf16_always(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                             int64_t lda, int64_t stride_a, const float *b, int64_t ldb, int64_t stride_b, float beta,
                             float *c, int64_t ldc, int64_t stride_c, int64_t batch);

// Whether nd_cpu_conv_backward_bf16 computes a convolution's weight and bias gradients in bf16 (else with the
// float32 primitives, on the unrounded inputs; the input gradient is bf16 either way).
bool nd_cpu_conv_bf16_weights_pay(int64_t in_c, int64_t out_c, bool transposed);

#endif
