// The course's U-Net blocks (utils/UNet_utils.py) and a time-conditioned ResBlock.
#include <math.h>
#include <stdio.h>

#include "nn.h"

void nd_gelu_conv_block_init(nd_gelu_conv_block *b, nd_params *params, const char *name, int64_t in_ch, int64_t out_ch,
                             int groups) {
    char key[ND_NAME_MAX];
    nd_conv2d_layer_init(&b->conv, params, nd_module_name(key, "%s.model.0", name), in_ch, out_ch, 3, 1, 1, true);
    nd_group_norm_layer_init(&b->norm, params, nd_module_name(key, "%s.model.1", name), groups, out_ch);
}

// GELUConvBlock.forward
nd_tensor *nd_gelu_conv_block_forward(nd_ctx *ctx, const nd_gelu_conv_block *b, nd_tensor *x) {
    return nd_conv2d_norm_act_layers_forward(ctx, &b->conv, &b->norm, x, ND_UNARY_GELU);
}

void nd_down_block_init(nd_down_block *b, nd_params *params, const char *name, int64_t in_ch, int64_t out_ch,
                        int groups) {
    char key[ND_NAME_MAX];
    nd_gelu_conv_block_init(&b->conv0, params, nd_module_name(key, "%s.model.0", name), in_ch, out_ch, groups);
    nd_gelu_conv_block_init(&b->conv1, params, nd_module_name(key, "%s.model.1", name), out_ch, out_ch, groups);
    nd_gelu_conv_block_init(&b->pool.conv, params, nd_module_name(key, "%s.model.2.conv", name), 4 * out_ch, out_ch,
                            groups);
}

// DownBlock.forward: two GELUConvBlocks, then RearrangePoolBlock (space-to-depth, then GELUConvBlock 4C -> C)
nd_tensor *nd_down_block_forward(nd_ctx *ctx, const nd_down_block *b, nd_tensor *x) {
    nd_tensor *h = nd_gelu_conv_block_forward(ctx, &b->conv1, nd_gelu_conv_block_forward(ctx, &b->conv0, x));
    return nd_gelu_conv_block_forward(ctx, &b->pool.conv, nd_pixel_unshuffle(ctx, h, 2));
}

void nd_up_block_init(nd_up_block *b, nd_params *params, const char *name, int64_t in_ch, int64_t out_ch, int groups) {
    char key[ND_NAME_MAX];
    nd_conv_transpose2d_layer_init(&b->up, params, nd_module_name(key, "%s.model.0", name), 2 * in_ch, out_ch, 2, 2, 0,
                                   0);
    for (int i = 0; i < 4; i++)
        nd_gelu_conv_block_init(&b->convs[i], params, nd_module_name(key, "%s.model.%d", name, i + 1), out_ch, out_ch,
                                groups);
}

// UpBlock.forward(x, skip)
nd_tensor *nd_up_block_forward(nd_ctx *ctx, const nd_up_block *b, nd_tensor *x, nd_tensor *skip) {
    nd_tensor *pair[2] = {x, skip};
    nd_tensor *h = nd_conv_transpose2d_layer_forward(ctx, &b->up, nd_concat(ctx, pair, 2, 1));
    for (int i = 0; i < 4; i++) h = nd_gelu_conv_block_forward(ctx, &b->convs[i], h);
    return h;
}

void nd_residual_conv_block_init(nd_residual_conv_block *b, nd_params *params, const char *name, int64_t in_ch,
                                 int64_t out_ch, int groups) {
    char key[ND_NAME_MAX];
    nd_gelu_conv_block_init(&b->conv1, params, nd_module_name(key, "%s.conv1", name), in_ch, out_ch, groups);
    nd_gelu_conv_block_init(&b->conv2, params, nd_module_name(key, "%s.conv2", name), out_ch, out_ch, groups);
}

// ResidualConvBlock.forward
nd_tensor *nd_residual_conv_block_forward(nd_ctx *ctx, const nd_residual_conv_block *b, nd_tensor *x) {
    nd_tensor *x1 = nd_gelu_conv_block_forward(ctx, &b->conv1, x);
    return nd_add(ctx, x1, nd_gelu_conv_block_forward(ctx, &b->conv2, x1));
}

