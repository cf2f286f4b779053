// CPU normalization: row statistics and per-channel affine for layer/group norm, per-channel batch norm.
// Sums run in double, so a row of many thousand floats loses nothing to rounding, and as several partial
// sums (omp simd reductions), so they vectorize instead of waiting on one chain of additions.
#include "../elementwise_math.h"
#include "cpu.h"

// Channels of layer norm summed together: one cache line of a row at a time.
#define CHANNEL_BLOCK 16

static inline double block_sum(const float *x, int64_t n) {
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < n; i++) sum += x[i];
    return sum;
}

static inline double block_squared_deviations(const float *x, int64_t n, double mean) {
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < n; i++) sum += ((double)x[i] - mean) * ((double)x[i] - mean);
    return sum;
}

// Adds the sums of dy and dy * xhat over a block whose elements share mean and rstd.
static inline void block_grad_sums(const float *dy, const float *x, int64_t n, float mean, float rstd, double *sum_dy,
                                   double *sum_dy_xhat) {
    double a = 0.0, b = 0.0;
#pragma omp simd reduction(+ : a, b)
    for (int64_t i = 0; i < n; i++) {
        a += dy[i];
        b += (double)dy[i] * ((x[i] - mean) * rstd);
    }
    *sum_dy += a;
    *sum_dy_xhat += b;
}

// Statistics of x (rows, len), one row at a time: two passes (mean, then squared deviations), which stays
// accurate where a single pass over x and x^2 cancels.
void nd_cpu_norm_row_stats(float *mean, float *rstd, const float *x, int64_t rows, int64_t len, float eps) {
#pragma omp parallel for if (rows * len > ND_CPU_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * len; // (len,)
        double m = block_sum(xr, len) / (double)len;
        mean[r] = (float)m;
        rstd[r] = nd_norm_rstd((float)(block_squared_deviations(xr, len, m) / (double)len), eps);
    }
}

// Channel of the first element of row r: a row covers len / inner consecutive channels.
static inline int64_t row_first_channel(int64_t r, int64_t len, int64_t channels, int64_t inner) {
    return (r * (len / inner)) % channels;
}

void nd_cpu_norm_row_forward(float *y, const float *x, const float *mean, const float *rstd, const float *weight,
                             const float *bias, int64_t rows, int64_t len, int64_t channels, int64_t inner) {
    int64_t blocks = len / inner;
#pragma omp parallel for if (rows * len > ND_CPU_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t first = row_first_channel(r, len, channels, inner);
        for (int64_t b = 0; b < blocks; b++) {
            float w = weight ? weight[first + b] : 1.0f, bb = bias ? bias[first + b] : 0.0f;
            const float *xb = x + r * len + b * inner; // (inner,)
            float *yb = y + r * len + b * inner;       // (inner,)
            for (int64_t s = 0; s < inner; s++) yb[s] = nd_norm_affine(xb[s], mean[r], rstd[r], w, bb);
        }
    }
}

void nd_cpu_norm_row_act_forward(float *y, const float *x, const float *mean, const float *rstd, const float *weight,
                                 const float *bias, int64_t rows, int64_t len, int64_t channels, int64_t inner,
                                 nd_unary_kind act) {
    int64_t blocks = len / inner;
#define FORWARD(K)                                                                                                     \
    _Pragma("omp parallel for if (rows * len > ND_CPU_PARALLEL_MIN / 8)") for (int64_t r = 0; r < rows; r++) {         \
        int64_t first = row_first_channel(r, len, channels, inner);                                                    \
        for (int64_t b = 0; b < blocks; b++) {                                                                         \
            float w = weight ? weight[first + b] : 1.0f, bb = bias ? bias[first + b] : 0.0f, m = mean[r];              \
            float s = rstd[r];                                                                                         \
            const float *xb = x + r * len + b * inner; /* (inner,) */                                                  \
            float *yb = y + r * len + b * inner;       /* (inner,) */                                                  \
            _Pragma("omp simd") for (int64_t i = 0; i < inner; i++)                                                    \
                yb[i] = nd_unary_f(K, nd_norm_affine(xb[i], m, s, w, bb), 0.0f, 0.0f);                                 \
        }                                                                                                              \
    }
    switch (act) { ND_UNARY_CASES(FORWARD) }
#undef FORWARD
}

