// The reverse steps of every sampler, and the model's output turned into an (x0, eps) pair (private to
// the sample library: not on any include path above it).
#ifndef ND_SOLVERS_H
#define ND_SOLVERS_H

#include "sample.h"

// The model's estimates at x_t: x0 (n, C, H, W) and eps (n, C, H, W), always consistent with x_t
// (x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps), whatever the model predicts and whether x0 was clipped.
typedef struct nd_denoised {
    nd_tensor *x0, *eps;
} nd_denoised;

typedef struct nd_denoiser {
    nd_ctx *ctx;
    const nd_schedule *s;
    const nd_sample_config *cfg;
    nd_predict_fn predict;
    void *user;
} nd_denoiser;

// One model evaluation at integer timestep t, as (x0, eps), x0 clipped when cfg->clamp_x0.
nd_denoised nd_denoise(const nd_denoiser *d, nd_tensor *x, int t);

// Each step goes from x (n, C, H, W) at timestep t to the timestep t_next < t, or to the clean image when
// t_next is -1 (alpha_bar = 1); p is the model's estimate at (x, t).
nd_tensor *nd_step_ddpm(nd_ctx *ctx, const nd_schedule *s, const nd_sample_config *cfg, nd_tensor *x, nd_denoised p,
                        int t);
nd_tensor *nd_step_ddim(nd_ctx *ctx, const nd_schedule *s, const nd_sample_config *cfg, nd_tensor *x, nd_denoised p,
                        int t, int t_next);
// Euler and Heun need no more of x than its consistent (x0, eps) pair.
nd_tensor *nd_step_euler(nd_ctx *ctx, const nd_schedule *s, nd_denoised p, int t_next);
// Heun evaluates the model once more at t_next, except where its step is Euler's (nd_heun_step_is_euler).
nd_tensor *nd_step_heun(const nd_denoiser *d, nd_denoised p, int t, int t_next);
// Whether Heun's step from t to t_next is Euler's, with no second evaluation: the last step (t_next = -1,
// the clean image) and a step from zero SNR (alpha_bar_t = 0).
bool nd_heun_step_is_euler(const nd_schedule *s, int t, int t_next);
// prev_x0: the x0 estimate at the previously visited timestep t_prev, or NULL for a first-order step;
// stochastic: the SDE variant, which draws fresh noise from ctx's RNG at every step but the last.
nd_tensor *nd_step_dpm_solver_pp(nd_ctx *ctx, const nd_schedule *s, nd_tensor *x, nd_denoised p, nd_tensor *prev_x0,
                                 int t_prev, int t, int t_next, bool stochastic);

#endif
