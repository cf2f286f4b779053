// Notebook 02: the U-Net's channel plumbing (12 blanks): which channel count goes into each layer.
//
// down_chs = (16, 32, 64) on the way down, up_chs = (64, 32, 16) on the way up; the image has img_chs
// channels; the latent after two poolings is down_chs[2] x (size/4) x (size/4), flattened for dense_emb
// (Linear(latent, down_chs[1]) -> ReLU -> Linear(down_chs[1], down_chs[1]) -> ReLU -> Linear(down_chs[1],
// latent) -> ReLU) and unflattened again for up0. Each UpBlock(in, out) concatenates its skip, so its
// transposed convolution takes 2 in channels (the helper below does that doubling). The time embeddings
// temb_1 and temb_2 are added to up0 and up1: their widths are those feature maps' channels.
// Only the registered parameters matter here (the checker compares their names and shapes with the
// library's notebook-02 model), so the layers go into scratch structs.
// The reference solution.
#include "exercise.h"

static nd_conv2d_layer conv;
static nd_conv_transpose2d_layer conv_t;
static nd_batch_norm2d_layer bn;
static nd_linear_layer linear;

static void conv_bn(nd_params *p, nd_params *b, const char *conv_name, const char *bn_name, int in, int out) {
    nd_conv2d_layer_init(&conv, p, conv_name, in, out, 3, 1, 1, true);
    nd_batch_norm2d_layer_init(&bn, p, b, bn_name, out);
}

static void down_block(nd_params *p, nd_params *b, const char *name, int in, int out) {
    char c[64], n[64];
    snprintf(c, sizeof c, "%s.model.0", name), snprintf(n, sizeof n, "%s.model.1", name);
    conv_bn(p, b, c, n, in, out);
    snprintf(c, sizeof c, "%s.model.3", name), snprintf(n, sizeof n, "%s.model.4", name);
    conv_bn(p, b, c, n, out, out);
}

static void up_block(nd_params *p, nd_params *b, const char *name, int in, int out) {
    char c[64], n[64];
    snprintf(c, sizeof c, "%s.model.0", name), snprintf(n, sizeof n, "%s.model.1", name);
    nd_conv_transpose2d_layer_init(&conv_t, p, c, 2 * in, out, 3, 2, 1, 1);
    nd_batch_norm2d_layer_init(&bn, p, b, n, out);
    snprintf(c, sizeof c, "%s.model.3", name), snprintf(n, sizeof n, "%s.model.4", name);
    conv_bn(p, b, c, n, out, out);
}

static void embed_block(nd_params *p, const char *name, int in, int emb) {
    char k[64];
    snprintf(k, sizeof k, "%s.model.0", name);
    nd_linear_layer_init(&linear, p, k, in, emb, true);
    snprintf(k, sizeof k, "%s.model.2", name);
    nd_linear_layer_init(&linear, p, k, emb, emb, true);
}

void ex_v1_unet_init(nd_params *p, nd_params *b, int img_chs, int img_size, const int down_chs[3]) {
    const int up_chs[3] = {down_chs[2], down_chs[1], down_chs[0]};
    const int latent = down_chs[2] * (img_size / 4) * (img_size / 4), t_dim = 1;
    conv_bn(p, b, "down0.0", "down0.1", img_chs, down_chs[0]);
    down_block(p, b, "down1", down_chs[0], down_chs[1]);
    down_block(p, b, "down2", down_chs[1], down_chs[2]);
    nd_linear_layer_init(&linear, p, "dense_emb.0", latent, down_chs[1], true);
    nd_linear_layer_init(&linear, p, "dense_emb.2", down_chs[1], down_chs[1], true);
    nd_linear_layer_init(&linear, p, "dense_emb.4", down_chs[1], latent, true);
    embed_block(p, "temb_1", t_dim, up_chs[0]);
    embed_block(p, "temb_2", t_dim, up_chs[1]);
    conv_bn(p, b, "up0.1", "up0.2", up_chs[0], up_chs[0]);
    up_block(p, b, "up1", up_chs[0], up_chs[1]);
    up_block(p, b, "up2", up_chs[1], up_chs[2]);
    conv_bn(p, b, "out.0", "out.1", up_chs[2], up_chs[2]);
    nd_conv2d_layer_init(&conv, p, "out.3", up_chs[2], img_chs, 3, 1, 1, true);
}
