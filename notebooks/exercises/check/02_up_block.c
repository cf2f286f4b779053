// Checks UpBlock's parameter shapes and transposed-convolution geometry, then its forward.
#include "check.h"

static bool check(nd_ctx *ctx) {
    nd_params p, buffers;
    nd_params_init(&p), nd_params_init(&buffers);
    ex_v1_up_block b;
    ex_v1_up_block_init(&b, &p, &buffers, 4, 3);
    printf("UpBlock(in_chs = 4, out_chs = 3):\n");
    bool ok = ck_param(&p, "model.0.weight", ND_SHAPE(8, 3, 3, 3)) & ck_param(&p, "model.0.bias", ND_SHAPE(3)) &
              ck_param(&p, "model.1.weight", ND_SHAPE(3)) & ck_param(&p, "model.3.weight", ND_SHAPE(3, 3, 3, 3)) &
              ck_param(&p, "model.4.weight", ND_SHAPE(3));
    if (!ok) printf("hint: ConvTranspose2d's weight is (in, out, k, k), and its input is cat(x, skip)\n");
    int out = (4 - 1) * b.up.stride - 2 * b.up.padding + 3 + b.up.output_padding;
    if (ok && out != 8)
        ok = ck_fail("ConvTranspose2d(stride %d, padding %d, output_padding %d) turns 4x4 into %dx%d; an UpBlock "
                     "doubles it to 8x8", b.up.stride, b.up.padding, b.up.output_padding, out, out);
    if (ok && (b.conv.stride != 1 || b.conv.padding != 1))
        ok = ck_fail("the Conv2d has stride %d, padding %d: it must keep H and W", b.conv.stride, b.conv.padding);
    if (ok) {
        nd_params_alloc(&p, ctx), nd_params_alloc(&buffers, ctx);
        nd_tensor *x = ck_randn(ctx, ND_SHAPE(2, 4, 4, 4)), *skip = ck_randn(ctx, ND_SHAPE(2, 4, 4, 4));
        nd_tensor *got = ex_v1_up_block_forward(ctx, &b, x, skip);
        nd_tensor *pair[2] = {x, skip};
        nd_tensor *h = nd_conv_transpose2d(ctx, nd_concat(ctx, pair, 2, 1), b.up.weight, b.up.bias, 2, 1, 1);
        h = nd_relu(ctx, nd_batch_norm2d(ctx, h, b.bn1.weight, b.bn1.bias, NULL, NULL, true, 0.1f, 1e-5f));
        h = nd_conv2d(ctx, h, b.conv.weight, b.conv.bias, 1, 1);
        nd_tensor *want = nd_relu(ctx, nd_batch_norm2d(ctx, h, b.bn2.weight, b.bn2.bias, NULL, NULL, true, 0.1f, 1e-5f));
        if (ck_shape("UpBlock's output", got, want->shape) && !ck_close_to(ctx, got, want, 1e-5)) {
            nd_tensor *swapped[2] = {skip, x};
            nd_tensor *g = nd_conv_transpose2d(ctx, nd_concat(ctx, swapped, 2, 1), b.up.weight, b.up.bias, 2, 1, 1);
            g = nd_relu(ctx, nd_batch_norm2d(ctx, g, b.bn1.weight, b.bn1.bias, NULL, NULL, true, 0.1f, 1e-5f));
            g = nd_relu(ctx, nd_batch_norm2d(ctx, nd_conv2d(ctx, g, b.conv.weight, b.conv.bias, 1, 1), b.bn2.weight,
                                             b.bn2.bias, NULL, NULL, true, 0.1f, 1e-5f));
            if (ck_close_to(ctx, got, g, 1e-5)) ck_fail("you concatenated (skip, x): the course's order is (x, skip)");
        }
        ok = ck_close(ctx, "UpBlock's output", got, want, 1e-5);
    }
    nd_params_free(&p), nd_params_free(&buffers);
    return ok;
}
