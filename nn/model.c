// Models behind one interface: configuration, creation, forward, and the per-block summary.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dli_models.h"

// Images per chunk of a forward pass that nothing differentiates (sampling, evaluation): enough for the
// convolutions to run at full speed (the course model's sampling batch of 200 runs as fast in chunks of 50),
// few enough that the step arena holds a quarter of the activations.
#define ND_INFERENCE_CHUNK 50

static const char *kind_names[] = {"dli-unet", "dli-unet-v1", "t2i-unet", "res-unet"};

const char *nd_model_kind_name(nd_model_kind kind) { return kind_names[kind]; }

bool nd_model_kind_parse(const char *name, nd_model_kind *kind) {
    for (int k = 0; k < ND_COUNT(kind_names); k++)
        if (strcmp(name, kind_names[k]) == 0) {
            *kind = (nd_model_kind)k;
            return true;
        }
    return false;
}

nd_model_config nd_model_config_default(nd_model_kind kind, int img_ch, int img_size, int c_embed_dim) {
    nd_model_config c = {.kind = kind,
                         .img_ch = img_ch,
                         .img_size = img_size,
                         .T = 150,
                         .c_embed_dim = c_embed_dim,
                         .small_groups = 8,
                         .big_groups = 32,
                         .heads = 4};
    switch (kind) {
    case ND_MODEL_DLI_UNET:
        c.down_chs[0] = 64, c.down_chs[1] = 64, c.down_chs[2] = 128;
        c.t_embed_dim = 8;
        break;
    case ND_MODEL_DLI_UNET_V1:
        c.down_chs[0] = 16, c.down_chs[1] = 32, c.down_chs[2] = 64;
        c.t_embed_dim = 1; // notebook 02; 0 gives notebook 01's untimed model
        c.c_embed_dim = 0;
        break;
    case ND_MODEL_T2I_UNET:
    case ND_MODEL_RES_UNET:
        c.down_chs[0] = 32, c.down_chs[1] = 64, c.down_chs[2] = 64;
        c.t_embed_dim = 32;
        break;
    }
    return c;
}

// True when n divides each of the three level widths; why names the group count that does not.
static bool groups_divide(int groups, const char *name, const int *chs, char *why, size_t size) {
    for (int i = 0; i < 3; i++)
        if (chs[i] % groups != 0) {
            snprintf(why, size,
                     "%s %d does not divide down_chs[%d] = %d (GroupNorm splits the channels into "
                     "equal groups)",
                     name, groups, i, chs[i]);
            return false;
        }
    return true;
}

// A sinusoidal embedding of dim: its frequency table holds 2..512 pairs.
static bool sinusoid_ok(int dim, const char *name, char *why, size_t size) {
    if (dim >= 4 && dim <= 1024 && dim % 2 == 0) return true;
    snprintf(why, size, "%s %d: the sinusoidal time embedding needs an even width from 4 to 1024", name, dim);
    return false;
}

bool nd_model_config_check(const nd_model_config *c, int64_t max_params, char *why, size_t size) {
    if (c->img_size % 4 != 0) {
        snprintf(why, size, "img_size %d: the U-Nets halve it twice, so it must be a multiple of 4", c->img_size);
        return false;
    }
    switch (c->kind) {
    case ND_MODEL_DLI_UNET:
        if (!sinusoid_ok(c->t_embed_dim, "t_embed_dim", why, size) ||
            !groups_divide(c->big_groups, "big_groups", c->down_chs, why, size) ||
            !groups_divide(c->small_groups, "small_groups",
                           (const int[]){c->down_chs[0], c->down_chs[0], c->down_chs[0]}, why, size))
            return false;
        break;
    case ND_MODEL_DLI_UNET_V1: break;
    case ND_MODEL_T2I_UNET:
    case ND_MODEL_RES_UNET:
        if (!sinusoid_ok(c->down_chs[0], "down_chs[0]", why, size) ||
            !groups_divide(c->small_groups, "small_groups", c->down_chs, why, size))
            return false;
        if (c->heads < 1 || c->down_chs[1] % c->heads != 0 || c->down_chs[2] % c->heads != 0) {
            snprintf(why, size, "heads %d must be at least 1 and divide down_chs[1] = %d and down_chs[2] = %d",
                     c->heads, c->down_chs[1], c->down_chs[2]);
            return false;
        }
        break;
    default: snprintf(why, size, "unknown model kind %d", (int)c->kind); return false;
    }
    nd_model m;
    nd_model_init(&m, *c);
    int64_t params = m.params.total;
    nd_model_free(&m);
    if (params > max_params) {
        snprintf(why, size, "the model would have %lld parameters: expected at most %lld", (long long)params,
                 (long long)max_params);
        return false;
    }
    return true;
}

void nd_model_init(nd_model *m, nd_model_config config) {
    *m = (nd_model){.config = config};
    nd_params_init(&m->params);
    nd_params_init(&m->buffers);
    switch (config.kind) {
    case ND_MODEL_DLI_UNET:
        m->impl = nd_xcalloc(1, sizeof(nd_dli_unet));
        nd_dli_unet_init(m->impl, &m->params, &m->config);
        break;
    case ND_MODEL_DLI_UNET_V1:
        m->impl = nd_xcalloc(1, sizeof(nd_dli_unet_v1));
        nd_dli_unet_v1_init(m->impl, &m->params, &m->buffers, &m->config);
        break;
    case ND_MODEL_T2I_UNET:
    case ND_MODEL_RES_UNET:
        m->impl = nd_xcalloc(1, sizeof(nd_t2i_unet));
        nd_t2i_unet_init(m->impl, &m->params, &m->config);
        break;
    }
}

