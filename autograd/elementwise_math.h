// Per-element math written once for host and device: the CPU backend runs these, the CUDA kernels call
// the same functions, so CPU tests exercise the formulas the GPU runs.
#ifndef ND_ELEMENTWISE_MATH_H
#define ND_ELEMENTWISE_MATH_H

#include <math.h>
#include <stdint.h>

#include "backend.h"
#include "nd_random.h"

#define ND_SQRT1_2 0.70710678118654752440f // 1/sqrt(2)
#define ND_INV_SQRT_2PI 0.39894228040143267794f

// erf(x) in float32 as a rational function (the odd/even minimax pair XLA and Eigen use): within 5e-7 of
// erf, branch-free so loops over it vectorize; beyond |x| = 4 erf is +/-1 in float32. The clamp is written
// as selects, which vectorize (the build's -fno-trapping-math), where fminf/fmaxf stay library calls on the
// host: that kept GELU loops scalar and 30x slower than ReLU.
ND_HD static inline float nd_erff(float x) {
    x = x < -4.0f ? -4.0f : x > 4.0f ? 4.0f : x;
    float x2 = x * x;
    float p = -2.72614225801306e-10f;
    p = p * x2 + 2.77068142495902e-08f;
    p = p * x2 - 2.10102402082508e-06f;
    p = p * x2 - 5.69250639462346e-05f;
    p = p * x2 - 7.34990630326855e-04f;
    p = p * x2 - 2.95459980854025e-03f;
    p = p * x2 - 1.60960333262415e-02f;
    float q = -1.45660718464996e-05f;
    q = q * x2 - 2.13374055278905e-04f;
    q = q * x2 - 1.68282697438203e-03f;
    q = q * x2 - 7.37332916720468e-03f;
    q = q * x2 - 1.42647390514189e-02f;
    return x * p / q;
}

// exp(x) for x <= 0 (GELU's Gaussian factor), branch-free so that loops over it vectorize where expf stays
// a library call: Cephes' expf (x = n ln 2 + r, a degree-6 polynomial in r, then 2^n from the exponent
// bits), within 2 ulp. Below -87 it returns exp(-87) ~ 1.6e-38 instead of underflowing towards 0; NaN gives NaN.
ND_HD static inline float nd_exp_neg(float x) {
    x = x < -87.0f ? -87.0f : x > 0.0f ? 0.0f : x;
    float n = floorf(x * 1.44269504088896341f + 0.5f);
    n = n == n ? n : 0.0f; // a NaN stays in r (and the result), not in the integer conversion below
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23; // 2^n, n in [-126, 0]
#ifdef __CUDA_ARCH__
    return p * __int_as_float(bits);
#else
    union {
        int32_t i;
        float f;
    } two_n;
    two_n.i = bits;
    return p * two_n.f;
#endif
}

// 1 / (1 + exp(-x)) from exp(-|x|) <= 1, so that it never overflows and loops over it vectorize: for x < 0
// it is e / (1 + e). A NaN passes through (the select keeps it, as torch.sigmoid does).
ND_HD static inline float nd_sigmoidf(float x) {
    float e = nd_exp_neg(x < 0.0f ? x : x >= 0.0f ? -x : 0.0f); // -|x|; a NaN is handled below
    float s = 1.0f / (1.0f + e);
    s = x < 0.0f ? e * s : s;
    return x != x ? x : s;
}

// y = f(x) for each unary kind
ND_HD static inline float nd_unary_f(nd_unary_kind kind, float x, float alpha, float beta) {
    switch (kind) {
    case ND_UNARY_AFFINE: return alpha * x + beta;
    case ND_UNARY_RECIP: return alpha / x;
    case ND_UNARY_NEG: return -x;
    case ND_UNARY_EXP: return expf(x);
    case ND_UNARY_LOG: return logf(x);
    case ND_UNARY_SQRT: return sqrtf(x);
    case ND_UNARY_SQUARE: return x * x;
    // a NaN passes through, as torch.relu's clamp_min does (x > 0 ? x : 0 would hide a diverged input)
    case ND_UNARY_RELU: return x > 0.0f || isnan(x) ? x : 0.0f;
    case ND_UNARY_GELU: return 0.5f * x * (1.0f + nd_erff(x * ND_SQRT1_2));
    case ND_UNARY_SILU: return x * nd_sigmoidf(x);
    case ND_UNARY_SIGMOID: return nd_sigmoidf(x);
    case ND_UNARY_TANH: return tanhf(x);
    case ND_UNARY_SIN: return sinf(x);
    case ND_UNARY_COS: return cosf(x);
    default: return NAN;
    }
}

