// Lesson practice P1: the cross-attention module of a text-to-image U-Net, to_q/to_k/to_v/out_proj/norm and
// forward(x, context).
//
// Queries come from the image features x (B, N, d_model), keys and values from the text tokens context
// (B, S, context_dim): each image position attends over the prompt's tokens. The lesson's module: a LayerNorm
// on x before the projections; to_q Linear(d_model -> d_model), to_k and to_v Linear(context_dim -> d_model),
// all three without bias; heads of d_head = d_model / heads; scores = q k^T * d_head^-0.5, softmax over the
// text tokens, times v; the heads merged back; out_proj Linear(d_model -> d_model) with bias; the residual
// x + out_proj(...) last. (nd_linear_layer_init(layer, params, name, in, out, bias) registers name.weight
// (out, in) and name.bias.)
// Fill in each FIXME, then: nanodiff exercise check p1_cross_attention YOUR_FILE.c
#include <math.h>

#include "exercise.h"

void ex_cross_attention_init(ex_cross_attention *m, nd_params *params, const char *name, int64_t d_model,
                             int64_t context_dim, int heads) {
    char key[ND_NAME_MAX];
    m->heads = heads, m->d_model = d_model, m->context_dim = context_dim;
    nd_layer_norm_layer_init(&m->norm, params, nd_module_name(key, "%s.norm", name), FIXME);
    nd_linear_layer_init(&m->to_q, params, nd_module_name(key, "%s.to_q", name), FIXME, FIXME, false);
    nd_linear_layer_init(&m->to_k, params, nd_module_name(key, "%s.to_k", name), FIXME, FIXME, false);
    nd_linear_layer_init(&m->to_v, params, nd_module_name(key, "%s.to_v", name), FIXME, FIXME, false);
    nd_linear_layer_init(&m->out_proj, params, nd_module_name(key, "%s.out_proj", name), FIXME, FIXME, true);
}

// (B, L, heads * d_head) -> (B, heads, L, d_head)
static nd_tensor *split_heads(nd_ctx *ctx, nd_tensor *t, int heads) {
    int64_t b = t->shape.d[0], l = t->shape.d[1], d_head = t->shape.d[2] / heads;
    return nd_permute(ctx, nd_reshape(ctx, t, ND_SHAPE(b, l, heads, d_head)), ((int[]){0, 2, 1, 3}));
}

// x (B, N, d_model), context (B, S, context_dim) -> (B, N, d_model)
nd_tensor *ex_cross_attention_forward(nd_ctx *ctx, const ex_cross_attention *m, nd_tensor *x, nd_tensor *context) {
    int64_t b = x->shape.d[0], n = x->shape.d[1], d_head = m->d_model / m->heads;
    nd_tensor *h = nd_layer_norm_layer_forward(ctx, &m->norm, x);                                // (B, N, d_model)
    nd_tensor *q = split_heads(ctx, nd_linear_layer_forward(ctx, &m->to_q, FIXME), m->heads); // (B, heads, N, d_head)
    nd_tensor *k = split_heads(ctx, nd_linear_layer_forward(ctx, &m->to_k, FIXME), m->heads); // (B, heads, S, d_head)
    nd_tensor *v = split_heads(ctx, nd_linear_layer_forward(ctx, &m->to_v, FIXME), m->heads); // (B, heads, S, d_head)
    float scale = FIXME;
    nd_tensor *scores = nd_mul_scalar(ctx, nd_matmul(ctx, q, k, false, true), scale); // (B, heads, N, S)
    nd_tensor *attn = nd_softmax(ctx, scores, -1);                                     // over the text tokens
    nd_tensor *out = nd_matmul(ctx, attn, v, false, false);                            // (B, heads, N, d_head)
    out = nd_reshape(ctx, nd_permute(ctx, out, ((int[]){0, 2, 1, 3})), ND_SHAPE(b, n, m->d_model)); // heads merged
    return FIXME; // out_proj, and the residual
}
