// Every backend entry, declared once: ND_BACKEND_ENTRY(return type, name, (parameters)). Included (no include
// guard) wherever a piece of the backend is generated from the list: struct nd_backend (backend.h), the CPU and
// CUDA prototypes nd_cpu_<name> and nd_cuda_<name> (cpu/cpu.h, cuda/cuda_common.h) and both tables
// (cpu/cpu_backend.c, cuda/cuda_backend.cu). Define ND_BACKEND_ENTRY before including; it is undefined at
// the end. Raw pointers (device memory), outputs first, then inputs, then sizes. Functions whose output is a
// gradient accumulate (+=) into it.
#ifndef ND_BACKEND_ENTRY
#error "define ND_BACKEND_ENTRY(ret, name, params) before including backend_list.h"
#endif

// memory
ND_BACKEND_ENTRY(void *, alloc, (size_t bytes))
ND_BACKEND_ENTRY(void, free, (void *ptr))
ND_BACKEND_ENTRY(void, upload, (void *dst, const void *host_src, size_t bytes))
ND_BACKEND_ENTRY(void, download, (void *host_dst, const void *src, size_t bytes))
// Page-locked host memory where the device has memory of its own (an upload from it can run beside the
// kernels), plain aligned memory on the CPU.
ND_BACKEND_ENTRY(void *, host_alloc, (size_t bytes))
ND_BACKEND_ENTRY(void, host_free, (void *ptr))
// Background uploads on two lanes (0, 1) beside the kernels, for the next data batch while a step runs:
// upload_async starts copying host_src (from host_alloc) to the device buffer dst and returns at once; it
// begins only after the lane's previous upload_consume has read dst. upload_wait blocks the host until
// the lane's last upload has read host_src (so the host may refill it). upload_consume copies the lane's
// uploaded buffer to out, ordered after that upload and before every later kernel. CPU: plain copies.
ND_BACKEND_ENTRY(void, upload_async, (void *dst, const void *host_src, size_t bytes, int lane))
ND_BACKEND_ENTRY(void, upload_wait, (int lane))
ND_BACKEND_ENTRY(void, upload_consume, (float *out, const float *uploaded, size_t bytes, int lane))
ND_BACKEND_ENTRY(void, fill, (float *dst, float value, int64_t n))
ND_BACKEND_ENTRY(void, copy, (float *dst, const float *src, int64_t n))
// dst += alpha * (*scalar) * src, scalar a device pointer (an upstream loss gradient) or NULL for 1
ND_BACKEND_ENTRY(void, accumulate, (float *dst, const float *src, float alpha, const float *scalar, int64_t n))

// random numbers (Philox4x32-10 counters starting at `offset`)
ND_BACKEND_ENTRY(void, rand_uniform, (float *dst, int64_t n, uint64_t seed, uint64_t offset, float low, float high))
ND_BACKEND_ENTRY(void, rand_normal, (float *dst, int64_t n, uint64_t seed, uint64_t offset, float mean, float std))
ND_BACKEND_ENTRY(void, rand_bernoulli, (float *dst, int64_t n, uint64_t seed, uint64_t offset, float p))

// elementwise
ND_BACKEND_ENTRY(void, unary_forward,
                 (float *y, const float *x, int64_t n, nd_unary_kind kind, float alpha, float beta))
ND_BACKEND_ENTRY(void, unary_backward,
                 (float *dx, const float *dy, const float *x, const float *y, int64_t n, nd_unary_kind kind,
                  float alpha, float beta))
ND_BACKEND_ENTRY(void, binary_forward,
                 (float *y, const float *a, const float *b, const nd_bcast *bc, nd_binary_kind kind))
// d(out)/d(input `which` (0 = a, 1 = b)) * dy at every output element, written (not accumulated) to an
// output-sized buffer `d`, or accumulated when `accumulate`.
ND_BACKEND_ENTRY(void, binary_backward,
                 (float *d, const float *dy, const float *a, const float *b, const nd_bcast *bc, nd_binary_kind kind,
                  int which, bool accumulate))
ND_BACKEND_ENTRY(void, reduce_sum,
                 (float *dst, const float *src, const nd_reduce_plan *plan, float scale, bool accumulate))
// dst (dst_shape) += scale * src broadcast up to dst_shape; src shape is dst's with 1s in broadcast dims.
ND_BACKEND_ENTRY(void, broadcast_accumulate, (float *dst, const float *src, const nd_reduce_plan *plan, float scale))

