// Checks the assessment's guided noise on random predictions, and that w gives guidance without wrecking it.
#include "check.h"

static bool check(nd_ctx *ctx) {
    nd_tensor *e_c = ck_randn(ctx, ND_SHAPE(10, 1, 4, 4)), *e_u = ck_randn(ctx, ND_SHAPE(10, 1, 4, 4));
    bool ok = true;
    const float ws[2] = {2.0f, 0.5f};
    for (int i = 0; i < 2 && ok; i++) {
        float w = ws[i];
        nd_tensor *got = ex_cfg_eps(ctx, e_c, e_u, w);
        nd_tensor *want = nd_sub(ctx, nd_mul_scalar(ctx, e_c, 1.0f + w), nd_mul_scalar(ctx, e_u, w));
        if (!ck_shape("e_t", got, want->shape)) return false;
        if (ck_close_to(ctx, got, want, 1e-5)) continue;
        double a, b;
        ck_fit2(ctx, got, e_c, e_u, &a, &b);
        if (fabs(a - (1.0 + w)) > 1e-3 || fabs(b + w) > 1e-3)
            ck_fail("with w = %g your e_t = %.3f e_t_keep_c %+.3f e_t_drop_c; expected (1 + w) = %g times e_t_keep_c "
                    "and -w = %g times e_t_drop_c%s", w, a, b, 1 + w, -w,
                    fabs(a - w) < 1e-3 && fabs(b - (1 - w)) < 1e-3
                        ? " (yours is the guidance-scale form e_u + s (e_c - e_u) with s = w: the course's w is s - 1)"
                        : "");
        ok = ck_close(ctx, "e_t", got, want, 1e-5);
    }
    if (!(ex_w >= 1.0f && ex_w <= 5.0f))
        ok = ck_fail("w = %g: %s", ex_w,
                     ex_w < 1.0f ? "too little guidance for the grader's 95% (the course's passing runs used w from 1 "
                                   "to 3; w = 0 is no guidance at all)"
                                 : "so much guidance that samples saturate and lose variety; try w from 1 to 3");
    return ok;
}
