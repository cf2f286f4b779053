// The reverse steps: the course's DDPM, the lesson's posterior DDPM, DDIM, Karras et al.'s Euler and Heun,
// DPM-Solver++(2M); and the model's output turned into (x0, eps), clipped when asked.
#include <math.h>

#include "private/solvers.h"

// alpha_bar at timestep t; the clean image (t = -1) has all of its signal.
static double abar_at(const nd_schedule *s, int t) { return t < 0 ? 1.0 : (double)s->alpha_bar[t]; }

// torch.clamp(x, lo, hi) from ops every backend has: relu(x - lo) - relu(x - hi) + lo.
static nd_tensor *clamp(nd_ctx *ctx, nd_tensor *x, float lo, float hi) {
    nd_tensor *above_lo = nd_relu(ctx, nd_sub_scalar(ctx, x, lo)), *above_hi = nd_relu(ctx, nd_sub_scalar(ctx, x, hi));
    return nd_add_scalar(ctx, nd_sub(ctx, above_lo, above_hi), lo);
}

nd_denoised nd_denoise(const nd_denoiser *d, nd_tensor *x, int t) {
    nd_ctx *ctx = d->ctx;
    float abar = d->s->alpha_bar[t], a = sqrtf(abar), b = sqrtf(1.0f - abar);
    nd_tensor *out = d->predict(d->user, ctx, x, t); // (n, C, H, W)
    nd_denoised p;
    switch (d->cfg->prediction) {
    case ND_PREDICT_EPS: // x0 = (x - sqrt(1 - abar) eps) / sqrt(abar)
        p.eps = out;
        p.x0 = nd_mul_scalar(ctx, nd_sub(ctx, x, nd_mul_scalar(ctx, out, b)), 1.0f / a);
        break;
    case ND_PREDICT_X0: // eps = (x - sqrt(abar) x0) / sqrt(1 - abar)
        p.x0 = out;
        p.eps = nd_mul_scalar(ctx, nd_sub(ctx, x, nd_mul_scalar(ctx, out, a)), 1.0f / b);
        break;
    case ND_PREDICT_V: // x0 = sqrt(abar) x - sqrt(1 - abar) v, eps = sqrt(1 - abar) x + sqrt(abar) v
        p.x0 = nd_sub(ctx, nd_mul_scalar(ctx, x, a), nd_mul_scalar(ctx, out, b));
        p.eps = nd_add(ctx, nd_mul_scalar(ctx, x, b), nd_mul_scalar(ctx, out, a));
        break;
    }
    // the eps that the clipped x0 implies keeps the pair consistent for every update; ddpm-clamped always clips
    if (d->cfg->clamp_x0 || d->cfg->sampler == ND_SAMPLER_DDPM_CLAMPED) {
        p.x0 = clamp(ctx, p.x0, d->cfg->x0_min, d->cfg->x0_max);
        p.eps = nd_mul_scalar(ctx, nd_sub(ctx, x, nd_mul_scalar(ctx, p.x0, a)), 1.0f / b);
    }
    return p;
}

