// CLIP (open_clip's CLIP with a VisionTransformer): both towers, OpenAI's initialisation and the contrastive loss.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"

#define ND_CLIP_NORMALIZE_EPS 1e-12f // F.normalize's floor on the norm

nd_clip_config nd_clip_config_default(int vocab_size) {
    return (nd_clip_config){.vocab_size = vocab_size, .context_length = 77,
                            .text_width = 64, .text_layers = 2, .text_heads = 4,
                            .img_ch = 1, .img_size = 16, .patch_size = 4,
                            .vision_width = 64, .vision_layers = 3, .vision_heads = 4,
                            .embed_dim = 64};
}

// Overrides the initializer of a registered tensor (the layers register PyTorch's defaults).
static void set_init(nd_params *p, const nd_tensor *t, nd_init_kind kind, float bound) {
    for (int i = 0; i < p->n; i++)
        if (p->items[i].tensor == t) {
            p->items[i].init = kind, p->items[i].init_bound = bound;
            return;
        }
}

// OpenAI's initialize_parameters for one transformer of the given width and depth.
static void resblock_init(nd_clip_resblock *b, nd_params *p, const char *name, int width, int heads, int layers) {
    char key[ND_NAME_MAX];
    nd_layer_norm_layer_init(&b->ln_1, p, nd_module_name(key, "%s.ln_1", name), width);
    nd_attention_layer_init(&b->attn, p, nd_module_name(key, "%s.attn", name), width, width, heads);
    nd_layer_norm_layer_init(&b->ln_2, p, nd_module_name(key, "%s.ln_2", name), width);
    nd_linear_layer_init(&b->c_fc, p, nd_module_name(key, "%s.mlp.c_fc", name), width, 4 * width, true);
    nd_linear_layer_init(&b->c_proj, p, nd_module_name(key, "%s.mlp.c_proj", name), 4 * width, width, true);
    float attn_std = 1.0f / sqrtf((float)width);
    float proj_std = attn_std / sqrtf(2.0f * (float)layers);
    float fc_std = 1.0f / sqrtf(2.0f * (float)width);
    set_init(p, b->attn.to_q.weight, ND_INIT_NORMAL, attn_std);
    set_init(p, b->attn.to_k.weight, ND_INIT_NORMAL, attn_std);
    set_init(p, b->attn.to_v.weight, ND_INIT_NORMAL, attn_std);
    set_init(p, b->attn.to_out.weight, ND_INIT_NORMAL, proj_std);
    set_init(p, b->attn.to_out.bias, ND_INIT_ZEROS, 0.0f); // nn.MultiheadAttention zeroes out_proj.bias
    set_init(p, b->c_fc.weight, ND_INIT_NORMAL, fc_std);
    set_init(p, b->c_proj.weight, ND_INIT_NORMAL, proj_std);
}

// x (B, L, W) -> (B, L, W): x + attn(ln_1(x)), then x + c_proj(gelu(c_fc(ln_2(x)))).
static nd_tensor *resblock_forward(nd_ctx *ctx, const nd_clip_resblock *b, nd_tensor *x, bool causal) {
    nd_tensor *h = nd_layer_norm_layer_forward(ctx, &b->ln_1, x); // (B, L, W)
    x = nd_add(ctx, x, nd_attention_layer_forward(ctx, &b->attn, h, NULL, causal));
    h = nd_gelu(ctx, nd_linear_layer_forward(ctx, &b->c_fc, nd_layer_norm_layer_forward(ctx, &b->ln_2, x))); // (B, L, 4W)
    return nd_add(ctx, x, nd_linear_layer_forward(ctx, &b->c_proj, h));
}

