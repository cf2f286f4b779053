// The backend interface: what an op asks of a device. Raw pointers (device memory), outputs first, then
// inputs, then sizes. Functions whose output is a gradient accumulate (+=) into it.
#ifndef ND_BACKEND_H
#define ND_BACKEND_H

#include "autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nd_binary_kind { ND_BINARY_ADD, ND_BINARY_SUB, ND_BINARY_MUL, ND_BINARY_DIV } nd_binary_kind;

// Broadcast indexing for an output of `ndim` dims: element offsets of each input are
// sum_k idx[k] * a_stride[k] (0 where that input broadcasts along dim k).
typedef struct nd_bcast {
    int ndim;
    int64_t shape[ND_MAX_DIMS];
    int64_t a_stride[ND_MAX_DIMS];
    int64_t b_stride[ND_MAX_DIMS];
    int64_t numel;
} nd_bcast;

// Sum of `src` (shape src_shape) into `dst`, whose keepdim shape has 1 in every reduced dim.
typedef struct nd_reduce_plan {
    int ndim;
    int64_t src_shape[ND_MAX_DIMS];
    int64_t dst_shape[ND_MAX_DIMS]; // src_shape with reduced dims set to 1
} nd_reduce_plan;

// A reduce plan from src to a keepdim destination shape of the same rank.
nd_reduce_plan nd_reduce_plan_make(nd_shape src, nd_shape dst_keepdim);

typedef struct nd_backend {
    const char *name;

    // memory
    void *(*alloc)(size_t bytes);
    void (*free)(void *ptr);
    void (*upload)(void *dst, const void *host_src, size_t bytes);
    void (*download)(void *host_dst, const void *src, size_t bytes);
    void (*fill)(float *dst, float value, int64_t n);
    void (*copy)(float *dst, const float *src, int64_t n);
    // dst += alpha * (*scalar) * src, scalar a device pointer (an upstream loss gradient) or NULL for 1
    void (*accumulate)(float *dst, const float *src, float alpha, const float *scalar, int64_t n);

    // random numbers (Philox4x32-10 counters starting at `offset`)
    void (*rand_uniform)(float *dst, int64_t n, uint64_t seed, uint64_t offset, float low, float high);
    void (*rand_normal)(float *dst, int64_t n, uint64_t seed, uint64_t offset, float mean, float std);
    void (*rand_bernoulli)(float *dst, int64_t n, uint64_t seed, uint64_t offset, float p);

    // elementwise
    void (*unary_forward)(float *y, const float *x, int64_t n, nd_unary_kind kind, float alpha, float beta);
    void (*unary_backward)(float *dx, const float *dy, const float *x, const float *y, int64_t n,
                           nd_unary_kind kind, float alpha, float beta);
    void (*binary_forward)(float *y, const float *a, const float *b, const nd_bcast *bc, nd_binary_kind kind);
    // d(out)/d(input `which` (0 = a, 1 = b)) * dy at every output element, written (not accumulated) to an
    // output-sized buffer `d`, or accumulated when `accumulate`.
    void (*binary_backward)(float *d, const float *dy, const float *a, const float *b, const nd_bcast *bc,
                            nd_binary_kind kind, int which, bool accumulate);
    void (*reduce_sum)(float *dst, const float *src, const nd_reduce_plan *plan, float scale, bool accumulate);
    // dst (dst_shape) += scale * src broadcast up to dst_shape; src shape is dst's with 1s in broadcast dims.
    void (*broadcast_accumulate)(float *dst, const float *src, const nd_reduce_plan *plan, float scale);

    // matrix products, row-major: C = alpha * op(A) op(B) + beta * C, batch of them at given strides.
    void (*gemm)(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                 int64_t lda, int64_t stride_a, const float *b, int64_t ldb, int64_t stride_b, float beta,
                 float *c, int64_t ldc, int64_t stride_c, int64_t batch);
    // y (rows, cols) += bias (cols) on every row
    void (*add_bias)(float *y, const float *bias, int64_t rows, int64_t cols);

    // layout: copy rows of `len` floats, `count` of them, from src (row stride src_ld) to dst (dst_ld).
    void (*copy_rows)(float *dst, int64_t dst_ld, const float *src, int64_t src_ld, int64_t count, int64_t len,
                      bool accumulate);
    // dst (out_shape) = src permuted: dst[idx] = src[sum idx[k] * src_stride[k]]
    void (*permute)(float *dst, const float *src, int ndim, const int64_t *out_shape,
                    const int64_t *src_stride, bool accumulate);

    // softmax over the middle axis of (outer, n, inner)
    void (*softmax_forward)(float *y, const float *x, int64_t outer, int64_t n, int64_t inner, bool log);
    void (*softmax_backward)(float *dx, const float *dy, const float *y, int64_t outer, int64_t n,
                             int64_t inner, bool log);
    // per-row loss of log-probabilities logp (rows, classes): loss[r] = -logp[r, label[r]]
    void (*nll_forward)(float *loss, const float *logp, const float *labels, int64_t rows, int64_t classes);
    // dlogits += scale * (*dloss) * (softmax - onehot(label)), dloss a device pointer
    void (*cross_entropy_backward)(float *dlogits, const float *logp, const float *labels, const float *dloss,
                                   float scale, int64_t rows, int64_t classes);
    // out (n, dim) = weight[idx[i]]
    void (*embedding_forward)(float *out, const float *weight, const float *idx, int64_t n, int64_t dim);
    void (*embedding_backward)(float *dweight, const float *dout, const float *idx, int64_t n, int64_t dim);

    // optimizers over flat buffers (per-element math in elementwise_math.h)
    void (*adam_update)(float *param, float *m, float *v, const float *grad, int64_t n, float lr, float beta1,
                        float beta2, float eps, float weight_decay, bool decoupled, float bias_correction1,
                        float bias_correction2);
    // ema = decay * ema + (1 - decay) * param
    void (*ema_update)(float *ema, const float *param, float decay, int64_t n);
} nd_backend;

const nd_backend *nd_backend_cpu(void);
// NULL when nanodiff was built without CUDA.
const nd_backend *nd_backend_cuda(void);

#ifdef __cplusplus
}
#endif
#endif
