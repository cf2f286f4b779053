// The course's U-Net of notebooks 03-06 (utils/UNet_utils.py UNet): GroupNorm/GELU blocks, rearrange
// pooling, a dense bottleneck, sinusoidal time embedding, and a class context that scales the up path
// while time shifts it: up1 = UpBlock(c_emb1 * up0 + t_emb1, down2).
#include <stdio.h>
#include <stdlib.h>

#include "dli_models.h"

void nd_dli_unet_init(nd_dli_unet *u, nd_params *params, const nd_model_config *cfg) {
    int64_t c0 = cfg->down_chs[0], c1 = cfg->down_chs[1], c2 = cfg->down_chs[2];
    int64_t latent = cfg->img_size / 4;
    int small = cfg->small_groups, big = cfg->big_groups;
    nd_residual_conv_block_init(&u->down0, params, "down0", cfg->img_ch, c0, small);
    nd_down_block_init(&u->down1, params, "down1", c0, c1, big);
    nd_down_block_init(&u->down2, params, "down2", c1, c2, big);
    nd_linear_layer_init(&u->dense[0], params, "dense_emb.0", c2 * latent * latent, c1, true);
    nd_linear_layer_init(&u->dense[1], params, "dense_emb.2", c1, c1, true);
    nd_linear_layer_init(&u->dense[2], params, "dense_emb.4", c1, c2 * latent * latent, true);
    nd_embed_block_init(&u->temb_1, params, "temb_1", cfg->t_embed_dim, c2);
    nd_embed_block_init(&u->temb_2, params, "temb_2", cfg->t_embed_dim, c1);
    if (cfg->c_embed_dim > 0) {
        nd_embed_block_init(&u->c_embed1, params, "c_embed1", cfg->c_embed_dim, c2);
        nd_embed_block_init(&u->c_embed2, params, "c_embed2", cfg->c_embed_dim, c1);
    }
    nd_gelu_conv_block_init(&u->up0, params, "up0.1", c2, c2, big);
    nd_up_block_init(&u->up1, params, "up1", c2, c1, big);
    nd_up_block_init(&u->up2, params, "up2", c1, c0, big);
    nd_conv2d_layer_init(&u->out_conv1, params, "out.0", 2 * c0, c0, 3, 1, 1, true);
    nd_group_norm_layer_init(&u->out_norm, params, "out.1", small, c0);
    nd_conv2d_layer_init(&u->out_conv2, params, "out.3", c0, cfg->img_ch, 3, 1, 1, true);
}

// UNet.forward(x, t, c, c_mask) with c * c_mask already applied by the caller (context)
nd_tensor *nd_dli_unet_forward(nd_ctx *ctx, const nd_dli_unet *u, const nd_model_config *cfg, nd_tensor *x,
                               nd_tensor *t, nd_tensor *context) {
    int64_t batch = x->shape.d[0], latent = cfg->img_size / 4, c2 = cfg->down_chs[2];
    nd_tensor *down0 = nd_residual_conv_block_forward(ctx, &u->down0, x); // (B, c0, S, S)
    nd_trace(ctx, "down0", down0);
    nd_tensor *down1 = nd_down_block_forward(ctx, &u->down1, down0); // (B, c1, S/2, S/2)
    nd_trace(ctx, "down1", down1);
    nd_tensor *down2 = nd_down_block_forward(ctx, &u->down2, down1); // (B, c2, S/4, S/4)
    nd_trace(ctx, "down2", down2);
    nd_tensor *latent_vec = nd_gelu(ctx, nd_reshape(ctx, down2, ND_SHAPE(batch, -1))); // to_vec
    for (int i = 0; i < 3; i++) latent_vec = nd_relu(ctx, nd_linear_layer_forward(ctx, &u->dense[i], latent_vec));
    nd_trace(ctx, "dense_emb", latent_vec);

    nd_tensor *t_emb = nd_sinusoidal_embed(ctx, nd_mul_scalar(ctx, t, 1.0f / (float)cfg->T), cfg->t_embed_dim);
    nd_tensor *temb_1 = nd_embed_block_forward(ctx, &u->temb_1, t_emb); // (B, c2, 1, 1)
    nd_tensor *temb_2 = nd_embed_block_forward(ctx, &u->temb_2, t_emb); // (B, c1, 1, 1)
    nd_trace(ctx, "temb_1", temb_1);
    nd_trace(ctx, "temb_2", temb_2);

    nd_tensor *up0 = nd_gelu_conv_block_forward(ctx, &u->up0,
                                                nd_reshape(ctx, latent_vec, ND_SHAPE(batch, c2, latent, latent)));
    nd_trace(ctx, "up0", up0);
    nd_tensor *in1 = up0, *in2;
    if (cfg->c_embed_dim > 0) {
        if (!context) context = nd_zeros(ctx, ND_SHAPE(batch, cfg->c_embed_dim)); // the null context
        nd_tensor *c_emb1 = nd_embed_block_forward(ctx, &u->c_embed1, context);   // (B, c2, 1, 1)
        nd_trace(ctx, "c_embed1", c_emb1);
        in1 = nd_mul(ctx, c_emb1, up0);
        nd_tensor *up1 = nd_up_block_forward(ctx, &u->up1, nd_add(ctx, in1, temb_1), down2);
        nd_trace(ctx, "up1", up1);
        nd_tensor *c_emb2 = nd_embed_block_forward(ctx, &u->c_embed2, context); // (B, c1, 1, 1)
        nd_trace(ctx, "c_embed2", c_emb2);
        in2 = nd_mul(ctx, c_emb2, up1);
    } else {
        nd_tensor *up1 = nd_up_block_forward(ctx, &u->up1, nd_add(ctx, in1, temb_1), down2);
        nd_trace(ctx, "up1", up1);
        in2 = up1;
    }
    nd_tensor *up2 = nd_up_block_forward(ctx, &u->up2, nd_add(ctx, in2, temb_2), down1); // (B, c0, S, S)
    nd_trace(ctx, "up2", up2);
    nd_tensor *pair[2] = {up2, down0};
    nd_tensor *h = nd_conv2d_layer_forward(ctx, &u->out_conv1, nd_concat(ctx, pair, 2, 1));
    h = nd_group_norm_layer_act_forward(ctx, &u->out_norm, h, ND_UNARY_RELU);
    nd_tensor *out = nd_conv2d_layer_forward(ctx, &u->out_conv2, h); // (B, C, S, S)
    nd_trace(ctx, "out", out);
    return out;
}