void nd_embed_block_init(nd_embed_block *b, nd_params *params, const char *name, int64_t in_dim, int64_t emb_dim) {
    char key[ND_NAME_MAX];
    nd_linear_layer_init(&b->fc1, params, nd_module_name(key, "%s.model.0", name), in_dim, emb_dim, true);
    nd_linear_layer_init(&b->fc2, params, nd_module_name(key, "%s.model.2", name), emb_dim, emb_dim, true);
}

// EmbedBlock.forward (notebooks 03-06: GELU between the two Linears)
nd_tensor *nd_embed_block_forward(nd_ctx *ctx, const nd_embed_block *b, nd_tensor *x) {
    nd_tensor *flat = nd_reshape(ctx, x, ND_SHAPE(-1, b->fc1.in_features));
    nd_tensor *e = nd_linear_layer_forward(ctx, &b->fc2, nd_gelu(ctx, nd_linear_layer_forward(ctx, &b->fc1, flat)));
    return nd_reshape(ctx, e, ND_SHAPE(e->shape.d[0], b->fc2.out_features, 1, 1));
}

// SinusoidalPositionEmbedBlock.forward: t (B,) -> (B, dim)
nd_tensor *nd_sinusoidal_embed(nd_ctx *ctx, nd_tensor *t, int dim) {
    int half = dim / 2;
    float freqs[512];
    if (half < 2 || half > 512) nd_abort_at(ND_HERE, "nd_sinusoidal_embed", "dim %d must be in [4, 1024]", dim);
    // as torch computes it in float32: exp(arange(half) * -(ln(10000) / (half - 1)))
    float step = (float)(log(10000.0) / (half - 1));
    for (int k = 0; k < half; k++) freqs[k] = expf((float)k * -step);
    nd_tensor *f = nd_from_host(ctx, ND_SHAPE(1, half), freqs);
    nd_tensor *angles = nd_mul(ctx, nd_reshape(ctx, t, ND_SHAPE(-1, 1)), f); // (B, half)
    nd_tensor *parts[2] = {nd_sin(ctx, angles), nd_cos(ctx, angles)};
    return nd_concat(ctx, parts, 2, 1);
}

void nd_res_block_init(nd_res_block *b, nd_params *params, const char *name, int64_t in_ch, int64_t out_ch,
                       int64_t temb_dim, int groups) {
    char key[ND_NAME_MAX];
    nd_group_norm_layer_init(&b->norm1, params, nd_module_name(key, "%s.norm1", name), groups, in_ch);
    nd_conv2d_layer_init(&b->conv1, params, nd_module_name(key, "%s.conv1", name), in_ch, out_ch, 3, 1, 1, true);
    nd_linear_layer_init(&b->temb_proj, params, nd_module_name(key, "%s.temb_proj", name), temb_dim, out_ch, true);
    nd_group_norm_layer_init(&b->norm2, params, nd_module_name(key, "%s.norm2", name), groups, out_ch);
    nd_conv2d_layer_init(&b->conv2, params, nd_module_name(key, "%s.conv2", name), out_ch, out_ch, 3, 1, 1, true);
    b->has_skip = in_ch != out_ch;
    if (b->has_skip)
        nd_conv2d_layer_init(&b->skip, params, nd_module_name(key, "%s.skip", name), in_ch, out_ch, 1, 1, 0, true);
}

nd_tensor *nd_res_block_forward(nd_ctx *ctx, const nd_res_block *b, nd_tensor *x, nd_tensor *temb) {
    nd_tensor *h = nd_conv2d_layer_forward(ctx, &b->conv1,
                                           nd_group_norm_layer_act_forward(ctx, &b->norm1, x, ND_UNARY_SILU));
    nd_tensor *shift = nd_linear_layer_forward(ctx, &b->temb_proj, nd_silu(ctx, temb)); // (B, out)
    h = nd_add(ctx, h, nd_reshape(ctx, shift, ND_SHAPE(shift->shape.d[0], shift->shape.d[1], 1, 1)));
    h = nd_conv2d_layer_forward(ctx, &b->conv2, nd_group_norm_layer_act_forward(ctx, &b->norm2, h, ND_UNARY_SILU));
    return nd_add(ctx, b->has_skip ? nd_conv2d_layer_forward(ctx, &b->skip, x) : x, h);
}
