// nanodiff sample: noise schedules, DDPM / DDIM / Euler / Heun / DPM-Solver++ steps, classifier-free guidance,
// sampling pipelines.
#ifndef ND_SAMPLE_H
#define ND_SAMPLE_H

#include "autograd.h"
#include "nn.h"

// The DDPM schedule of the course (utils/ddpm_utils.py): linear betas and every derived coefficient,
// host arrays of length T indexed by the integer timestep t in [0, T).
typedef struct nd_schedule {
    int T;
    float *beta;           // linspace(beta_start, beta_end, T)
    float *alpha;          // 1 - beta
    float *alpha_bar;      // cumprod(alpha)
    float *sqrt_alpha_bar; // sqrt(alpha_bar)
    float *sqrt_one_minus_alpha_bar;
    float *sqrt_alpha_inv;   // sqrt(1 / alpha)
    float *pred_noise_coeff; // (1 - alpha) / sqrt(1 - alpha_bar)
} nd_schedule;

// torch.linspace(beta_start, beta_end, T) and the course's derived terms, in float32 as torch computes them.
void nd_schedule_linear(nd_schedule *s, int T, double beta_start, double beta_end);
// Nichol & Dhariwal (2021): alpha_bar follows cos^2 of t / T (offset 0.008), betas at most 0.999.
void nd_schedule_cosine(nd_schedule *s, int T);
// Lin et al. (2024): rescales any schedule so that alpha_bar_T = 0 (zero terminal SNR: x_T carries no signal,
// and sampling from N(0, I) starts where training ended) keeping alpha_bar_0. The last step is then pure
// noise, which an eps-predicting model cannot denoise: train it with v or x0 prediction.
void nd_schedule_rescale_zero_snr(nd_schedule *s);
void nd_schedule_free(nd_schedule *s);

// A training run's schedule by name: linear (beta_start..beta_end, the course's) or cosine, optionally
// rescaled to zero terminal SNR.
typedef enum nd_schedule_kind { ND_SCHEDULE_LINEAR, ND_SCHEDULE_COSINE } nd_schedule_kind;
bool nd_schedule_kind_parse(const char *name, nd_schedule_kind *kind); // "linear", "cosine"
const char *nd_schedule_kind_name(nd_schedule_kind kind);
void nd_schedule_make(nd_schedule *s, nd_schedule_kind kind, int T, double beta_start, double beta_end, bool zero_snr);

// q(x_t | x_0) of the course's DDPM.q: x_t = sqrt(alpha_bar[t]) x0 + sqrt(1 - alpha_bar[t]) noise, with one
// timestep per image. x0, noise (B, C, H, W); t_host (B) integer steps on the host.
nd_tensor *nd_schedule_q(nd_ctx *ctx, const nd_schedule *s, nd_tensor *x0, nd_tensor *noise, const int *t_host);

// ---------------------------------------------------------------------------------------------------
// samplers

typedef enum nd_sampler_kind {
    ND_SAMPLER_DDPM,              // the course's reverse_q: sigma_t = sqrt(beta[t-1]), no noise at t = 0
    ND_SAMPLER_DDPM_POSTERIOR,    // the lesson's posterior variance: sigma_t^2 = beta_t (1 - abar_{t-1}) / (1 - abar_t)
    ND_SAMPLER_DDIM,              // Song et al.: any number of steps, eta = 0 deterministic, 1 DDPM-like
    ND_SAMPLER_EULER,             // Karras et al. (EDM) Algorithm 1 on sigma_t = sqrt((1 - abar_t) / abar_t)
    ND_SAMPLER_HEUN,              // Karras et al. Algorithm 2 (no churn): 2 model calls a step, 1 for the last
    ND_SAMPLER_DPM_SOLVER_PP,     // Lu et al. DPM-Solver++(2M): multistep, data prediction, first order at both ends
    ND_SAMPLER_DDPM_CLAMPED,      // the lesson's step: ddpm-posterior with x0 always clamped (x0 itself at t = 0)
    ND_SAMPLER_DPM_SOLVER_PP_SDE, // Lu et al.'s SDE-DPM-Solver++(2M): dpm-solver++'s multistep update with fresh noise
    ND_SAMPLER_COUNT
} nd_sampler_kind;

const char *nd_sampler_name(nd_sampler_kind kind);
// "ddpm", "ddpm-posterior", "ddim", "euler", "heun", "dpm-solver++", "ddpm-clamped", "dpm-solver++-sde"
bool nd_sampler_parse(const char *name, nd_sampler_kind *kind);

