// Convolutions: F.conv2d and F.conv_transpose2d, by the backend's convolution library where it has one
// (oneDNN on the CPU: conv_forward / conv_backward), else as GEMMs against im2col column matrices.
//
// A chunk of B images becomes one column matrix (rows = channels * kh * kw, B * positions columns), so each
// product is a single large GEMM whatever the image size; chunks keep that scratch under a fixed budget
// instead of growing with the batch. The images' (B, channels, positions) layout and the GEMM's
// (channels, B * positions) layout differ by a permutation, done on the chunk while it is still in cache.
#include "internal.h"

// Column scratch per chunk when the context sets none: small enough that the GEMM finds the columns in
// cache right after im2col wrote them, large enough to keep the GEMMs and parallel regions per batch few.
// The 3x3 64-channel case (batch 128, 16x16, forward+backward) on this project's 2-core reference machine:
// one thread 95-99 ms at 1-4 MiB, 104 ms at 8 MiB, 124 ms at 32 MiB (the columns spill out of L3); two
// threads 58 ms at 4 and 8 MiB alike, 62-64 ms at 16 MiB.
#define ND_CONV_CHUNK_BYTES (4u << 20)

static int64_t chunk_images(const nd_ctx *ctx, int64_t col_floats_per_image, int64_t batch) {
    size_t budget = ctx->conv_chunk_bytes ? ctx->conv_chunk_bytes : ND_CONV_CHUNK_BYTES;
    size_t image_bytes = (size_t)col_floats_per_image * sizeof(float);
    int64_t per_chunk = image_bytes ? (int64_t)(budget / image_bytes) : batch;
    if (per_chunk < 1) per_chunk = 1;
    if (per_chunk >= batch) return batch;
    // equal chunks: a last chunk of a few images would run a poorly shaped GEMM
    int64_t n_chunks = (batch + per_chunk - 1) / per_chunk;
    return (batch + n_chunks - 1) / n_chunks;
}

// The chunk scratch is dead once the op returns; handing it back keeps the step arena from growing by one
// column buffer per convolution call. Valid because nothing else is allocated between mark and release.
static nd_arena_mark scratch_mark(nd_ctx *ctx) { return nd_arena_get_mark(&ctx->step); }
static void scratch_release(nd_ctx *ctx, nd_arena_mark mark) { nd_arena_release(&ctx->step, mark); }

// dst (B, C, L) = src (C, B, L), or the reverse with `to_images` false; accumulates when asked.
static void swap_batch_channels(nd_ctx *ctx, float *dst, const float *src, int64_t batch, int64_t channels,
                                int64_t positions, bool to_images, bool accumulate) {
    int64_t outer = to_images ? batch : channels, inner = to_images ? channels : batch;
    int64_t shape[3] = {outer, inner, positions};
    int64_t stride[3] = {positions, outer * positions, 1};
    ctx->be->permute(dst, src, 3, shape, stride, accumulate);
}

// y (N, C, L) += bias (C) on every position
static void add_channel_bias(nd_ctx *ctx, float *y, const float *bias, int64_t n, int64_t channels, int64_t positions) {
    nd_reduce_plan plan = {.ndim = 3, .src_shape = {1, channels, 1}, .dst_shape = {n, channels, positions}};
    ctx->be->broadcast_accumulate(y, bias, &plan, 1.0f);
}

// A vector of n ones from the step arena: sums as products with it run at memory speed in BLAS, where a
// plain row-sum loop waits on its single chain of additions.
static float *ones_scratch(nd_ctx *ctx, int64_t n) {
    float *ones = nd_scratch(ctx, n);
    ctx->be->fill(ones, 1.0f, n);
    return ones;
}

// dbias (C) += dy (N, C, L) summed over images and positions; ones holds at least L ones.
static void channel_bias_backward(nd_ctx *ctx, float *dbias, const float *dy, int64_t n, int64_t channels,
                                  int64_t positions, const float *ones) {
    ctx->be->gemm(false, false, channels, 1, positions, 1.0f, dy, positions, channels * positions, ones, 1, 0, 1.0f,
                  dbias, 1, 0, n);
}

