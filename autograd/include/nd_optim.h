// nanodiff optimizers over the flat parameter buffer: Adam/AdamW, learning-rate schedules, gradient
// clipping and norms, non-finite checks and the EMA of the weights. Part of the autograd API: autograd.h
// includes it, so a caller includes autograd.h alone.
#ifndef ND_OPTIM_H
#define ND_OPTIM_H

#include "autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------------------------------------------
// optimizers over the flat parameter buffer

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
    int64_t step; // updates taken so far
    int64_t n;    // floats in each buffer
    nd_device device;
    float *m, *v; // (n,) first and second moments, one flat buffer each
} nd_adam;

void nd_adam_init(nd_adam *opt, const nd_params *params, nd_ctx *ctx, nd_adam_config config);
void nd_adam_free(nd_adam *opt);
// One update of every parameter from the flat gradient buffer.
void nd_adam_step(nd_adam *opt, nd_params *params, nd_ctx *ctx);

// The learning rate of update step (0-based) in a run of total updates: a linear warm-up from lr / warmup to lr
// over the first warmup updates (none when warmup is 0), then lr to the end (cosine false) or a half cosine
// from lr towards 0, which it would reach one update after the last (cosine true; SGDR without restarts,
// Loshchilov & Hutter 2017). diffusers' get_cosine_schedule_with_warmup but for the warm-up, whose first
// update takes lr / warmup instead of 0.
float nd_lr_at(float lr, bool cosine, int64_t warmup, int64_t step, int64_t total);

// Scales the flat gradient so its global L2 norm is at most max_norm (torch.nn.utils.clip_grad_norm_);
// returns the norm before clipping.
float nd_clip_grad_norm(nd_params *params, nd_ctx *ctx, float max_norm);
// The global L2 norm of the flat gradient (torch.linalg.vector_norm over every .grad) or of the weights:
// one reduction, so a NaN or inf anywhere shows in one number.
float nd_grad_norm(const nd_params *params, nd_ctx *ctx);
float nd_weight_norm(const nd_params *params, nd_ctx *ctx);

// The first non-finite value of n host floats, or -1.
int64_t nd_first_nonfinite(const float *host, int64_t n);
// Names the parameter whose values (host, or a device buffer laid out as p: data, grad, a moment) first
// hold a NaN or inf: "'name' (shape) holds nan at flat index i"; false when all are finite (the device
// version then names the largest value instead, for a norm that overflowed).
bool nd_params_find_nonfinite(const nd_params *p, const float *host, char *where, size_t size);
bool nd_params_locate_nonfinite(const nd_params *p, const float *buffer, char *where, size_t size);

// An exponential moving average of the weights (the shadow copy samples are drawn from when enabled).
typedef struct nd_ema {
    float decay;
    int64_t n;
    nd_device device;
    float *shadow; // (n,) one flat buffer laid out as the parameters
} nd_ema;

void nd_ema_init(nd_ema *ema, const nd_params *params, nd_ctx *ctx, float decay); // shadow = params
// The decay of update number `step` (0 for the first): min(decay, (1 + step) / (10 + step)), the warm-up
// diffusers' EMAModel uses, so that a short run's average is not dominated by the random initial weights
// (0.999 without it would still weigh them 0.999^1000 = 37% after 1,000 steps).
float nd_ema_decay_at(float decay, int64_t step);
// shadow = d * shadow + (1 - d) * params with d = nd_ema_decay_at(ema->decay, step)
void nd_ema_update(nd_ema *ema, const nd_params *params, nd_ctx *ctx, int64_t step);
void nd_ema_free(nd_ema *ema);

#ifdef __cplusplus
}
#endif
#endif
