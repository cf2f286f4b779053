// Notebook 06 (assessment), 6.5 Sampling: the guided noise and the w that passes the grader (1 blank + tuning).
//
// sample_w runs the model on a doubled batch (the class kept, the class dropped) and combines the two:
// e_t = (1 + w) e_t_keep_c - w e_t_drop_c. w = 0 is plain conditional sampling; the grader needs digits
// its classifier recognises 95% of the time, which takes some guidance (the course's passing runs used w
// from 1 to 3).
// Fill in each FIXME, then: nanodiff exercise check 06_sampling YOUR_FILE.c
#include "exercise.h"

nd_tensor *ex_cfg_eps(nd_ctx *ctx, nd_tensor *e_t_keep_c, nd_tensor *e_t_drop_c, float w) {
    return nd_sub(ctx, nd_mul_scalar(ctx, e_t_keep_c, FIXME), nd_mul_scalar(ctx, e_t_drop_c, FIXME));
}

const float ex_w = 0.0f; // Change me
