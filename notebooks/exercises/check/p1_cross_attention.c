// Checks ex_cross_attention against the library's attention layer (nd_attention_layer, built on the student's
// own weights) after a LayerNorm, plus the residual; names the usual slips by recomputing each of them.
#include "check.h"

enum { D = 16, CTX = 12, HEADS = 4 };

// The library's layer on m's tensors; q_gain scales the queries (so a different softmax scale is q_gain times
// the lesson's), heads may differ from m's.
static nd_attention_layer library_layer(nd_ctx *ctx, const ex_cross_attention *m, float q_gain, int heads) {
    nd_attention_layer l = {.to_q = m->to_q, .to_k = m->to_k, .to_v = m->to_v, .to_out = m->out_proj,
                            .heads = heads, .dim = m->d_model, .context_dim = m->context_dim};
    if (q_gain != 1.0f) l.to_q.weight = nd_mul_scalar(ctx, m->to_q.weight, q_gain);
    return l;
}

// x + attention(norm(x), context) with the variations a slip makes.
static nd_tensor *reference(nd_ctx *ctx, const ex_cross_attention *m, nd_tensor *x, nd_tensor *context, float q_gain,
                            int heads, bool norm, bool residual) {
    nd_attention_layer l = library_layer(ctx, m, q_gain, heads);
    nd_tensor *h = norm ? nd_layer_norm_layer_forward(ctx, &m->norm, x) : x;
    nd_tensor *out = nd_attention_layer_forward(ctx, &l, h, context, false);
    return residual ? nd_add(ctx, x, out) : out;
}

// (B, L, heads * d) -> (B, heads, L, d)
static nd_tensor *heads_of(nd_ctx *ctx, nd_tensor *t) {
    return nd_permute(ctx, nd_reshape(ctx, t, ND_SHAPE(t->shape.d[0], t->shape.d[1], HEADS, t->shape.d[2] / HEADS)),
                      ((int[]){0, 2, 1, 3}));
}

// The module with its softmax taken over the image positions instead of the text tokens.
static nd_tensor *softmax_over_image(nd_ctx *ctx, const ex_cross_attention *m, nd_tensor *x, nd_tensor *context) {
    nd_tensor *h = nd_layer_norm_layer_forward(ctx, &m->norm, x);
    nd_tensor *q = heads_of(ctx, nd_linear_layer_forward(ctx, &m->to_q, h));
    nd_tensor *k = heads_of(ctx, nd_linear_layer_forward(ctx, &m->to_k, context));
    nd_tensor *v = heads_of(ctx, nd_linear_layer_forward(ctx, &m->to_v, context));
    nd_tensor *scores = nd_mul_scalar(ctx, nd_matmul(ctx, q, k, false, true), 1.0f / sqrtf((float)D / HEADS));
    nd_tensor *out = nd_matmul(ctx, nd_softmax(ctx, scores, 2), v, false, false); // (B, heads, N, d_head)
    out = nd_reshape(ctx, nd_permute(ctx, out, ((int[]){0, 2, 1, 3})), x->shape);
    return nd_add(ctx, x, nd_linear_layer_forward(ctx, &m->out_proj, out));
}

static bool check_params(const nd_params *p, const ex_cross_attention *m) {
    bool ok = ck_param(p, "attn.norm.weight", ND_SHAPE(D)) && ck_param(p, "attn.norm.bias", ND_SHAPE(D)) &&
              ck_param(p, "attn.to_q.weight", ND_SHAPE(D, D)) && ck_param(p, "attn.to_k.weight", ND_SHAPE(D, CTX)) &&
              ck_param(p, "attn.to_v.weight", ND_SHAPE(D, CTX)) && ck_param(p, "attn.out_proj.weight", ND_SHAPE(D, D)) &&
              ck_param(p, "attn.out_proj.bias", ND_SHAPE(D));
    if (!ok) {
        const nd_param *k = nd_params_find(p, "attn.to_k.weight");
        if (k && k->tensor->shape.ndim == 2 && k->tensor->shape.d[1] == D)
            ck_fail("(d_model = %d, context_dim = %d): to_k and to_v read the text tokens, so they take context_dim "
                    "inputs", D, CTX);
        return false;
    }
    if (nd_params_find(p, "attn.to_q.bias") || nd_params_find(p, "attn.to_k.bias") || nd_params_find(p, "attn.to_v.bias"))
        return ck_fail("to_q, to_k and to_v have no bias in the lesson's module (bias = false)");
    if (m->heads != HEADS) return ck_fail("m->heads = %d, expected %d", m->heads, HEADS);
    return true;
}

