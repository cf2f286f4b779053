// GPU elementwise maps with broadcasting, and sums over axes (the reverse of broadcasting).
#include "../elementwise_math.h"
#include "cuda_common.h"

// y = f(x) with the shared per-element math
static __global__ void unary_forward_kernel(float *y, const float *x, int64_t n, nd_unary_kind kind, float alpha,
                                            float beta) {
    ND_CUDA_FOR_EACH(i, n) y[i] = nd_unary_f(kind, x[i], alpha, beta);
}

// dx += dy * f'(x), given x and y = f(x)
static __global__ void unary_backward_kernel(float *dx, const float *dy, const float *x, const float *y, int64_t n,
                                             nd_unary_kind kind, float alpha) {
    ND_CUDA_FOR_EACH(i, n) dx[i] += dy[i] * nd_unary_df(kind, x[i], y[i], alpha);
}

// y (ix's shape, contiguous) = a op b, a and b read at operand 0 and 1 strides of ix
static __global__ void binary_forward_kernel(float *y, const float *a, const float *b, nd_cuda_index ix, int64_t n,
                                             nd_binary_kind kind) {
    ND_CUDA_FOR_EACH(i, n) {
        int64_t oa, ob;
        nd_cuda_offsets(ix, i, &oa, &ob);
        y[i] = nd_binary_f(kind, a[oa], b[ob]);
    }
}

// d (= or +=) dy * d(a op b)/d(input `which`) at every output element
static __global__ void binary_backward_kernel(float *d, const float *dy, const float *a, const float *b,
                                              nd_cuda_index ix, int64_t n, nd_binary_kind kind, int which,
                                              bool accumulate) {
    ND_CUDA_FOR_EACH(i, n) {
        int64_t oa, ob;
        nd_cuda_offsets(ix, i, &oa, &ob);
        float v = dy[i] * nd_binary_df(kind, which, a[oa], b[ob]);
        d[i] = accumulate ? d[i] + v : v;
    }
}

// dst[j] (= or +=) scale * sum of src over the reduced index space from output j's base offset: one block
// per output, for sums whose reduced elements are contiguous.
static __global__ void reduce_rows_kernel(float *dst, const float *src, nd_cuda_index kept, int64_t kept_n,
                                          nd_cuda_index reduced, int64_t reduced_n, float scale, bool accumulate) {
    ND_CUDA_FOR_EACH_ROW(j, kept_n) {
        int64_t base, unused;
        nd_cuda_offsets(kept, j, &base, &unused);
        float sum = 0.0f;
        ND_CUDA_FOR_EACH_IN_ROW(r, reduced_n) {
            int64_t offset;
            nd_cuda_offsets(reduced, r, &offset, &unused);
            sum += src[base + offset];
        }
        sum = nd_cuda_block_reduce(sum, false);
        if (threadIdx.x == 0) dst[j] = accumulate ? dst[j] + scale * sum : scale * sum;
    }
}

// The same sums with one thread per output, for sums over outer dims: neighbouring threads then read
// neighbouring elements.
static __global__ void reduce_cols_kernel(float *dst, const float *src, nd_cuda_index kept, int64_t kept_n,
                                          nd_cuda_index reduced, int64_t reduced_n, float scale, bool accumulate) {
    ND_CUDA_FOR_EACH(j, kept_n) {
        int64_t base, unused;
        nd_cuda_offsets(kept, j, &base, &unused);
        float sum = 0.0f;
        for (int64_t r = 0; r < reduced_n; r++) {
            int64_t offset;
            nd_cuda_offsets(reduced, r, &offset, &unused);
            sum += src[base + offset];
        }
        dst[j] = accumulate ? dst[j] + scale * sum : scale * sum;
    }
}

// dst (ix's shape, contiguous) += scale * src read at operand 0 strides (0 along broadcast dims)
static __global__ void broadcast_accumulate_kernel(float *dst, const float *src, nd_cuda_index ix, int64_t n,
                                                   float scale) {
    ND_CUDA_FOR_EACH(i, n) {
        int64_t offset, unused;
        nd_cuda_offsets(ix, i, &offset, &unused);
        dst[i] += scale * src[offset];
    }
}

// Contiguous strides of `shape`, 0 along dims of size 1 (which then broadcast).
static void broadcast_strides(int ndim, const int64_t *shape, int64_t *stride) {
    int64_t s = 1;
    for (int k = ndim - 1; k >= 0; k--) {
        stride[k] = shape[k] == 1 ? 0 : s;
        s *= shape[k];
    }
}