void nd_cpu_norm_row_act_backward(float *dh, const float *dy, const float *x, const float *y, const float *mean,
                                  const float *rstd, const float *weight, const float *bias, int64_t rows, int64_t len,
                                  int64_t channels, int64_t inner, nd_unary_kind act) {
    int64_t blocks = len / inner;
#define BACKWARD(K)                                                                                                    \
    _Pragma("omp parallel for if (rows * len > ND_CPU_PARALLEL_MIN / 8)") for (int64_t r = 0; r < rows; r++) {         \
        int64_t first = row_first_channel(r, len, channels, inner);                                                    \
        for (int64_t b = 0; b < blocks; b++) {                                                                         \
            float w = weight ? weight[first + b] : 1.0f, bb = bias ? bias[first + b] : 0.0f, m = mean[r];              \
            float s = rstd[r];                                                                                         \
            int64_t at = r * len + b * inner;                                                                          \
            _Pragma("omp simd") for (int64_t i = at; i < at + inner; i++)                                              \
                dh[i] = dy[i] * nd_unary_df(K, nd_norm_affine(x[i], m, s, w, bb), y[i], 0.0f);                         \
        }                                                                                                              \
    }
    switch (act) { ND_UNARY_CASES(BACKWARD) }
#undef BACKWARD
}

// Per row: the means of g = dy * weight and g * xhat, then every element's gradient from them. The weight
// is constant over each block of inner elements, so the block sums of dy and dy * xhat are scaled by it
// (layer norm's blocks are single elements: one pass with the weight inside).
void nd_cpu_norm_row_backward(float *dx, const float *dy, const float *x, const float *mean, const float *rstd,
                              const float *weight, int64_t rows, int64_t len, int64_t channels, int64_t inner) {
    int64_t blocks = len / inner;
#pragma omp parallel for if (rows * len > ND_CPU_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t first = row_first_channel(r, len, channels, inner);
        const float *xr = x + r * len, *gr = dy + r * len; // (len,)
        float m = mean[r], s = rstd[r];
        double sum_g = 0.0, sum_g_xhat = 0.0;
        if (inner == 1) {
            const float *wr = weight ? weight + first : NULL; // (len,)
#pragma omp simd reduction(+ : sum_g, sum_g_xhat)
            for (int64_t j = 0; j < len; j++) {
                float g = gr[j] * (wr ? wr[j] : 1.0f);
                sum_g += g;
                sum_g_xhat += (double)g * ((xr[j] - m) * s);
            }
        } else {
            for (int64_t b = 0; b < blocks; b++) {
                double block_dy = 0.0, block_dy_xhat = 0.0;
                block_grad_sums(gr + b * inner, xr + b * inner, inner, m, s, &block_dy, &block_dy_xhat);
                float w = weight ? weight[first + b] : 1.0f;
                sum_g += w * block_dy;
                sum_g_xhat += w * block_dy_xhat;
            }
        }
        float mean_g = (float)(sum_g / (double)len), mean_g_xhat = (float)(sum_g_xhat / (double)len);
        for (int64_t b = 0; b < blocks; b++) {
            float w = weight ? weight[first + b] : 1.0f;
            for (int64_t j = b * inner; j < (b + 1) * inner; j++)
                dx[r * len + j] += nd_norm_input_grad(gr[j] * w, (xr[j] - m) * s, s, mean_g, mean_g_xhat);
        }
    }
}

// Channel sums split over threads by channel, so no two threads write the same sum. x is (outer, channels,
// inner). Layer norm's channels are the columns of (rows, len): a block of neighbouring columns is summed
// together so every row is read a whole cache line at a time.
void nd_cpu_norm_row_affine_backward(float *dweight, float *dbias, const float *dy, const float *x, const float *mean,
                                     const float *rstd, int64_t rows, int64_t len, int64_t channels, int64_t inner) {
    if (inner == 1 && channels == len) {
        int64_t blocks = (channels + CHANNEL_BLOCK - 1) / CHANNEL_BLOCK;
#pragma omp parallel for if (rows * len > ND_CPU_PARALLEL_MIN)
        for (int64_t blk = 0; blk < blocks; blk++) {
            int64_t first = blk * CHANNEL_BLOCK;
            int64_t width = channels - first < CHANNEL_BLOCK ? channels - first : CHANNEL_BLOCK;
            double sum_dy[CHANNEL_BLOCK] = {0}, sum_dy_xhat[CHANNEL_BLOCK] = {0};
            for (int64_t r = 0; r < rows; r++) {
                const float *xr = x + r * len + first, *gr = dy + r * len + first; // (width,)
                for (int64_t k = 0; k < width; k++) {
                    sum_dy[k] += gr[k];
                    sum_dy_xhat[k] += (double)gr[k] * ((xr[k] - mean[r]) * rstd[r]);
                }
            }
            for (int64_t k = 0; k < width; k++) {
                if (dweight) dweight[first + k] += (float)sum_dy_xhat[k];
                if (dbias) dbias[first + k] += (float)sum_dy[k];
            }
        }
        return;
    }
    int64_t outer = rows * len / (channels * inner);
#pragma omp parallel for if (rows * len > ND_CPU_PARALLEL_MIN)
    for (int64_t c = 0; c < channels; c++) {
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (int64_t o = 0; o < outer; o++) {
            int64_t base = (o * channels + c) * inner, r = base / len;
            block_grad_sums(dy + base, x + base, inner, mean[r], rstd[r], &sum_dy, &sum_dy_xhat);
        }
        if (dweight) dweight[c] += (float)sum_dy_xhat;
        if (dbias) dbias[c] += (float)sum_dy;
    }
}

