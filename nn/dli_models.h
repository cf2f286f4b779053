// The models' layer structs, shared by their files and nn/model.c (not part of the public nn.h).
#ifndef ND_DLI_MODELS_H
#define ND_DLI_MODELS_H

#include "nn.h"

typedef struct nd_dli_unet {
    nd_residual_conv_block down0;
    nd_down_block down1, down2;
    nd_linear_layer dense[3];
    nd_embed_block temb_1, temb_2, c_embed1, c_embed2;
    nd_gelu_conv_block up0;
    nd_up_block up1, up2;
    nd_conv2d_layer out_conv1, out_conv2;
    nd_norm_layer out_norm;
} nd_dli_unet;

void nd_dli_unet_init(nd_dli_unet *u, nd_params *params, const nd_model_config *cfg);
nd_tensor *nd_dli_unet_forward(nd_ctx *ctx, const nd_dli_unet *u, const nd_model_config *cfg, nd_tensor *x,
                               nd_tensor *t, nd_tensor *context);

// Notebooks 01-02: conv -> BatchNorm -> ReLU stacks, max pooling, transposed-conv upsampling.
typedef struct nd_v1_conv {
    nd_conv2d_layer conv;
    nd_batch_norm2d_layer bn;
} nd_v1_conv;

typedef struct nd_v1_up {
    nd_conv_transpose2d_layer up;
    nd_batch_norm2d_layer up_bn;
    nd_v1_conv conv;
} nd_v1_up;

typedef struct nd_v1_embed { // notebook 02's EmbedBlock: Linear -> ReLU -> Linear
    nd_linear_layer fc1, fc2;
} nd_v1_embed;

typedef struct nd_dli_unet_v1 {
    nd_v1_conv down0, down1[2], down2[2], up0, out0;
    nd_linear_layer dense[3];
    nd_v1_embed temb_1, temb_2;
    nd_v1_up up1, up2;
    nd_conv2d_layer out1;
} nd_dli_unet_v1;

void nd_dli_unet_v1_init(nd_dli_unet_v1 *u, nd_params *params, nd_params *buffers, const nd_model_config *cfg);
nd_tensor *nd_dli_unet_v1_forward(nd_ctx *ctx, const nd_dli_unet_v1 *u, const nd_model_config *cfg, nd_tensor *x,
                                  nd_tensor *t, bool training);

// The text-to-image U-Net: three levels of ResBlocks, TransformerBlocks at the two lower ones. As res-unet
// it reads a class instead of a text: class_temb adds the class's embedding to the time embedding and
// class_token makes the one token the cross-attention reads.
typedef struct nd_t2i_unet {
    nd_conv2d_layer conv_in, down_sample[2], up_conv[2], conv_out;
    nd_linear_layer time_fc1, time_fc2;
    nd_linear_layer class_temb, class_token; // res-unet with classes only
    nd_res_block down_res[3], mid_res, up_res[3];
    nd_transformer_block down_attn[2], mid_attn, up_attn[2];
    nd_norm_layer norm_out;
} nd_t2i_unet;

void nd_t2i_unet_init(nd_t2i_unet *u, nd_params *params, const nd_model_config *cfg);
nd_tensor *nd_t2i_unet_forward(nd_ctx *ctx, const nd_t2i_unet *u, const nd_model_config *cfg, nd_tensor *x,
                               nd_tensor *t, nd_tensor *context);

#endif