// dy/dx given x and y = f(x) (whichever is cheaper)
ND_HD static inline float nd_unary_df(nd_unary_kind kind, float x, float y, float alpha) {
    switch (kind) {
    case ND_UNARY_AFFINE: return alpha;
    case ND_UNARY_RECIP: return -y / x;
    case ND_UNARY_NEG: return -1.0f;
    case ND_UNARY_EXP: return y;
    case ND_UNARY_LOG: return 1.0f / x;
    case ND_UNARY_SQRT: return 0.5f / y;
    case ND_UNARY_SQUARE: return 2.0f * x;
    // threshold_backward's rule: the gradient is cut only where x <= 0, so it passes where x is NaN
    case ND_UNARY_RELU: return x <= 0.0f ? 0.0f : 1.0f;
    case ND_UNARY_GELU: // d/dx x*Phi(x) = Phi(x) + x*phi(x)
        return 0.5f * (1.0f + nd_erff(x * ND_SQRT1_2)) + x * ND_INV_SQRT_2PI * nd_exp_neg(-0.5f * x * x);
    case ND_UNARY_SILU: {
        float s = nd_sigmoidf(x);
        return s * (1.0f + x * (1.0f - s));
    }
    case ND_UNARY_SIGMOID: return y * (1.0f - y);
    case ND_UNARY_TANH: return 1.0f - y * y;
    case ND_UNARY_SIN: return cosf(x);
    case ND_UNARY_COS: return -sinf(x);
    default: return NAN;
    }
}

ND_HD static inline float nd_binary_f(nd_binary_kind kind, float a, float b) {
    switch (kind) {
    case ND_BINARY_ADD: return a + b;
    case ND_BINARY_SUB: return a - b;
    case ND_BINARY_MUL: return a * b;
    default: return a / b;
    }
}

// d(a op b)/da (which = 0) or d/db (which = 1)
ND_HD static inline float nd_binary_df(nd_binary_kind kind, int which, float a, float b) {
    switch (kind) {
    case ND_BINARY_ADD: return 1.0f;
    case ND_BINARY_SUB: return which ? -1.0f : 1.0f;
    case ND_BINARY_MUL: return which ? a : b;
    default: return which ? -a / (b * b) : 1.0f / b;
    }
}

// Adam / AdamW update of one parameter, as torch.optim.Adam(W) with bias correction.
// step is 1-based; weight_decay is L2 (added to the gradient) for Adam, decoupled for AdamW.
ND_HD static inline void nd_adam_update(float *param, float *m, float *v, float grad, float lr, float beta1,
                                        float beta2, float eps, float weight_decay, int decoupled,
                                        float bias_correction1, float bias_correction2) {
    if (weight_decay != 0.0f) {
        if (decoupled)
            *param -= lr * weight_decay * *param;
        else
            grad += weight_decay * *param;
    }
    *m = beta1 * *m + (1.0f - beta1) * grad;
    *v = beta2 * *v + (1.0f - beta2) * grad * grad;
    float denom = sqrtf(*v) / sqrtf(bias_correction2) + eps;
    *param -= (lr / bias_correction1) * *m / denom;
}

// ---------------------------------------------------------------------------------------------------
// normalization (layer, group, batch norm) and dropout

// 1 / sqrt(var + eps) with the biased variance, as every PyTorch norm divides by.
ND_HD static inline float nd_norm_rstd(float var, float eps) { return 1.0f / sqrtf(var + eps); }

// (x - mean) * rstd * weight + bias
ND_HD static inline float nd_norm_affine(float x, float mean, float rstd, float weight, float bias) {
    return (x - mean) * rstd * weight + bias;
}

// d(loss)/dx of one normalized element, with g = dy * weight and xhat = (x - mean) * rstd, given the means of
// g and of g * xhat over the elements that share its statistics (the mean and variance depend on every one).
ND_HD static inline float nd_norm_input_grad(float g, float xhat, float rstd, float mean_g, float mean_g_xhat) {
    return rstd * (g - mean_g - xhat * mean_g_xhat);
}

// (1 - momentum) * running + momentum * batch, as nn.BatchNorm updates its running statistics.
ND_HD static inline float nd_running_update(float running, float batch, float momentum) {
    return (1.0f - momentum) * running + momentum * batch;
}

// Dropout's multiplier of element i: 1 / keep_prob where the element is kept, which is exactly where
// nd_rand_bernoulli(keep_prob) at the same seed and offset draws a 1; else 0.
ND_HD static inline float nd_dropout_scale(uint64_t seed, uint64_t offset, int64_t i, float keep_prob) {
    return nd_philox_uniform(seed, offset, i) <= keep_prob ? 1.0f / keep_prob : 0.0f;
}

// Max pooling's window: the kernel x kernel pixels of a plane `width` wide from offset `start`. Returns the
// in-plane offset of the first maximum (PyTorch's rule: a NaN counts as the maximum) and its value in *best.
ND_HD static inline int64_t nd_max_pool_window(const float *plane, int64_t width, int64_t start, int64_t kernel,
                                               float *best) {
    int64_t at = start;
    float top = -INFINITY;
    for (int64_t i = 0; i < kernel; i++)
        for (int64_t j = 0; j < kernel; j++) {
            int64_t k = start + i * width + j;
            float v = plane[k];
            if (v > top || isnan(v)) {
                top = v;
                at = k;
            }
        }
    *best = top;
    return at;
}

#endif
