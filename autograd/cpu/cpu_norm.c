// CPU normalization: row statistics and per-channel affine for layer/group norm, per-channel batch norm.
// Sums run in double: a row of a few thousand floats then loses nothing to rounding, at no cost that
// matters next to the memory traffic.
#include "../elementwise_math.h"
#include "cpu.h"

// Statistics of x (rows, len), one row at a time: two passes (mean, then squared deviations), which stays
// accurate where a single pass over x and x^2 cancels.
void nd_cpu_norm_row_stats(float *mean, float *rstd, const float *x, int64_t rows, int64_t len, float eps) {
#pragma omp parallel for if (rows * len > ND_CPU_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * len; // (len,)
        double sum = 0.0;
        for (int64_t j = 0; j < len; j++) sum += xr[j];
        double m = sum / (double)len, squares = 0.0;
        for (int64_t j = 0; j < len; j++) squares += ((double)xr[j] - m) * ((double)xr[j] - m);
        mean[r] = (float)m;
        rstd[r] = nd_norm_rstd((float)(squares / (double)len), eps);
    }
}

// Channel of the first element of row r: a row covers len / inner consecutive channels.
static inline int64_t row_first_channel(int64_t r, int64_t len, int64_t channels, int64_t inner) {
    return (r * (len / inner)) % channels;
}

// The channel after c, wrapping; cheaper than a division per element when inner is 1 (layer norm).
static inline int64_t next_channel(int64_t c, int64_t channels) { return c + 1 == channels ? 0 : c + 1; }

void nd_cpu_norm_row_forward(float *y, const float *x, const float *mean, const float *rstd, const float *weight,
                             const float *bias, int64_t rows, int64_t len, int64_t channels, int64_t inner) {
    int64_t blocks = len / inner;
#pragma omp parallel for if (rows * len > ND_CPU_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t c = row_first_channel(r, len, channels, inner);
        for (int64_t b = 0; b < blocks; b++, c = next_channel(c, channels)) {
            float w = weight ? weight[c] : 1.0f, bb = bias ? bias[c] : 0.0f;
            const float *xb = x + r * len + b * inner; // (inner,)
            float *yb = y + r * len + b * inner;       // (inner,)
            for (int64_t s = 0; s < inner; s++) yb[s] = nd_norm_affine(xb[s], mean[r], rstd[r], w, bb);
        }
    }
}

// Per row: the means of g = dy * weight and g * xhat, then every element's gradient from them.
void nd_cpu_norm_row_backward(float *dx, const float *dy, const float *x, const float *mean, const float *rstd,
                              const float *weight, int64_t rows, int64_t len, int64_t channels, int64_t inner) {
    int64_t blocks = len / inner;
#pragma omp parallel for if (rows * len > ND_CPU_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t first = row_first_channel(r, len, channels, inner), c = first;
        const float *xr = x + r * len, *gr = dy + r * len; // (len,)
        double sum_g = 0.0, sum_g_xhat = 0.0;
        for (int64_t b = 0; b < blocks; b++, c = next_channel(c, channels)) {
            float w = weight ? weight[c] : 1.0f;
            for (int64_t s = b * inner; s < (b + 1) * inner; s++) {
                float g = gr[s] * w, xhat = (xr[s] - mean[r]) * rstd[r];
                sum_g += g;
                sum_g_xhat += (double)g * xhat;
            }
        }
        float mean_g = (float)(sum_g / (double)len), mean_g_xhat = (float)(sum_g_xhat / (double)len);
        c = first;
        for (int64_t b = 0; b < blocks; b++, c = next_channel(c, channels)) {
            float w = weight ? weight[c] : 1.0f;
            for (int64_t s = b * inner; s < (b + 1) * inner; s++) {
                float xhat = (xr[s] - mean[r]) * rstd[r];
                dx[r * len + s] += nd_norm_input_grad(gr[s] * w, xhat, rstd[r], mean_g, mean_g_xhat);
            }
        }
    }
}

// One channel per iteration (no two threads write the same sum); x is (outer, channels, inner).
void nd_cpu_norm_row_affine_backward(float *dweight, float *dbias, const float *dy, const float *x,
                                     const float *mean, const float *rstd, int64_t rows, int64_t len,
                                     int64_t channels, int64_t inner) {
    int64_t outer = rows * len / (channels * inner);
#pragma omp parallel for if (rows * len > ND_CPU_PARALLEL_MIN)
    for (int64_t c = 0; c < channels; c++) {
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (int64_t o = 0; o < outer; o++) {
            int64_t base = (o * channels + c) * inner, r = base / len;
            for (int64_t s = 0; s < inner; s++) {
                float g = dy[base + s];
                sum_dy += g;
                sum_dy_xhat += (double)g * ((x[base + s] - mean[r]) * rstd[r]);
            }
        }
        if (dweight) dweight[c] += (float)sum_dy_xhat;
        if (dbias) dbias[c] += (float)sum_dy;
    }
}

// ---------------------------------------------------------------------------------------------------
// batch norm over x (outer, channels, inner)

void nd_cpu_batch_norm_stats(float *mean, float *rstd, float *running_mean, float *running_var, const float *x,
                             int64_t outer, int64_t channels, int64_t inner, float momentum, float eps,
                             bool training) {
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
        double sum = 0.0;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t s = 0; s < inner; s++) sum += x[(o * channels + c) * inner + s];
        double m = sum / (double)count, squares = 0.0;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t s = 0; s < inner; s++) {
                double d = (double)x[(o * channels + c) * inner + s] - m;
                squares += d * d;
            }
        mean[c] = (float)m;
        rstd[c] = nd_norm_rstd((float)(squares / (double)count), eps);
        if (running_mean) running_mean[c] = nd_running_update(running_mean[c], (float)m, momentum);
        if (running_var)
            running_var[c] = nd_running_update(running_var[c], (float)(squares / (double)(count - 1)), momentum);
    }
}

void nd_cpu_batch_norm_forward(float *y, const float *x, const float *mean, const float *rstd,
                               const float *weight, const float *bias, int64_t outer, int64_t channels,
                               int64_t inner) {
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
        float w = weight ? weight[c] : 1.0f;
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t s = 0; s < inner; s++) {
                int64_t at = (o * channels + c) * inner + s;
                sum_dy += dy[at];
                sum_dy_xhat += (double)dy[at] * ((x[at] - mean[c]) * rstd[c]);
            }
        if (dweight) dweight[c] += (float)sum_dy_xhat;
        if (dbias) dbias[c] += (float)sum_dy;
        if (!dx) continue;
        float mean_g = (float)(w * sum_dy / (double)count), mean_g_xhat = (float)(w * sum_dy_xhat / (double)count);
        for (int64_t o = 0; o < outer; o++)
            for (int64_t s = 0; s < inner; s++) {
                int64_t at = (o * channels + c) * inner + s;
                if (training)
                    dx[at] += nd_norm_input_grad(dy[at] * w, (x[at] - mean[c]) * rstd[c], rstd[c], mean_g,
                                                 mean_g_xhat);
                else
                    dx[at] += dy[at] * w * rstd[c];
            }
    }
}