// matrix products, row-major: C = alpha * op(A) op(B) + beta * C, batch of them at given strides.
ND_BACKEND_ENTRY(void, gemm,
                 (bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                  int64_t stride_a, const float *b, int64_t ldb, int64_t stride_b, float beta, float *c, int64_t ldc,
                  int64_t stride_c, int64_t batch))
// y (rows, cols) += bias (cols) on every row
ND_BACKEND_ENTRY(void, add_bias, (float *y, const float *bias, int64_t rows, int64_t cols))

// layout: copy rows of `len` floats, `count` of them, from src (row stride src_ld) to dst (dst_ld).
ND_BACKEND_ENTRY(void, copy_rows,
                 (float *dst, int64_t dst_ld, const float *src, int64_t src_ld, int64_t count, int64_t len,
                  bool accumulate))
// dst (out_shape) = src permuted: dst[idx] = src[sum idx[k] * src_stride[k]]
ND_BACKEND_ENTRY(void, permute,
                 (float *dst, const float *src, int ndim, const int64_t *out_shape, const int64_t *src_stride,
                  bool accumulate))

// softmax over the middle axis of (outer, n, inner)
ND_BACKEND_ENTRY(void, softmax_forward, (float *y, const float *x, int64_t outer, int64_t n, int64_t inner, bool log))
ND_BACKEND_ENTRY(void, softmax_backward,
                 (float *dx, const float *dy, const float *y, int64_t outer, int64_t n, int64_t inner, bool log))
// per-row loss of log-probabilities logp (rows, classes): loss[r] = -logp[r, label[r]]
ND_BACKEND_ENTRY(void, nll_forward,
                 (float *loss, const float *logp, const float *labels, int64_t rows, int64_t classes))
// dlogits += scale * (*dloss) * (softmax - onehot(label)), dloss a device pointer
ND_BACKEND_ENTRY(void, cross_entropy_backward,
                 (float *dlogits, const float *logp, const float *labels, const float *dloss, float scale, int64_t rows,
                  int64_t classes))
// out (n, dim) = weight[idx[i]]
ND_BACKEND_ENTRY(void, embedding_forward, (float *out, const float *weight, const float *idx, int64_t n, int64_t dim))
ND_BACKEND_ENTRY(void, embedding_backward,
                 (float *dweight, const float *dout, const float *idx, int64_t n, int64_t dim))

// optimizers over flat buffers (per-element math in elementwise_math.h)
ND_BACKEND_ENTRY(void, adam_update,
                 (float *param, float *m, float *v, const float *grad, int64_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, bool decoupled, float bias_correction1, float bias_correction2))
// ema = decay * ema + (1 - decay) * param
ND_BACKEND_ENTRY(void, ema_update, (float *ema, const float *param, float decay, int64_t n))

// convolution family, NCHW images. Convolutions are GEMMs against a column matrix: im2col builds it,
// col2im is its adjoint (scatter-add back to pixels).
// col (channels*kernel_h*kernel_w, batch*out_h*out_w) from x (batch, channels, height, width): row
// (c*kernel_h + i)*kernel_w + j, column (b*out_h + oy)*out_w + ox holds
// x[b, c, oy*stride - padding + i, ox*stride - padding + j], or 0 where that lies in the padding.
ND_BACKEND_ENTRY(void, im2col, (float *col, const float *x, const nd_conv_geom *g, int64_t batch))
// dx (batch, channels, height, width) += every entry of col (laid out as im2col's) at the pixel it names;
// entries in the padding are dropped.
ND_BACKEND_ENTRY(void, col2im, (float *dx, const float *col, const nd_conv_geom *g, int64_t batch))
// Whole convolutions by a library, where the backend links one (oneDNN on the CPU when built with it);
// false when it has none, and the op runs the im2col + GEMM path above. The windows g are conv2d's over its
// input x, or with `transposed` a conv_transpose2d's: those of a conv2d over its output (ops_conv.c); the
// weight is (filters, g->channels, kernel_h, kernel_w) in both: conv2d (out_c, in_c, ...), transposed
// (in_c, out_c, ...). conv_forward: y = conv(x, w) + bias (bias NULL: none). `inference`: no backward
// follows, so the backend may take a forward-only algorithm (oneDNN's Winograd, or the CPU's own,
// cpu/cpu_winograd.c) and keep the weights in its own layout or transformed from call to call (checked
// against the weights at every call, so a changed weight is seen).
ND_BACKEND_ENTRY(bool, conv_forward,
                 (float *y, const float *x, const float *w, const float *bias, const nd_conv_geom *g, int64_t batch,
                  int64_t filters, bool transposed, bool inference))
