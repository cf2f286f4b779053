// GPU softmax, log-softmax, negative log-likelihood and embedding rows.
#include "cuda_common.h"

// Offset of the first element of row `row` of (outer, n, inner) viewed as outer*inner rows of n at stride inner.
__device__ static inline int64_t softmax_row_base(int64_t row, int64_t n, int64_t inner) {
    return row / inner * n * inner + row % inner;
}

// One block per row: the max, then the sum of exponentials, then the outputs.
static __global__ void softmax_forward_kernel(float *y, const float *x, int64_t outer, int64_t n, int64_t inner,
                                              bool log) {
    ND_CUDA_FOR_EACH_ROW(row, outer * inner) {
        const float *xr = x + softmax_row_base(row, n, inner); // (n,) at stride inner
        float *yr = y + softmax_row_base(row, n, inner);
        float max = -INFINITY;
        ND_CUDA_FOR_EACH_IN_ROW(j, n) max = fmaxf(max, xr[j * inner]);
        max = nd_cuda_block_reduce(max, true);
        float sum = 0.0f;
        ND_CUDA_FOR_EACH_IN_ROW(j, n) sum += expf(xr[j * inner] - max);
        sum = nd_cuda_block_reduce(sum, false);
        if (log) {
            float lse = max + logf(sum);
            ND_CUDA_FOR_EACH_IN_ROW(j, n) yr[j * inner] = xr[j * inner] - lse;
        } else {
            float inv = 1.0f / sum;
            ND_CUDA_FOR_EACH_IN_ROW(j, n) yr[j * inner] = expf(xr[j * inner] - max) * inv;
        }
    }
}

// softmax: dx += y * (dy - sum(dy * y)); log_softmax: dx += dy - exp(y) * sum(dy)
static __global__ void softmax_backward_kernel(float *dx, const float *dy, const float *y, int64_t outer, int64_t n,
                                               int64_t inner, bool log) {
    ND_CUDA_FOR_EACH_ROW(row, outer * inner) {
        int64_t base = softmax_row_base(row, n, inner);
        float dot = 0.0f;
        ND_CUDA_FOR_EACH_IN_ROW(j, n) {
            int64_t at = base + j * inner;
            dot += log ? dy[at] : dy[at] * y[at];
        }
        dot = nd_cuda_block_reduce(dot, false);
        ND_CUDA_FOR_EACH_IN_ROW(j, n) {
            int64_t at = base + j * inner;
            dx[at] += log ? dy[at] - expf(y[at]) * dot : y[at] * (dy[at] - dot);
        }
    }
}

// loss[r] = -logp[r, label[r]], NaN for a label that is not a class
static __global__ void nll_forward_kernel(float *loss, const float *logp, const float *labels, int64_t rows,
                                          int64_t classes) {
    ND_CUDA_FOR_EACH(r, rows) {
        int64_t label = nd_cuda_class_index(labels[r], classes);
        loss[r] = label < 0 ? NAN : -logp[r * classes + label];
    }
}

// The upstream gradient is read on the device, so backward never waits for the loss value.
static __global__ void cross_entropy_backward_kernel(float *dlogits, const float *logp, const float *labels,
                                                     const float *dloss, float scale, int64_t rows, int64_t classes) {
    float s = scale * *dloss;
    ND_CUDA_FOR_EACH(i, rows * classes) {
        int64_t label = nd_cuda_class_index(labels[i / classes], classes);
        float onehot = i % classes == label ? 1.0f : 0.0f;
        dlogits[i] += label < 0 ? NAN : s * (expf(logp[i]) - onehot);
    }
}

// The table's row count is not passed, so only negative or fractional indices can be caught here.
static __global__ void embedding_forward_kernel(float *out, const float *weight, const float *idx, int64_t n,
                                                int64_t dim) {
    ND_CUDA_FOR_EACH(i, n * dim) {
        int64_t row = nd_cuda_class_index(idx[i / dim], INT64_MAX);
        out[i] = row < 0 ? NAN : weight[row * dim + i % dim];
    }
}

// Two indices may name the same row: atomics make the sum race-free (its order varies from run to run).
static __global__ void embedding_backward_kernel(float *dweight, const float *dout, const float *idx, int64_t n,
                                                 int64_t dim) {
    ND_CUDA_FOR_EACH(i, n * dim) {
        int64_t row = nd_cuda_class_index(idx[i / dim], INT64_MAX);
        if (row >= 0) atomicAdd(&dweight[row * dim + i % dim], dout[i]);
    }
}

extern "C" {

// Row reduction over the outer * inner rows of n.
void nd_cuda_softmax_forward(float *y, const float *x, int64_t outer, int64_t n, int64_t inner, bool log) {
    ND_CUDA_ROWS(outer * inner, n, softmax_forward_kernel, y, x, outer, n, inner, log);
}

// Row reduction over the outer * inner rows of n.
void nd_cuda_softmax_backward(float *dx, const float *dy, const float *y, int64_t outer, int64_t n, int64_t inner,
                              bool log) {
    ND_CUDA_ROWS(outer * inner, n, softmax_backward_kernel, dx, dy, y, outer, n, inner, log);
}

// Elementwise map over rows.
void nd_cuda_nll_forward(float *loss, const float *logp, const float *labels, int64_t rows, int64_t classes) {
    ND_CUDA_MAP(rows, nll_forward_kernel, loss, logp, labels, rows, classes);
}

// Elementwise map over rows * classes; no host sync for dloss.
void nd_cuda_cross_entropy_backward(float *dlogits, const float *logp, const float *labels, const float *dloss,
                                    float scale, int64_t rows, int64_t classes) {
    ND_CUDA_MAP(rows * classes, cross_entropy_backward_kernel, dlogits, logp, labels, dloss, scale, rows, classes);
}

// Elementwise map over n * dim.
void nd_cuda_embedding_forward(float *out, const float *weight, const float *idx, int64_t n, int64_t dim) {
    ND_CUDA_MAP(n * dim, embedding_forward_kernel, out, weight, idx, n, dim);
}

// Elementwise map over n * dim, atomically added.
void nd_cuda_embedding_backward(float *dweight, const float *dout, const float *idx, int64_t n, int64_t dim) {
    ND_CUDA_MAP(n * dim, embedding_backward_kernel, dweight, dout, idx, n, dim);
}

} // extern "C"
