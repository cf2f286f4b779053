// GPU normalization: row statistics and per-channel affine for layer/group norm, per-channel batch norm.
// Statistics are row reductions (one block per row or channel); the affine maps are elementwise.
#include "../elementwise_math.h"
#include "cuda_common.h"

// Offset in x (outer, channels, inner) of element e of channel c, counting e over (outer, inner).
__device__ static inline int64_t channel_offset(int64_t e, int64_t c, int64_t channels, int64_t inner) {
    return (e / inner * channels + c) * inner + e % inner;
}

// mean and rstd of each row of x (rows, len): two passes (mean, then squared deviations), which stays
// accurate where a single pass over x and x^2 cancels.
static __global__ void norm_row_stats_kernel(float *mean, float *rstd, const float *x, int64_t rows, int64_t len,
                                             float eps) {
    ND_CUDA_FOR_EACH_ROW(r, rows) {
        const float *xr = x + r * len; // (len,)
        float sum = 0.0f;
        ND_CUDA_FOR_EACH_IN_ROW(j, len) sum += xr[j];
        float m = nd_cuda_block_reduce(sum, false) / (float)len;
        float squares = 0.0f;
        ND_CUDA_FOR_EACH_IN_ROW(j, len) squares += (xr[j] - m) * (xr[j] - m);
        squares = nd_cuda_block_reduce(squares, false);
        if (threadIdx.x == 0) {
            mean[r] = m;
            rstd[r] = nd_norm_rstd(squares / (float)len, eps);
        }
    }
}

// Element i of x (rows, len) belongs to channel (i / inner) % channels.
static __global__ void norm_row_forward_kernel(float *y, const float *x, const float *mean, const float *rstd,
                                               const float *weight, const float *bias, int64_t rows, int64_t len,
                                               int64_t channels, int64_t inner) {
    ND_CUDA_FOR_EACH(i, rows * len) {
        int64_t r = i / len, c = i / inner % channels;
        y[i] = nd_norm_affine(x[i], mean[r], rstd[r], weight ? weight[c] : 1.0f, bias ? bias[c] : 0.0f);
    }
}

static __global__ void norm_row_act_forward_kernel(float *y, const float *x, const float *mean, const float *rstd,
                                                   const float *weight, const float *bias, int64_t rows, int64_t len,
                                                   int64_t channels, int64_t inner, nd_unary_kind act) {
    ND_CUDA_FOR_EACH(i, rows * len) {
        int64_t r = i / len, c = i / inner % channels;
        float h = nd_norm_affine(x[i], mean[r], rstd[r], weight ? weight[c] : 1.0f, bias ? bias[c] : 0.0f);
        y[i] = nd_unary_f(act, h, 0.0f, 0.0f);
    }
}

static __global__ void norm_row_act_backward_kernel(float *dh, const float *dy, const float *x, const float *y,
                                                    const float *mean, const float *rstd, const float *weight,
                                                    const float *bias, int64_t rows, int64_t len, int64_t channels,
                                                    int64_t inner, nd_unary_kind act) {
    ND_CUDA_FOR_EACH(i, rows * len) {
        int64_t r = i / len, c = i / inner % channels;
        float h = nd_norm_affine(x[i], mean[r], rstd[r], weight ? weight[c] : 1.0f, bias ? bias[c] : 0.0f);
        dh[i] = dy[i] * nd_unary_df(act, h, y[i], 0.0f);
    }
}

// Per row: the means of g = dy * weight and g * xhat, then every element's gradient from them.
static __global__ void norm_row_backward_kernel(float *dx, const float *dy, const float *x, const float *mean,
                                                const float *rstd, const float *weight, int64_t rows, int64_t len,
                                                int64_t channels, int64_t inner) {
    ND_CUDA_FOR_EACH_ROW(r, rows) {
        float sum_g = 0.0f, sum_g_xhat = 0.0f;
        ND_CUDA_FOR_EACH_IN_ROW(j, len) {
            int64_t i = r * len + j;
            float g = dy[i] * (weight ? weight[i / inner % channels] : 1.0f);
            sum_g += g;
            sum_g_xhat += g * ((x[i] - mean[r]) * rstd[r]);
        }
        float mean_g = nd_cuda_block_reduce(sum_g, false) / (float)len;
        float mean_g_xhat = nd_cuda_block_reduce(sum_g_xhat, false) / (float)len;
        ND_CUDA_FOR_EACH_IN_ROW(j, len) {
            int64_t i = r * len + j;
            float g = dy[i] * (weight ? weight[i / inner % channels] : 1.0f);
            dx[i] += nd_norm_input_grad(g, (x[i] - mean[r]) * rstd[r], rstd[r], mean_g, mean_g_xhat);
        }
    }
}

