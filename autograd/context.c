// The context: arenas, tape, grad mode, RNG; tensor creation and transfer; recording and backward.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elementwise_math.h"
#include "internal.h"

#define ND_META_BYTES_PER_DATA_BYTE 16 // handles are small next to the data they describe

void nd_ctx_init(nd_ctx *ctx, nd_device device, size_t step_bytes, uint64_t seed) {
    *ctx = (nd_ctx){0};
    ctx->device = device;
    ctx->be = nd_backend_for(device);
    if (!ctx->be) {
        fprintf(stderr, "nanodiff: this build has no CUDA backend (configure with -DNANODIFF_CUDA=ON)\n");
        abort();
    }
    size_t meta_bytes = step_bytes / ND_META_BYTES_PER_DATA_BYTE + 65536;
    nd_arena_init(&ctx->step, device, step_bytes, meta_bytes);
    nd_arena_init(&ctx->pool, device, 0, 65536);
    ctx->grad_enabled = true;
    ctx->rng.seed = seed;
}

void nd_ctx_free(nd_ctx *ctx) {
    nd_arena_free(&ctx->step);
    nd_arena_free(&ctx->pool);
    free(ctx->tape.nodes);
    free(ctx->profile); // profiling begun and never reported
    *ctx = (nd_ctx){0};
}

void nd_ctx_step_end(nd_ctx *ctx) {
    if (ctx->profile) nd_profile_charge(ctx, "(outside ops: optimizer, data, host)", 0, NULL, 0.0);
    ctx->tape.n = 0;
    nd_arena_reset(&ctx->step);
}

bool nd_ctx_set_grad(nd_ctx *ctx, bool enabled) {
    bool previous = ctx->grad_enabled;
    ctx->grad_enabled = enabled;
    return previous;
}

size_t nd_ctx_peak_bytes(const nd_ctx *ctx) {
    return ctx->step.data_peak + ctx->step.meta_peak + ctx->be->workspace_bytes();
}

// ---------------------------------------------------------------------------------------------------
// tensors

nd_tensor *nd_empty_in(nd_ctx *ctx, nd_arena *arena, nd_shape shape) {
    (void)ctx;
    nd_tensor *t = nd_arena_alloc_meta(arena, sizeof *t);
    *t = (nd_tensor){0};
    t->shape = shape;
    t->numel = nd_shape_numel(shape);
    t->device = arena->device;
    t->data = nd_arena_alloc_data(arena, (size_t)t->numel * sizeof(float));
    return t;
}

nd_tensor *nd_empty(nd_ctx *ctx, nd_shape shape) { return nd_empty_in(ctx, &ctx->step, shape); }
nd_tensor *nd_empty_persistent(nd_ctx *ctx, nd_shape shape) { return nd_empty_in(ctx, &ctx->pool, shape); }

nd_tensor *nd_full(nd_ctx *ctx, nd_shape shape, float value) {
    nd_tensor *t = nd_empty(ctx, shape);
    ctx->be->fill(t->data, value, t->numel);
    return t;
}

nd_tensor *nd_zeros(nd_ctx *ctx, nd_shape shape) { return nd_full(ctx, shape, 0.0f); }

nd_tensor *nd_from_host(nd_ctx *ctx, nd_shape shape, const float *host) {
    nd_tensor *t = nd_empty(ctx, shape);
    nd_copy_from_host(ctx, t, host);
    return t;
}

void nd_requires_grad(nd_ctx *ctx, nd_tensor *t, bool persistent) {
    nd_arena *arena = persistent ? &ctx->pool : &ctx->step;
    t->grad = nd_arena_alloc_data(arena, (size_t)t->numel * sizeof(float));
    ctx->be->fill(t->grad, 0.0f, t->numel);
    t->requires_grad = true;
}

void nd_copy_from_host(nd_ctx *ctx, nd_tensor *t, const float *host) {
    ctx->be->upload(t->data, host, (size_t)t->numel * sizeof(float));
}

void nd_copy_to_host(nd_ctx *ctx, const nd_tensor *t, float *host) {
    ctx->be->download(host, t->data, (size_t)t->numel * sizeof(float));
}

void nd_grad_to_host(nd_ctx *ctx, const nd_tensor *t, float *host) {
    if (!t->grad) {
        memset(host, 0, (size_t)t->numel * sizeof(float));
        return;
    }
    ctx->be->download(host, t->grad, (size_t)t->numel * sizeof(float));
}

void nd_fill(nd_ctx *ctx, nd_tensor *t, float value) { ctx->be->fill(t->data, value, t->numel); }

float nd_item(nd_ctx *ctx, const nd_tensor *t) {
    if (t->numel != 1) {
        char s[96];
        fprintf(stderr, "nanodiff: nd_item: tensor of shape %s has %lld elements, expected 1\n",
                nd_shape_str(t->shape, s, sizeof s), (long long)t->numel);
        abort();
    }
    float v;
    ctx->be->download(&v, t->data, sizeof v);
    return v;
}

