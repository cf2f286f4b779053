// Checks ex_gelu_conv_forward against the library's GELUConvBlock and recognises the usual slips.
#include "check.h"

static bool check(nd_ctx *ctx) {
    nd_params p;
    nd_params_init(&p);
    nd_gelu_conv_block b;
    nd_gelu_conv_block_init(&b, &p, "block", 3, 8, 4);
    nd_params_alloc(&p, ctx);
    nd_rand_normal(ctx, b.norm.weight, 1.0f, 0.5f); // not the identity, so a missing affine shows
    nd_rand_normal(ctx, b.norm.bias, 0.0f, 0.5f);
    nd_tensor *x = ck_randn(ctx, ND_SHAPE(2, 3, 6, 6));
    nd_tensor *got = ex_gelu_conv_forward(ctx, &b, x);
    nd_tensor *want = nd_gelu_conv_block_forward(ctx, &b, x);
    bool ok = ck_shape("the block's output", got, want->shape);
    if (ok && !ck_close_to(ctx, got, want, 1e-5)) {
        nd_tensor *conv = nd_conv2d_layer_forward(ctx, &b.conv, x), *gn = nd_group_norm_layer_forward(ctx, &b.norm, conv);
        nd_tensor *bn = nd_batch_norm2d(ctx, conv, NULL, NULL, NULL, NULL, true, 0.1f, 1e-5f);
        const struct { nd_tensor *t; const char *says; } slips[] = {
            {nd_relu(ctx, gn), "your output is Conv -> GroupNorm -> ReLU: notebook 03 uses GELU (nd_gelu)"},
            {gn, "your output is Conv -> GroupNorm without an activation: add GELU"},
            {nd_gelu(ctx, conv), "your output is Conv -> GELU without a normalization: add GroupNorm"},
            {nd_gelu(ctx, nd_group_norm(ctx, conv, 4, NULL, NULL, 1e-5f)),
             "your GroupNorm leaves out its weight and bias: use nd_group_norm_layer_forward(ctx, &b->norm, h)"},
            {nd_relu(ctx, bn), "your output is notebook 02's Conv -> BatchNorm -> ReLU: use GroupNorm and GELU"},
        };
        for (size_t i = 0; i < sizeof slips / sizeof slips[0]; i++)
            if (ck_close_to(ctx, got, slips[i].t, 1e-4)) ck_fail("%s", slips[i].says);
        ok = ck_close(ctx, "the block's output", got, want, 1e-5);
    }
    nd_params_free(&p);
    return ok;
}