static void check_common(nd_loc loc, const char *op, nd_tensor *x, nd_tensor *weight, int stride, int padding) {
    if (x->shape.ndim != 4 || weight->shape.ndim != 4)
        nd_abort_shapes(loc, op, "expected x (N, C, H, W) and a 4-d weight", x->shape, weight->shape);
    if (stride < 1 || padding < 0)
        nd_abort_at(loc, op, "stride %d must be at least 1 and padding %d at least 0", stride, padding);
}

static void check_bias(nd_loc loc, const char *op, nd_tensor *bias, int64_t channels, nd_shape weight) {
    if (bias && (bias->shape.ndim != 1 || bias->shape.d[0] != channels))
        nd_abort_shapes(loc, op, "bias must have one value per output channel of the weight", bias->shape, weight);
}

// ---------------------------------------------------------------------------------------------------
// conv2d: y_chunk (O, B*L) = W (O, C*kh*kw) @ im2col(x_chunk) (C*kh*kw, B*L)

// The windows of a conv2d over its input x (N, C, H, W) for weight (O, C, kh, kw).
static nd_conv_geom conv2d_geom(nd_shape x, nd_shape w, int64_t stride, int64_t padding) {
    nd_conv_geom g = {.channels = x.d[1],
                      .height = x.d[2],
                      .width = x.d[3],
                      .kernel_h = w.d[2],
                      .kernel_w = w.d[3],
                      .stride = stride,
                      .padding = padding};
    g.out_h = (g.height + 2 * padding - g.kernel_h) / stride + 1;
    g.out_w = (g.width + 2 * padding - g.kernel_w) / stride + 1;
    return g;
}

// A 1x1 window at stride 1 without padding reads each image as it is: its (C, L) layout is already the
// column matrix, so per-image GEMMs replace im2col.
static bool is_pointwise(const nd_conv_geom *g) {
    return g->kernel_h == 1 && g->kernel_w == 1 && g->stride == 1 && g->padding == 0;
}

static void conv2d_pointwise_backward(nd_ctx *ctx, nd_tensor *x, nd_tensor *w, const float *dy, int64_t n,
                                      int64_t positions) {
    int64_t out_c = w->shape.d[0], in_c = w->shape.d[1];
    if (w->grad) // dW (O, C) += dy_b (O, L) x_b^T (L, C), summed over images
        ctx->be->gemm(false, true, out_c, in_c, positions, 1.0f, dy, positions, out_c * positions, x->data, positions,
                      in_c * positions, 1.0f, w->grad, in_c, 0, n);
    if (x->grad) // dx_b (C, L) += W^T (C, O) dy_b (O, L)
        ctx->be->gemm(true, false, in_c, positions, out_c, 1.0f, w->data, in_c, 0, dy, positions, out_c * positions,
                      1.0f, x->grad, positions, in_c * positions, n);
}