extern "C" {

// Elementwise map over n.
void nd_cuda_unary_forward(float *y, const float *x, int64_t n, nd_unary_kind kind, float alpha, float beta) {
    ND_CUDA_MAP(n, unary_forward_kernel, y, x, n, kind, alpha, beta);
}

// Elementwise map over n; beta does not enter any derivative.
void nd_cuda_unary_backward(float *dx, const float *dy, const float *x, const float *y, int64_t n, nd_unary_kind kind,
                            float alpha, float beta) {
    ND_CUDA_MAP(n, unary_backward_kernel, dx, dy, x, y, n, kind, alpha);
}

// Elementwise map over the output, operands read through the collapsed broadcast strides.
void nd_cuda_binary_forward(float *y, const float *a, const float *b, const nd_bcast *bc, nd_binary_kind kind) {
    nd_cuda_index ix = nd_cuda_index_make(bc->ndim, bc->shape, bc->a_stride, bc->b_stride);
    ND_CUDA_MAP(bc->numel, binary_forward_kernel, y, a, b, ix, bc->numel, kind);
}

// Elementwise map over the output, as binary_forward.
void nd_cuda_binary_backward(float *d, const float *dy, const float *a, const float *b, const nd_bcast *bc,
                             nd_binary_kind kind, int which, bool accumulate) {
    nd_cuda_index ix = nd_cuda_index_make(bc->ndim, bc->shape, bc->a_stride, bc->b_stride);
    ND_CUDA_MAP(bc->numel, binary_backward_kernel, d, dy, a, b, ix, bc->numel, kind, which, accumulate);
}

// Splits the plan's dims into a kept and a reduced index space over src, then sums with whichever
// skeleton reads src in order: a block per output when the innermost dim is reduced, else a thread.
void nd_cuda_reduce_sum(float *dst, const float *src, const nd_reduce_plan *plan, float scale, bool accumulate) {
    int64_t src_stride[ND_MAX_DIMS], s = 1;
    for (int k = plan->ndim - 1; k >= 0; k--) {
        src_stride[k] = s;
        s *= plan->src_shape[k];
    }
    int64_t kept_shape[ND_MAX_DIMS], kept_stride[ND_MAX_DIMS], red_shape[ND_MAX_DIMS], red_stride[ND_MAX_DIMS];
    int n_kept = 0, n_red = 0;
    int64_t kept_n = 1, reduced_n = 1;
    for (int k = 0; k < plan->ndim; k++) {
        if (plan->dst_shape[k] == 1 && plan->src_shape[k] != 1) {
            red_shape[n_red] = plan->src_shape[k];
            red_stride[n_red++] = src_stride[k];
            reduced_n *= plan->src_shape[k];
        } else {
            kept_shape[n_kept] = plan->dst_shape[k];
            kept_stride[n_kept++] = src_stride[k];
            kept_n *= plan->dst_shape[k];
        }
    }
    nd_cuda_index kept = nd_cuda_index_make(n_kept, kept_shape, kept_stride, NULL);
    nd_cuda_index reduced = nd_cuda_index_make(n_red, red_shape, red_stride, NULL);
    if (reduced.ndim > 0 && reduced.stride[0][reduced.ndim - 1] == 1)
        ND_CUDA_ROWS(kept_n, reduced_n, reduce_rows_kernel, dst, src, kept, kept_n, reduced, reduced_n, scale,
                     accumulate);
    else
        ND_CUDA_MAP(kept_n, reduce_cols_kernel, dst, src, kept, kept_n, reduced, reduced_n, scale, accumulate);
}

// Elementwise map over dst, src read at stride 0 along its size-1 dims.
void nd_cuda_broadcast_accumulate(float *dst, const float *src, const nd_reduce_plan *plan, float scale) {
    int64_t src_stride[ND_MAX_DIMS], n = 1;
    broadcast_strides(plan->ndim, plan->src_shape, src_stride);
    for (int k = 0; k < plan->ndim; k++) n *= plan->dst_shape[k];
    nd_cuda_index ix = nd_cuda_index_make(plan->ndim, plan->dst_shape, src_stride, NULL);
    ND_CUDA_MAP(n, broadcast_accumulate_kernel, dst, src, ix, n, scale);
}

} // extern "C"
