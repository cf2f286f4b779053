// The U-Net of notebooks 01 and 02: Conv/BatchNorm/ReLU, MaxPool2d(2) down, ConvTranspose2d(k3 s2 p1 op1) up.
// Notebook 01 (t_embed_dim 0) defines dense_emb but never calls it; notebook 02 (t_embed_dim 1) calls it and
// adds a ReLU EmbedBlock of t/T to each up block's input.
#include <stdio.h>

#include "dli_models.h"

static void conv_init(nd_v1_conv *c, nd_params *params, nd_params *buffers, const char *conv_name, const char *bn_name,
                      int64_t in_ch, int64_t out_ch) {
    nd_conv2d_layer_init(&c->conv, params, conv_name, in_ch, out_ch, 3, 1, 1, true);
    nd_batch_norm2d_layer_init(&c->bn, params, buffers, bn_name, out_ch);
}

static nd_tensor *conv_forward(nd_ctx *ctx, const nd_v1_conv *c, nd_tensor *x, bool training) {
    return nd_relu(ctx,
                   nd_batch_norm2d_layer_forward(ctx, &c->bn, nd_conv2d_layer_forward(ctx, &c->conv, x), training));
}

static void down_init(nd_v1_conv c[2], nd_params *params, nd_params *buffers, const char *name, int64_t in_ch,
                      int64_t out_ch) {
    char a[ND_NAME_MAX], b[ND_NAME_MAX];
    conv_init(&c[0], params, buffers, nd_module_name(a, "%s.model.0", name), nd_module_name(b, "%s.model.1", name),
              in_ch, out_ch);
    conv_init(&c[1], params, buffers, nd_module_name(a, "%s.model.3", name), nd_module_name(b, "%s.model.4", name),
              out_ch, out_ch);
}

static void up_init(nd_v1_up *u, nd_params *params, nd_params *buffers, const char *name, int64_t in_ch,
                    int64_t out_ch) {
    char a[ND_NAME_MAX], b[ND_NAME_MAX];
    nd_conv_transpose2d_layer_init(&u->up, params, nd_module_name(a, "%s.model.0", name), 2 * in_ch, out_ch, 3, 2, 1,
                                   1);
    nd_batch_norm2d_layer_init(&u->up_bn, params, buffers, nd_module_name(a, "%s.model.1", name), out_ch);
    conv_init(&u->conv, params, buffers, nd_module_name(a, "%s.model.3", name), nd_module_name(b, "%s.model.4", name),
              out_ch, out_ch);
}

static nd_tensor *up_forward(nd_ctx *ctx, const nd_v1_up *u, nd_tensor *x, nd_tensor *skip, bool training) {
    nd_tensor *pair[2] = {x, skip};
    nd_tensor *h = nd_conv_transpose2d_layer_forward(ctx, &u->up, nd_concat(ctx, pair, 2, 1));
    h = nd_relu(ctx, nd_batch_norm2d_layer_forward(ctx, &u->up_bn, h, training));
    return conv_forward(ctx, &u->conv, h, training);
}

static void embed_init(nd_v1_embed *e, nd_params *params, const char *name, int64_t in_dim, int64_t emb_dim) {
    char key[ND_NAME_MAX];
    nd_linear_layer_init(&e->fc1, params, nd_module_name(key, "%s.model.0", name), in_dim, emb_dim, true);
    nd_linear_layer_init(&e->fc2, params, nd_module_name(key, "%s.model.2", name), emb_dim, emb_dim, true);
}

// notebook 02's EmbedBlock.forward: (B, in) -> (B, emb, 1, 1)
static nd_tensor *embed_forward(nd_ctx *ctx, const nd_v1_embed *e, nd_tensor *x) {
    nd_tensor *flat = nd_reshape(ctx, x, ND_SHAPE(-1, e->fc1.in_features));
    nd_tensor *h = nd_linear_layer_forward(ctx, &e->fc2, nd_relu(ctx, nd_linear_layer_forward(ctx, &e->fc1, flat)));
    return nd_reshape(ctx, h, ND_SHAPE(h->shape.d[0], e->fc2.out_features, 1, 1));
}