static void conv2d_backward(nd_ctx *ctx, nd_node *node) {
    nd_tensor *x = node->in[0], *w = node->in[1], *bias = node->in[2], *y = node->out;
    nd_conv_geom g = conv2d_geom(x->shape, w->shape, node->iarg[0], node->iarg[1]);
    int64_t n = x->shape.d[0], out_c = w->shape.d[0], positions = g.out_h * g.out_w;
    int64_t rows = g.channels * g.kernel_h * g.kernel_w, image = g.channels * g.height * g.width;
    float *dbias = bias ? bias->grad : NULL;
    if (!x->grad && !w->grad && !dbias) return;
    if (!ctx->conv_gemm &&
        ctx->be->conv_backward(x->grad, w->grad, dbias, y->grad, x->data, w->data, &g, n, out_c, false, bias != NULL))
        return;
    nd_arena_mark mark = scratch_mark(ctx);
    if (is_pointwise(&g)) {
        if (dbias) channel_bias_backward(ctx, dbias, y->grad, n, out_c, positions, ones_scratch(ctx, positions));
        conv2d_pointwise_backward(ctx, x, w, y->grad, n, positions);
        scratch_release(ctx, mark);
        return;
    }
    int64_t chunk = chunk_images(ctx, rows * positions, n);
    float *col = nd_scratch(ctx, rows * chunk * positions);  // (C*kh*kw, B*L), then its gradient
    float *dyt = nd_scratch(ctx, out_c * chunk * positions); // (O, B*L)
    float *ones = dbias ? ones_scratch(ctx, chunk * positions) : NULL;
    for (int64_t n0 = 0; n0 < n; n0 += chunk) {
        int64_t b = n - n0 < chunk ? n - n0 : chunk, cols = b * positions;
        swap_batch_channels(ctx, dyt, y->grad + n0 * out_c * positions, b, out_c, positions, false, false);
        if (dbias) channel_bias_backward(ctx, dbias, dyt, 1, out_c, cols, ones);
        if (w->grad) { // dW (O, C*kh*kw) += dy (O, B*L) col^T
            ctx->be->im2col(col, x->data + n0 * image, &g, b);
            ctx->be->gemm(false, true, out_c, rows, cols, 1.0f, dyt, cols, 0, col, cols, 0, 1.0f, w->grad, rows, 0, 1);
        }
        if (x->grad) { // dcol (C*kh*kw, B*L) = W^T dy, scattered back onto the pixels it was read from
            ctx->be->gemm(true, false, rows, cols, out_c, 1.0f, w->data, rows, 0, dyt, cols, 0, 0.0f, col, cols, 0, 1);
            ctx->be->col2im(x->grad + n0 * image, col, &g, b);
        }
    }
    scratch_release(ctx, mark);
}

// y (N, O, OH, OW) = conv2d(x (N, C, H, W), weight (O, C, kh, kw)) + bias as GEMMs: per image for a
// pointwise kernel, else against im2col columns of chunks of images.
static void conv2d_gemm(nd_ctx *ctx, nd_tensor *y, nd_tensor *x, nd_tensor *weight, nd_tensor *bias,
                        const nd_conv_geom *g) {
    int64_t n = x->shape.d[0], out_c = weight->shape.d[0], positions = g->out_h * g->out_w;
    int64_t rows = g->channels * g->kernel_h * g->kernel_w, image = g->channels * g->height * g->width;
    if (is_pointwise(g)) { // y_b (O, L) = W (O, C) x_b (C, L)
        ctx->be->gemm(false, false, out_c, positions, rows, 1.0f, weight->data, rows, 0, x->data, positions, image,
                      0.0f, y->data, positions, out_c * positions, n);
        if (bias) add_channel_bias(ctx, y->data, bias->data, n, out_c, positions);
        return;
    }
    int64_t chunk = chunk_images(ctx, rows * positions, n);
    nd_arena_mark mark = scratch_mark(ctx);
    float *col = nd_scratch(ctx, rows * chunk * positions); // (C*kh*kw, B*L)
    float *yt = nd_scratch(ctx, out_c * chunk * positions); // (O, B*L)
    for (int64_t n0 = 0; n0 < n; n0 += chunk) {
        int64_t b = n - n0 < chunk ? n - n0 : chunk, cols = b * positions;
        ctx->be->im2col(col, x->data + n0 * image, g, b);
        ctx->be->gemm(false, false, out_c, cols, rows, 1.0f, weight->data, rows, 0, col, cols, 0, 0.0f, yt, cols, 0, 1);
        // the bias goes on while the chunk is still in cache
        float *y_chunk = y->data + n0 * out_c * positions; // (B, O, L)
        swap_batch_channels(ctx, y_chunk, yt, b, out_c, positions, true, false);
        if (bias) add_channel_bias(ctx, y_chunk, bias->data, b, out_c, positions);
    }
    scratch_release(ctx, mark);
}