// ---------------------------------------------------------------------------------------------------
// batch norm over x (outer, channels, inner)

void nd_cpu_batch_norm_stats(float *mean, float *rstd, float *running_mean, float *running_var, const float *x,
                             int64_t outer, int64_t channels, int64_t inner, float momentum, float eps, bool training) {
    if (!training) {
        for (int64_t c = 0; c < channels; c++) {
            mean[c] = running_mean[c];
            rstd[c] = nd_norm_rstd(running_var[c], eps);
        }
        return;
    }
    int64_t count = outer * inner;
#pragma omp parallel for if (count * channels > ND_CPU_PARALLEL_MIN)
    for (int64_t c = 0; c < channels; c++) {
        double sum = 0.0, squares = 0.0;
        for (int64_t o = 0; o < outer; o++) sum += block_sum(x + (o * channels + c) * inner, inner);
        double m = sum / (double)count;
        for (int64_t o = 0; o < outer; o++)
            squares += block_squared_deviations(x + (o * channels + c) * inner, inner, m);
        mean[c] = (float)m;
        rstd[c] = nd_norm_rstd((float)(squares / (double)count), eps);
        if (running_mean) running_mean[c] = nd_running_update(running_mean[c], (float)m, momentum);
        if (running_var)
            running_var[c] = nd_running_update(running_var[c], (float)(squares / (double)(count - 1)), momentum);
    }
}

void nd_cpu_batch_norm_forward(float *y, const float *x, const float *mean, const float *rstd, const float *weight,
                               const float *bias, int64_t outer, int64_t channels, int64_t inner) {
#pragma omp parallel for collapse(2) if (outer * channels * inner > ND_CPU_PARALLEL_MIN)
    for (int64_t o = 0; o < outer; o++)
        for (int64_t c = 0; c < channels; c++) {
            float w = weight ? weight[c] : 1.0f, b = bias ? bias[c] : 0.0f;
            const float *xb = x + (o * channels + c) * inner; // (inner,)
            float *yb = y + (o * channels + c) * inner;       // (inner,)
            for (int64_t s = 0; s < inner; s++) yb[s] = nd_norm_affine(xb[s], mean[c], rstd[c], w, b);
        }
}

// Per channel: the sums of dy and dy * xhat are the bias and weight gradients, and (scaled by the weight)
// the means the training-mode input gradient needs.
void nd_cpu_batch_norm_backward(float *dx, float *dweight, float *dbias, const float *dy, const float *x,
                                const float *mean, const float *rstd, const float *weight, int64_t outer,
                                int64_t channels, int64_t inner, bool training) {
    int64_t count = outer * inner;
#pragma omp parallel for if (count * channels > ND_CPU_PARALLEL_MIN)
    for (int64_t c = 0; c < channels; c++) {
        float w = weight ? weight[c] : 1.0f, m = mean[c], s = rstd[c];
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (int64_t o = 0; o < outer; o++) {
            int64_t base = (o * channels + c) * inner;
            block_grad_sums(dy + base, x + base, inner, m, s, &sum_dy, &sum_dy_xhat);
        }
        if (dweight) dweight[c] += (float)sum_dy_xhat;
        if (dbias) dbias[c] += (float)sum_dy;
        if (!dx) continue;
        float mean_g = (float)(w * sum_dy / (double)count), mean_g_xhat = (float)(w * sum_dy_xhat / (double)count);
        for (int64_t o = 0; o < outer; o++) {
            const float *gb = dy + (o * channels + c) * inner, *xb = x + (o * channels + c) * inner; // (inner,)
            float *db = dx + (o * channels + c) * inner;                                             // (inner,)
            if (training)
                for (int64_t j = 0; j < inner; j++)
                    db[j] += nd_norm_input_grad(gb[j] * w, (xb[j] - m) * s, s, mean_g, mean_g_xhat);
            else
                for (int64_t j = 0; j < inner; j++) db[j] += gb[j] * w * s;
        }
    }
}
