// The CPU backend's functions (OpenBLAS for products, OpenMP for loops); see backend.h for each contract.
#ifndef ND_CPU_H
#define ND_CPU_H

#include "../backend.h"

// Loops shorter than this run on one thread: starting a parallel region costs more than they do.
#define ND_CPU_PARALLEL_MIN 32768

void *nd_cpu_alloc(size_t bytes);
void nd_cpu_free(void *ptr);
void nd_cpu_upload(void *dst, const void *host_src, size_t bytes);
void nd_cpu_download(void *host_dst, const void *src, size_t bytes);
void *nd_cpu_host_alloc(size_t bytes);
void nd_cpu_host_free(void *ptr);
void nd_cpu_upload_async(void *dst, const void *host_src, size_t bytes, int lane);
void nd_cpu_upload_wait(int lane);
void nd_cpu_upload_consume(float *out, const float *uploaded, size_t bytes, int lane);
void nd_cpu_fill(float *dst, float value, int64_t n);
void nd_cpu_copy(float *dst, const float *src, int64_t n);
void nd_cpu_accumulate(float *dst, const float *src, float alpha, const float *scalar, int64_t n);
void nd_cpu_rand_uniform(float *dst, int64_t n, uint64_t seed, uint64_t offset, float low, float high);
void nd_cpu_rand_normal(float *dst, int64_t n, uint64_t seed, uint64_t offset, float mean, float std);
void nd_cpu_rand_bernoulli(float *dst, int64_t n, uint64_t seed, uint64_t offset, float p);

void nd_cpu_unary_forward(float *y, const float *x, int64_t n, nd_unary_kind kind, float alpha, float beta);
void nd_cpu_unary_backward(float *dx, const float *dy, const float *x, const float *y, int64_t n,
                           nd_unary_kind kind, float alpha, float beta);
void nd_cpu_binary_forward(float *y, const float *a, const float *b, const nd_bcast *bc, nd_binary_kind kind);
void nd_cpu_binary_backward(float *d, const float *dy, const float *a, const float *b, const nd_bcast *bc,
                            nd_binary_kind kind, int which, bool accumulate);
void nd_cpu_reduce_sum(float *dst, const float *src, const nd_reduce_plan *plan, float scale, bool accumulate);
void nd_cpu_broadcast_accumulate(float *dst, const float *src, const nd_reduce_plan *plan, float scale);

void nd_cpu_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                 int64_t lda, int64_t stride_a, const float *b, int64_t ldb, int64_t stride_b, float beta,
                 float *c, int64_t ldc, int64_t stride_c, int64_t batch);
void nd_cpu_add_bias(float *y, const float *bias, int64_t rows, int64_t cols);

void nd_cpu_copy_rows(float *dst, int64_t dst_ld, const float *src, int64_t src_ld, int64_t count, int64_t len,
                      bool accumulate);
void nd_cpu_permute(float *dst, const float *src, int ndim, const int64_t *out_shape, const int64_t *src_stride,
                    bool accumulate);

void nd_cpu_softmax_forward(float *y, const float *x, int64_t outer, int64_t n, int64_t inner, bool log);
void nd_cpu_softmax_backward(float *dx, const float *dy, const float *y, int64_t outer, int64_t n, int64_t inner,
                             bool log);
void nd_cpu_nll_forward(float *loss, const float *logp, const float *labels, int64_t rows, int64_t classes);
void nd_cpu_cross_entropy_backward(float *dlogits, const float *logp, const float *labels, const float *dloss,
                                   float scale, int64_t rows, int64_t classes);
void nd_cpu_embedding_forward(float *out, const float *weight, const float *idx, int64_t n, int64_t dim);
void nd_cpu_embedding_backward(float *dweight, const float *dout, const float *idx, int64_t n, int64_t dim);

void nd_cpu_adam_update(float *param, float *m, float *v, const float *grad, int64_t n, float lr, float beta1,
                        float beta2, float eps, float weight_decay, bool decoupled, float bias_correction1,
                        float bias_correction2);
void nd_cpu_ema_update(float *ema, const float *param, float decay, int64_t n);

void nd_cpu_im2col(float *col, const float *x, const nd_conv_geom *g, int64_t batch);
void nd_cpu_col2im(float *dx, const float *col, const nd_conv_geom *g, int64_t batch);
void nd_cpu_max_pool_forward(float *y, int32_t *argmax, const float *x, int64_t planes, int64_t height,
                             int64_t width, int64_t kernel, int64_t stride, int64_t out_h, int64_t out_w);
void nd_cpu_max_pool_backward(float *dx, const float *dy, const int32_t *argmax, int64_t planes,
                              int64_t plane_size, int64_t out_size);
void nd_cpu_pixel_unshuffle_forward(float *y, const float *x, int64_t planes, int64_t height, int64_t width,
                                    int64_t factor);
void nd_cpu_pixel_unshuffle_backward(float *dx, const float *dy, int64_t planes, int64_t height, int64_t width,
                                     int64_t factor);
void nd_cpu_upsample_forward(float *y, const float *x, int64_t planes, int64_t height, int64_t width,
                             int64_t factor);
void nd_cpu_upsample_backward(float *dx, const float *dy, int64_t planes, int64_t height, int64_t width,
                              int64_t factor);

void nd_cpu_norm_row_stats(float *mean, float *rstd, const float *x, int64_t rows, int64_t len, float eps);
void nd_cpu_norm_row_forward(float *y, const float *x, const float *mean, const float *rstd, const float *weight,
                             const float *bias, int64_t rows, int64_t len, int64_t channels, int64_t inner);
void nd_cpu_norm_row_backward(float *dx, const float *dy, const float *x, const float *mean, const float *rstd,
                              const float *weight, int64_t rows, int64_t len, int64_t channels, int64_t inner);
void nd_cpu_norm_row_affine_backward(float *dweight, float *dbias, const float *dy, const float *x,
                                     const float *mean, const float *rstd, int64_t rows, int64_t len,
                                     int64_t channels, int64_t inner);
void nd_cpu_batch_norm_stats(float *mean, float *rstd, float *running_mean, float *running_var, const float *x,
                             int64_t outer, int64_t channels, int64_t inner, float momentum, float eps,
                             bool training);
void nd_cpu_batch_norm_forward(float *y, const float *x, const float *mean, const float *rstd,
                               const float *weight, const float *bias, int64_t outer, int64_t channels,
                               int64_t inner);
void nd_cpu_batch_norm_backward(float *dx, float *dweight, float *dbias, const float *dy, const float *x,
                                const float *mean, const float *rstd, const float *weight, int64_t outer,
                                int64_t channels, int64_t inner, bool training);
void nd_cpu_dropout(float *y, const float *x, int64_t n, uint64_t seed, uint64_t offset, float p,
                    bool accumulate);
void nd_cpu_masked_fill(float *y, const float *x, const float *mask, int64_t n, int64_t mask_n, float value,
                        bool accumulate);
void nd_cpu_causal_mask(float *mask, int64_t lq, int64_t lk);

bool nd_cpu_conv_forward(float *y, const float *x, const float *w, const float *bias, const nd_conv_geom *g,
                         int64_t batch, int64_t filters, bool transposed);
bool nd_cpu_conv_backward(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w,
                          const nd_conv_geom *g, int64_t batch, int64_t filters, bool transposed, bool bias);
size_t nd_cpu_dnnl_workspace_bytes(void);

#endif