nd_tensor *nd_conv2d_at(nd_ctx *ctx, nd_tensor *x, nd_tensor *weight, nd_tensor *bias, int stride, int padding,
                        nd_loc loc) {
    const char *op = "nd_conv2d";
    nd_tensor *in[3] = {x, weight, bias};
    nd_check_device(ctx, op, loc, in, bias ? 3 : 2);
    check_common(loc, op, x, weight, stride, padding);
    if (x->shape.d[1] != weight->shape.d[1])
        nd_abort_shapes(loc, op, "input channels differ from weight (O, C, kh, kw)", x->shape, weight->shape);
    if (x->shape.d[2] + 2 * padding < weight->shape.d[2] || x->shape.d[3] + 2 * padding < weight->shape.d[3])
        nd_abort_shapes(loc, op, "kernel is larger than the padded input", x->shape, weight->shape);
    int64_t out_c = weight->shape.d[0];
    check_bias(loc, op, bias, out_c, weight->shape);

    nd_conv_geom g = conv2d_geom(x->shape, weight->shape, stride, padding);
    int64_t n = x->shape.d[0], rows = g.channels * g.kernel_h * g.kernel_w;
    nd_tensor *y = nd_op_output(ctx, ND_SHAPE(n, out_c, g.out_h, g.out_w), in, 3); // (N, O, OH, OW)
    if (ctx->conv_gemm || !ctx->be->conv_forward(y->data, x->data, weight->data, bias ? bias->data : NULL, &g, n, out_c,
                                                 false, !y->requires_grad))
        conv2d_gemm(ctx, y, x, weight, bias, &g);
    nd_profile_flops(ctx, 2.0 * (double)y->numel * (double)rows);
    nd_node *node = nd_record(ctx, op, conv2d_backward, y, in, 3);
    if (node) {
        node->iarg[0] = stride;
        node->iarg[1] = padding;
    }
    return y;
}

// ---------------------------------------------------------------------------------------------------
// conv2d with its group norm and activation

// True when the fused call applies: nothing to differentiate, the backend's library path, and shapes the
// three ops accept (anything else goes to them, which name what is wrong).
static bool conv_norm_act_fusable(nd_ctx *ctx, nd_tensor *const *in, int num_groups) {
    nd_tensor *x = in[0], *weight = in[1];
    if (ctx->conv_gemm || !x || !weight || x->shape.ndim != 4 || weight->shape.ndim != 4) return false;
    for (int i = 0; i < 5; i++)
        if (in[i] && (in[i]->device != ctx->device || (ctx->grad_enabled && in[i]->requires_grad))) return false;
    int64_t out_c = weight->shape.d[0];
    if (x->shape.d[1] != weight->shape.d[1] || num_groups <= 0 || out_c % num_groups) return false;
    for (int i = 2; i < 5; i++)
        if (in[i] && (in[i]->shape.ndim != 1 || in[i]->shape.d[0] != out_c)) return false;
    return true;
}

nd_tensor *nd_conv2d_group_norm_act_at(nd_ctx *ctx, nd_tensor *x, nd_tensor *weight, nd_tensor *bias, int stride,
                                       int padding, int num_groups, nd_tensor *norm_weight, nd_tensor *norm_bias,
                                       float eps, nd_unary_kind act, nd_loc loc) {
    const char *op = "nd_conv2d_group_norm_act";
    nd_tensor *in[5] = {x, weight, bias, norm_weight, norm_bias};
    bool valid_act = act != ND_UNARY_AFFINE && act != ND_UNARY_RECIP && (int)act >= 0 && act < ND_UNARY_COUNT;
    if (valid_act && conv_norm_act_fusable(ctx, in, num_groups) && stride >= 1 && padding >= 0 &&
        x->shape.d[2] + 2 * padding >= weight->shape.d[2] && x->shape.d[3] + 2 * padding >= weight->shape.d[3]) {
        nd_conv_geom g = conv2d_geom(x->shape, weight->shape, stride, padding);
        int64_t n = x->shape.d[0], out_c = weight->shape.d[0];
        nd_arena_mark mark = nd_arena_get_mark(&ctx->step);
        nd_tensor *y = nd_empty(ctx, ND_SHAPE(n, out_c, g.out_h, g.out_w)); // (N, O, OH, OW)
        if (ctx->be->conv_norm_act_forward(y->data, x->data, weight->data, bias ? bias->data : NULL, &g, n, out_c,
                                           num_groups, norm_weight ? norm_weight->data : NULL,
                                           norm_bias ? norm_bias->data : NULL, eps, act)) {
            nd_profile_flops(ctx, 2.0 * (double)y->numel * (double)(g.channels * g.kernel_h * g.kernel_w));
            nd_record(ctx, op, NULL, y, in, 5); // profiling and numerics checks; nothing is recorded
            return y;
        }
        nd_arena_release(&ctx->step, mark);
    }
    nd_tensor *h = nd_conv2d_at(ctx, x, weight, bias, stride, padding, loc); // (N, O, OH, OW)
    return nd_group_norm_act_at(ctx, h, num_groups, norm_weight, norm_bias, eps, act, loc);
}

