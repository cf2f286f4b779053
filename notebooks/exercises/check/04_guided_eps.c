// Checks ex_guided_eps against two separate model calls combined as (1 + w) e_c - w e_u.
#include "check.h"

static bool check(nd_ctx *ctx) {
    nd_model model;
    ck_tiny_model(ctx, &model, 10);
    const float w = 2.0f, times[2] = {3.0f, 7.0f}, onehot[6] = {1, 0, 0, 0, 0, 1};
    nd_tensor *x = ck_randn(ctx, ND_SHAPE(2, 1, 8, 8)), *t = nd_from_host(ctx, ND_SHAPE(2), times);
    nd_tensor *c = nd_from_host(ctx, ND_SHAPE(2, 3), onehot);
    nd_tensor *got = ex_guided_eps(ctx, &model, x, t, c, w);
    nd_tensor *e_c = nd_model_forward(ctx, &model, x, t, c, false);
    nd_tensor *e_u = nd_model_forward(ctx, &model, x, t, nd_zeros(ctx, c->shape), false);
    nd_tensor *want = nd_sub(ctx, nd_mul_scalar(ctx, e_c, 1.0f + w), nd_mul_scalar(ctx, e_u, w));
    bool ok = ck_shape("the guided noise", got, want->shape);
    if (ok && !ck_close_to(ctx, got, want, 1e-4)) {
        double a, b;
        ck_fit2(ctx, got, e_c, e_u, &a, &b);
        nd_tensor *refit = nd_add(ctx, nd_mul_scalar(ctx, e_c, (float)a), nd_mul_scalar(ctx, e_u, (float)b));
        if (ck_close_to(ctx, got, refit, 1e-3))
            ck_fail("with w = %g your result is %.3f e_c %+.3f e_u (e_c: the prediction with the class, e_u: with the "
                    "zero context); expected (1 + w) = %.0f times e_c and -w = %.0f times e_u", w, a, b, 1 + w, -w);
        else
            ck_fail("your result is no combination of e_c and e_u: is the second half's context all zeros, and are "
                    "the first n rows the ones with the class?");
        ok = ck_close(ctx, "the guided noise", got, want, 1e-4);
    }
    nd_model_free(&model);
    return ok;
}
