// Notebook 06 (assessment), 6.4 Training: the context mask, the batch's labels, the loss, the drop
// probability (4 blanks).
//
// get_context_mask(c, drop_prob): c_mask = bernoulli(ones_like(c_hot) - drop_prob), returned as c_hot * c_mask.
// The training loop takes the labels from the batch (batch[1] in PyTorch; nd_batch's field here, data.h) and
// get_loss compares the noise with the model's prediction of it (F.mse_loss; nd_mse_loss).
// Fill in each FIXME, then: nanodiff exercise check 06_training YOUR_FILE.c
#include "exercise.h"

const float ex_c_drop_prob = FIXME; // c_drop_prob

nd_tensor *ex_get_context_mask(nd_ctx *ctx, nd_tensor *c_one_hot, float drop_prob) {
    nd_tensor *c_mask = nd_empty(ctx, c_one_hot->shape);
    nd_rand_bernoulli(ctx, c_mask, FIXME);
    return nd_mul(ctx, c_one_hot, c_mask);
}

const int32_t *ex_batch_labels(const nd_batch *batch) { return FIXME; }

// x_0, noise (B, C, H, W); t_host (B) on the host, t (B) the same as a tensor; context (B, classes) masked
nd_tensor *ex_get_loss(nd_ctx *ctx, const nd_model *model, const nd_schedule *s, nd_tensor *x_0, const int *t_host,
                       nd_tensor *t, nd_tensor *noise, nd_tensor *context) {
    nd_tensor *x_noisy = nd_schedule_q(ctx, s, x_0, noise, t_host);
    nd_tensor *noise_pred = nd_model_forward(ctx, model, x_noisy, t, context, true);
    return FIXME;
}