void nd_clip_init(nd_clip *clip, nd_clip_config cfg) {
    char key[ND_NAME_MAX];
    memset(clip, 0, sizeof *clip);
    clip->config = cfg;
    nd_params *p = &clip->params;
    nd_params_init(p);
    int tw = cfg.text_width, vw = cfg.vision_width, grid = cfg.img_size / cfg.patch_size;
    if (cfg.img_size % cfg.patch_size || tw % cfg.text_heads || vw % cfg.vision_heads)
        nd_abort_at(ND_HERE, "nd_clip_init", "img_size %d must be a multiple of patch_size %d and widths (%d, %d) of "
                    "their heads (%d, %d)", cfg.img_size, cfg.patch_size, tw, vw, cfg.text_heads, cfg.vision_heads);

    nd_embedding_layer_init(&clip->token_embedding, p, "token_embedding", cfg.vocab_size, tw);
    set_init(p, clip->token_embedding.weight, ND_INIT_NORMAL, 0.02f);
    clip->positional_embedding = nd_params_add(p, "positional_embedding", ND_SHAPE(cfg.context_length, tw),
                                               ND_INIT_NORMAL, 0.01f);
    clip->text_blocks = nd_xcalloc((size_t)cfg.text_layers, sizeof *clip->text_blocks);
    for (int i = 0; i < cfg.text_layers; i++)
        resblock_init(&clip->text_blocks[i], p, nd_module_name(key, "transformer.resblocks.%d", i), tw, cfg.text_heads,
                      cfg.text_layers);
    nd_layer_norm_layer_init(&clip->ln_final, p, "ln_final", tw);
    clip->text_projection = nd_params_add(p, "text_projection", ND_SHAPE(tw, cfg.embed_dim), ND_INIT_NORMAL,
                                          1.0f / sqrtf((float)tw));

    float vscale = 1.0f / sqrtf((float)vw);
    nd_conv2d_layer_init(&clip->conv1, p, "visual.conv1", cfg.img_ch, vw, cfg.patch_size, cfg.patch_size, 0, false);
    clip->class_embedding = nd_params_add(p, "visual.class_embedding", ND_SHAPE(vw), ND_INIT_NORMAL, vscale);
    clip->vis_positional_embedding = nd_params_add(p, "visual.positional_embedding", ND_SHAPE(1 + grid * grid, vw),
                                                   ND_INIT_NORMAL, vscale);
    nd_layer_norm_layer_init(&clip->ln_pre, p, "visual.ln_pre", vw);
    clip->vision_blocks = nd_xcalloc((size_t)cfg.vision_layers, sizeof *clip->vision_blocks);
    for (int i = 0; i < cfg.vision_layers; i++)
        resblock_init(&clip->vision_blocks[i], p, nd_module_name(key, "visual.transformer.resblocks.%d", i), vw,
                      cfg.vision_heads, cfg.vision_layers);
    nd_layer_norm_layer_init(&clip->ln_post, p, "visual.ln_post", vw);
    clip->vis_proj = nd_params_add(p, "visual.proj", ND_SHAPE(vw, cfg.embed_dim), ND_INIT_NORMAL, vscale);
    clip->logit_scale = nd_params_add(p, "logit_scale", ND_SHAPE(1), ND_INIT_ONES, 1.0f); // set to ln(1/0.07) below
}

void nd_clip_create(nd_clip *clip, nd_clip_config config, nd_ctx *ctx) {
    nd_clip_init(clip, config);
    nd_params_alloc(&clip->params, ctx);
    float init_scale = logf(1.0f / 0.07f);
    nd_copy_from_host(ctx, clip->logit_scale, &init_scale);
}

void nd_clip_free(nd_clip *clip) {
    nd_params_free(&clip->params);
    free(clip->text_blocks), free(clip->vision_blocks);
    memset(clip, 0, sizeof *clip);
}

nd_tensor *nd_clip_encode_text(nd_ctx *ctx, const nd_clip *clip, const int32_t *ids, int batch, nd_tensor **tokens) {
    const nd_clip_config *c = &clip->config;
    int64_t s = c->context_length, w = c->text_width;
    int32_t *eot = nd_xmalloc((size_t)batch * sizeof *eot);
    int64_t len = 0; // positions the result depends on
    for (int b = 0; b < batch; b++) {
        eot[b] = 0; // CLIP pools at the argmax of the ids: the end token has the largest id
        for (int64_t i = 0; i < s; i++) {
            int32_t id = ids[b * s + i];
            if (id < 0 || id >= c->vocab_size)
                nd_abort_at(ND_HERE, "nd_clip_encode_text", "token id %d outside the vocabulary (%d)", id, c->vocab_size);
            if (id > ids[b * s + eot[b]]) eot[b] = (int32_t)i;
        }
        if (eot[b] + 1 > len) len = eot[b] + 1;
    }
    // The mask is causal, so no position before the last end token of the batch sees what follows it: without
    // the per-token output only those positions are computed (a caption's dozen tokens instead of 77).
    if (tokens) len = s;
    float *host = nd_xmalloc((size_t)(batch * len) * sizeof *host), *rows = nd_xmalloc((size_t)batch * sizeof *rows);
    for (int b = 0; b < batch; b++) {
        for (int64_t i = 0; i < len; i++) host[b * len + i] = (float)ids[b * s + i];
        rows[b] = (float)(b * len + eot[b]);
    }
    nd_tensor *idx = nd_from_host(ctx, ND_SHAPE(batch, len), host);   // (B, L)
    nd_tensor *eot_rows = nd_from_host(ctx, ND_SHAPE(batch), rows);   // (B)
    free(host), free(rows), free(eot);
    nd_tensor *x = nd_embedding_layer_forward(ctx, &clip->token_embedding, idx); // (B, L, W)
    nd_tensor *pos = len == s ? clip->positional_embedding : nd_slice(ctx, clip->positional_embedding, 0, 0, len);
    x = nd_add(ctx, x, pos);
    for (int i = 0; i < c->text_layers; i++) x = resblock_forward(ctx, &clip->text_blocks[i], x, true);
    x = nd_layer_norm_layer_forward(ctx, &clip->ln_final, x); // (B, L, W)
    nd_trace(ctx, "ln_final", x);
    if (tokens) *tokens = x;
    nd_tensor *pooled = nd_embedding(ctx, nd_reshape(ctx, x, ND_SHAPE(batch * len, w)), eot_rows); // (B, W)
    return nd_matmul(ctx, pooled, clip->text_projection, false, false);                           // (B, E)
}

