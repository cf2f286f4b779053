// The sampling loop: timesteps, x_T, one reverse step after another, and classifier-free guidance in one
// doubled batch (the course's sample_w).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sample.h"
#include "private/solvers.h"

static const char *sampler_names[ND_SAMPLER_COUNT] = {"ddpm", "ddpm-posterior", "ddim",         "euler",
                                                      "heun", "dpm-solver++",   "ddpm-clamped", "dpm-solver++-sde"};
static const char *spacing_names[] = {"linspace", "leading", "trailing"};
static const char *prediction_names[] = {"eps", "x0", "v"};

// The index of name in names[count], or -1.
static int find_name(const char *name, const char *const *names, int count) {
    for (int k = 0; k < count; k++)
        if (strcmp(name, names[k]) == 0) return k;
    return -1;
}

const char *nd_sampler_name(nd_sampler_kind kind) { return sampler_names[kind]; }
const char *nd_spacing_name(nd_spacing spacing) { return spacing_names[spacing]; }
const char *nd_prediction_name(nd_prediction prediction) { return prediction_names[prediction]; }

bool nd_sampler_parse(const char *name, nd_sampler_kind *kind) {
    int k = find_name(name, sampler_names, ND_SAMPLER_COUNT);
    if (k >= 0) *kind = (nd_sampler_kind)k;
    return k >= 0;
}

bool nd_spacing_parse(const char *name, nd_spacing *spacing) {
    int k = find_name(name, spacing_names, ND_COUNT(spacing_names));
    if (k >= 0) *spacing = (nd_spacing)k;
    return k >= 0;
}

bool nd_prediction_parse(const char *name, nd_prediction *prediction) {
    int k = find_name(name, prediction_names, ND_COUNT(prediction_names));
    if (k >= 0) *prediction = (nd_prediction)k;
    return k >= 0;
}

bool nd_start_parse(const char *name, nd_start_kind *kind) {
    static const char *names[] = {"auto", "noise", "matched"};
    int k = find_name(name, names, ND_COUNT(names));
    if (k >= 0) *kind = (nd_start_kind)k;
    return k >= 0;
}

// The DDPM samplers visit all T timesteps; the others are few-step samplers.
static bool takes_every_step(nd_sampler_kind sampler) {
    return sampler == ND_SAMPLER_DDPM || sampler == ND_SAMPLER_DDPM_POSTERIOR || sampler == ND_SAMPLER_DDPM_CLAMPED;
}

nd_start_kind nd_start_resolve(nd_start_kind kind, nd_sampler_kind sampler) {
    if (kind != ND_START_AUTO) return kind;
    return takes_every_step(sampler) ? ND_START_NOISE : ND_START_MATCHED;
}

void nd_start_moments(const nd_schedule *s, const double *data_mean, const double *data_var, int64_t n, float *mean,
                      float *std) {
    double abar = s->alpha_bar[s->T - 1];
    for (int64_t i = 0; i < n; i++) {
        mean[i] = (float)(sqrt(abar) * data_mean[i]);
        std[i] = (float)sqrt(abar * data_var[i] + 1.0 - abar);
    }
}

nd_sample_config nd_sample_defaults(void) {
    return (nd_sample_config){.sampler = ND_SAMPLER_DDPM,
                              .steps = 0,
                              .spacing = ND_SPACING_LINSPACE,
                              .eta = 0.0f,
                              .guided = true,
                              .w = 2.0f,
                              .guidance_sigma_min = 0.0f,
                              .guidance_sigma_max = INFINITY,
                              .prediction = ND_PREDICT_EPS,
                              .x0_min = -1.0f,
                              .x0_max = 1.0f};
}

double nd_schedule_sigma(const nd_schedule *s, int t) {
    double abar = t < 0 ? 1.0 : (double)s->alpha_bar[t];
    return abar > 0.0 ? sqrt((1.0 - abar) / abar) : INFINITY;
}

bool nd_guided_at(const nd_sample_config *cfg, const nd_schedule *s, int t) {
    float sigma = (float)nd_schedule_sigma(s, t); // in the precision of the interval's bounds
    return cfg->guided && sigma > cfg->guidance_sigma_min && sigma <= cfg->guidance_sigma_max;
}

