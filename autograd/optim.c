// Adam and AdamW over the flat parameter buffer, and global gradient-norm clipping.
#include <math.h>

#include "backend.h"

nd_adam_config nd_adam_defaults(void) {
    return (nd_adam_config){.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.0f};
}

nd_adam_config nd_adamw_defaults(void) {
    nd_adam_config c = nd_adam_defaults();
    c.weight_decay = 1e-2f;
    c.decoupled = true;
    return c;
}

void nd_adam_init(nd_adam *opt, const nd_params *params, nd_ctx *ctx, nd_adam_config config) {
    *opt = (nd_adam){.config = config, .n = params->total, .device = ctx->device};
    size_t bytes = (size_t)(opt->n ? opt->n : 1) * sizeof(float);
    opt->m = ctx->be->alloc(bytes);
    opt->v = ctx->be->alloc(bytes);
    ctx->be->fill(opt->m, 0.0f, opt->n);
    ctx->be->fill(opt->v, 0.0f, opt->n);
}

void nd_adam_free(nd_adam *opt) {
    const nd_backend *be = nd_backend_for(opt->device);
    if (opt->m) be->free(opt->m);
    if (opt->v) be->free(opt->v);
    *opt = (nd_adam){0};
}

void nd_adam_step(nd_adam *opt, nd_params *params, nd_ctx *ctx) {
    const nd_adam_config *c = &opt->config;
    opt->step++;
    // bias corrections in double: for small steps 1 - beta^t loses digits in float
    float bc1 = (float)(1.0 - pow(c->beta1, (double)opt->step));
    float bc2 = (float)(1.0 - pow(c->beta2, (double)opt->step));
    ctx->be->adam_update(params->data, opt->m, opt->v, params->grad, opt->n, c->lr, c->beta1, c->beta2, c->eps,
                         c->weight_decay, c->decoupled, bc1, bc2);
}

float nd_lr_at(float lr, bool cosine, int64_t warmup, int64_t step, int64_t total) {
    if (step < warmup) return lr * (float)(step + 1) / (float)warmup;
    if (!cosine) return lr;
    double span = (double)(total - warmup), done = (double)(step - warmup);
    return (float)(0.5 * lr * (1.0 + cos(3.14159265358979323846 * (span > 0 ? fmin(done / span, 1.0) : 1.0))));
}

// sqrt(sum(x^2)) over n floats of a device buffer.
static float buffer_norm(nd_ctx *ctx, const float *x, int64_t n) {
    float *squares = nd_scratch(ctx, n); // (n,)
    float *total = nd_scratch(ctx, 1);
    ctx->be->unary_forward(squares, x, n, ND_UNARY_SQUARE, 0.0f, 0.0f);
    nd_reduce_plan plan = nd_reduce_plan_make(ND_SHAPE(n), ND_SHAPE(1));
    ctx->be->reduce_sum(total, squares, &plan, 1.0f, false);
    float sum;
    ctx->be->download(&sum, total, sizeof sum);
    return sqrtf(sum);
}

float nd_grad_norm(const nd_params *params, nd_ctx *ctx) { return buffer_norm(ctx, params->grad, params->total); }

float nd_weight_norm(const nd_params *params, nd_ctx *ctx) { return buffer_norm(ctx, params->data, params->total); }

float nd_clip_grad_norm(nd_params *params, nd_ctx *ctx, float max_norm) {
    int64_t n = params->total;
    float norm = nd_grad_norm(params, ctx);
    // torch: clip_coef = max_norm / (norm + 1e-6), applied only when below 1
    float coef = max_norm / (norm + 1e-6f);
    if (coef < 1.0f) ctx->be->unary_forward(params->grad, params->grad, n, ND_UNARY_AFFINE, coef, 0.0f);
    return norm;
}