// One block per channel of x viewed as (outer, channels, inner); the row of an element is its offset / len.
static __global__ void norm_row_affine_backward_kernel(float *dweight, float *dbias, const float *dy, const float *x,
                                                       const float *mean, const float *rstd, int64_t len, int64_t outer,
                                                       int64_t channels, int64_t inner) {
    ND_CUDA_FOR_EACH_ROW(c, channels) {
        float sum_dy = 0.0f, sum_dy_xhat = 0.0f;
        ND_CUDA_FOR_EACH_IN_ROW(e, outer * inner) {
            int64_t at = channel_offset(e, c, channels, inner), r = at / len;
            sum_dy += dy[at];
            sum_dy_xhat += dy[at] * ((x[at] - mean[r]) * rstd[r]);
        }
        sum_dy = nd_cuda_block_reduce(sum_dy, false);
        sum_dy_xhat = nd_cuda_block_reduce(sum_dy_xhat, false);
        if (threadIdx.x == 0) {
            if (dweight) dweight[c] += sum_dy_xhat;
            if (dbias) dbias[c] += sum_dy;
        }
    }
}

// Per channel: batch mean and rstd (biased variance, two passes) and the running statistics (unbiased
// variance); in eval the statistics come from the running ones.
static __global__ void batch_norm_stats_kernel(float *mean, float *rstd, float *running_mean, float *running_var,
                                               const float *x, int64_t outer, int64_t channels, int64_t inner,
                                               float momentum, float eps, bool training) {
    int64_t count = outer * inner;
    ND_CUDA_FOR_EACH_ROW(c, channels) {
        if (!training) {
            if (threadIdx.x == 0) {
                mean[c] = running_mean[c];
                rstd[c] = nd_norm_rstd(running_var[c], eps);
            }
            continue;
        }
        float sum = 0.0f;
        ND_CUDA_FOR_EACH_IN_ROW(e, count) sum += x[channel_offset(e, c, channels, inner)];
        float m = nd_cuda_block_reduce(sum, false) / (float)count;
        float squares = 0.0f;
        ND_CUDA_FOR_EACH_IN_ROW(e, count) {
            float d = x[channel_offset(e, c, channels, inner)] - m;
            squares += d * d;
        }
        squares = nd_cuda_block_reduce(squares, false);
        if (threadIdx.x == 0) {
            mean[c] = m;
            rstd[c] = nd_norm_rstd(squares / (float)count, eps);
            if (running_mean) running_mean[c] = nd_running_update(running_mean[c], m, momentum);
            if (running_var) running_var[c] = nd_running_update(running_var[c], squares / (float)(count - 1), momentum);
        }
    }
}

// x (outer, channels, inner): element i belongs to channel (i / inner) % channels.
static __global__ void batch_norm_forward_kernel(float *y, const float *x, const float *mean, const float *rstd,
                                                 const float *weight, const float *bias, int64_t outer,
                                                 int64_t channels, int64_t inner) {
    ND_CUDA_FOR_EACH(i, outer * channels * inner) {
        int64_t c = i / inner % channels;
        y[i] = nd_norm_affine(x[i], mean[c], rstd[c], weight ? weight[c] : 1.0f, bias ? bias[c] : 0.0f);
    }
}

// Per channel: the sums of dy and dy * xhat are the bias and weight gradients, and (scaled by the weight)
// the means the training-mode input gradient needs; then the channel's input gradients.
static __global__ void batch_norm_backward_kernel(float *dx, float *dweight, float *dbias, const float *dy,
                                                  const float *x, const float *mean, const float *rstd,
                                                  const float *weight, int64_t outer, int64_t channels, int64_t inner,
                                                  bool training) {
    int64_t count = outer * inner;
    ND_CUDA_FOR_EACH_ROW(c, channels) {
        float w = weight ? weight[c] : 1.0f;
        float sum_dy = 0.0f, sum_dy_xhat = 0.0f;
        ND_CUDA_FOR_EACH_IN_ROW(e, count) {
            int64_t at = channel_offset(e, c, channels, inner);
            sum_dy += dy[at];
            sum_dy_xhat += dy[at] * ((x[at] - mean[c]) * rstd[c]);
        }
        sum_dy = nd_cuda_block_reduce(sum_dy, false);
        sum_dy_xhat = nd_cuda_block_reduce(sum_dy_xhat, false);
        if (threadIdx.x == 0) {
            if (dweight) dweight[c] += sum_dy_xhat;
            if (dbias) dbias[c] += sum_dy;
        }
        if (!dx) continue;
        float mean_g = w * sum_dy / (float)count, mean_g_xhat = w * sum_dy_xhat / (float)count;
        ND_CUDA_FOR_EACH_IN_ROW(e, count) {
            int64_t at = channel_offset(e, c, channels, inner);
            if (training)
                dx[at] += nd_norm_input_grad(dy[at] * w, (x[at] - mean[c]) * rstd[c], rstd[c], mean_g, mean_g_xhat);
            else
                dx[at] += dy[at] * w * rstd[c];
        }
    }
}

