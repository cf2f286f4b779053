// CPU softmax, log-softmax, negative log-likelihood and embedding rows.
#include <math.h>

#include "../elementwise_math.h"
#include "cpu.h"

// exp(d) for d = x - max <= 0, 0 below -87 (where nd_exp_neg stops), so a masked -inf score weighs exactly 0
static inline float softmax_exp(float d) { return d < -87.0f ? 0.0f : nd_exp_neg(d); }

// One row: y[j * inner] = softmax(x[j * inner]); exp is computed once and kept in y, and the loops over a
// contiguous row (inner == 1, attention's case) vectorize.
static inline void softmax_row(float *y, const float *x, int64_t n, int64_t inner, bool log) {
    float max = -INFINITY;
    for (int64_t j = 0; j < n; j++) max = x[j * inner] > max ? x[j * inner] : max; // a NaN reaches y through exp
    float sum = 0.0f;
    if (log) {
        for (int64_t j = 0; j < n; j++) sum += softmax_exp(x[j * inner] - max);
        float lse = max + logf(sum);
        for (int64_t j = 0; j < n; j++) y[j * inner] = x[j * inner] - lse;
        return;
    }
    for (int64_t j = 0; j < n; j++) {
        float e = softmax_exp(x[j * inner] - max);
        y[j * inner] = e;
        sum += e;
    }
    float inv = 1.0f / sum;
    for (int64_t j = 0; j < n; j++) y[j * inner] *= inv;
}

void nd_cpu_softmax_forward(float *y, const float *x, int64_t outer, int64_t n, int64_t inner, bool log) {
    if (inner == 1) {
#pragma omp parallel for if (outer * n > ND_CPU_PARALLEL_MIN / 8)
        for (int64_t o = 0; o < outer; o++) softmax_row(y + o * n, x + o * n, n, 1, log);
        return;
    }
#pragma omp parallel for collapse(2) if (outer * n * inner > ND_CPU_PARALLEL_MIN / 8)
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) softmax_row(y + o * n * inner + i, x + o * n * inner + i, n, inner, log);
}

// softmax: dx = y * (dy - sum(dy * y)); log_softmax: dx = dy - exp(y) * sum(dy)
void nd_cpu_softmax_backward(float *dx, const float *dy, const float *y, int64_t outer, int64_t n, int64_t inner,
                             bool log) {
#pragma omp parallel for collapse(2) if (outer * n * inner > ND_CPU_PARALLEL_MIN / 8)
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * n * inner + i;
            float dot = 0.0f;
            for (int64_t j = 0; j < n; j++)
                dot += log ? dy[base + j * inner] : dy[base + j * inner] * y[base + j * inner];
            for (int64_t j = 0; j < n; j++) {
                int64_t at = base + j * inner;
                dx[at] += log ? dy[at] - expf(y[at]) * dot : y[at] * (dy[at] - dot);
            }
        }
}

void nd_cpu_nll_forward(float *loss, const float *logp, const float *labels, int64_t rows, int64_t classes) {
    for (int64_t r = 0; r < rows; r++) loss[r] = -logp[r * classes + (int64_t)labels[r]];
}

void nd_cpu_cross_entropy_backward(float *dlogits, const float *logp, const float *labels, const float *dloss,
                                   float scale, int64_t rows, int64_t classes) {
    float s = scale * *dloss;
#pragma omp parallel for if (rows * classes > ND_CPU_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t label = (int64_t)labels[r];
        for (int64_t j = 0; j < classes; j++)
            dlogits[r * classes + j] += s * (expf(logp[r * classes + j]) - (j == label ? 1.0f : 0.0f));
    }
}

void nd_cpu_embedding_forward(float *out, const float *weight, const float *idx, int64_t n, int64_t dim) {
#pragma omp parallel for if (n * dim > ND_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float *row = weight + (int64_t)idx[i] * dim;
        for (int64_t j = 0; j < dim; j++) out[i * dim + j] = row[j];
    }
}

// Serial over indices (two may name the same row), parallel over the row's columns.
void nd_cpu_embedding_backward(float *dweight, const float *dout, const float *idx, int64_t n, int64_t dim) {
    for (int64_t i = 0; i < n; i++) {
        float *row = dweight + (int64_t)idx[i] * dim;
        const float *g = dout + i * dim;
#pragma omp parallel for if (dim > ND_CPU_PARALLEL_MIN)
        for (int64_t j = 0; j < dim; j++) row[j] += g[j];
    }
}
