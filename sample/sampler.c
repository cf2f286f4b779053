// DDPM and DDIM reverse steps with classifier-free guidance in one doubled batch (the course's sample_w).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sample.h"

static const char *sampler_names[] = {"ddpm", "ddpm-posterior", "ddim"};

const char *nd_sampler_name(nd_sampler_kind kind) { return sampler_names[kind]; }

bool nd_sampler_parse(const char *name, nd_sampler_kind *kind) {
    for (int k = 0; k < ND_COUNT(sampler_names); k++)
        if (strcmp(name, sampler_names[k]) == 0) {
            *kind = (nd_sampler_kind)k;
            return true;
        }
    return false;
}

bool nd_start_parse(const char *name, nd_start_kind *kind) {
    static const char *names[] = {"auto", "noise", "matched"};
    for (int k = 0; k < ND_COUNT(names); k++)
        if (strcmp(name, names[k]) == 0) {
            *kind = (nd_start_kind)k;
            return true;
        }
    return false;
}

nd_start_kind nd_start_resolve(nd_start_kind kind, nd_sampler_kind sampler) {
    if (kind != ND_START_AUTO) return kind;
    return sampler == ND_SAMPLER_DDIM ? ND_START_MATCHED : ND_START_NOISE;
}

void nd_start_moments(const nd_schedule *s, const double *data_mean, const double *data_var, int64_t n,
                      float *mean, float *std) {
    double abar = s->alpha_bar[s->T - 1];
    for (int64_t i = 0; i < n; i++) {
        mean[i] = (float)(sqrt(abar) * data_mean[i]);
        std[i] = (float)sqrt(abar * data_var[i] + 1.0 - abar);
    }
}

nd_sample_config nd_sample_defaults(void) {
    return (nd_sample_config){.sampler = ND_SAMPLER_DDPM, .steps = 0, .eta = 0.0f, .guided = true, .w = 2.0f};
}

nd_tensor *nd_schedule_q(nd_ctx *ctx, const nd_schedule *s, nd_tensor *x0, nd_tensor *noise, const int *t_host) {
    int64_t b = x0->shape.d[0];
    float *coef = nd_xmalloc((size_t)(2 * b) * sizeof(float));
    for (int64_t i = 0; i < b; i++) {
        coef[i] = s->sqrt_alpha_bar[t_host[i]];
        coef[b + i] = s->sqrt_one_minus_alpha_bar[t_host[i]];
    }
    nd_tensor *a = nd_from_host(ctx, ND_SHAPE(b, 1, 1, 1), coef);       // sqrt_a_bar[t, None, None, None]
    nd_tensor *c = nd_from_host(ctx, ND_SHAPE(b, 1, 1, 1), coef + b);   // sqrt_one_minus_a_bar[t, ...]
    free(coef);
    return nd_add(ctx, nd_mul(ctx, a, x0), nd_mul(ctx, c, noise));
}

// The timesteps a sampler visits, descending: all T for DDPM, an evenly spaced subset for DDIM.
static int timesteps(const nd_schedule *s, const nd_sample_config *cfg, int *ts) {
    if (cfg->sampler != ND_SAMPLER_DDIM) {
        for (int i = 0; i < s->T; i++) ts[i] = s->T - 1 - i;
        return s->T;
    }
    int steps = cfg->steps < 1 ? 1 : cfg->steps > s->T ? s->T : cfg->steps;
    for (int i = 0; i < steps; i++) // round((T - 1) * (1 - i / (steps - 1))): first T - 1, last 0
        ts[i] = steps == 1 ? s->T - 1 : (int)lround((double)(s->T - 1) * (double)(steps - 1 - i) / (steps - 1));
    return steps;
}

