// Multi-head attention (the lesson's CrossAttention, with heads) and the pre-LayerNorm TransformerBlock.
#include <stdio.h>

#include "nn.h"

void nd_attention_layer_init(nd_attention_layer *layer, nd_params *params, const char *name, int64_t dim,
                             int64_t context_dim, int heads) {
    char key[ND_NAME_MAX];
    layer->heads = heads;
    layer->dim = dim;
    layer->context_dim = context_dim;
    nd_linear_layer_init(&layer->to_q, params, nd_module_name(key, "%s.to_q", name), dim, dim, false);
    nd_linear_layer_init(&layer->to_k, params, nd_module_name(key, "%s.to_k", name), context_dim, dim, false);
    nd_linear_layer_init(&layer->to_v, params, nd_module_name(key, "%s.to_v", name), context_dim, dim, false);
    nd_linear_layer_init(&layer->to_out, params, nd_module_name(key, "%s.to_out", name), dim, dim, true);
}

// (B, L, heads * d) -> (B, heads, L, d)
static nd_tensor *split_heads(nd_ctx *ctx, nd_tensor *x, int heads) {
    int64_t b = x->shape.d[0], l = x->shape.d[1], d = x->shape.d[2] / heads;
    return nd_permute(ctx, nd_reshape(ctx, x, ND_SHAPE(b, l, heads, d)), ((int[]){0, 2, 1, 3}));
}

nd_tensor *nd_attention_layer_forward(nd_ctx *ctx, const nd_attention_layer *layer, nd_tensor *x, nd_tensor *context,
                                      bool causal) {
    nd_tensor *kv_source = context ? context : x;                                                 // (B, S, context_dim)
    nd_tensor *q = split_heads(ctx, nd_linear_layer_forward(ctx, &layer->to_q, x), layer->heads); // (B, h, L, d)
    nd_tensor *k = split_heads(ctx, nd_linear_layer_forward(ctx, &layer->to_k, kv_source),
                               layer->heads); // (B, h, S, d)
    nd_tensor *v = split_heads(ctx, nd_linear_layer_forward(ctx, &layer->to_v, kv_source),
                               layer->heads);                 // (B, h, S, d)
    nd_tensor *attended = nd_attention(ctx, q, k, v, causal); // (B, h, L, d)
    int64_t b = x->shape.d[0], l = x->shape.d[1];
    nd_tensor *merged = nd_reshape(ctx, nd_permute(ctx, attended, ((int[]){0, 2, 1, 3})), ND_SHAPE(b, l, layer->dim));
    return nd_linear_layer_forward(ctx, &layer->to_out, merged);
}

void nd_transformer_block_init(nd_transformer_block *block, nd_params *params, const char *name, int64_t dim,
                               int64_t context_dim, int heads) {
    char key[ND_NAME_MAX];
    nd_layer_norm_layer_init(&block->norm1, params, nd_module_name(key, "%s.norm1", name), dim);
    nd_attention_layer_init(&block->self_attn, params, nd_module_name(key, "%s.self_attn", name), dim, dim, heads);
    nd_layer_norm_layer_init(&block->norm2, params, nd_module_name(key, "%s.norm2", name), dim);
    nd_attention_layer_init(&block->cross_attn, params, nd_module_name(key, "%s.cross_attn", name), dim, context_dim,
                            heads);
    nd_layer_norm_layer_init(&block->norm3, params, nd_module_name(key, "%s.norm3", name), dim);
    nd_linear_layer_init(&block->ff1, params, nd_module_name(key, "%s.ff.0", name), dim, 4 * dim, true);
    nd_linear_layer_init(&block->ff2, params, nd_module_name(key, "%s.ff.2", name), 4 * dim, dim, true);
}

nd_tensor *nd_transformer_block_forward(nd_ctx *ctx, const nd_transformer_block *block, nd_tensor *x,
                                        nd_tensor *context) {
    int64_t b = x->shape.d[0], c = x->shape.d[1], h = x->shape.d[2], w = x->shape.d[3];
    // (B, C, H, W) -> tokens (B, HW, C)
    nd_tensor *tokens = nd_permute(ctx, nd_reshape(ctx, x, ND_SHAPE(b, c, h * w)), ((int[]){0, 2, 1}));
    nd_tensor *normed = nd_layer_norm_layer_forward(ctx, &block->norm1, tokens);
    tokens = nd_add(ctx, tokens, nd_attention_layer_forward(ctx, &block->self_attn, normed, NULL, false));
    normed = nd_layer_norm_layer_forward(ctx, &block->norm2, tokens);
    tokens = nd_add(ctx, tokens, nd_attention_layer_forward(ctx, &block->cross_attn, normed, context, false));
    normed = nd_layer_norm_layer_forward(ctx, &block->norm3, tokens);
    nd_tensor *hidden = nd_gelu(ctx, nd_linear_layer_forward(ctx, &block->ff1, normed)); // (B, HW, 4C)
    tokens = nd_add(ctx, tokens, nd_linear_layer_forward(ctx, &block->ff2, hidden));
    return nd_reshape(ctx, nd_permute(ctx, tokens, ((int[]){0, 2, 1})), ND_SHAPE(b, c, h, w));
}