// Which of the T timesteps a few-step sampler visits (diffusers' timestep_spacing), descending; every
// sampler then steps from the last one to the clean image (alpha_bar = 1):
//   LINSPACE  round(linspace(T - 1, 0, steps)): starts at T - 1, ends at 0
//   LEADING   (steps - 1 - i) * (T / steps): ends at 0, misses the noisiest T / steps - 1 timesteps
//   TRAILING  round(T - i * T / steps) - 1: starts at T - 1, ends near T / steps - 1 (Lin et al. 2023)
typedef enum nd_spacing { ND_SPACING_LINSPACE, ND_SPACING_LEADING, ND_SPACING_TRAILING } nd_spacing;
bool nd_spacing_parse(const char *name, nd_spacing *spacing); // "linspace", "leading", "trailing"
const char *nd_spacing_name(nd_spacing spacing);

// What the network predicts at x_t = sqrt(abar) x0 + sqrt(1 - abar) eps: eps (the course's), x0, or
// v = sqrt(abar) eps - sqrt(1 - abar) x0 (Salimans & Ho 2022).
typedef enum nd_prediction { ND_PREDICT_EPS, ND_PREDICT_X0, ND_PREDICT_V } nd_prediction;
bool nd_prediction_parse(const char *name, nd_prediction *prediction); // "eps", "x0", "v"
const char *nd_prediction_name(nd_prediction prediction);

typedef struct nd_sample_config {
    nd_sampler_kind sampler;
    int steps;          // steps of the few-step samplers (1..T); the DDPM samplers always take T
    nd_spacing spacing; // the few-step samplers' timesteps
    float eta;          // DDIM only
    bool guided;        // classifier-free guidance with a doubled batch; false: one pass with the context as given
    float w;            // guidance weight, course form (1 + w) e_cond - w e_uncond; the scale form s = 1 + w
    // Guidance rescale phi in [0, 1] (Lin et al. 2024, "Common diffusion noise schedules and sample steps are
    // flawed", eq. 15-16; diffusers' guidance_rescale): the guided output g, scaled per image to the standard
    // deviation of the conditional one, phi * g * std(cond) / std(g) + (1 - phi) * g. It undoes the
    // over-exposure strong guidance gives, most of all with a zero-terminal-SNR v model. 0: off (exactly).
    float guidance_rescale;
    // Guidance interval (Kynkaenniemi et al. 2024, "Applying guidance in a limited interval improves sample
    // and distribution quality"): guided only at the timesteps whose noise level sigma_t = sqrt((1 - abar_t) /
    // abar_t) lies in (guidance_sigma_min, guidance_sigma_max]; elsewhere one unguided pass with the context
    // (half the cost). The paper's argument: guidance at high noise narrows the samples toward a few modes, at
    // low noise it is largely unneeded (measured here in the README). Defaults 0 and INFINITY: every step guided.
    float guidance_sigma_min, guidance_sigma_max;
    nd_prediction prediction; // what the model outputs (the checkpoint's choice)
    // Clip every step's x0 estimate to [x0_min, x0_max] (the data's range) and take the eps it implies, so
    // each sampler's update sees a prediction inside the data's range (the lesson's clamp, for every sampler:
    // the DDPM steps are then the posterior mean of q(x_{t-1} | x_t, x0_hat)). ddpm-clamped always clamps.
    bool clamp_x0;
    float x0_min, x0_max;
    uint64_t seed;
    // x_T: N(0, I) when NULL, as the course; else N(start_mean, start_std^2) pixel by pixel (C*H*W host
    // values each), e.g. the moments of q(x_T) from nd_start_moments.
    const float *start_mean, *start_std;
} nd_sample_config;

// Where sampling starts. The course's schedule keeps alpha_bar_T = 0.22 of the signal at t = T - 1, so
// q(x_T) is not N(0, I): its mean is sqrt(alpha_bar_T) times the data's. Stochastic steps (DDPM, DDIM
// with eta > 0) forget a start off that distribution; the deterministic samplers (DDIM, Euler, Heun,
// DPM-Solver++) keep the error (grey, speckled images). MATCHED draws x_T from the Gaussian with q(x_T)'s
// per-pixel mean and variance; AUTO takes MATCHED for the few-step samplers and the course's N(0, I) for
// the DDPM samplers.
typedef enum nd_start_kind { ND_START_AUTO, ND_START_NOISE, ND_START_MATCHED } nd_start_kind;
bool nd_start_parse(const char *name, nd_start_kind *kind); // "auto", "noise", "matched"
// The kind AUTO stands for with this sampler.
nd_start_kind nd_start_resolve(nd_start_kind kind, nd_sampler_kind sampler);
// mean = sqrt(abar_T) data_mean, std = sqrt(abar_T data_var + 1 - abar_T): the per-pixel mean and standard
// deviation of q(x_T) = sqrt(abar_T) x0 + sqrt(1 - abar_T) noise over the data (n pixels).
void nd_start_moments(const nd_schedule *s, const double *data_mean, const double *data_var, int64_t n, float *mean,
                      float *std);

