// Notebook 04: the guided noise prediction inside sample_w.
//
// One model call on a doubled batch gives both predictions: rows 0..n-1 see the class context (mask of
// ones), rows n..2n-1 the same images with the context dropped (mask of zeros: the all-zero context the
// model learned from label dropout). Then e_t = (1 + w) e_t_keep_c - w e_t_drop_c: w = 0 is plain
// conditional sampling, larger w pushes further from the unconditional prediction.
// The reference solution.
#include "exercise.h"

// x_t (n, C, H, W), t (n), c (n, classes) one-hot -> the guided noise (n, C, H, W)
nd_tensor *ex_guided_eps(nd_ctx *ctx, const nd_model *model, nd_tensor *x_t, nd_tensor *t, nd_tensor *c, float w) {
    int64_t n = x_t->shape.d[0];
    nd_tensor *xs[2] = {x_t, x_t}, *ts[2] = {t, t};
    nd_tensor *mask_keep = nd_full(ctx, c->shape, 1.0f); // the first n rows keep their class
    nd_tensor *mask_drop = nd_full(ctx, c->shape, 0.0f); // the second n rows drop it
    nd_tensor *cs[2] = {nd_mul(ctx, c, mask_keep), nd_mul(ctx, c, mask_drop)};
    nd_tensor *e_t = nd_model_forward(ctx, model, nd_concat(ctx, xs, 2, 0), nd_concat(ctx, ts, 2, 0),
                                      nd_concat(ctx, cs, 2, 0), false); // (2n, C, H, W)
    nd_tensor *e_t_keep_c = nd_slice(ctx, e_t, 0, 0, n), *e_t_drop_c = nd_slice(ctx, e_t, 0, n, 2 * n);
    return nd_sub(ctx, nd_mul_scalar(ctx, e_t_keep_c, 1.0f + w), nd_mul_scalar(ctx, e_t_drop_c, w));
}
