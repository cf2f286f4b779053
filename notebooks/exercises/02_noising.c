// Notebook 02: the noising step q(x_t | x_0) in closed form.
//
// x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise, where abar_t = (1 - beta_0)(1 - beta_1)...(1 - beta_t):
// one jump to any timestep instead of t small steps. Every image of the batch has its own t. The schedule s
// holds the arrays (sample.h: s->alpha_bar, s->sqrt_alpha_bar, s->sqrt_one_minus_alpha_bar, ...).
// Fill in each FIXME, then: nanodiff exercise check 02_noising YOUR_FILE.c
#include <stdlib.h>

#include "exercise.h"

// x0, noise (B, C, H, W); t (B) integer timesteps on the host -> x_t (B, C, H, W)
nd_tensor *ex_q(nd_ctx *ctx, const nd_schedule *s, nd_tensor *x0, nd_tensor *noise, const int *t) {
    int64_t b = x0->shape.d[0];
    float *signal = malloc((size_t)b * sizeof(float)), *noise_level = malloc((size_t)b * sizeof(float));
    for (int64_t i = 0; i < b; i++) {
        signal[i] = FIXME;      // how much of x_0 is left at t[i]
        noise_level[i] = FIXME; // how much noise has been added by t[i]
    }
    // (B, 1, 1, 1) so that each image's coefficient broadcasts over its pixels: sqrt_a_bar[t, None, None, None]
    nd_tensor *a = nd_from_host(ctx, ND_SHAPE(b, 1, 1, 1), signal);
    nd_tensor *c = nd_from_host(ctx, ND_SHAPE(b, 1, 1, 1), noise_level);
    free(signal);
    free(noise_level);
    return nd_add(ctx, nd_mul(ctx, a, x0), nd_mul(ctx, c, noise));
}