nd_tensor *nd_schedule_q(nd_ctx *ctx, const nd_schedule *s, nd_tensor *x0, nd_tensor *noise, const int *t_host) {
    int64_t b = x0->shape.d[0];
    float *coef = nd_xmalloc((size_t)(2 * b) * sizeof(float));
    for (int64_t i = 0; i < b; i++) {
        coef[i] = s->sqrt_alpha_bar[t_host[i]];
        coef[b + i] = s->sqrt_one_minus_alpha_bar[t_host[i]];
    }
    nd_tensor *a = nd_from_host(ctx, ND_SHAPE(b, 1, 1, 1), coef);     // sqrt_a_bar[t, None, None, None]
    nd_tensor *c = nd_from_host(ctx, ND_SHAPE(b, 1, 1, 1), coef + b); // sqrt_one_minus_a_bar[t, ...]
    free(coef);
    return nd_add(ctx, nd_mul(ctx, a, x0), nd_mul(ctx, c, noise));
}

int nd_sample_steps(const nd_sample_config *cfg, int T) {
    if (takes_every_step(cfg->sampler)) return T;
    return cfg->steps < 1 ? 1 : cfg->steps > T ? T : cfg->steps;
}

int nd_sample_evaluations(const nd_sample_config *cfg, int T) {
    int steps = nd_sample_steps(cfg, T);
    return cfg->sampler == ND_SAMPLER_HEUN ? 2 * steps - 1 : steps;
}

int nd_sample_evaluations_done(const nd_sample_config *cfg, const nd_schedule *s, int step_index) {
    int steps = nd_sample_steps(cfg, s->T);
    if (step_index >= steps) step_index = steps - 1;
    if (cfg->sampler != ND_SAMPLER_HEUN) return step_index + 1;
    int *ts = nd_xmalloc((size_t)s->T * sizeof(int));
    nd_sample_timesteps(cfg, s->T, ts);
    int calls = 0;
    for (int i = 0; i <= step_index; i++)
        calls += nd_heun_step_is_euler(s, ts[i], i + 1 < steps ? ts[i + 1] : -1) ? 1 : 2;
    free(ts);
    return calls;
}

void nd_sample_timesteps(const nd_sample_config *cfg, int T, int *ts) {
    int steps = nd_sample_steps(cfg, T);
    if (takes_every_step(cfg->sampler) || steps == T) {
        for (int i = 0; i < T; i++) ts[i] = T - 1 - i;
        return;
    }
    for (int i = 0; i < steps; i++) {
        switch (cfg->spacing) {
        case ND_SPACING_LINSPACE: // round((T - 1) (steps - 1 - i) / (steps - 1)), halves away from zero as DDIM
            // always rounded (diffusers' numpy rounds them to even: T = 150 with 3 steps visits 75, not 74)
            ts[i] = steps == 1 ? T - 1 : (int)lround((double)(T - 1) * (double)(steps - 1 - i) / (steps - 1));
            break;
        case ND_SPACING_LEADING: ts[i] = (steps - 1 - i) * (T / steps); break;
        case ND_SPACING_TRAILING: // numpy's round, halves to even (rint in the default rounding mode)
            ts[i] = (int)rint((double)T - (double)i * T / steps) - 1;
            break;
        }
    }
}

// nd_sample_step's model: the output it was given, whatever x and t.
static nd_tensor *given_output(void *user, nd_ctx *ctx, nd_tensor *x, int t) {
    (void)ctx, (void)x, (void)t;
    return user;
}

nd_tensor *nd_sample_step(nd_ctx *ctx, const nd_schedule *s, const nd_sample_config *cfg, nd_tensor *x, nd_tensor *out,
                          int t, int t_next) {
    nd_denoiser den = {.ctx = ctx, .s = s, .cfg = cfg, .predict = given_output, .user = out};
    nd_denoised p = nd_denoise(&den, x, t);
    switch (cfg->sampler) {
    case ND_SAMPLER_DDPM:
    case ND_SAMPLER_DDPM_POSTERIOR:
    case ND_SAMPLER_DDPM_CLAMPED: return nd_step_ddpm(ctx, s, cfg, x, p, t);
    case ND_SAMPLER_DDIM: return nd_step_ddim(ctx, s, cfg, x, p, t, t_next);
    case ND_SAMPLER_EULER: return nd_step_euler(ctx, s, p, t_next);
    case ND_SAMPLER_HEUN:
    case ND_SAMPLER_DPM_SOLVER_PP:
    case ND_SAMPLER_DPM_SOLVER_PP_SDE:
    case ND_SAMPLER_COUNT: break;
    }
    nd_abort_at(ND_HERE, "nd_sample_step",
                "sampler %s needs nd_sample_run (it evaluates the model again or "
                "remembers steps)",
                nd_sampler_name(cfg->sampler));
}

