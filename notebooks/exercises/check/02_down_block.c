// Checks DownBlock's parameter shapes, then its output against the same layers run in the course's order.
#include "check.h"

static bool check(nd_ctx *ctx) {
    nd_params p, buffers;
    nd_params_init(&p), nd_params_init(&buffers);
    ex_v1_down_block b;
    ex_v1_down_block_init(&b, &p, &buffers, 3, 5);
    printf("DownBlock(in_chs = 3, out_chs = 5):\n");
    bool ok = ck_param(&p, "model.0.weight", ND_SHAPE(5, 3, 3, 3)) & ck_param(&p, "model.0.bias", ND_SHAPE(5)) &
              ck_param(&p, "model.1.weight", ND_SHAPE(5)) & ck_param(&p, "model.3.weight", ND_SHAPE(5, 5, 3, 3)) &
              ck_param(&p, "model.4.weight", ND_SHAPE(5));
    if (ok && (b.conv1.stride != 1 || b.conv1.padding != 1 || b.conv2.stride != 1 || b.conv2.padding != 1))
        ok = ck_fail("the convolutions have stride %d and %d, padding %d and %d: they must keep H and W (stride 1, "
                     "padding 1 with kernel 3)", b.conv1.stride, b.conv2.stride, b.conv1.padding, b.conv2.padding);
    if (ok) {
        nd_params_alloc(&p, ctx), nd_params_alloc(&buffers, ctx);
        nd_tensor *x = ck_randn(ctx, ND_SHAPE(2, 3, 8, 8));
        nd_tensor *got = ex_v1_down_block_forward(ctx, &b, x);
        nd_tensor *h = nd_conv2d(ctx, x, b.conv1.weight, b.conv1.bias, 1, 1);
        h = nd_relu(ctx, nd_batch_norm2d(ctx, h, b.bn1.weight, b.bn1.bias, NULL, NULL, true, 0.1f, 1e-5f));
        h = nd_conv2d(ctx, h, b.conv2.weight, b.conv2.bias, 1, 1);
        h = nd_relu(ctx, nd_batch_norm2d(ctx, h, b.bn2.weight, b.bn2.bias, NULL, NULL, true, 0.1f, 1e-5f));
        ok = ck_close(ctx, "DownBlock's output", got, nd_max_pool2d(ctx, h, 2, 2), 1e-5);
    }
    nd_params_free(&p), nd_params_free(&buffers);
    return ok;
}