// y = act(group norm of conv_forward's output) for an inference conv2d (not transposed): groups groups of
// the `filters` output channels, statistics per image and group as norm_row_stats, then norm_row_act_forward's
// map with norm_weight, norm_bias (NULL for 1, 0). false, before writing anything, where the backend has no
// such path: the op then runs the three.
ND_BACKEND_ENTRY(bool, conv_norm_act_forward,
                 (float *y, const float *x, const float *w, const float *bias, const nd_conv_geom *g, int64_t batch,
                  int64_t filters, int64_t groups, const float *norm_weight, const float *norm_bias, float eps,
                  nd_unary_kind act))
// dx += dL/dx, dw += dL/dw, dbias += dL/dbias for the gradient dy of y; any of the three may be NULL, `bias`
// says whether the forward had one.
ND_BACKEND_ENTRY(bool, conv_backward,
                 (float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w,
                  const nd_conv_geom *g, int64_t batch, int64_t filters, bool transposed, bool bias))
// Bytes the backend holds outside the arenas for its libraries (oneDNN's blocked copies of a convolution's
// tensors, the Winograd convolutions' buffers and transformed filters; 0 where it holds none), counted in
// the context's peak.
ND_BACKEND_ENTRY(size_t, workspace_bytes, (void))
// y (planes, out_h, out_w) = max of x (planes, height, width) over kernel x kernel windows at `stride`;
// argmax (planes, out_h, out_w) = in-plane offset (row * width + col) of each window's first maximum
// (a NaN counts as the maximum, as PyTorch).
ND_BACKEND_ENTRY(void, max_pool_forward,
                 (float *y, int32_t *argmax, const float *x, int64_t planes, int64_t height, int64_t width,
                  int64_t kernel, int64_t stride, int64_t out_h, int64_t out_w))
// dx (planes, plane_size) += dy (planes, out_size) at argmax; windows may overlap (stride < kernel).
ND_BACKEND_ENTRY(void, max_pool_backward,
                 (float *dx, const float *dy, const int32_t *argmax, int64_t planes, int64_t plane_size,
                  int64_t out_size))
// y (batch, channels*factor*factor, height/factor, width/factor) from x (batch, channels, height, width):
// y[n, (c*factor + p1)*factor + p2, h, w] = x[n, c, h*factor + p1, w*factor + p2]; planes = batch*channels.
ND_BACKEND_ENTRY(void, pixel_unshuffle_forward,
                 (float *y, const float *x, int64_t planes, int64_t height, int64_t width, int64_t factor))
// The reverse move, accumulated: dx (batch, channels, height, width) += dy at the positions above.
ND_BACKEND_ENTRY(void, pixel_unshuffle_backward,
                 (float *dx, const float *dy, int64_t planes, int64_t height, int64_t width, int64_t factor))
// y (planes, height*factor, width*factor): each pixel of x (planes, height, width) repeated in a
// factor x factor block.
ND_BACKEND_ENTRY(void, upsample_forward,
                 (float *y, const float *x, int64_t planes, int64_t height, int64_t width, int64_t factor))
// dx (planes, height, width) += the sum of dy (planes, height*factor, width*factor) over each block.
ND_BACKEND_ENTRY(void, upsample_backward,
                 (float *dx, const float *dy, int64_t planes, int64_t height, int64_t width, int64_t factor))

// normalization, dropout and attention masks; the per-element formulas are in elementwise_math.h.
// Row norms (layer norm, group norm): x is (rows, len), each row normalized with its own statistics (a row
// reduction), then an elementwise per-channel affine. Element i belongs to channel (i / inner) % channels;
// len is a multiple of inner and channels of len / inner, so a row covers len / inner whole consecutive
// channels (layer norm: inner 1, channels len; group norm: inner H*W, channels C, a row is one group of
// one image).
// mean (rows) and rstd (rows) = 1 / sqrt(biased variance + eps) of each row of x (rows, len)
ND_BACKEND_ENTRY(void, norm_row_stats, (float *mean, float *rstd, const float *x, int64_t rows, int64_t len, float eps))
// y = (x - mean[row]) * rstd[row] * weight[channel] + bias[channel]; weight, bias NULL stand for 1, 0
ND_BACKEND_ENTRY(void, norm_row_forward,
                 (float *y, const float *x, const float *mean, const float *rstd, const float *weight,
                  const float *bias, int64_t rows, int64_t len, int64_t channels, int64_t inner))
