// Notebook 06 (assessment), 6.2 Diffusion: the schedule's terms, q and reverse_q written out (10 blanks).
//
// From beta (T,): a = 1 - beta; a_bar = cumprod(a); sqrt_a_bar = sqrt(a_bar);
// sqrt_one_minus_a_bar = sqrt(1 - a_bar); sqrt_a_inv = sqrt(1 / a); pred_noise_coeff = (1 - a) / sqrt(1 - a_bar).
// q: x_t = sqrt_a_bar_t x_0 + sqrt_one_minus_a_bar_t noise.
// reverse_q: u_t = sqrt_a_inv_t (x_t - pred_noise_coeff_t e_t); at t = 0 return u_t, else add noise z with
// the previous timestep's standard deviation sqrt(beta[t - 1]).
// The reference solution.
#include <math.h>
#include <stdlib.h>

#include "exercise.h"

void ex_ddpm_init(ex_ddpm *d, int T, const float *beta) {
    d->T = T;
    float **arrays[] = {&d->beta, &d->a, &d->a_bar, &d->sqrt_a_bar, &d->sqrt_one_minus_a_bar, &d->sqrt_a_inv,
                        &d->pred_noise_coeff};
    for (int k = 0; k < 7; k++) *arrays[k] = malloc((size_t)T * sizeof(float));
    for (int i = 0; i < T; i++) {
        d->beta[i] = beta[i];
        d->a[i] = 1.0f - beta[i];
        d->a_bar[i] = (i == 0 ? 1.0f : d->a_bar[i - 1]) * d->a[i]; // torch.cumprod(a, dim=0)
        d->sqrt_a_bar[i] = sqrtf(d->a_bar[i]);
        d->sqrt_one_minus_a_bar[i] = sqrtf(1.0f - d->a_bar[i]);
        d->sqrt_a_inv[i] = sqrtf(1.0f / d->a[i]);
        d->pred_noise_coeff[i] = (1.0f - d->a[i]) / sqrtf(1.0f - d->a_bar[i]);
    }
}

// x_0, noise (B, C, H, W), one t for the batch -> x_t
nd_tensor *ex_ddpm_q(nd_ctx *ctx, const ex_ddpm *d, nd_tensor *x_0, nd_tensor *noise, int t) {
    float sqrt_a_bar_t = d->sqrt_a_bar[t], sqrt_one_minus_a_bar_t = d->sqrt_one_minus_a_bar[t];
    return nd_add(ctx, nd_mul_scalar(ctx, x_0, sqrt_a_bar_t), nd_mul_scalar(ctx, noise, sqrt_one_minus_a_bar_t));
}

// x_t, e_t (the predicted noise), z (fresh N(0, 1) noise), all (B, C, H, W) -> x_{t-1}
nd_tensor *ex_ddpm_reverse_q(nd_ctx *ctx, const ex_ddpm *d, nd_tensor *x_t, int t, nd_tensor *e_t, nd_tensor *z) {
    float sqrt_a_inv_t = d->sqrt_a_inv[t], pred_noise_coeff_t = d->pred_noise_coeff[t];
    nd_tensor *u_t = nd_mul_scalar(ctx, nd_sub(ctx, x_t, nd_mul_scalar(ctx, e_t, pred_noise_coeff_t)), sqrt_a_inv_t);
    if (t == 0) return u_t;
    return nd_add(ctx, u_t, nd_mul_scalar(ctx, z, sqrtf(d->beta[t - 1])));
}