extern "C" {

// Row reduction: one block per row.
void nd_cuda_norm_row_stats(float *mean, float *rstd, const float *x, int64_t rows, int64_t len, float eps) {
    ND_CUDA_ROWS(rows, len, norm_row_stats_kernel, mean, rstd, x, rows, len, eps);
}

// Elementwise map over rows * len.
void nd_cuda_norm_row_forward(float *y, const float *x, const float *mean, const float *rstd, const float *weight,
                              const float *bias, int64_t rows, int64_t len, int64_t channels, int64_t inner) {
    ND_CUDA_MAP(rows * len, norm_row_forward_kernel, y, x, mean, rstd, weight, bias, rows, len, channels, inner);
}

// Elementwise map over rows * len.
void nd_cuda_norm_row_act_forward(float *y, const float *x, const float *mean, const float *rstd, const float *weight,
                                  const float *bias, int64_t rows, int64_t len, int64_t channels, int64_t inner,
                                  nd_unary_kind act) {
    ND_CUDA_MAP(rows * len, norm_row_act_forward_kernel, y, x, mean, rstd, weight, bias, rows, len, channels, inner,
                act);
}

// Elementwise map over rows * len.
void nd_cuda_norm_row_act_backward(float *dh, const float *dy, const float *x, const float *y, const float *mean,
                                   const float *rstd, const float *weight, const float *bias, int64_t rows, int64_t len,
                                   int64_t channels, int64_t inner, nd_unary_kind act) {
    ND_CUDA_MAP(rows * len, norm_row_act_backward_kernel, dh, dy, x, y, mean, rstd, weight, bias, rows, len, channels,
                inner, act);
}

// Row reduction: one block per row, which then writes its row of dx.
void nd_cuda_norm_row_backward(float *dx, const float *dy, const float *x, const float *mean, const float *rstd,
                               const float *weight, int64_t rows, int64_t len, int64_t channels, int64_t inner) {
    ND_CUDA_ROWS(rows, len, norm_row_backward_kernel, dx, dy, x, mean, rstd, weight, rows, len, channels, inner);
}

// Row reduction: one block per channel.
void nd_cuda_norm_row_affine_backward(float *dweight, float *dbias, const float *dy, const float *x, const float *mean,
                                      const float *rstd, int64_t rows, int64_t len, int64_t channels, int64_t inner) {
    if (!dweight && !dbias) return;
    int64_t outer = channels * inner != 0 ? rows * len / (channels * inner) : 0;
    ND_CUDA_ROWS(channels, outer * inner, norm_row_affine_backward_kernel, dweight, dbias, dy, x, mean, rstd, len,
                 outer, channels, inner);
}

// Row reduction: one block per channel (eval: one thread of it copies the running statistics).
void nd_cuda_batch_norm_stats(float *mean, float *rstd, float *running_mean, float *running_var, const float *x,
                              int64_t outer, int64_t channels, int64_t inner, float momentum, float eps,
                              bool training) {
    ND_CUDA_ROWS(channels, training ? outer * inner : 1, batch_norm_stats_kernel, mean, rstd, running_mean, running_var,
                 x, outer, channels, inner, momentum, eps, training);
}

// Elementwise map over outer * channels * inner.
void nd_cuda_batch_norm_forward(float *y, const float *x, const float *mean, const float *rstd, const float *weight,
                                const float *bias, int64_t outer, int64_t channels, int64_t inner) {
    ND_CUDA_MAP(outer * channels * inner, batch_norm_forward_kernel, y, x, mean, rstd, weight, bias, outer, channels,
                inner);
}

// Row reduction: one block per channel, which then writes the channel of dx.
void nd_cuda_batch_norm_backward(float *dx, float *dweight, float *dbias, const float *dy, const float *x,
                                 const float *mean, const float *rstd, const float *weight, int64_t outer,
                                 int64_t channels, int64_t inner, bool training) {
    ND_CUDA_ROWS(channels, outer * inner, batch_norm_backward_kernel, dx, dweight, dbias, dy, x, mean, rstd, weight,
                 outer, channels, inner, training);
}

} // extern "C"
