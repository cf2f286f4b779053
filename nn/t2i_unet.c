// The text-to-image U-Net: ResBlocks with a sinusoidal time embedding at three resolutions (S, S/2, S/4),
// TransformerBlocks (self-attention, cross-attention to the text tokens, feed-forward) at the two lower
// ones and in the middle, skip connections by concatenation, nearest upsampling followed by a conv.
// res-unet is the same network conditioned on a class (the course's one-hot context, masked for guidance):
// a bias-free Linear embeds it into the time embedding (as the ADM U-Net of Dhariwal & Nichol) and another
// into the single token the cross-attention reads. A dropped class (all-zero row) embeds to zero: the
// null token. Without classes the token is zero for every image.
#include <stdio.h>

#include "dli_models.h"

void nd_t2i_unet_init(nd_t2i_unet *u, nd_params *params, const nd_model_config *cfg) {
    char key[ND_NAME_MAX];
    const int *ch = cfg->down_chs;
    bool classes = cfg->kind == ND_MODEL_RES_UNET;
    int64_t temb_dim = 4 * ch[0], context = classes ? temb_dim : cfg->c_embed_dim;
    int groups = cfg->small_groups;
    nd_conv2d_layer_init(&u->conv_in, params, "conv_in", cfg->img_ch, ch[0], 3, 1, 1, true);
    nd_linear_layer_init(&u->time_fc1, params, "time_mlp.0", ch[0], temb_dim, true);
    nd_linear_layer_init(&u->time_fc2, params, "time_mlp.2", temb_dim, temb_dim, true);
    if (classes && cfg->c_embed_dim > 0) {
        nd_linear_layer_init(&u->class_temb, params, "class_embed.time", cfg->c_embed_dim, temb_dim, false);
        nd_linear_layer_init(&u->class_token, params, "class_embed.token", cfg->c_embed_dim, temb_dim, false);
    }
    for (int level = 0; level < 3; level++) {
        int64_t in = level == 0 ? ch[0] : ch[level - 1];
        nd_res_block_init(&u->down_res[level], params, nd_module_name(key, "down.%d.res", level), in, ch[level],
                          temb_dim, groups);
        if (level > 0)
            nd_transformer_block_init(&u->down_attn[level - 1], params, nd_module_name(key, "down.%d.attn", level),
                                      ch[level], context, cfg->heads);
        if (level < 2)
            nd_conv2d_layer_init(&u->down_sample[level], params, nd_module_name(key, "down.%d.downsample", level),
                                 ch[level], ch[level], 3, 2, 1, true);
    }
    nd_res_block_init(&u->mid_res, params, "mid.res", ch[2], ch[2], temb_dim, groups);
    nd_transformer_block_init(&u->mid_attn, params, "mid.attn", ch[2], context, cfg->heads);
    for (int level = 2; level >= 0; level--) {
        int64_t in = (level == 2 ? ch[2] : ch[level + 1]) + ch[level];
        nd_res_block_init(&u->up_res[level], params, nd_module_name(key, "up.%d.res", level), in, ch[level], temb_dim,
                          groups);
        if (level > 0) {
            nd_transformer_block_init(&u->up_attn[level - 1], params, nd_module_name(key, "up.%d.attn", level),
                                      ch[level], context, cfg->heads);
            nd_conv2d_layer_init(&u->up_conv[level - 1], params, nd_module_name(key, "up.%d.upsample", level),
                                 ch[level], ch[level], 3, 1, 1, true);
        }
    }
    nd_group_norm_layer_init(&u->norm_out, params, "norm_out", groups, ch[0]);
    nd_conv2d_layer_init(&u->conv_out, params, "conv_out", ch[0], cfg->img_ch, 3, 1, 1, true);
}

// x (B, C, S, S), t (B,), context (B, tokens, D) for t2i-unet, (B, classes) or NULL for res-unet -> predicted
// noise (B, C, S, S)
nd_tensor *nd_t2i_unet_forward(nd_ctx *ctx, const nd_t2i_unet *u, const nd_model_config *cfg, nd_tensor *x,
                               nd_tensor *t, nd_tensor *context) {
    nd_tensor *temb = nd_sinusoidal_embed(ctx, nd_mul_scalar(ctx, t, 1.0f / (float)cfg->T), cfg->down_chs[0]);
    temb = nd_linear_layer_forward(ctx, &u->time_fc2, nd_silu(ctx, nd_linear_layer_forward(ctx, &u->time_fc1, temb)));
    if (cfg->kind == ND_MODEL_RES_UNET) { // the class: into the time embedding, and as the one token
        int64_t batch = x->shape.d[0], width = temb->shape.d[1];
        if (cfg->c_embed_dim > 0) {
            if (!context) context = nd_zeros(ctx, ND_SHAPE(batch, cfg->c_embed_dim)); // the null class
            temb = nd_add(ctx, temb, nd_linear_layer_forward(ctx, &u->class_temb, context));
            context = nd_reshape(ctx, nd_linear_layer_forward(ctx, &u->class_token, context),
                                 ND_SHAPE(batch, 1, width));
        } else {
            context = nd_zeros(ctx, ND_SHAPE(batch, 1, width));
        }
    }
    nd_tensor *skips[3];
    nd_tensor *h = nd_conv2d_layer_forward(ctx, &u->conv_in, x);
    for (int level = 0; level < 3; level++) {
        h = nd_res_block_forward(ctx, &u->down_res[level], h, temb);
        if (level > 0) h = nd_transformer_block_forward(ctx, &u->down_attn[level - 1], h, context);
        skips[level] = h;
        nd_trace(ctx, level == 0 ? "down.0" : level == 1 ? "down.1" : "down.2", h);
        if (level < 2) h = nd_conv2d_layer_forward(ctx, &u->down_sample[level], h);
    }
    h = nd_transformer_block_forward(ctx, &u->mid_attn, nd_res_block_forward(ctx, &u->mid_res, h, temb), context);
    nd_trace(ctx, "mid", h);
    for (int level = 2; level >= 0; level--) {
        nd_tensor *pair[2] = {h, skips[level]};
        h = nd_res_block_forward(ctx, &u->up_res[level], nd_concat(ctx, pair, 2, 1), temb);
        if (level > 0) {
            h = nd_transformer_block_forward(ctx, &u->up_attn[level - 1], h, context);
            // nearest x2, then a conv: odd sizes (28 -> 14 -> 7) come back exactly since 7 * 2 = 14
            h = nd_conv2d_layer_forward(ctx, &u->up_conv[level - 1], nd_upsample_nearest(ctx, h, 2));
        }
        nd_trace(ctx, level == 0 ? "up.0" : level == 1 ? "up.1" : "up.2", h);
    }
    h = nd_group_norm_layer_act_forward(ctx, &u->norm_out, h, ND_UNARY_SILU);
    nd_tensor *out = nd_conv2d_layer_forward(ctx, &u->conv_out, h);
    nd_trace(ctx, "out", out);
    return out;
}