// Steps the sampler takes with a schedule of T timesteps, and the model evaluations they cost (Heun's
// 2 steps - 1; one evaluation is one forward pass of the whole, doubled when guided, batch).
int nd_sample_steps(const nd_sample_config *cfg, int T);
int nd_sample_evaluations(const nd_sample_config *cfg, int T);
// The model evaluations made by the end of step step_index (0-based, of nd_sample_steps) on schedule s: one
// a step; Heun's two a step but one for the last (to the clean image) and for a step from zero SNR (a
// zero-terminal-SNR schedule's t = T - 1), which are Euler's. At the last step, the run's exact count
// (nd_sample_evaluations's, or one fewer where Heun starts at zero SNR).
int nd_sample_evaluations_done(const nd_sample_config *cfg, const nd_schedule *s, int step_index);
// The timesteps the sampler visits (nd_sample_steps of them), descending, into ts.
void nd_sample_timesteps(const nd_sample_config *cfg, int T, int *ts);

nd_sample_config nd_sample_defaults(void); // DDPM, w = 2, guided at every step, eps, linspace, no clipping

// sigma_t = sqrt((1 - abar_t) / abar_t), the noise level of timestep t (0..T-1; -1: the clean image, 0): the
// Karras et al. samplers' variable and the guidance interval's; INFINITY where abar_t = 0 (zero terminal SNR).
double nd_schedule_sigma(const nd_schedule *s, int t);
// Whether cfg guides the model evaluation at timestep t: cfg->guided and sigma_t in its guidance interval.
bool nd_guided_at(const nd_sample_config *cfg, const nd_schedule *s, int t);

// One reverse step from x (B, C, H, W) at timestep t to t_next (-1: the clean image) given the guided model
// output out (B, C, H, W), read as cfg->prediction; noise, where the step draws any, comes from ctx's RNG.
// Every sampler but heun (which evaluates the model again) and the dpm-solver++ pair (which remember the previous
// step).
nd_tensor *nd_sample_step(nd_ctx *ctx, const nd_schedule *s, const nd_sample_config *cfg, nd_tensor *x, nd_tensor *out,
                          int t, int t_next);

// Called with x_T before the first step (step_index -1, t = T), then after every step with the new x (for
// denoising-progression strips, and progress lines: step_index + 1 of nd_sample_steps are done); t is the step
// just taken. The library itself prints nothing.
typedef void (*nd_sample_step_fn)(void *user, int step_index, int t, nd_ctx *ctx, const nd_tensor *x);

// The model's raw output (eps, x0 or v, as cfg->prediction says) at integer timestep t for x (n, C, H, W),
// guidance already applied: what a sampler asks of its model.
typedef nd_tensor *(*nd_predict_fn)(void *user, nd_ctx *ctx, nd_tensor *x, int t);

// Draws the images of shape (n, C, H, W) into out_host with any predictor: nd_sample_images with a
// model, tests with a closed-form one. Each step resets the step arena, so T steps take the memory of one.
void nd_sample_run(nd_ctx *ctx, const nd_schedule *s, const nd_sample_config *cfg, nd_shape shape,
                   nd_predict_fn predict, void *predict_user, float *out_host, nd_sample_step_fn on_step, void *user);

// Classifier-free guidance of a model output pair (n, C, H, W) each: (1 + w) cond - w uncond, rescaled per
// image when rescale > 0 (nd_sample_config.guidance_rescale); in the model's own prediction space.
nd_tensor *nd_guidance_combine(nd_ctx *ctx, nd_tensor *cond, nd_tensor *uncond, float w, float rescale);

// Draws n images (n, C, H, W) into out_host from x_T (cfg's start). context: (n, D) class one-hots for dli-unet
// or (n, S, D) token embeddings for t2i-unet, NULL for an unconditional model; null_context: the
// unconditional half of a guided batch, same shape (NULL: zeros, the course's null context; a negative
// prompt for text). Guided, both halves go through the model in one doubled batch.
void nd_sample_images(nd_ctx *ctx, const nd_model *model, const nd_schedule *s, const nd_sample_config *cfg, int n,
                      const nd_tensor *context, const nd_tensor *null_context, float *out_host,
                      nd_sample_step_fn on_step, void *user);

// The class context of n images, one_hot(labels, classes) (torch.nn.functional.one_hot): (n, classes) on the
// context's device, in the persistent pool when `persistent` (it must outlive the step arena, as a context
// given to nd_sample_images does), else in the step arena. NULL when classes is 0 (an unconditional model).
nd_tensor *nd_class_context(nd_ctx *ctx, const int32_t *labels, int64_t n, int classes, bool persistent);

#endif