// y = act(norm_row_forward's y) in the same pass (GroupNorm with its GELU); act a unary kind without
// parameters (alpha = beta = 0)
ND_BACKEND_ENTRY(void, norm_row_act_forward,
                 (float *y, const float *x, const float *mean, const float *rstd, const float *weight,
                  const float *bias, int64_t rows, int64_t len, int64_t channels, int64_t inner, nd_unary_kind act))
// dh = dy * act'(h) (written, not accumulated): the gradient reaching the row norm's output h through
// y = act(h) of norm_row_act_forward, with h made again from x and the statistics as that pass made it
ND_BACKEND_ENTRY(void, norm_row_act_backward,
                 (float *dh, const float *dy, const float *x, const float *y, const float *mean, const float *rstd,
                  const float *weight, const float *bias, int64_t rows, int64_t len, int64_t channels, int64_t inner,
                  nd_unary_kind act))
// dx += the input gradient of norm_row_forward given dy (through the row statistics); weight NULL for 1
ND_BACKEND_ENTRY(void, norm_row_backward,
                 (float *dx, const float *dy, const float *x, const float *mean, const float *rstd, const float *weight,
                  int64_t rows, int64_t len, int64_t channels, int64_t inner))
// dweight[c] += sum of dy * (x - mean) * rstd, dbias[c] += sum of dy, over the elements of channel c;
// either output may be NULL
ND_BACKEND_ENTRY(void, norm_row_affine_backward,
                 (float *dweight, float *dbias, const float *dy, const float *x, const float *mean, const float *rstd,
                  int64_t rows, int64_t len, int64_t channels, int64_t inner))
// Batch norm: x is (outer, channels, inner) = (N, C, H*W), statistics per channel over outer and inner.
// training: mean and rstd of the batch (biased variance), and running_mean/var, when not NULL, updated in
// place with momentum and the unbiased variance; eval: mean = running_mean, rstd from running_var.
ND_BACKEND_ENTRY(void, batch_norm_stats,
                 (float *mean, float *rstd, float *running_mean, float *running_var, const float *x, int64_t outer,
                  int64_t channels, int64_t inner, float momentum, float eps, bool training))
// y = (x - mean[c]) * rstd[c] * weight[c] + bias[c]; weight, bias NULL stand for 1, 0
ND_BACKEND_ENTRY(void, batch_norm_forward,
                 (float *y, const float *x, const float *mean, const float *rstd, const float *weight,
                  const float *bias, int64_t outer, int64_t channels, int64_t inner))
// dx += the input gradient (through the batch statistics when training, a per-channel scale in eval);
// dweight[c] += sum of dy * (x - mean) * rstd, dbias[c] += sum of dy. dx, dweight, dbias may each be
// NULL; weight NULL for 1.
ND_BACKEND_ENTRY(void, batch_norm_backward,
                 (float *dx, float *dweight, float *dbias, const float *dy, const float *x, const float *mean,
                  const float *rstd, const float *weight, int64_t outer, int64_t channels, int64_t inner,
                  bool training))
// y (n) = x * nd_dropout_scale(seed, offset, i, 1 - p), or += when accumulate: the mask is recomputed from
// its Philox counters, so forward (x) and backward (dy into dx) need no stored mask.
ND_BACKEND_ENTRY(void, dropout,
                 (float *y, const float *x, int64_t n, uint64_t seed, uint64_t offset, float p, bool accumulate))
// y (n) = mask[i % mask_n] != 0 ? value : x[i], or += when accumulate; mask (mask_n) repeats over x's
// leading dims. Backward is the same call on dy with value 0, accumulating into dx.
ND_BACKEND_ENTRY(void, masked_fill,
                 (float *y, const float *x, const float *mask, int64_t n, int64_t mask_n, float value, bool accumulate))
// mask (lq, lk) = 1 where key j lies after query i (j > i), else 0: is_causal's top-left aligned mask
ND_BACKEND_ENTRY(void, causal_mask, (float *mask, int64_t lq, int64_t lk))

#undef ND_BACKEND_ENTRY