nd_tensor *nd_clip_encode_image(nd_ctx *ctx, const nd_clip *clip, nd_tensor *images) {
    const nd_clip_config *c = &clip->config;
    int64_t b = images->shape.d[0], w = c->vision_width, grid = c->img_size / c->patch_size;
    nd_tensor *x = nd_conv2d_layer_forward(ctx, &clip->conv1, images); // (B, W, g, g)
    x = nd_permute(ctx, nd_reshape(ctx, x, ND_SHAPE(b, w, grid * grid)), ((int[]){0, 2, 1})); // (B, g*g, W)
    nd_tensor *cls = nd_add(ctx, nd_zeros(ctx, ND_SHAPE(b, 1, w)), clip->class_embedding);     // (B, 1, W)
    x = nd_concat(ctx, ((nd_tensor *[]){cls, x}), 2, 1);                                        // (B, 1+g*g, W)
    x = nd_add(ctx, x, clip->vis_positional_embedding);
    x = nd_layer_norm_layer_forward(ctx, &clip->ln_pre, x);
    for (int i = 0; i < c->vision_layers; i++) x = resblock_forward(ctx, &clip->vision_blocks[i], x, false);
    nd_tensor *pooled = nd_reshape(ctx, nd_slice(ctx, x, 1, 0, 1), ND_SHAPE(b, w)); // (B, W) the class token
    pooled = nd_layer_norm_layer_forward(ctx, &clip->ln_post, pooled);
    nd_trace(ctx, "visual.ln_post", pooled);
    return nd_matmul(ctx, pooled, clip->vis_proj, false, false); // (B, E)
}

nd_tensor *nd_l2_normalize(nd_ctx *ctx, nd_tensor *x) {
    int last = x->shape.ndim - 1;
    nd_tensor *sq = nd_sum(ctx, nd_square(ctx, x), &last, 1, true); // (..., 1)
    // sqrt(|x|^2 + eps^2) equals max(|x|, eps) to float precision for every non-degenerate x, and is smooth.
    nd_tensor *norm = nd_sqrt(ctx, nd_add_scalar(ctx, sq, ND_CLIP_NORMALIZE_EPS * ND_CLIP_NORMALIZE_EPS));
    return nd_div(ctx, x, norm);
}

nd_tensor *nd_clip_contrastive_loss(nd_ctx *ctx, nd_tensor *image_emb, nd_tensor *text_emb, nd_tensor *logit_scale) {
    if (!nd_shape_equal(image_emb->shape, text_emb->shape) || image_emb->shape.ndim != 2)
        nd_abort_shapes(ND_HERE, "nd_clip_contrastive_loss", "image and text embeddings must be (N, E) alike",
                        image_emb->shape, text_emb->shape);
    int64_t n = image_emb->shape.d[0];
    nd_tensor *logits = nd_matmul(ctx, image_emb, text_emb, false, true); // (N, N) image rows, text columns
    logits = nd_mul(ctx, logits, nd_exp(ctx, logit_scale));
    float *arange = nd_xmalloc((size_t)n * sizeof *arange);
    for (int64_t i = 0; i < n; i++) arange[i] = (float)i;
    nd_tensor *labels = nd_from_host(ctx, ND_SHAPE(n), arange); // (N)
    free(arange);
    nd_tensor *per_image = nd_cross_entropy(ctx, logits, labels);
    nd_tensor *per_text = nd_cross_entropy(ctx, nd_transpose(ctx, logits, 0, 1), labels);
    return nd_mul_scalar(ctx, nd_add(ctx, per_image, per_text), 0.5f);
}

nd_tensor *nd_clip_loss(nd_ctx *ctx, const nd_clip *clip, nd_tensor *images, const int32_t *ids) {
    int batch = (int)images->shape.d[0];
    nd_tensor *image_emb = nd_l2_normalize(ctx, nd_clip_encode_image(ctx, clip, images)); // (B, E)
    nd_tensor *text_emb = nd_l2_normalize(ctx, nd_clip_encode_text(ctx, clip, ids, batch, NULL)); // (B, E)
    return nd_clip_contrastive_loss(ctx, image_emb, text_emb, clip->logit_scale);
}

void nd_clip_clamp_logit_scale(nd_ctx *ctx, nd_clip *clip) {
    float v;
    nd_copy_to_host(ctx, clip->logit_scale, &v);
    float clamped = fminf(fmaxf(v, 0.0f), ND_CLIP_LOGIT_SCALE_MAX);
    if (clamped != v) nd_copy_from_host(ctx, clip->logit_scale, &clamped);
}