// One reverse step from x at t (to t_prev for DDIM) given the predicted noise e.
static nd_tensor *reverse_step(nd_ctx *ctx, const nd_schedule *s, const nd_sample_config *cfg, nd_tensor *x,
                               nd_tensor *e, int t, int t_prev) {
    if (cfg->sampler == ND_SAMPLER_DDIM) {
        float abar = s->alpha_bar[t], abar_prev = t_prev >= 0 ? s->alpha_bar[t_prev] : 1.0f;
        float sigma = cfg->eta * sqrtf((1.0f - abar_prev) / (1.0f - abar)) * sqrtf(1.0f - abar / abar_prev);
        // x0 = (x - sqrt(1 - abar) e) / sqrt(abar); x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev - sigma^2) e
        nd_tensor *x0 = nd_mul_scalar(ctx, nd_sub(ctx, x, nd_mul_scalar(ctx, e, sqrtf(1.0f - abar))), 1.0f / sqrtf(abar));
        float dir = sqrtf(fmaxf(1.0f - abar_prev - sigma * sigma, 0.0f));
        nd_tensor *next = nd_add(ctx, nd_mul_scalar(ctx, x0, sqrtf(abar_prev)), nd_mul_scalar(ctx, e, dir));
        if (sigma > 0.0f && t_prev >= 0) {
            nd_tensor *z = nd_empty(ctx, x->shape);
            nd_rand_normal(ctx, z, 0.0f, sigma);
            next = nd_add(ctx, next, z);
        }
        return next;
    }
    // u_t = sqrt(1 / a_t) (x_t - (1 - a_t) / sqrt(1 - abar_t) e_t)
    nd_tensor *u = nd_mul_scalar(ctx, nd_sub(ctx, x, nd_mul_scalar(ctx, e, s->pred_noise_coeff[t])), s->sqrt_alpha_inv[t]);
    if (t == 0) return u;
    float sigma = cfg->sampler == ND_SAMPLER_DDPM
                      ? sqrtf(s->beta[t - 1])
                      : sqrtf(s->beta[t] * (1.0f - s->alpha_bar[t - 1]) / (1.0f - s->alpha_bar[t]));
    nd_tensor *z = nd_empty(ctx, x->shape);
    nd_rand_normal(ctx, z, 0.0f, sigma);
    return nd_add(ctx, u, z);
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

void nd_sample_images(nd_ctx *ctx, const nd_model *model, const nd_schedule *s, const nd_sample_config *cfg, int n,
                      const nd_tensor *context, const nd_tensor *null_context, float *out_host,
                      nd_sample_step_fn on_step, void *user) {
    const nd_model_config *mc = &model->config;
    bool grad = nd_ctx_set_grad(ctx, false);
    nd_rng saved_rng = ctx->rng;
    nd_arena_mark pool_mark = nd_arena_get_mark(&ctx->pool);
    ctx->rng = (nd_rng){.seed = cfg->seed, .offset = 0};
    bool guided = cfg->guided && context != NULL;
    nd_tensor *cond = guided ? doubled_context(ctx, context, null_context) : (nd_tensor *)context;
    // x_t lives outside the step arena, which every step resets
    nd_tensor *x = nd_empty_persistent(ctx, ND_SHAPE(n, mc->img_ch, mc->img_size, mc->img_size)); // (n, C, H, W)
    nd_rand_normal(ctx, x, 0.0f, 1.0f);
    if (cfg->start_mean) { // x_T = mean + std * z, pixel by pixel
        nd_shape pixel = ND_SHAPE(1, mc->img_ch, mc->img_size, mc->img_size);
        nd_tensor *mean = nd_from_host(ctx, pixel, cfg->start_mean), *std = nd_from_host(ctx, pixel, cfg->start_std);
        nd_buffer_copy(ctx, x->data, nd_add(ctx, nd_mul(ctx, x, std), mean)->data, x->numel);
        nd_ctx_step_end(ctx);
    }
    if (on_step) on_step(user, -1, s->T, ctx, x);
    int *ts = nd_xmalloc((size_t)s->T * sizeof(int));
    int steps = timesteps(s, cfg, ts);
    for (int i = 0; i < steps; i++) {
        int t = ts[i], t_prev = i + 1 < steps ? ts[i + 1] : -1;
        int batch = guided ? 2 * n : n;
        nd_tensor *t_batch = nd_full(ctx, ND_SHAPE(batch), (float)t);
        nd_tensor *x_in = x;
        if (guided) {
            nd_tensor *pair[2] = {x, x};
            x_in = nd_concat(ctx, pair, 2, 0);
        }
        nd_tensor *e = nd_model_forward(ctx, model, x_in, t_batch, cond, false);
        if (guided) { // e = (1 + w) e_keep_c - w e_drop_c
            nd_tensor *e_cond = nd_slice(ctx, e, 0, 0, n), *e_uncond = nd_slice(ctx, e, 0, n, 2 * n);
            e = nd_sub(ctx, nd_mul_scalar(ctx, e_cond, 1.0f + cfg->w), nd_mul_scalar(ctx, e_uncond, cfg->w));
        }
        nd_tensor *next = reverse_step(ctx, s, cfg, x, e, t, t_prev);
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

nd_tensor *nd_class_context(nd_ctx *ctx, const int32_t *labels, int64_t n, int classes, bool persistent) {
    if (classes <= 0) return NULL;
    float *onehot = nd_xcalloc((size_t)n * (size_t)classes, sizeof(float)); // (n, classes)
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= classes)
            nd_abort_at(ND_HERE, "nd_class_context", "label %d of image %lld: expected 0..%d", labels[i],
                        (long long)i, classes - 1);
        onehot[i * classes + labels[i]] = 1.0f;
    }
    nd_shape shape = ND_SHAPE(n, classes);
    nd_tensor *context = persistent ? nd_empty_persistent(ctx, shape) : nd_empty(ctx, shape);
    nd_copy_from_host(ctx, context, onehot);
    free(onehot);
    return context;
}
