// nanodiff train: optimizers over flat parameter buffers, and the training loops built on them.
#ifndef ND_TRAIN_H
#define ND_TRAIN_H

#include "autograd.h"

// torch.optim.Adam (decoupled = false: weight decay added to the gradient) and torch.optim.AdamW
// (decoupled = true). Defaults as PyTorch's: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0 (Adam)
// or 1e-2 (AdamW).
typedef struct nd_adam_config {
    float lr, beta1, beta2, eps, weight_decay;
    bool decoupled;
} nd_adam_config;

nd_adam_config nd_adam_defaults(void);
nd_adam_config nd_adamw_defaults(void);

typedef struct nd_adam {
    nd_adam_config config;
    int64_t step;  // updates taken so far
    int64_t n;     // floats in each buffer
    nd_device device;
    float *m, *v;  // (n,) first and second moments, one flat buffer each
} nd_adam;

void nd_adam_init(nd_adam *opt, const nd_params *params, nd_ctx *ctx, nd_adam_config config);
void nd_adam_free(nd_adam *opt);
// One update of every parameter from the flat gradient buffer.
void nd_adam_step(nd_adam *opt, nd_params *params, nd_ctx *ctx);

// Scales the flat gradient so its global L2 norm is at most max_norm (torch.nn.utils.clip_grad_norm_);
// returns the norm before clipping.
float nd_clip_grad_norm(nd_params *params, nd_ctx *ctx, float max_norm);

#endif
