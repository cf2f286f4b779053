// Resampling ops on NCHW images: F.max_pool2d, F.pixel_unshuffle, F.interpolate(mode='nearest').
#include "internal.h"

static void check_images(nd_loc loc, const char *op, nd_tensor *x, int factor, const char *factor_name) {
    if (x->shape.ndim != 4) {
        char s[96];
        nd_abort_at(loc, op, "expected x (N, C, H, W), got shape %s", nd_shape_str(x->shape, s, sizeof s));
    }
    if (factor < 1) nd_abort_at(loc, op, "%s %d must be at least 1", factor_name, factor);
}

// ---------------------------------------------------------------------------------------------------
// max_pool2d

static void max_pool2d_backward(nd_ctx *ctx, nd_node *node) {
    nd_tensor *x = node->in[0], *y = node->out;
    if (!x->grad) return;
    int64_t planes = x->shape.d[0] * x->shape.d[1];
    ctx->be->max_pool_backward(x->grad, y->grad, (const int32_t *)node->saved, planes, x->shape.d[2] * x->shape.d[3],
                               y->shape.d[2] * y->shape.d[3]);
}

nd_tensor *nd_max_pool2d_at(nd_ctx *ctx, nd_tensor *x, int kernel, int stride, nd_loc loc) {
    const char *op = "nd_max_pool2d";
    nd_check_device(ctx, op, loc, &x, 1);
    check_images(loc, op, x, kernel, "kernel");
    if (stride < 1) nd_abort_at(loc, op, "stride %d must be at least 1", stride);
    int64_t height = x->shape.d[2], width = x->shape.d[3];
    if (height < kernel || width < kernel) {
        char s[96];
        nd_abort_at(loc, op, "kernel %d is larger than the input %s", kernel, nd_shape_str(x->shape, s, sizeof s));
    }
    if (height * width > INT32_MAX) {
        char s[96];
        nd_abort_at(loc, op, "planes of %s exceed the 32-bit argmax offsets", nd_shape_str(x->shape, s, sizeof s));
    }
    int64_t out_h = (height - kernel) / stride + 1, out_w = (width - kernel) / stride + 1;
    nd_tensor *y = nd_op_output(ctx, ND_SHAPE(x->shape.d[0], x->shape.d[1], out_h, out_w), &x, 1); // (N, C, OH, OW)
    int32_t *argmax = nd_arena_alloc_data(&ctx->step, (size_t)y->numel * sizeof(int32_t));         // (N, C, OH, OW)
    ctx->be->max_pool_forward(y->data, argmax, x->data, x->shape.d[0] * x->shape.d[1], height, width, kernel, stride,
                              out_h, out_w);
    nd_node *node = nd_record(ctx, op, max_pool2d_backward, y, &x, 1);
    if (node) node->saved = (float *)argmax;
    return y;
}

// ---------------------------------------------------------------------------------------------------
// pixel_unshuffle

static void pixel_unshuffle_backward(nd_ctx *ctx, nd_node *node) {
    nd_tensor *x = node->in[0], *y = node->out;
    if (!x->grad) return;
    ctx->be->pixel_unshuffle_backward(x->grad, y->grad, x->shape.d[0] * x->shape.d[1], x->shape.d[2], x->shape.d[3],
                                      node->iarg[0]);
}

nd_tensor *nd_pixel_unshuffle_at(nd_ctx *ctx, nd_tensor *x, int factor, nd_loc loc) {
    const char *op = "nd_pixel_unshuffle";
    nd_check_device(ctx, op, loc, &x, 1);
    check_images(loc, op, x, factor, "factor");
    if (x->shape.d[2] % factor || x->shape.d[3] % factor) {
        char s[96];
        nd_abort_at(loc, op, "height and width of %s must be multiples of the factor %d",
                    nd_shape_str(x->shape, s, sizeof s), factor);
    }
    int64_t f = factor;
    nd_shape out_shape = ND_SHAPE(x->shape.d[0], x->shape.d[1] * f * f, x->shape.d[2] / f, x->shape.d[3] / f);
    nd_tensor *y = nd_op_output(ctx, out_shape, &x, 1); // (N, C*f*f, H/f, W/f)
    ctx->be->pixel_unshuffle_forward(y->data, x->data, x->shape.d[0] * x->shape.d[1], x->shape.d[2], x->shape.d[3], f);
    nd_node *node = nd_record(ctx, op, pixel_unshuffle_backward, y, &x, 1);
    if (node) node->iarg[0] = f;
    return y;
}

// ---------------------------------------------------------------------------------------------------
// upsample_nearest

static void upsample_nearest_backward(nd_ctx *ctx, nd_node *node) {
    nd_tensor *x = node->in[0], *y = node->out;
    if (!x->grad) return;
    ctx->be->upsample_backward(x->grad, y->grad, x->shape.d[0] * x->shape.d[1], x->shape.d[2], x->shape.d[3],
                               node->iarg[0]);
}

nd_tensor *nd_upsample_nearest_at(nd_ctx *ctx, nd_tensor *x, int factor, nd_loc loc) {
    const char *op = "nd_upsample_nearest";
    nd_check_device(ctx, op, loc, &x, 1);
    check_images(loc, op, x, factor, "factor");
    int64_t f = factor;
    nd_shape out_shape = ND_SHAPE(x->shape.d[0], x->shape.d[1], x->shape.d[2] * f, x->shape.d[3] * f);
    nd_tensor *y = nd_op_output(ctx, out_shape, &x, 1); // (N, C, H*f, W*f)
    ctx->be->upsample_forward(y->data, x->data, x->shape.d[0] * x->shape.d[1], x->shape.d[2], x->shape.d[3], f);
    nd_node *node = nd_record(ctx, op, upsample_nearest_backward, y, &x, 1);
    if (node) node->iarg[0] = f;
    return y;
}
