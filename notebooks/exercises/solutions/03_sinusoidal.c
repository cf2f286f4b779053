// Notebook 03: SinusoidalPositionEmbedBlock, the time t / T as a vector of sines and cosines.
//
// A raw scalar t / T is one number the net must learn to read; sines and cosines of t at geometrically
// spaced frequencies give every layer a smooth, distinct code for each step. For dim = 8: half = 4,
// s = ln(10000) / (half - 1), f_k = exp(-k s) for k = 0 .. half - 1 (1, 0.0464, 0.00215, 0.0001), and
// emb = cat(sin(t f), cos(t f)) along the last axis. t is already t / T, in [0, 1).
// The reference solution.
#include <math.h>
#include <stdlib.h>

#include "exercise.h"

// t (B,) -> (B, dim)
nd_tensor *ex_sinusoidal_embed(nd_ctx *ctx, nd_tensor *t, int dim) {
    int half = dim / 2;
    float s = logf(10000.0f) / (float)(half - 1);
    float *f = malloc((size_t)half * sizeof(float));
    for (int k = 0; k < half; k++) f[k] = expf(-(float)k * s);
    nd_tensor *freqs = nd_from_host(ctx, ND_SHAPE(1, half), f); // (1, half)
    free(f);
    nd_tensor *angles = nd_mul(ctx, nd_reshape(ctx, t, ND_SHAPE(-1, 1)), freqs); // (B, half): t[:, None] * f[None, :]
    nd_tensor *parts[2] = {nd_sin(ctx, angles), nd_cos(ctx, angles)};
    return nd_concat(ctx, parts, 2, 1);
}