static uint64_t rng_take(nd_ctx *ctx, int64_t n) {
    uint64_t offset = ctx->rng.offset;
    ctx->rng.offset += nd_philox_counters(n);
    return offset;
}

void nd_rand_uniform(nd_ctx *ctx, nd_tensor *t, float low, float high) {
    ctx->be->rand_uniform(t->data, t->numel, ctx->rng.seed, rng_take(ctx, t->numel), low, high);
}

void nd_rand_normal(nd_ctx *ctx, nd_tensor *t, float mean, float std) {
    ctx->be->rand_normal(t->data, t->numel, ctx->rng.seed, rng_take(ctx, t->numel), mean, std);
}

void nd_rand_bernoulli(nd_ctx *ctx, nd_tensor *t, float p) {
    ctx->be->rand_bernoulli(t->data, t->numel, ctx->rng.seed, rng_take(ctx, t->numel), p);
}

// ---------------------------------------------------------------------------------------------------
// recording

void nd_check_device(nd_ctx *ctx, const char *op, nd_loc loc, nd_tensor *const *inputs, int n) {
    for (int i = 0; i < n; i++) {
        if (!inputs[i]) nd_abort_at(loc, op, "input %d is NULL", i);
        if (inputs[i]->device != ctx->device)
            nd_abort_at(loc, op, "input %d is on %s but the context runs on %s", i, nd_device_name(inputs[i]->device),
                        nd_device_name(ctx->device));
    }
}

nd_tensor *nd_op_output(nd_ctx *ctx, nd_shape shape, nd_tensor *const *inputs, int n) {
    nd_tensor *out = nd_empty(ctx, shape);
    if (ctx->grad_enabled)
        for (int i = 0; i < n; i++)
            if (inputs[i] && inputs[i]->requires_grad) out->requires_grad = true;
    return out;
}

nd_node *nd_record(nd_ctx *ctx, const char *op, nd_backward_fn backward, nd_tensor *out, nd_tensor *const *inputs,
                   int n) {
    if (ctx->check_numerics) nd_numerics_check(ctx, op, out); // every op records its output after computing it
    double flops = 0.0;
    if (ctx->profile) {
        flops = nd_profile_take_flops(ctx);
        nd_profile_charge(ctx, op, 0, out, flops);
    }
    if (!out->requires_grad) return NULL;
    nd_tape *tape = &ctx->tape;
    if (tape->n == tape->cap) {
        int cap = tape->cap ? tape->cap * 2 : 256;
        nd_node *nodes = realloc(tape->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes) {
            fprintf(stderr, "nanodiff: out of host memory growing the tape to %d nodes\n", cap);
            abort();
        }
        tape->nodes = nodes;
        tape->cap = cap;
    }
    nd_node *node = &tape->nodes[tape->n++];
    *node = (nd_node){0};
    node->op = op;
    node->backward = backward;
    node->out = out;
    node->n_in = n;
    node->flops = flops;
    for (int i = 0; i < n; i++) node->in[i] = inputs[i];
    return node;
}

float *nd_scratch(nd_ctx *ctx, int64_t n) { return nd_arena_alloc_data(&ctx->step, (size_t)n * sizeof(float)); }

// ---------------------------------------------------------------------------------------------------
// backward

// Gradient buffers of op outputs are made when a gradient first flows into them and handed back once spent:
// before an op's backward runs, each input that wants a gradient and has none gets a zeroed buffer; after it
// has run, its output's gradient is complete and read by no one (every op that reads the output comes later
// on the tape, so its backward ran before), and the buffer goes to a free list that later buffers of the
// same size take from. The step then holds the gradients in flight, not one per op output, as PyTorch
// frees each gradient once used. Gradients of op outputs are not kept after backward (their handles are
// cleared), as PyTorch keeps .grad only for leaves.
#define ND_GRAD_POOL 64 // spent buffers kept for reuse; a U-Net's activations come in a dozen sizes

typedef struct grad_pool {
    int n;
    int64_t numel[ND_GRAD_POOL];
    float *buffer[ND_GRAD_POOL];
} grad_pool;

// The tensor whose gradient t shares: t itself, or for the output of a view (a node without backward,
// which shares its input's storage and gradient) the view's input, followed back through views.
static nd_tensor *grad_owner(const nd_tape *tape, nd_tensor *t) {
    for (int i = tape->n - 1; i >= 0; i--)
        if (tape->nodes[i].out == t && !tape->nodes[i].backward) t = tape->nodes[i].in[0];
    return t;
}

