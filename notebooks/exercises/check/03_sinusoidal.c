// Checks ex_sinusoidal_embed against the library's SinusoidalPositionEmbedBlock.
#include "check.h"

static bool check(nd_ctx *ctx) {
    const float times[4] = {0.0f, 0.25f, 0.5f, 149.0f / 150.0f};
    nd_tensor *t = nd_from_host(ctx, ND_SHAPE(4), times);
    nd_tensor *got = ex_sinusoidal_embed(ctx, t, 8);
    nd_tensor *want = nd_sinusoidal_embed(ctx, t, 8);
    if (!ck_shape("the embedding", got, want->shape)) return false;
    if (ck_close_to(ctx, got, want, 1e-5)) return true;
    float *g = ck_host(ctx, got), *w = ck_host(ctx, want);
    // Swapped halves, then the frequency each column of the sine half implies at t = 0.5 (asin(v) / 0.5).
    bool swapped = true;
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) swapped = swapped && fabsf(g[i * 8 + k] - w[i * 8 + 4 + k]) < 1e-5f;
    if (swapped) ck_fail("the cosines come first: the course concatenates sin(t f) then cos(t f)");
    for (int k = 0; k < 4 && !swapped; k++) {
        float f_got = asinf(fmaxf(-1.0f, fminf(1.0f, g[2 * 8 + k]))) / 0.5f, f_want = asinf(w[2 * 8 + k]) / 0.5f;
        if (fabsf(f_got - f_want) > 1e-4f * (1.0f + f_want)) {
            ck_fail("sin column %d implies frequency f_%d = %.6g; expected exp(-%d ln(10000) / (half - 1)) = %.6g", k,
                    k, f_got, k, f_want);
            break;
        }
    }
    free(g), free(w);
    return ck_close(ctx, "the embedding", got, want, 1e-5);
}