nd_tensor *nd_step_ddpm(nd_ctx *ctx, const nd_schedule *s, const nd_sample_config *cfg, nd_tensor *x, nd_denoised p,
                        int t) {
    // u_t = sqrt(1 / a_t) (x_t - (1 - a_t) / sqrt(1 - abar_t) e_t): the posterior mean of x_{t-1} given x_t
    // and the x0 that e_t implies. Its x0 form, sqrt(abar_{t-1}) beta_t / (1 - abar_t) x0 + sqrt(a_t)
    // (1 - abar_{t-1}) / (1 - abar_t) x_t, serves at a zero-SNR step (a_t = 0, x_t pure noise: sqrt(abar_{t-1})
    // x0) and for a clamped x0, whose implied eps divides by sqrt(1 - abar_t), small near t = 0 (the lesson's
    // step; x0 itself at t = 0).
    nd_tensor *u;
    if (s->alpha[t] == 0.0f || cfg->clamp_x0 || cfg->sampler == ND_SAMPLER_DDPM_CLAMPED) {
        if (t == 0) return p.x0; // the weights are 1 and 0 there, exactly
        double abar = s->alpha_bar[t], abar_prev = abar_at(s, t - 1);
        float coef_x0 = (float)(s->beta[t] * sqrt(abar_prev) / (1.0 - abar));
        float coef_xt = (float)(sqrt(s->alpha[t]) * (1.0 - abar_prev) / (1.0 - abar));
        u = nd_add(ctx, nd_mul_scalar(ctx, p.x0, coef_x0), nd_mul_scalar(ctx, x, coef_xt));
    } else {
        u = nd_mul_scalar(ctx, nd_sub(ctx, x, nd_mul_scalar(ctx, p.eps, s->pred_noise_coeff[t])), s->sqrt_alpha_inv[t]);
    }
    if (t == 0) return u;
    float sigma = cfg->sampler == ND_SAMPLER_DDPM
                      ? sqrtf(s->beta[t - 1])
                      : sqrtf(s->beta[t] * (1.0f - s->alpha_bar[t - 1]) / (1.0f - s->alpha_bar[t]));
    nd_tensor *z = nd_empty(ctx, x->shape);
    nd_rand_normal(ctx, z, 0.0f, sigma);
    return nd_add(ctx, u, z);
}

nd_tensor *nd_step_ddim(nd_ctx *ctx, const nd_schedule *s, const nd_sample_config *cfg, nd_tensor *x, nd_denoised p,
                        int t, int t_next) {
    float abar = s->alpha_bar[t], abar_prev = t_next >= 0 ? s->alpha_bar[t_next] : 1.0f;
    float sigma = cfg->eta * sqrtf((1.0f - abar_prev) / (1.0f - abar)) * sqrtf(1.0f - abar / abar_prev);
    // x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev - sigma^2) e + sigma z
    float dir = sqrtf(fmaxf(1.0f - abar_prev - sigma * sigma, 0.0f));
    nd_tensor *next = nd_add(ctx, nd_mul_scalar(ctx, p.x0, sqrtf(abar_prev)), nd_mul_scalar(ctx, p.eps, dir));
    if (sigma > 0.0f && t_next >= 0) {
        nd_tensor *z = nd_empty(ctx, x->shape);
        nd_rand_normal(ctx, z, 0.0f, sigma);
        next = nd_add(ctx, next, z);
    }
    return next;
}

// Karras et al. sample in x~ = x / sqrt(abar) = x0 + sigma eps with sigma = sqrt((1 - abar) / abar), where
// the probability-flow ODE is dx~/dsigma = d = (x~ - D(x~; sigma)) / sigma, D the x0 estimate. For the
// consistent pair (x0, eps) that slope is eps itself, so the steps take d = eps and x~ = D + sigma d rather
// than form x~: x~ - D cancels badly in float32 when sigma is large (sigma_T = 3000 in the cosine
// schedule, where x~ = 3000 x), and Heun's correction multiplies the cancelled digits by the step's length.
// Results go back to the course's x_t = sqrt(abar) x~.
nd_tensor *nd_step_euler(nd_ctx *ctx, const nd_schedule *s, nd_denoised p, int t_next) {
    // x~_next = x~ + (sigma_next - sigma) d = D + sigma_next d, the same from sigma = inf (zero SNR)
    double sigma_next = nd_schedule_sigma(s, t_next), scale = sqrt(abar_at(s, t_next));
    nd_tensor *next_ve = nd_add(ctx, p.x0, nd_mul_scalar(ctx, p.eps, (float)sigma_next)); // (n, C, H, W)
    return nd_mul_scalar(ctx, next_ve, (float)scale);
}

bool nd_heun_step_is_euler(const nd_schedule *s, int t, int t_next) {
    // the last step, to sigma = 0, is Euler's (the correction would divide by sigma_next = 0), and so is a
    // step from sigma = inf, where the correction's weight sigma_next - sigma is infinite
    return t_next < 0 || abar_at(s, t) == 0.0;
}