void nd_dli_unet_v1_init(nd_dli_unet_v1 *u, nd_params *params, nd_params *buffers, const nd_model_config *cfg) {
    int64_t c0 = cfg->down_chs[0], c1 = cfg->down_chs[1], c2 = cfg->down_chs[2];
    int64_t latent = cfg->img_size / 4;
    conv_init(&u->down0, params, buffers, "down0.0", "down0.1", cfg->img_ch, c0);
    down_init(u->down1, params, buffers, "down1", c0, c1);
    down_init(u->down2, params, buffers, "down2", c1, c2);
    nd_linear_layer_init(&u->dense[0], params, "dense_emb.0", c2 * latent * latent, c1, true);
    nd_linear_layer_init(&u->dense[1], params, "dense_emb.2", c1, c1, true);
    nd_linear_layer_init(&u->dense[2], params, "dense_emb.4", c1, c2 * latent * latent, true);
    if (cfg->t_embed_dim > 0) {
        embed_init(&u->temb_1, params, "temb_1", cfg->t_embed_dim, c2);
        embed_init(&u->temb_2, params, "temb_2", cfg->t_embed_dim, c1);
    }
    conv_init(&u->up0, params, buffers, "up0.1", "up0.2", c2, c2);
    up_init(&u->up1, params, buffers, "up1", c2, c1);
    up_init(&u->up2, params, buffers, "up2", c1, c0);
    conv_init(&u->out0, params, buffers, "out.0", "out.1", c0, c0);
    nd_conv2d_layer_init(&u->out1, params, "out.3", c0, cfg->img_ch, 3, 1, 1, true);
}

// UNet.forward(x) (notebook 01) or UNet.forward(x, t) (notebook 02)
nd_tensor *nd_dli_unet_v1_forward(nd_ctx *ctx, const nd_dli_unet_v1 *u, const nd_model_config *cfg, nd_tensor *x,
                                  nd_tensor *t, bool training) {
    int64_t batch = x->shape.d[0], latent = cfg->img_size / 4, c2 = cfg->down_chs[2];
    nd_tensor *down0 = conv_forward(ctx, &u->down0, x, training);
    nd_trace(ctx, "down0", down0);
    nd_tensor *down1 = conv_forward(ctx, &u->down1[1], conv_forward(ctx, &u->down1[0], down0, training), training);
    down1 = nd_max_pool2d(ctx, down1, 2, 2);
    nd_trace(ctx, "down1", down1);
    nd_tensor *down2 = conv_forward(ctx, &u->down2[1], conv_forward(ctx, &u->down2[0], down1, training), training);
    down2 = nd_max_pool2d(ctx, down2, 2, 2);
    nd_trace(ctx, "down2", down2);
    nd_tensor *latent_vec = nd_relu(ctx, nd_reshape(ctx, down2, ND_SHAPE(batch, -1)));
    bool timed = cfg->t_embed_dim > 0;
    if (timed) {
        for (int i = 0; i < 3; i++) latent_vec = nd_relu(ctx, nd_linear_layer_forward(ctx, &u->dense[i], latent_vec));
        nd_trace(ctx, "dense_emb", latent_vec);
    }
    nd_tensor *up0 = conv_forward(ctx, &u->up0, nd_reshape(ctx, latent_vec, ND_SHAPE(batch, c2, latent, latent)),
                                  training);
    nd_trace(ctx, "up0", up0);
    nd_tensor *in1 = up0;
    nd_tensor *t_norm = timed ? nd_mul_scalar(ctx, t, 1.0f / (float)cfg->T) : NULL;
    if (timed) in1 = nd_add(ctx, up0, embed_forward(ctx, &u->temb_1, t_norm));
    nd_tensor *up1 = up_forward(ctx, &u->up1, in1, down2, training);
    nd_trace(ctx, "up1", up1);
    nd_tensor *in2 = timed ? nd_add(ctx, up1, embed_forward(ctx, &u->temb_2, t_norm)) : up1;
    nd_tensor *up2 = up_forward(ctx, &u->up2, in2, down1, training);
    nd_trace(ctx, "up2", up2);
    nd_tensor *out = nd_conv2d_layer_forward(ctx, &u->out1, conv_forward(ctx, &u->out0, up2, training));
    nd_trace(ctx, "out", out);
    return out;
}
