// Checks the assessment's schedule arrays against the library's, then q and reverse_q against the formulas.
#include "check.h"

static bool check_array(const char *name, const float *got, const float *want, int T, const char *formula) {
    for (int i = 0; i < T; i++)
        if (!(fabsf(got[i] - want[i]) <= 1e-5f * (1.0f + fabsf(want[i]))))
            return ck_fail("%s[%d] = %.6g, expected %.6g (%s)", name, i, got[i], want[i], formula);
    return true;
}

static bool check(nd_ctx *ctx) {
    const int T = 150;
    nd_schedule s;
    nd_schedule_linear(&s, T, 1e-4, 0.02);
    ex_ddpm d;
    ex_ddpm_init(&d, T, s.beta);
    float *one_minus = malloc(T * sizeof(float)), *coeff = malloc(T * sizeof(float));
    for (int i = 0; i < T; i++) one_minus[i] = s.sqrt_one_minus_alpha_bar[i], coeff[i] = s.pred_noise_coeff[i];
    bool ok = check_array("a_bar", d.a_bar, s.alpha_bar, T, "the running product a[0] a[1] ... a[t]: cumprod");
    ok &= check_array("sqrt_a_bar", d.sqrt_a_bar, s.sqrt_alpha_bar, T, "sqrt(a_bar)");
    ok &= check_array("sqrt_one_minus_a_bar", d.sqrt_one_minus_a_bar, one_minus, T, "sqrt(1 - a_bar)");
    ok &= check_array("sqrt_a_inv", d.sqrt_a_inv, s.sqrt_alpha_inv, T, "sqrt(1 / a)");
    ok &= check_array("pred_noise_coeff", d.pred_noise_coeff, coeff, T, "(1 - a) / sqrt(1 - a_bar)");
    if (ok) { // q and reverse_q use the arrays: check them only once the arrays are right
        nd_tensor *x0 = ck_randn(ctx, ND_SHAPE(2, 1, 5, 5)), *noise = ck_randn(ctx, ND_SHAPE(2, 1, 5, 5));
        nd_tensor *e = ck_randn(ctx, ND_SHAPE(2, 1, 5, 5)), *z = ck_randn(ctx, ND_SHAPE(2, 1, 5, 5));
        const int t = 60;
        nd_tensor *x_t = ex_ddpm_q(ctx, &d, x0, noise, t);
        nd_tensor *want_q = nd_add(ctx, nd_mul_scalar(ctx, x0, s.sqrt_alpha_bar[t]), nd_mul_scalar(ctx, noise, one_minus[t]));
        if (ck_shape("q's x_t", x_t, want_q->shape) && !ck_close_to(ctx, x_t, want_q, 1e-5)) {
            double a, b;
            ck_fit2(ctx, x_t, x0, noise, &a, &b);
            ck_fail("q at t = %d gives %.4f x_0 %+.4f noise; expected sqrt_a_bar_t = %.4f and sqrt_one_minus_a_bar_t = %.4f",
                    t, a, b, s.sqrt_alpha_bar[t], one_minus[t]);
        }
        ok = ck_close(ctx, "q's x_t", x_t, want_q, 1e-5);
        const int steps[3] = {0, 1, t};
        for (int k = 0; k < 3 && ok; k++) {
            int tt = steps[k];
            nd_tensor *u = nd_mul_scalar(ctx, nd_sub(ctx, want_q, nd_mul_scalar(ctx, e, coeff[tt])), s.sqrt_alpha_inv[tt]);
            nd_tensor *want = tt == 0 ? u : nd_add(ctx, u, nd_mul_scalar(ctx, z, sqrtf(s.beta[tt - 1])));
            nd_tensor *got = ex_ddpm_reverse_q(ctx, &d, want_q, tt, e, z);
            if (ck_shape("reverse_q's result", got, want->shape) && !ck_close_to(ctx, got, want, 1e-5)) {
                nd_tensor *u_only = u, *with_noise = nd_add(ctx, u, nd_mul_scalar(ctx, z, sqrtf(s.beta[tt > 0 ? tt - 1 : 0])));
                if (tt > 0 && ck_close_to(ctx, got, u_only, 1e-5))
                    ck_fail("reverse_q at t = %d added no noise: only t == 0 returns u_t alone", tt);
                if (tt == 0 && ck_close_to(ctx, got, with_noise, 1e-5))
                    ck_fail("reverse_q at t = 0 added noise: the last step returns u_t alone");
            }
            char what[64];
            snprintf(what, sizeof what, "reverse_q at t = %d", tt);
            ok = ck_close(ctx, what, got, want, 1e-5);
        }
    }
    float *arrays[] = {d.beta, d.a, d.a_bar, d.sqrt_a_bar, d.sqrt_one_minus_a_bar, d.sqrt_a_inv, d.pred_noise_coeff};
    for (int k = 0; k < 7; k++) free(arrays[k]);
    free(one_minus), free(coeff);
    nd_schedule_free(&s);
    return ok;
}
