// nanodiff sample: noise schedules, DDPM / DDIM steps, classifier-free guidance, sampling pipelines.
#ifndef ND_SAMPLE_H
#define ND_SAMPLE_H

#include "autograd.h"
#include "nn.h"

// The DDPM schedule of the course (utils/ddpm_utils.py): linear betas and every derived coefficient,
// host arrays of length T indexed by the integer timestep t in [0, T).
typedef struct nd_schedule {
    int T;
    float *beta;                 // linspace(beta_start, beta_end, T)
    float *alpha;                // 1 - beta
    float *alpha_bar;            // cumprod(alpha)
    float *sqrt_alpha_bar;       // sqrt(alpha_bar)
    float *sqrt_one_minus_alpha_bar;
    float *sqrt_alpha_inv;       // sqrt(1 / alpha)
    float *pred_noise_coeff;     // (1 - alpha) / sqrt(1 - alpha_bar)
} nd_schedule;

// torch.linspace(beta_start, beta_end, T) and the course's derived terms, in float32 as torch computes them.
void nd_schedule_linear(nd_schedule *s, int T, double beta_start, double beta_end);
void nd_schedule_free(nd_schedule *s);

// q(x_t | x_0) of the course's DDPM.q: x_t = sqrt(alpha_bar[t]) x0 + sqrt(1 - alpha_bar[t]) noise, with one
// timestep per image. x0, noise (B, C, H, W); t_host (B) integer steps on the host.
nd_tensor *nd_schedule_q(nd_ctx *ctx, const nd_schedule *s, nd_tensor *x0, nd_tensor *noise, const int *t_host);

// ---------------------------------------------------------------------------------------------------
// samplers

typedef enum nd_sampler_kind {
    ND_SAMPLER_DDPM,           // the course's reverse_q: sigma_t = sqrt(beta[t-1]), no noise at t = 0
    ND_SAMPLER_DDPM_POSTERIOR, // the lesson's posterior variance: sigma_t^2 = beta_t (1 - abar_{t-1}) / (1 - abar_t)
    ND_SAMPLER_DDIM,           // Song et al.: any number of steps, eta = 0 deterministic, 1 DDPM-like
} nd_sampler_kind;

const char *nd_sampler_name(nd_sampler_kind kind);
bool nd_sampler_parse(const char *name, nd_sampler_kind *kind); // "ddpm", "ddpm-posterior", "ddim"

typedef struct nd_sample_config {
    nd_sampler_kind sampler;
    int steps;    // DDIM's number of steps (1..T); the DDPM samplers always take T
    float eta;    // DDIM only
    bool guided;  // classifier-free guidance with a doubled batch; false: one pass with the context as given
    float w;      // guidance weight, course form (1 + w) e_cond - w e_uncond; the scale form s = 1 + w
    uint64_t seed;
    // x_T: N(0, I) when NULL, as the course; else N(start_mean, start_std^2) pixel by pixel (C*H*W host
    // values each), e.g. the moments of q(x_T) from nd_start_moments.
    const float *start_mean, *start_std;
} nd_sample_config;

// Where sampling starts. The course's schedule keeps alpha_bar_T = 0.22 of the signal at t = T - 1, so
// q(x_T) is not N(0, I): its mean is sqrt(alpha_bar_T) times the data's. Stochastic steps (DDPM, DDIM
// with eta > 0) forget a start off that distribution; the deterministic DDIM path keeps the error (grey,
// speckled images). MATCHED draws x_T from the Gaussian with q(x_T)'s per-pixel mean and variance; AUTO
// takes MATCHED for DDIM and the course's N(0, I) for the DDPM samplers.
typedef enum nd_start_kind { ND_START_AUTO, ND_START_NOISE, ND_START_MATCHED } nd_start_kind;
bool nd_start_parse(const char *name, nd_start_kind *kind); // "auto", "noise", "matched"
// The kind AUTO stands for with this sampler.
nd_start_kind nd_start_resolve(nd_start_kind kind, nd_sampler_kind sampler);
// mean = sqrt(abar_T) data_mean, std = sqrt(abar_T data_var + 1 - abar_T): the per-pixel mean and standard
// deviation of q(x_T) = sqrt(abar_T) x0 + sqrt(1 - abar_T) noise over the data (n pixels).
void nd_start_moments(const nd_schedule *s, const double *data_mean, const double *data_var, int64_t n,
                      float *mean, float *std);

nd_sample_config nd_sample_defaults(void); // DDPM, w = 2, guided

// Called with x_T before the first step (step_index -1, t = T), then after every step with the new x (for
// denoising-progression strips); t is the step just taken.
typedef void (*nd_sample_step_fn)(void *user, int step_index, int t, nd_ctx *ctx, const nd_tensor *x);

// Draws n images (n, C, H, W) into out_host from x_T (cfg's start). context: (n, D) class one-hots for dli-unet
// or (n, S, D) token embeddings for t2i-unet, NULL for an unconditional model; null_context: the
// unconditional half of a guided batch, same shape (NULL: zeros, the course's null context; a negative
// prompt for text). Each step resets the step arena, so T steps take the memory of one.
void nd_sample_images(nd_ctx *ctx, const nd_model *model, const nd_schedule *s, const nd_sample_config *cfg, int n,
                      const nd_tensor *context, const nd_tensor *null_context, float *out_host,
                      nd_sample_step_fn on_step, void *user);

// The class context of n images, one_hot(labels, classes) (torch.nn.functional.one_hot): (n, classes) on the
// context's device, in the persistent pool when `persistent` (it must outlive the step arena, as a context
// given to nd_sample_images does), else in the step arena. NULL when classes is 0 (an unconditional model).
nd_tensor *nd_class_context(nd_ctx *ctx, const int32_t *labels, int64_t n, int classes, bool persistent);

#endif