// The guided batch's context: [context; null] with zeros for a missing null context.
static nd_tensor *doubled_context(nd_ctx *ctx, const nd_tensor *context, const nd_tensor *null_context) {
    nd_shape shape = context->shape;
    shape.d[0] *= 2;
    nd_tensor *both = nd_empty_persistent(ctx, shape);
    nd_buffer_copy(ctx, both->data, context->data, context->numel);
    if (null_context)
        nd_buffer_copy(ctx, both->data + context->numel, null_context->data, context->numel);
    else
        nd_buffer_fill(ctx, both->data + context->numel, 0.0f, context->numel);
    return both;
}

void nd_sample_run(nd_ctx *ctx, const nd_schedule *s, const nd_sample_config *cfg, nd_shape shape,
                   nd_predict_fn predict, void *predict_user, float *out_host, nd_sample_step_fn on_step, void *user) {
    bool grad = nd_ctx_set_grad(ctx, false);
    nd_rng saved_rng = ctx->rng;
    nd_arena_mark pool_mark = nd_arena_get_mark(&ctx->pool);
    ctx->rng = (nd_rng){.seed = cfg->seed, .offset = 0};
    // x_t lives outside the step arena, which every step resets
    nd_tensor *x = nd_empty_persistent(ctx, shape); // (n, C, H, W)
    nd_rand_normal(ctx, x, 0.0f, 1.0f);
    if (cfg->start_mean) { // x_T = mean + std * z, pixel by pixel
        nd_shape pixel = ND_SHAPE(1, shape.d[1], shape.d[2], shape.d[3]);
        nd_tensor *mean = nd_from_host(ctx, pixel, cfg->start_mean), *std = nd_from_host(ctx, pixel, cfg->start_std);
        nd_buffer_copy(ctx, x->data, nd_add(ctx, nd_mul(ctx, x, std), mean)->data, x->numel);
        nd_ctx_step_end(ctx);
    }
    if (on_step) on_step(user, -1, s->T, ctx, x);
    // DPM-Solver++'s memory: the previous step's x0 estimate
    bool dpm = cfg->sampler == ND_SAMPLER_DPM_SOLVER_PP || cfg->sampler == ND_SAMPLER_DPM_SOLVER_PP_SDE;
    nd_tensor *prev_x0 = dpm ? nd_empty_persistent(ctx, shape) : NULL;
    nd_denoiser den = {.ctx = ctx, .s = s, .cfg = cfg, .predict = predict, .user = predict_user};
    int *ts = nd_xmalloc((size_t)s->T * sizeof(int));
    int steps = nd_sample_steps(cfg, s->T);
    nd_sample_timesteps(cfg, s->T, ts);
    for (int i = 0; i < steps; i++) {
        int t = ts[i], t_next = i + 1 < steps ? ts[i + 1] : -1;
        nd_denoised p = nd_denoise(&den, x, t);
        nd_tensor *next = NULL; // (n, C, H, W)
        switch (cfg->sampler) {
        case ND_SAMPLER_DDPM:
        case ND_SAMPLER_DDPM_POSTERIOR:
        case ND_SAMPLER_DDPM_CLAMPED: next = nd_step_ddpm(ctx, s, cfg, x, p, t); break;
        case ND_SAMPLER_DDIM: next = nd_step_ddim(ctx, s, cfg, x, p, t, t_next); break;
        case ND_SAMPLER_EULER: next = nd_step_euler(ctx, s, p, t_next); break;
        case ND_SAMPLER_HEUN: next = nd_step_heun(&den, p, t, t_next); break;
        case ND_SAMPLER_DPM_SOLVER_PP: // 2M: first order at the first step, which has no previous estimate
        case ND_SAMPLER_DPM_SOLVER_PP_SDE:
            next = nd_step_dpm_solver_pp(ctx, s, x, p, i > 0 ? prev_x0 : NULL, i > 0 ? ts[i - 1] : -1, t, t_next,
                                         cfg->sampler == ND_SAMPLER_DPM_SOLVER_PP_SDE);
            nd_buffer_copy(ctx, prev_x0->data, p.x0->data, x->numel);
            break;
        case ND_SAMPLER_COUNT: break;
        }
        nd_buffer_copy(ctx, x->data, next->data, x->numel);
        nd_ctx_step_end(ctx);
        if (on_step) on_step(user, i, t, ctx, x);
    }
    nd_copy_to_host(ctx, x, out_host);
    free(ts);
    nd_arena_release(&ctx->pool, pool_mark);
    ctx->rng = saved_rng;
    nd_ctx_set_grad(ctx, grad);
}

