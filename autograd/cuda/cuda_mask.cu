// GPU elementwise masks: dropout (mask recomputed from Philox counters), masked fill, the causal mask.
#include "../elementwise_math.h"
#include "cuda_common.h"

// The keep mask is the CPU's bit for bit: the same counters, the same comparison.
static __global__ void dropout_kernel(float *y, const float *x, int64_t n, uint64_t seed, uint64_t offset,
                                      float keep_prob, bool accumulate) {
    ND_CUDA_FOR_EACH(i, n) {
        float v = x[i] * nd_dropout_scale(seed, offset, i, keep_prob);
        y[i] = accumulate ? y[i] + v : v;
    }
}

// mask (mask_n) repeats over x's leading dims
static __global__ void masked_fill_kernel(float *y, const float *x, const float *mask, int64_t n, int64_t mask_n,
                                          float value, bool accumulate) {
    ND_CUDA_FOR_EACH(i, n) {
        float v = mask[i % mask_n] != 0.0f ? value : x[i];
        y[i] = accumulate ? y[i] + v : v;
    }
}

// mask (lq, lk) = 1 where the key comes after the query
static __global__ void causal_mask_kernel(float *mask, int64_t lq, int64_t lk) {
    ND_CUDA_FOR_EACH(i, lq * lk) mask[i] = i % lk > i / lk ? 1.0f : 0.0f;
}

extern "C" {

// keep_prob computed as the CPU does (1 - p in float), so the masks agree bit for bit.
void nd_cuda_dropout(float *y, const float *x, int64_t n, uint64_t seed, uint64_t offset, float p, bool accumulate) {
    ND_CUDA_MAP(n, dropout_kernel, y, x, n, seed, offset, 1.0f - p, accumulate);
}

// Only whole repeats of the mask are covered, as on the CPU.
void nd_cuda_masked_fill(float *y, const float *x, const float *mask, int64_t n, int64_t mask_n, float value,
                         bool accumulate) {
    int64_t covered = mask_n ? n / mask_n * mask_n : 0;
    ND_CUDA_MAP(covered, masked_fill_kernel, y, x, mask, covered, mask_n, value, accumulate);
}

// Elementwise map over lq * lk.
void nd_cuda_causal_mask(float *mask, int64_t lq, int64_t lk) {
    ND_CUDA_MAP(lq * lk, causal_mask_kernel, mask, lq, lk);
}

} // extern "C"