// Gives t a zeroed gradient buffer (shared with the tensor it views) unless it has one; true when it zeroed one.
static bool grad_ensure(nd_ctx *ctx, grad_pool *pool, nd_tensor *t) {
    if (t->grad) return false;
    bool zeroed = false;
    nd_tensor *owner = grad_owner(&ctx->tape, t);
    if (!owner->grad) {
        for (int i = 0; i < pool->n && !owner->grad; i++)
            if (pool->numel[i] == owner->numel) {
                owner->grad = pool->buffer[i];
                pool->n--;
                pool->numel[i] = pool->numel[pool->n];
                pool->buffer[i] = pool->buffer[pool->n];
            }
        if (!owner->grad) owner->grad = nd_scratch(ctx, owner->numel);
        ctx->be->fill(owner->grad, 0.0f, owner->numel);
        zeroed = true;
    }
    t->grad = owner->grad;
    return zeroed;
}

static void grad_release(grad_pool *pool, nd_tensor *t) {
    if (pool->n < ND_GRAD_POOL) {
        pool->numel[pool->n] = t->numel;
        pool->buffer[pool->n++] = t->grad;
    }
}

void nd_backward_at(nd_ctx *ctx, nd_tensor *loss, nd_loc loc) {
    if (loss->numel != 1) {
        nd_abort_shapes(loc, "nd_backward", "the loss must have one element; got shape vs expected", loss->shape,
                        nd_shape_from(NULL, 0));
    }
    if (!loss->requires_grad)
        nd_abort_at(loc, "nd_backward", "the loss does not depend on any tensor that requires grad");
    nd_tape *tape = &ctx->tape;
    grad_pool pool = {0};
    bool recorded = loss->grad != NULL; // a leaf has its own gradient
    for (int i = 0; i < tape->n && !recorded; i++) recorded = tape->nodes[i].out == loss;
    if (!recorded) nd_abort_at(loc, "nd_backward", "the loss was not produced by a recorded op");
    grad_ensure(ctx, &pool, loss);
    ctx->be->fill(loss->grad, 1.0f, 1);
    for (int i = tape->n - 1; i >= 0; i--) {
        nd_node *node = &tape->nodes[i];
        if (!node->backward || !node->out->grad) continue; // a view, or an output no gradient reached
        bool zeroed = false;
        for (int k = 0; k < node->n_in; k++)
            if (node->in[k] && node->in[k]->requires_grad) zeroed |= grad_ensure(ctx, &pool, node->in[k]);
        if (ctx->profile && zeroed) nd_profile_charge(ctx, "(zeroed gradient buffers)", 1, NULL, 0.0);
        node->backward(ctx, node);
        if (ctx->profile) { // a product's backward is one product per input that wants a gradient
            int wanted = (node->n_in > 0 && node->in[0] && node->in[0]->grad) +
                         (node->n_in > 1 && node->in[1] && node->in[1]->grad);
            nd_profile_charge(ctx, node->op, 1, node->out, node->flops * wanted);
        }
        grad_release(&pool, node->out);
    }
    // One backward per tape, as PyTorch without retain_graph.
    for (int i = 0; i < tape->n; i++) tape->nodes[i].out->grad = NULL;
    tape->n = 0;
}

// ---------------------------------------------------------------------------------------------------
// precision

static const char *const precision_names[] = {[ND_PRECISION_F32] = "f32", [ND_PRECISION_BF16] = "bf16"};

bool nd_precision_parse(const char *name, nd_precision *precision) {
    for (int i = 0; i < ND_COUNT(precision_names); i++)
        if (strcmp(name, precision_names[i]) == 0) {
            *precision = (nd_precision)i;
            return true;
        }
    return false;
}

const char *nd_precision_name(nd_precision precision) {
    return (unsigned)precision < (unsigned)ND_COUNT(precision_names) ? precision_names[precision] : "?";
}

// The backend that runs `precision` on `device`, or NULL with err.
static const nd_backend *precision_backend(nd_device device, nd_precision precision, nd_error *err) {
    if (precision == ND_PRECISION_F32) return nd_backend_for(device);
    if (device != ND_CPU) {
        nd_error_set(err, "bf16 is a CPU mode (AVX512_BF16); on CUDA, matrix products already run in TF32 "
                          "(--no-tf32 for full float32): use --precision f32, or --device cpu");
        return NULL;
    }
    char why[sizeof err->msg];
    const nd_backend *be = nd_backend_cpu_bf16(why, sizeof why);
    if (!be) nd_error_set(err, "%s", why);
    return be;
}

bool nd_precision_supported(nd_device device, nd_precision precision, nd_error *err) {
    return precision_backend(device, precision, err) != NULL;
}

bool nd_ctx_set_precision(nd_ctx *ctx, nd_precision precision, nd_error *err) {
    const nd_backend *be = precision_backend(ctx->device, precision, err);
    if (!be) return false;
    ctx->be = be;
    ctx->precision = precision;
    return true;
}
