// Checks ex_prompt_block: to_k and to_v sized for the context, a prompt that changes the output, and the
// output against the library's attention layer built on the student's weights.
#include "check.h"

enum { D = 16, CTX = 12, HEADS = 2 };

static nd_tensor *reference(nd_ctx *ctx, const ex_prompt_block *b, nd_tensor *x, nd_tensor *context) {
    int64_t n = x->shape.d[0], c = x->shape.d[1], hw = x->shape.d[2] * x->shape.d[3];
    nd_attention_layer l = {.to_q = b->to_q, .to_k = b->to_k, .to_v = b->to_v, .to_out = b->to_out, .heads = HEADS,
                            .dim = c, .context_dim = context->shape.d[2]};
    nd_tensor *tokens = nd_permute(ctx, nd_reshape(ctx, x, ND_SHAPE(n, c, hw)), ((int[]){0, 2, 1}));
    tokens = nd_add(ctx, tokens, nd_attention_layer_forward(ctx, &l, nd_layer_norm_layer_forward(ctx, &b->norm, tokens),
                                                            context, false));
    return nd_reshape(ctx, nd_permute(ctx, tokens, ((int[]){0, 2, 1})), x->shape);
}

static bool check(nd_ctx *ctx) {
    bool ok = true;
    // 1. the shapes, with context_dim != d_model
    nd_params p;
    nd_params_init(&p);
    ex_prompt_block b;
    ex_prompt_block_init(&b, &p, D, CTX, HEADS);
    nd_params_alloc(&p, ctx);
    for (int i = 0; i < 2; i++) {
        const char *name = i ? "block.to_v.weight" : "block.to_k.weight";
        const nd_param *w = nd_params_find(&p, name);
        if (!ck_param(&p, name, ND_SHAPE(D, CTX))) {
            if (w && w->tensor->shape.ndim == 2 && w->tensor->shape.d[1] == D)
                ck_fail("(d_model = %d, context_dim = %d): %s takes d_model inputs, but it projects the prompt's "
                        "tokens, which are context_dim wide", D, CTX, name);
            ok = false;
        }
    }
    ok = ck_param(&p, "block.to_q.weight", ND_SHAPE(D, D)) && ck_param(&p, "block.to_out.weight", ND_SHAPE(D, D)) && ok;

    // 2. the prompt's effect, with context_dim = d_model so that either fault runs without a shape error
    nd_params p2;
    nd_params_init(&p2);
    ex_prompt_block b2;
    ex_prompt_block_init(&b2, &p2, D, D, HEADS);
    nd_params_alloc(&p2, ctx);
    nd_tensor *x = ck_randn(ctx, ND_SHAPE(2, D, 3, 3)), *context1 = ck_randn(ctx, ND_SHAPE(2, 5, D));
    nd_tensor *out1 = ex_prompt_block_forward(ctx, &b2, x, context1);
    nd_tensor *out2 = ex_prompt_block_forward(ctx, &b2, x, ck_randn(ctx, ND_SHAPE(2, 5, D)));
    if (!ck_shape("the block's output", out1, x->shape)) {
        ok = false;
    } else {
        int64_t at;
        double change = ck_max_diff(ctx, out1, out2, &at);
        if (change < 1e-6)
            ok = ck_fail("the prompt has no effect: two different contexts give the same output (largest difference "
                         "%.2g). K and V are projected from the image features, so the block attends over the image "
                         "itself (a second self-attention); they must come from the context", change);
        else if (!ck_close_to(ctx, out1, reference(ctx, &b2, x, context1), 1e-4))
            ok = ck_fail("the prompt changes the output, but not as cross-attention does: K and V both come from the "
                         "context (is one of them still projected from the image features?)");
    }

    // 3. the values, once both are right
    if (ok) {
        nd_tensor *xa = ck_randn(ctx, ND_SHAPE(2, D, 4, 4)), *context = ck_randn(ctx, ND_SHAPE(2, 7, CTX));
        ok = ck_close(ctx, "the block's output", ex_prompt_block_forward(ctx, &b, xa, context),
                      reference(ctx, &b, xa, context), 1e-4);
        if (ok) printf("the prompt changes the output, and to_k / to_v read context_dim = %d features\n", CTX);
    }
    nd_params_free(&p2);
    nd_params_free(&p);
    return ok;
}
