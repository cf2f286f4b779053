// Lesson practice P4: debug "the prompt has no effect". Samples look unconditional whatever is asked.
//
// This block is a U-Net level's cross-attention: the feature map x (B, C, H, W) becomes H*W tokens of
// d_model = C, which should attend over the prompt's tokens context (B, S, context_dim):
// x + to_out(attention(to_q(norm(x)), to_k(context), to_v(context))). It compiles, it runs when context_dim
// happens to equal d_model, and it ignores the prompt. Find and fix both faults (one in init, one in forward).
// Then: nanodiff exercise check p4_prompt_effect YOUR_FILE.c
#include "exercise.h"

void ex_prompt_block_init(ex_prompt_block *b, nd_params *params, int64_t d_model, int64_t context_dim, int heads) {
    b->heads = heads;
    nd_layer_norm_layer_init(&b->norm, params, "block.norm", d_model);
    nd_linear_layer_init(&b->to_q, params, "block.to_q", d_model, d_model, false);
    nd_linear_layer_init(&b->to_k, params, "block.to_k", d_model, d_model, false);
    nd_linear_layer_init(&b->to_v, params, "block.to_v", d_model, d_model, false);
    nd_linear_layer_init(&b->to_out, params, "block.to_out", d_model, d_model, true);
}

// (B, L, heads * d_head) -> (B, heads, L, d_head)
static nd_tensor *split_heads(nd_ctx *ctx, nd_tensor *t, int heads) {
    int64_t b = t->shape.d[0], l = t->shape.d[1], d_head = t->shape.d[2] / heads;
    return nd_permute(ctx, nd_reshape(ctx, t, ND_SHAPE(b, l, heads, d_head)), ((int[]){0, 2, 1, 3}));
}

// x (B, C, H, W), context (B, S, context_dim) -> (B, C, H, W)
nd_tensor *ex_prompt_block_forward(nd_ctx *ctx, const ex_prompt_block *b, nd_tensor *x, nd_tensor *context) {
    int64_t n = x->shape.d[0], c = x->shape.d[1], hw = x->shape.d[2] * x->shape.d[3];
    nd_tensor *tokens = nd_permute(ctx, nd_reshape(ctx, x, ND_SHAPE(n, c, hw)), ((int[]){0, 2, 1})); // (B, HW, C)
    nd_tensor *h = nd_layer_norm_layer_forward(ctx, &b->norm, tokens);
    nd_tensor *q = split_heads(ctx, nd_linear_layer_forward(ctx, &b->to_q, h), b->heads);     // (B, heads, HW, d)
    nd_tensor *k = split_heads(ctx, nd_linear_layer_forward(ctx, &b->to_k, h), b->heads);     // (B, heads, S, d)
    nd_tensor *v = split_heads(ctx, nd_linear_layer_forward(ctx, &b->to_v, h), b->heads);     // (B, heads, S, d)
    nd_tensor *attended = nd_attention(ctx, q, k, v, false);                                  // (B, heads, HW, d)
    nd_tensor *merged = nd_reshape(ctx, nd_permute(ctx, attended, ((int[]){0, 2, 1, 3})), ND_SHAPE(n, hw, c));
    tokens = nd_add(ctx, tokens, nd_linear_layer_forward(ctx, &b->to_out, merged));
    return nd_reshape(ctx, nd_permute(ctx, tokens, ((int[]){0, 2, 1})), ND_SHAPE(n, c, x->shape.d[2], x->shape.d[3]));
}