// The model with classifier-free guidance: both halves of the guided batch in one forward pass.
typedef struct guided_model {
    const nd_model *model;
    const nd_schedule *s;
    const nd_sample_config *cfg;
    nd_tensor *context; // (n, ...) as given, or NULL
    nd_tensor *cond;    // (2n, ...) [context; null] when guided, else the context
    bool guided;        // at some step: the guidance interval then says at which
    int n;
} guided_model;

// Per image, the standard deviation over (C, H, W) of x (n, C, H, W): (n, 1, 1, 1), the population form (a
// ratio of two is the same as of the unbiased ones).
static nd_tensor *image_std(nd_ctx *ctx, nd_tensor *x) {
    const int axes[3] = {1, 2, 3};
    nd_tensor *centered = nd_sub(ctx, x, nd_mean(ctx, x, axes, 3, true));
    return nd_sqrt(ctx, nd_mean(ctx, nd_square(ctx, centered), axes, 3, true));
}

nd_tensor *nd_guidance_combine(nd_ctx *ctx, nd_tensor *cond, nd_tensor *uncond, float w, float rescale) {
    // g = (1 + w) cond - w uncond: affine with weights summing to 1, so the same in eps, x0 or v
    nd_tensor *g = nd_sub(ctx, nd_mul_scalar(ctx, cond, 1.0f + w), nd_mul_scalar(ctx, uncond, w));
    if (rescale == 0.0f) return g;
    // factor = phi std(cond) / std(g) + 1 - phi; the 1e-12 keeps an image whose g is constant from 0 / 0
    nd_tensor *ratio = nd_div(ctx, image_std(ctx, cond), nd_add_scalar(ctx, image_std(ctx, g), 1e-12f));
    nd_tensor *factor = nd_add_scalar(ctx, nd_mul_scalar(ctx, ratio, rescale), 1.0f - rescale);
    return nd_mul(ctx, g, factor);
}

static nd_tensor *guided_predict(void *user, nd_ctx *ctx, nd_tensor *x, int t) {
    const guided_model *g = user;
    if (!g->guided || !nd_guided_at(g->cfg, g->s, t)) // one pass with the context as given
        return nd_model_forward(ctx, g->model, x, nd_full(ctx, ND_SHAPE(g->n), (float)t), g->context, false);
    nd_tensor *pair[2] = {x, x};
    nd_tensor *x_in = nd_concat(ctx, pair, 2, 0); // (2n, C, H, W)
    nd_tensor *e = nd_model_forward(ctx, g->model, x_in, nd_full(ctx, ND_SHAPE(2 * g->n), (float)t), g->cond, false);
    nd_tensor *e_cond = nd_slice(ctx, e, 0, 0, g->n), *e_uncond = nd_slice(ctx, e, 0, g->n, 2 * g->n);
    return nd_guidance_combine(ctx, e_cond, e_uncond, g->cfg->w, g->cfg->guidance_rescale);
}

void nd_sample_images(nd_ctx *ctx, const nd_model *model, const nd_schedule *s, const nd_sample_config *cfg, int n,
                      const nd_tensor *context, const nd_tensor *null_context, float *out_host,
                      nd_sample_step_fn on_step, void *user) {
    const nd_model_config *mc = &model->config;
    nd_arena_mark pool_mark = nd_arena_get_mark(&ctx->pool);
    guided_model g = {.model = model,
                      .s = s,
                      .cfg = cfg,
                      .context = (nd_tensor *)context,
                      .guided = cfg->guided && context != NULL,
                      .n = n};
    g.cond = g.guided ? doubled_context(ctx, context, null_context) : (nd_tensor *)context;
    nd_sample_run(ctx, s, cfg, ND_SHAPE(n, mc->img_ch, mc->img_size, mc->img_size), guided_predict, &g, out_host,
                  on_step, user);
    nd_arena_release(&ctx->pool, pool_mark);
}

nd_tensor *nd_class_context(nd_ctx *ctx, const int32_t *labels, int64_t n, int classes, bool persistent) {
    if (classes <= 0) return NULL;
    float *onehot = nd_xcalloc((size_t)n * (size_t)classes, sizeof(float)); // (n, classes)
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= classes)
            nd_abort_at(ND_HERE, "nd_class_context", "label %d of image %lld: expected 0..%d", labels[i], (long long)i,
                        classes - 1);
        onehot[i * classes + labels[i]] = 1.0f;
    }
    nd_shape shape = ND_SHAPE(n, classes);
    nd_tensor *context = persistent ? nd_empty_persistent(ctx, shape) : nd_empty(ctx, shape);
    nd_copy_from_host(ctx, context, onehot);
    free(onehot);
    return context;
}
