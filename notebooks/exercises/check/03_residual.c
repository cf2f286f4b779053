// Checks ex_residual_forward against the library's ResidualConvBlock.
#include "check.h"

static bool check(nd_ctx *ctx) {
    nd_params p;
    nd_params_init(&p);
    nd_residual_conv_block b;
    nd_residual_conv_block_init(&b, &p, "block", 3, 8, 4);
    nd_params_alloc(&p, ctx);
    nd_tensor *x = ck_randn(ctx, ND_SHAPE(2, 3, 5, 5));
    nd_tensor *got = ex_residual_forward(ctx, &b, x);
    nd_tensor *want = nd_residual_conv_block_forward(ctx, &b, x);
    bool ok = ck_shape("the block's output", got, want->shape);
    if (ok && !ck_close_to(ctx, got, want, 1e-5)) {
        nd_tensor *x1 = nd_gelu_conv_block_forward(ctx, &b.conv1, x), *x2 = nd_gelu_conv_block_forward(ctx, &b.conv2, x1);
        if (ck_close_to(ctx, got, x2, 1e-5)) ck_fail("your output is x2 alone: the block returns x1 + x2");
        if (ck_close_to(ctx, got, x1, 1e-5)) ck_fail("your output is x1 alone: the block returns x1 + x2");
        ok = ck_close(ctx, "the block's output", got, want, 1e-5);
    }
    nd_params_free(&p);
    return ok;
}