// ---------------------------------------------------------------------------------------------------
// conv_transpose2d: the adjoint of conv2d. col (C_out*kh*kw, B*L) = W^T (C_out*kh*kw, C_in) x_chunk (C_in, B*L)
// is scattered onto the output by col2im; the windows are those of a conv2d over the output.

// The windows over the output (C_out, OH, OW) of a conv_transpose2d of x (N, C_in, H, W) with weight
// (C_in, C_out, kh, kw): H x W positions, one per input pixel.
static nd_conv_geom conv_transpose2d_geom(nd_shape x, nd_shape w, int64_t stride, int64_t padding,
                                          int64_t output_padding) {
    nd_conv_geom g = {.channels = w.d[1],
                      .kernel_h = w.d[2],
                      .kernel_w = w.d[3],
                      .stride = stride,
                      .padding = padding,
                      .out_h = x.d[2],
                      .out_w = x.d[3]};
    g.height = (x.d[2] - 1) * stride - 2 * padding + g.kernel_h + output_padding;
    g.width = (x.d[3] - 1) * stride - 2 * padding + g.kernel_w + output_padding;
    return g;
}

static void conv_transpose2d_backward(nd_ctx *ctx, nd_node *node) {
    nd_tensor *x = node->in[0], *w = node->in[1], *bias = node->in[2], *y = node->out;
    nd_conv_geom g = conv_transpose2d_geom(x->shape, w->shape, node->iarg[0], node->iarg[1], node->iarg[2]);
    int64_t n = x->shape.d[0], in_c = x->shape.d[1], positions = g.out_h * g.out_w;
    int64_t rows = g.channels * g.kernel_h * g.kernel_w, out_image = g.channels * g.height * g.width;
    if (!ctx->conv_gemm && ctx->be->conv_backward(x->grad, w->grad, bias ? bias->grad : NULL, y->grad, x->data, w->data,
                                                  &g, n, in_c, true, bias != NULL))
        return;
    nd_arena_mark mark = scratch_mark(ctx);
    if (bias && bias->grad)
        channel_bias_backward(ctx, bias->grad, y->grad, n, g.channels, g.height * g.width,
                              ones_scratch(ctx, g.height * g.width));
    if (!x->grad && !w->grad) {
        scratch_release(ctx, mark);
        return;
    }
    int64_t chunk = chunk_images(ctx, rows * positions, n);
    float *col = nd_scratch(ctx, rows * chunk * positions); // (C_out*kh*kw, B*L) = im2col(dy)
    float *xt = nd_scratch(ctx, in_c * chunk * positions);  // (C_in, B*L): x, then its gradient
    for (int64_t n0 = 0; n0 < n; n0 += chunk) {
        int64_t b = n - n0 < chunk ? n - n0 : chunk, cols = b * positions;
        ctx->be->im2col(col, y->grad + n0 * out_image, &g, b);
        if (w->grad) { // dW (C_in, C_out*kh*kw) += x (C_in, B*L) col^T
            swap_batch_channels(ctx, xt, x->data + n0 * in_c * positions, b, in_c, positions, false, false);
            ctx->be->gemm(false, true, in_c, rows, cols, 1.0f, xt, cols, 0, col, cols, 0, 1.0f, w->grad, rows, 0, 1);
        }
        if (x->grad) { // dx (C_in, B*L) = W (C_in, C_out*kh*kw) col
            ctx->be->gemm(false, false, in_c, cols, rows, 1.0f, w->data, rows, 0, col, cols, 0, 0.0f, xt, cols, 0, 1);
            swap_batch_channels(ctx, x->grad + n0 * in_c * positions, xt, b, in_c, positions, true, true);
        }
    }
    scratch_release(ctx, mark);
}

