// CPU elementwise masks: dropout (mask recomputed from Philox counters), masked fill, the causal mask.
#include "../elementwise_math.h"
#include "cpu.h"

void nd_cpu_dropout(float *y, const float *x, int64_t n, uint64_t seed, uint64_t offset, float p, bool accumulate) {
    float keep_prob = 1.0f - p;
#pragma omp parallel for if (n > ND_CPU_PARALLEL_MIN / 8)
    for (int64_t i = 0; i < n; i++) {
        float v = x[i] * nd_dropout_scale(seed, offset, i, keep_prob);
        y[i] = accumulate ? y[i] + v : v;
    }
}

void nd_cpu_masked_fill(float *y, const float *x, const float *mask, int64_t n, int64_t mask_n, float value,
                        bool accumulate) {
    int64_t repeats = mask_n ? n / mask_n : 0;
#pragma omp parallel for if (n > ND_CPU_PARALLEL_MIN)
    for (int64_t r = 0; r < repeats; r++)
        for (int64_t j = 0; j < mask_n; j++) {
            int64_t at = r * mask_n + j;
            float v = mask[j] != 0.0f ? value : x[at];
            y[at] = accumulate ? y[at] + v : v;
        }
}

void nd_cpu_causal_mask(float *mask, int64_t lq, int64_t lk) {
    for (int64_t i = 0; i < lq; i++)
        for (int64_t j = 0; j < lk; j++) mask[i * lk + j] = j > i ? 1.0f : 0.0f;
}
