// Checks ex_up_block_forward against the library's UpBlock.
#include "check.h"

static bool check(nd_ctx *ctx) {
    nd_params p;
    nd_params_init(&p);
    nd_up_block b;
    nd_up_block_init(&b, &p, "up1", 8, 4, 2);
    nd_params_alloc(&p, ctx);
    nd_tensor *x = ck_randn(ctx, ND_SHAPE(2, 8, 3, 3)), *skip = ck_randn(ctx, ND_SHAPE(2, 8, 3, 3));
    nd_tensor *got = ex_up_block_forward(ctx, &b, x, skip);
    nd_tensor *want = nd_up_block_forward(ctx, &b, x, skip);
    bool ok = ck_shape("UpBlock(8, 4)'s output", got, want->shape);
    if (ok && !ck_close_to(ctx, got, want, 1e-5)) {
        if (ck_close_to(ctx, got, nd_up_block_forward(ctx, &b, skip, x), 1e-5))
            ck_fail("you concatenated (skip, x): the course's order is torch.cat((x, skip), 1)");
        ok = ck_close(ctx, "UpBlock(8, 4)'s output", got, want, 1e-5);
    }
    nd_params_free(&p);
    return ok;
}