// y (N, C_out, OH, OW) = conv_transpose2d(x (N, C_in, H, W), weight (C_in, C_out, kh, kw)) + bias, as
// im2col's adjoint: GEMMs into column chunks scattered onto the output by col2im.
static void conv_transpose2d_gemm(nd_ctx *ctx, nd_tensor *y, nd_tensor *x, nd_tensor *weight, nd_tensor *bias,
                                  const nd_conv_geom *g) {
    int64_t n = x->shape.d[0], in_c = x->shape.d[1], positions = g->out_h * g->out_w;
    int64_t rows = g->channels * g->kernel_h * g->kernel_w, out_image = g->channels * g->height * g->width;
    int64_t chunk = chunk_images(ctx, rows * positions, n);
    nd_arena_mark mark = scratch_mark(ctx);
    float *xt = nd_scratch(ctx, in_c * chunk * positions);  // (C_in, B*L)
    float *col = nd_scratch(ctx, rows * chunk * positions); // (C_out*kh*kw, B*L)
    for (int64_t n0 = 0; n0 < n; n0 += chunk) {
        int64_t b = n - n0 < chunk ? n - n0 : chunk, cols = b * positions;
        swap_batch_channels(ctx, xt, x->data + n0 * in_c * positions, b, in_c, positions, false, false);
        ctx->be->gemm(true, false, rows, cols, in_c, 1.0f, weight->data, rows, 0, xt, cols, 0, 0.0f, col, cols, 0, 1);
        float *y_chunk = y->data + n0 * out_image; // (B, C_out, OH, OW)
        ctx->be->fill(y_chunk, 0.0f, b * out_image);
        ctx->be->col2im(y_chunk, col, g, b);
        if (bias) add_channel_bias(ctx, y_chunk, bias->data, b, g->channels, g->height * g->width);
    }
    scratch_release(ctx, mark);
}

nd_tensor *nd_conv_transpose2d_at(nd_ctx *ctx, nd_tensor *x, nd_tensor *weight, nd_tensor *bias, int stride,
                                  int padding, int output_padding, nd_loc loc) {
    const char *op = "nd_conv_transpose2d";
    nd_tensor *in[3] = {x, weight, bias};
    nd_check_device(ctx, op, loc, in, bias ? 3 : 2);
    check_common(loc, op, x, weight, stride, padding);
    if (x->shape.d[1] != weight->shape.d[0])
        nd_abort_shapes(loc, op, "input channels differ from weight (C_in, C_out, kh, kw)", x->shape, weight->shape);
    if (output_padding < 0 || output_padding >= stride)
        nd_abort_at(loc, op, "output_padding %d must lie in [0, stride %d)", output_padding, stride);
    nd_conv_geom g = conv_transpose2d_geom(x->shape, weight->shape, stride, padding, output_padding);
    if (g.height < 1 || g.width < 1)
        nd_abort_shapes(loc, op, "padding leaves no output for this input and kernel", x->shape, weight->shape);
    check_bias(loc, op, bias, g.channels, weight->shape);

    int64_t n = x->shape.d[0], in_c = x->shape.d[1], rows = g.channels * g.kernel_h * g.kernel_w;
    nd_tensor *y = nd_op_output(ctx, ND_SHAPE(n, g.channels, g.height, g.width), in, 3); // (N, C_out, OH, OW)
    if (ctx->conv_gemm || !ctx->be->conv_forward(y->data, x->data, weight->data, bias ? bias->data : NULL, &g, n, in_c,
                                                 true, !y->requires_grad))
        conv_transpose2d_gemm(ctx, y, x, weight, bias, &g);
    nd_profile_flops(ctx, 2.0 * (double)x->numel * (double)rows);
    nd_node *node = nd_record(ctx, op, conv_transpose2d_backward, y, in, 3);
    if (node) {
        node->iarg[0] = stride;
        node->iarg[1] = padding;
        node->iarg[2] = output_padding;
    }
    return y;
}