void nd_model_create(nd_model *m, nd_model_config config, nd_ctx *ctx) {
    nd_model_init(m, config);
    nd_params_alloc(&m->params, ctx);
    nd_params_alloc(&m->buffers, ctx);
}

void nd_model_free(nd_model *m) {
    nd_params_free(&m->params);
    nd_params_free(&m->buffers);
    free(m->impl);
    *m = (nd_model){0};
}

static nd_tensor *forward_batch(nd_ctx *ctx, const nd_model *m, nd_tensor *x, nd_tensor *t, nd_tensor *context,
                                bool training) {
    const nd_model_config *c = &m->config;
    switch (c->kind) {
    case ND_MODEL_DLI_UNET: return nd_dli_unet_forward(ctx, m->impl, c, x, t, context);
    case ND_MODEL_DLI_UNET_V1: return nd_dli_unet_v1_forward(ctx, m->impl, c, x, t, training);
    case ND_MODEL_T2I_UNET:
    case ND_MODEL_RES_UNET: return nd_t2i_unet_forward(ctx, m->impl, c, x, t, context);
    }
    return NULL;
}

// Rows [start, start + count) of t (N, ...) as a handle on its storage (view), or NULL for NULL.
static nd_tensor *rows_view(nd_tensor *t, int64_t start, int64_t count, nd_tensor *view) {
    if (!t) return NULL;
    int64_t row = t->numel / t->shape.d[0];
    *view = *t;
    view->data = t->data + start * row;
    view->shape.d[0] = count;
    view->numel = count * row;
    return view;
}

nd_tensor *nd_model_forward(nd_ctx *ctx, const nd_model *m, nd_tensor *x, nd_tensor *t, nd_tensor *context,
                            bool training) {
    const nd_model_config *c = &m->config;
    int64_t batch = x->shape.d[0];
    nd_shape want = nd_shape_from((const int64_t[]){batch, c->img_ch, c->img_size, c->img_size}, 4);
    if (!nd_shape_equal(x->shape, want))
        nd_abort_shapes(ND_HERE, nd_model_kind_name(c->kind), "images must be (B, img_ch, img_size, img_size)",
                        x->shape, want);
    if (ctx->grad_enabled || training || batch <= ND_INFERENCE_CHUNK)
        return forward_batch(ctx, m, x, t, context, training);
    // Nothing to differentiate: equal chunks of at most ND_INFERENCE_CHUNK images, each chunk's intermediates
    // handed back to the step arena before the next. No layer mixes images (group norms are per image, batch
    // norm uses its running statistics outside training), so the output is the whole batch's, and the arena
    // holds one chunk's activations instead of the batch's.
    int64_t chunks = (batch + ND_INFERENCE_CHUNK - 1) / ND_INFERENCE_CHUNK, chunk = (batch + chunks - 1) / chunks;
    nd_tensor *out = nd_empty(ctx, x->shape); // (B, C, S, S): the predicted noise
    int64_t per_image = out->numel / batch;
    for (int64_t start = 0; start < batch; start += chunk) {
        int64_t count = batch - start < chunk ? batch - start : chunk;
        nd_tensor views[3]; // the chunk's x, t and context
        nd_arena_mark mark = nd_arena_get_mark(&ctx->step);
        nd_tensor *y = forward_batch(ctx, m, rows_view(x, start, count, &views[0]),
                                     rows_view(t, start, count, &views[1]), rows_view(context, start, count, &views[2]),
                                     false);
        nd_buffer_copy(ctx, out->data + start * per_image, y->data, y->numel);
        nd_arena_release(&ctx->step, mark);
    }
    return out;
}

// ---------------------------------------------------------------------------------------------------
// summary

typedef struct summary_state {
    FILE *out;
    const nd_params *params;
} summary_state;

static int64_t params_under(const nd_params *p, const char *prefix) {
    size_t len = strlen(prefix);
    int64_t n = 0;
    for (int i = 0; i < p->n; i++)
        if (strncmp(p->items[i].name, prefix, len) == 0 && p->items[i].name[len] == '.') n += p->items[i].tensor->numel;
    return n;
}

static void summary_line(void *user, const char *module, const nd_tensor *out) {
    summary_state *s = user;
    char shape[96];
    fprintf(s->out, "  %-12s %-22s %12lld\n", module, nd_shape_str(out->shape, shape, sizeof shape),
            (long long)params_under(s->params, module));
}

void nd_model_summary(nd_ctx *ctx, const nd_model *m, FILE *out) {
    const nd_model_config *c = &m->config;
    fprintf(out, "%s: %d x %d x %d images, T = %d, context %d, widths %d,%d,%d\n", nd_model_kind_name(c->kind),
            c->img_ch, c->img_size, c->img_size, c->T, c->c_embed_dim, c->down_chs[0], c->down_chs[1], c->down_chs[2]);
    fprintf(out, "  %-12s %-22s %12s\n", "block", "output shape", "parameters");
    summary_state state = {out, &m->params};
    bool grad = nd_ctx_set_grad(ctx, false);
    ctx->trace = summary_line;
    ctx->trace_user = &state;
    nd_tensor *x = nd_zeros(ctx, ND_SHAPE(1, c->img_ch, c->img_size, c->img_size));
    nd_tensor *t = nd_zeros(ctx, ND_SHAPE(1));
    nd_tensor *context = NULL;
    if (c->kind == ND_MODEL_T2I_UNET) context = nd_zeros(ctx, ND_SHAPE(1, 8, c->c_embed_dim));
    nd_model_forward(ctx, m, x, t, context, false);
    ctx->trace = NULL;
    ctx->trace_user = NULL;
    nd_ctx_set_grad(ctx, grad);
    nd_ctx_step_end(ctx);
    fprintf(out, "  total parameters: %lld\n", (long long)m->params.total);
}