nd_tensor *nd_step_heun(const nd_denoiser *den, nd_denoised p, int t, int t_next) {
    nd_ctx *ctx = den->ctx;
    const nd_schedule *s = den->s;
    if (nd_heun_step_is_euler(s, t, t_next)) return nd_step_euler(ctx, s, p, t_next);
    double sigma = nd_schedule_sigma(s, t), sigma_next = nd_schedule_sigma(s, t_next);
    float scale = (float)sqrt(abar_at(s, t_next));
    // Euler's point, then the slope there: x~_next = x~ + (sigma_next - sigma) (d + d') / 2
    //                                             = D + sigma_next d + (sigma_next - sigma) (d' - d) / 2
    nd_tensor *euler_ve = nd_add(ctx, p.x0, nd_mul_scalar(ctx, p.eps, (float)sigma_next)); // (n, C, H, W)
    nd_denoised q = nd_denoise(den, nd_mul_scalar(ctx, euler_ve, scale), t_next);
    nd_tensor *correction = nd_mul_scalar(ctx, nd_sub(ctx, q.eps, p.eps), (float)(0.5 * (sigma_next - sigma)));
    return nd_mul_scalar(ctx, nd_add(ctx, euler_ve, correction), scale);
}

// lambda_t = log(alpha_t / sigma_t) = log(sqrt(abar) / sqrt(1 - abar)), half the log-SNR.
static double dpm_lambda(const nd_schedule *s, int t) {
    double abar = abar_at(s, t);
    return 0.5 * (log(abar) - log1p(-abar));
}

nd_tensor *nd_step_dpm_solver_pp(nd_ctx *ctx, const nd_schedule *s, nd_tensor *x, nd_denoised p, nd_tensor *prev_x0,
                                 int t_prev, int t, int t_next, bool stochastic) {
    // to the clean image (sigma = 0, lambda = inf) the first-order update is x0 itself; diffusers'
    // final_sigmas_type "zero" makes the same last step
    if (t_next < 0) return p.x0;
    double abar = abar_at(s, t), abar_next = abar_at(s, t_next);
    double sigma = sqrt(1.0 - abar), sigma_next = sqrt(1.0 - abar_next), alpha_next = sqrt(abar_next);
    double h = dpm_lambda(s, t_next) - dpm_lambda(s, t);
    double phi = expm1(-h); // exp(-h) - 1
    // x_next = (sigma_next / sigma) x - alpha_next (exp(-h) - 1) D
    nd_tensor *data = p.x0; // D: x0 (first order), or D0 + D1 / 2 with D1 = (x0 - x0_prev) / r0 (second order)
    if (prev_x0) {
        double r0 = (dpm_lambda(s, t) - dpm_lambda(s, t_prev)) / h;
        nd_tensor *d1 = nd_mul_scalar(ctx, nd_sub(ctx, p.x0, prev_x0), (float)(1.0 / r0)); // (n, C, H, W)
        data = nd_add(ctx, p.x0, nd_mul_scalar(ctx, d1, 0.5f));
    }
    if (!stochastic)
        return nd_sub(ctx, nd_mul_scalar(ctx, x, (float)(sigma_next / sigma)),
                      nd_mul_scalar(ctx, data, (float)(alpha_next * phi)));
    // SDE-DPM-Solver++ (Lu et al. 2022, the 2M SDE of diffusers' "sde-dpmsolver++", midpoint):
    // x_next = (sigma_next / sigma) e^-h x + alpha_next (1 - e^-2h) D + sigma_next sqrt(1 - e^-2h) z; from zero SNR
    // (h = inf) alpha_next D + sigma_next z, as the DDPM posterior
    double keep = -expm1(-2.0 * h); // 1 - e^-2h
    nd_tensor *mean = nd_add(ctx, nd_mul_scalar(ctx, x, (float)(sigma_next / sigma * exp(-h))),
                             nd_mul_scalar(ctx, data, (float)(alpha_next * keep)));
    nd_tensor *z = nd_empty(ctx, x->shape);
    nd_rand_normal(ctx, z, 0.0f, (float)(sigma_next * sqrt(keep)));
    return nd_add(ctx, mean, z);
}
