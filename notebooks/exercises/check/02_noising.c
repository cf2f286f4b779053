// Checks ex_q against the library's q(x_t | x_0) and names the coefficient that differs.
#include "check.h"

static bool check(nd_ctx *ctx) {
    nd_schedule s;
    nd_schedule_linear(&s, 150, 1e-4, 0.02);
    const int t[4] = {0, 37, 99, 149};
    nd_tensor *x0 = ck_randn(ctx, ND_SHAPE(4, 1, 6, 6)), *noise = ck_randn(ctx, ND_SHAPE(4, 1, 6, 6));
    nd_tensor *got = ex_q(ctx, &s, x0, noise, t);
    nd_tensor *want = nd_schedule_q(ctx, &s, x0, noise, t);
    bool ok = ck_shape("x_t", got, want->shape);
    if (ok && !ck_close_to(ctx, got, want, 1e-5)) {
        // Fit each image's x_t as a x_0 + c noise (least squares) to say which coefficient is wrong.
        float *g = ck_host(ctx, got), *x = ck_host(ctx, x0), *e = ck_host(ctx, noise);
        for (int i = 0; i < 4; i++) {
            double xx = 0, xe = 0, ee = 0, gx = 0, ge = 0;
            for (int j = i * 36; j < (i + 1) * 36; j++)
                xx += x[j] * x[j], xe += x[j] * e[j], ee += e[j] * e[j], gx += g[j] * x[j], ge += g[j] * e[j];
            double det = xx * ee - xe * xe, a = (gx * ee - ge * xe) / det, c = (ge * xx - gx * xe) / det;
            double want_a = s.sqrt_alpha_bar[t[i]], want_c = s.sqrt_one_minus_alpha_bar[t[i]];
            if (fabs(a - want_a) > 1e-4 || fabs(c - want_c) > 1e-4) {
                ck_fail("image %d (t = %d): your x_t = %.4f x_0 + %.4f noise; expected sqrt(abar_t) = %.4f times x_0 "
                        "and sqrt(1 - abar_t) = %.4f times the noise (abar_t = %.4f, beta_t = %.4f)",
                        i, t[i], a, c, want_a, want_c, s.alpha_bar[t[i]], s.beta[t[i]]);
                break;
            }
        }
        ok = ck_close(ctx, "x_t", got, want, 1e-5);
        free(g), free(x), free(e);
    }
    nd_schedule_free(&s);
    return ok;
}