// With context_dim = d_model every slip runs without a shape error, so each can be recognised.
static bool diagnose(nd_ctx *ctx) {
    nd_params p;
    nd_params_init(&p);
    ex_cross_attention m;
    ex_cross_attention_init(&m, &p, "attn", D, D, HEADS);
    nd_params_alloc(&p, ctx);
    nd_tensor *x = ck_randn(ctx, ND_SHAPE(2, 6, D)), *context = ck_randn(ctx, ND_SHAPE(2, 5, D));
    nd_tensor *got = ex_cross_attention_forward(ctx, &m, x, context);
    float d_head = (float)D / HEADS;
    nd_tensor *want = reference(ctx, &m, x, context, 1.0f, HEADS, true, true);
    bool ok = ck_shape("the module's output", got, want->shape);
    if (ok && !ck_close_to(ctx, got, want, 1e-4)) {
        nd_tensor *normed = nd_layer_norm_layer_forward(ctx, &m.norm, x);
        nd_attention_layer l = library_layer(ctx, &m, 1.0f, HEADS);
        if (ck_close_to(ctx, got, nd_add(ctx, x, nd_attention_layer_forward(ctx, &l, normed, NULL, false)), 1e-4) ||
            ck_close_to(ctx, got, nd_add(ctx, x, nd_attention_layer_forward(ctx, &l, normed, x, false)), 1e-4))
            ck_fail("K and V come from the image features: that is self-attention, and the prompt has no effect; "
                    "to_k and to_v project the context");
        else if (ck_close_to(ctx, got, reference(ctx, &m, x, context, 1.0f, HEADS, true, false), 1e-4))
            ck_fail("no residual: the module returns x + out_proj(attention), not the attention alone");
        else if (ck_close_to(ctx, got, reference(ctx, &m, x, context, 1.0f, HEADS, false, true), 1e-4))
            ck_fail("the LayerNorm is missing: the queries are projected from norm(x), the residual adds x itself");
        else if (ck_close_to(ctx, got, reference(ctx, &m, x, context, 1.0f, 1, true, true), 1e-4))
            ck_fail("one head of d_model: split q, k and v into %d heads of d_head = d_model / heads", HEADS);
        else if (ck_close_to(ctx, got, softmax_over_image(ctx, &m, x, context), 1e-4))
            ck_fail("the softmax runs over the image positions: each position's weights are over the text tokens, "
                    "the scores' last axis");
        else {
            const float scales[3] = {1.0f, 1.0f / sqrtf((float)D), 1.0f / d_head};
            const char *names[3] = {"1 (no scaling)", "d_model^-0.5", "1 / d_head (no square root)"};
            for (int i = 0; i < 3; i++)
                if (ck_close_to(ctx, got, reference(ctx, &m, x, context, scales[i] * sqrtf(d_head), HEADS, true, true), 1e-4))
                    ck_fail("the scores are scaled by %s: the lesson scales by d_head^-0.5 = %g (d_head = d_model / "
                            "heads = %g)", names[i], 1.0 / sqrt(d_head), d_head);
        }
        ok = ck_close(ctx, "the module's output", got, want, 1e-4);
    }
    nd_params_free(&p);
    return ok;
}

static bool check(nd_ctx *ctx) {
    nd_params p;
    nd_params_init(&p);
    ex_cross_attention m;
    ex_cross_attention_init(&m, &p, "attn", D, CTX, HEADS);
    nd_params_alloc(&p, ctx);
    bool ok = check_params(&p, &m) && diagnose(ctx);
    if (ok) { // d_model 16, context_dim 12: the lesson's shapes, (B, N, d_model) and (B, S, context_dim)
        nd_tensor *x = ck_randn(ctx, ND_SHAPE(3, 9, D)), *context = ck_randn(ctx, ND_SHAPE(3, 7, CTX));
        nd_tensor *got = ex_cross_attention_forward(ctx, &m, x, context);
        ok = ck_close(ctx, "the module's output for context_dim != d_model", got,
                      reference(ctx, &m, x, context, 1.0f, HEADS, true, true), 1e-4);
        if (ok) {
            nd_tensor *other = ex_cross_attention_forward(ctx, &m, x, ck_randn(ctx, ND_SHAPE(3, 7, CTX)));
            if (ck_close_to(ctx, got, other, 1e-6)) ok = ck_fail("two different contexts give the same output");
        }
    }
    nd_params_free(&p);
    return ok;
}
