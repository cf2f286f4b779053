// Lesson practice P2: text-to-image sampling with classifier-free guidance, the whole loop by hand.
//
// 1. Tokenize the prompt and the empty prompt "" (the null condition), encode both with the frozen CLIP text
//    encoder (its per-token features, (2, S, D)), and lay out one doubled batch: the prompt's n rows first.
// 2. x_T ~ N(0, I) of the images' shape.
// 3. For t = T - 1 down to 0: one U-Net call on the doubled batch gives e_c (rows 0..n-1) and e_u (rows n..2n-1);
//    e = e_u + s (e_c - e_u) with the guidance scale s (the course's (1 + w) e_c - w e_u is the same with
//    s = 1 + w). Then the lesson's reverse step:
//      x0_hat = (x_t - sqrt(1 - abar_t) e) / sqrt(abar_t), clamped to [-1, 1];
//      at t = 0 the result is x0_hat; else
//      mean = beta_t sqrt(abar_{t-1}) / (1 - abar_t) x0_hat + (1 - abar_{t-1}) sqrt(alpha_t) / (1 - abar_t) x_t,
//      sigma = sqrt(beta_t (1 - abar_{t-1}) / (1 - abar_t)), x_{t-1} = mean + sigma z.
// 4. x_0, in [-1, 1]. (s->beta, s->alpha, s->alpha_bar hold beta_t, alpha_t, abar_t.)
// Fill in each FIXME, then: nanodiff exercise check p2_t2i_sampling YOUR_FILE.c
#include <math.h>
#include <stdlib.h>

#include "exercise.h"

// torch.clamp(x, lo, hi) from ops every backend has: relu(x - lo) - relu(x - hi) + lo.
static nd_tensor *clamp(nd_ctx *ctx, nd_tensor *x, float lo, float hi) {
    nd_tensor *above_lo = nd_relu(ctx, nd_sub_scalar(ctx, x, lo)), *above_hi = nd_relu(ctx, nd_sub_scalar(ctx, x, hi));
    return nd_add_scalar(ctx, nd_sub(ctx, above_lo, above_hi), lo);
}

// t (a tensor in the step arena) copied into keep (persistent), so it survives nd_ctx_step_end.
static void keep_across_steps(nd_ctx *ctx, nd_tensor *keep, nd_tensor *t, float *host) {
    nd_copy_to_host(ctx, t, host);
    nd_ctx_step_end(ctx);
    nd_copy_from_host(ctx, keep, host);
}

void ex_t2i_sample(nd_ctx *ctx, const nd_model *unet, const nd_schedule *s, const nd_tokenizer *tok,
                   const nd_clip *clip, const char *prompt, int n, float guidance_scale, uint64_t seed, float *out) {
    const nd_model_config *mc = &unet->config;
    int n_tok = clip->config.context_length, width = clip->config.text_width;
    bool grad = nd_ctx_set_grad(ctx, false); // sampling records no tape
    nd_arena_mark mark = nd_arena_get_mark(&ctx->pool);
    float *host = malloc((size_t)(2 * n) * n_tok * width * sizeof(float));

    // 1. the doubled batch's context (2n, n_tok, width)
    const char *texts[2] = {prompt, ""};
    int32_t *ids = malloc((size_t)(2 * n_tok) * sizeof *ids);
    nd_tokenizer_encode_batch(tok, texts, 2, ids);
    nd_tensor *tokens = NULL;
    nd_clip_encode_text(ctx, clip, ids, 2, &tokens); // (2, n_tok, width)
    nd_tensor **rows = malloc((size_t)(2 * n) * sizeof *rows);
    for (int i = 0; i < n; i++) rows[i] = nd_slice(ctx, tokens, 0, 0, 1), rows[n + i] = nd_slice(ctx, tokens, 0, 1, 2);
    nd_tensor *context = nd_empty_persistent(ctx, ND_SHAPE(2 * n, n_tok, width));
    keep_across_steps(ctx, context, nd_concat(ctx, rows, 2 * n, 0), host);

    // 2. x_T
    ctx->rng = (nd_rng){.seed = seed, .offset = 0};
    nd_tensor *x = nd_empty_persistent(ctx, ND_SHAPE(n, mc->img_ch, mc->img_size, mc->img_size));
    nd_rand_normal(ctx, x, 0.0f, 1.0f);

    // 3. the reverse process
    for (int t = FIXME; t >= 0; t--) {
        nd_tensor *pair[2] = {x, x};
        nd_tensor *e_both = nd_model_forward(ctx, unet, nd_concat(ctx, pair, 2, 0), nd_full(ctx, ND_SHAPE(2 * n), (float)t),
                                             context, false); // (2n, C, H, W)
        nd_tensor *e_c = nd_slice(ctx, e_both, 0, 0, n), *e_u = nd_slice(ctx, e_both, 0, n, 2 * n);
        nd_tensor *e = nd_add(ctx, e_u, nd_mul_scalar(ctx, nd_sub(ctx, e_c, e_u), FIXME)); // the guided noise
        float abar = s->alpha_bar[t];
        nd_tensor *x0_hat = nd_mul_scalar(ctx, nd_sub(ctx, x, nd_mul_scalar(ctx, e, sqrtf(1.0f - abar))), 1.0f / sqrtf(abar));
        x0_hat = clamp(ctx, x0_hat, -1.0f, 1.0f);
        nd_tensor *x_prev = x0_hat;
        if (t > 0) {
            float abar_prev = s->alpha_bar[t - 1];
            float coef_x0 = FIXME, coef_xt = FIXME, sigma = FIXME;
            nd_tensor *z = nd_empty(ctx, x->shape);
            nd_rand_normal(ctx, z, 0.0f, sigma);
            nd_tensor *mean = nd_add(ctx, nd_mul_scalar(ctx, x0_hat, coef_x0), nd_mul_scalar(ctx, x, coef_xt));
            x_prev = nd_add(ctx, mean, z);
        }
        keep_across_steps(ctx, x, x_prev, host); // x_{t-1} becomes x
    }
    nd_copy_to_host(ctx, x, out);
    free(rows);
    free(ids);
    free(host);
    nd_arena_release(&ctx->pool, mark);
    nd_ctx_set_grad(ctx, grad);
}
