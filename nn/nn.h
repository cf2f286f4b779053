// nanodiff nn: layers as structs of parameter tensors plus forward functions, and the course's models.
// Parameters are registered under the names of the matching PyTorch modules, so a model's parameter list
// maps one-to-one onto the state_dict of its PyTorch twin. Initialization follows PyTorch's defaults.
#ifndef ND_NN_H
#define ND_NN_H

#include <stdio.h>

#include "autograd.h"

// ---------------------------------------------------------------------------------------------------
// layers

#define ND_NAME_MAX 256 // longest parameter name, terminator included

// Formats a module or parameter name into buf (ND_NAME_MAX bytes); aborts when it would not fit, since a
// silently cut name would no longer match the PyTorch state_dict.
const char *nd_module_name(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// nn.Linear(in_features, out_features, bias): weight (out, in), bias (out,).
typedef struct nd_linear_layer {
    nd_tensor *weight; // (out, in)
    nd_tensor *bias;   // (out,) or NULL
    int64_t in_features, out_features;
} nd_linear_layer;

// Registers "<name>.weight" and "<name>.bias" in params.
void nd_linear_layer_init(nd_linear_layer *layer, nd_params *params, const char *name, int64_t in_features,
                          int64_t out_features, bool bias);
// x (..., in) -> (..., out)
nd_tensor *nd_linear_layer_forward(nd_ctx *ctx, const nd_linear_layer *layer, nd_tensor *x);

// nn.Conv2d(in, out, kernel, stride, padding, bias): weight (out, in, k, k).
typedef struct nd_conv2d_layer {
    nd_tensor *weight; // (out, in, k, k)
    nd_tensor *bias;   // (out,) or NULL
    int stride, padding;
} nd_conv2d_layer;

void nd_conv2d_layer_init(nd_conv2d_layer *layer, nd_params *params, const char *name, int64_t in_channels,
                          int64_t out_channels, int kernel, int stride, int padding, bool bias);
nd_tensor *nd_conv2d_layer_forward(nd_ctx *ctx, const nd_conv2d_layer *layer, nd_tensor *x);

// nn.ConvTranspose2d(in, out, kernel, stride, padding, output_padding): weight (in, out, k, k).
typedef struct nd_conv_transpose2d_layer {
    nd_tensor *weight; // (in, out, k, k)
    nd_tensor *bias;   // (out,)
    int stride, padding, output_padding;
} nd_conv_transpose2d_layer;

void nd_conv_transpose2d_layer_init(nd_conv_transpose2d_layer *layer, nd_params *params, const char *name,
                                    int64_t in_channels, int64_t out_channels, int kernel, int stride, int padding,
                                    int output_padding);
nd_tensor *nd_conv_transpose2d_layer_forward(nd_ctx *ctx, const nd_conv_transpose2d_layer *layer, nd_tensor *x);

// nn.GroupNorm(num_groups, channels) and nn.LayerNorm(dim): affine, eps 1e-5.
typedef struct nd_norm_layer {
    nd_tensor *weight, *bias; // (channels,)
    int num_groups;           // GroupNorm only
} nd_norm_layer;

void nd_group_norm_layer_init(nd_norm_layer *layer, nd_params *params, const char *name, int num_groups,
                              int64_t channels);
nd_tensor *nd_group_norm_layer_forward(nd_ctx *ctx, const nd_norm_layer *layer, nd_tensor *x);
// act(GroupNorm(x)) as one op (nd_group_norm_act), e.g. the GELU after a GELUConvBlock's GroupNorm.
nd_tensor *nd_group_norm_layer_act_forward(nd_ctx *ctx, const nd_norm_layer *layer, nd_tensor *x, nd_unary_kind act);
// act(GroupNorm(Conv2d(x))) (nd_conv2d_group_norm_act: one call when nothing needs a gradient).
nd_tensor *nd_conv2d_norm_act_layers_forward(nd_ctx *ctx, const nd_conv2d_layer *conv, const nd_norm_layer *norm,
                                             nd_tensor *x, nd_unary_kind act);
void nd_layer_norm_layer_init(nd_norm_layer *layer, nd_params *params, const char *name, int64_t dim);
nd_tensor *nd_layer_norm_layer_forward(nd_ctx *ctx, const nd_norm_layer *layer, nd_tensor *x);

// nn.BatchNorm2d(channels): affine, eps 1e-5, momentum 0.1; running statistics are buffers.
typedef struct nd_batch_norm2d_layer {
    nd_tensor *weight, *bias;              // (C,) parameters
    nd_tensor *running_mean, *running_var; // (C,) buffers
} nd_batch_norm2d_layer;

void nd_batch_norm2d_layer_init(nd_batch_norm2d_layer *layer, nd_params *params, nd_params *buffers, const char *name,
                                int64_t channels);
nd_tensor *nd_batch_norm2d_layer_forward(nd_ctx *ctx, const nd_batch_norm2d_layer *layer, nd_tensor *x, bool training);

// nn.Embedding(num, dim): weight (num, dim) ~ N(0, 1).
typedef struct nd_embedding_layer {
    nd_tensor *weight; // (num, dim)
} nd_embedding_layer;

void nd_embedding_layer_init(nd_embedding_layer *layer, nd_params *params, const char *name, int64_t num, int64_t dim);
nd_tensor *nd_embedding_layer_forward(nd_ctx *ctx, const nd_embedding_layer *layer, nd_tensor *indices);

// ---------------------------------------------------------------------------------------------------
// attention

// Multi-head attention, the lesson's CrossAttention generalised to heads: to_q (dim -> dim), to_k / to_v
// (context_dim -> dim), all without bias, then to_out (dim -> dim, bias). With context NULL the layer
// attends over x itself (self-attention; context_dim must equal dim). The residual is the caller's.
typedef struct nd_attention_layer {
    nd_linear_layer to_q, to_k, to_v, to_out;
    int heads;
    int64_t dim, context_dim;
} nd_attention_layer;

void nd_attention_layer_init(nd_attention_layer *layer, nd_params *params, const char *name, int64_t dim,
                             int64_t context_dim, int heads);
// x (B, L, dim), context (B, S, context_dim) or NULL -> the attention update (B, L, dim)
nd_tensor *nd_attention_layer_forward(nd_ctx *ctx, const nd_attention_layer *layer, nd_tensor *x, nd_tensor *context,
                                      bool causal);

// The lesson's TransformerBlock on image features: pre-LayerNorm self-attention, pre-LayerNorm
// cross-attention to the context, pre-LayerNorm GELU feed-forward (dim -> 4 dim -> dim), each residual.
typedef struct nd_transformer_block {
    nd_norm_layer norm1, norm2, norm3;
    nd_attention_layer self_attn, cross_attn;
    nd_linear_layer ff1, ff2;
} nd_transformer_block;

void nd_transformer_block_init(nd_transformer_block *block, nd_params *params, const char *name, int64_t dim,
                               int64_t context_dim, int heads);
// x (B, C, H, W), context (B, S, context_dim) -> (B, C, H, W)
nd_tensor *nd_transformer_block_forward(nd_ctx *ctx, const nd_transformer_block *block, nd_tensor *x,
                                        nd_tensor *context);

// ---------------------------------------------------------------------------------------------------
// the course's blocks (utils/UNet_utils.py)

// GELUConvBlock: Conv2d(in, out, 3, 1, 1) -> GroupNorm(groups, out) -> GELU; names "<name>.model.0/1".
typedef struct nd_gelu_conv_block {
    nd_conv2d_layer conv;
    nd_norm_layer norm;
} nd_gelu_conv_block;

void nd_gelu_conv_block_init(nd_gelu_conv_block *b, nd_params *params, const char *name, int64_t in_ch, int64_t out_ch,
                             int groups);
nd_tensor *nd_gelu_conv_block_forward(nd_ctx *ctx, const nd_gelu_conv_block *b, nd_tensor *x);

// RearrangePoolBlock: pixel_unshuffle(2) then GELUConvBlock(4C -> C); names "<name>.conv.model.*".
typedef struct nd_rearrange_pool_block {
    nd_gelu_conv_block conv;
} nd_rearrange_pool_block;

// DownBlock: GELUConvBlock(in, out), GELUConvBlock(out, out), RearrangePoolBlock(out).
typedef struct nd_down_block {
    nd_gelu_conv_block conv0, conv1;
    nd_rearrange_pool_block pool;
} nd_down_block;

void nd_down_block_init(nd_down_block *b, nd_params *params, const char *name, int64_t in_ch, int64_t out_ch,
                        int groups);
nd_tensor *nd_down_block_forward(nd_ctx *ctx, const nd_down_block *b, nd_tensor *x);

// UpBlock: cat(x, skip) -> ConvTranspose2d(2 in, out, 2, 2) -> 4 x GELUConvBlock(out, out).
typedef struct nd_up_block {
    nd_conv_transpose2d_layer up;
    nd_gelu_conv_block convs[4];
} nd_up_block;

void nd_up_block_init(nd_up_block *b, nd_params *params, const char *name, int64_t in_ch, int64_t out_ch, int groups);
nd_tensor *nd_up_block_forward(nd_ctx *ctx, const nd_up_block *b, nd_tensor *x, nd_tensor *skip);

// ResidualConvBlock: x1 = GELUConv(in, out)(x); return x1 + GELUConv(out, out)(x1).
typedef struct nd_residual_conv_block {
    nd_gelu_conv_block conv1, conv2;
} nd_residual_conv_block;

void nd_residual_conv_block_init(nd_residual_conv_block *b, nd_params *params, const char *name, int64_t in_ch,
                                 int64_t out_ch, int groups);
nd_tensor *nd_residual_conv_block_forward(nd_ctx *ctx, const nd_residual_conv_block *b, nd_tensor *x);

// EmbedBlock: view(-1, in) -> Linear(in, emb) -> GELU -> Linear(emb, emb) -> Unflatten to (emb, 1, 1).
typedef struct nd_embed_block {
    nd_linear_layer fc1, fc2;
} nd_embed_block;

void nd_embed_block_init(nd_embed_block *b, nd_params *params, const char *name, int64_t in_dim, int64_t emb_dim);
// x (B, in) -> (B, emb, 1, 1)
nd_tensor *nd_embed_block_forward(nd_ctx *ctx, const nd_embed_block *b, nd_tensor *x);

// SinusoidalPositionEmbedBlock(dim): t (B,) -> cat(sin(t f), cos(t f)) (B, dim), f_k = exp(-k ln(1e4)/(dim/2-1)).
nd_tensor *nd_sinusoidal_embed(nd_ctx *ctx, nd_tensor *t, int dim);

// A ResBlock with time-embedding injection: h = conv1(silu(gn1(x))) + Linear(silu(temb)); h = conv2(silu(gn2(h)));
// returns skip(x) + h, skip a 1x1 conv when the channel count changes.
typedef struct nd_res_block {
    nd_norm_layer norm1, norm2;
    nd_conv2d_layer conv1, conv2, skip;
    nd_linear_layer temb_proj;
    bool has_skip;
} nd_res_block;

void nd_res_block_init(nd_res_block *b, nd_params *params, const char *name, int64_t in_ch, int64_t out_ch,
                       int64_t temb_dim, int groups);
// x (B, in, H, W), temb (B, temb_dim) -> (B, out, H, W)
nd_tensor *nd_res_block_forward(nd_ctx *ctx, const nd_res_block *b, nd_tensor *x, nd_tensor *temb);

// ---------------------------------------------------------------------------------------------------
// models

typedef enum nd_model_kind {
    ND_MODEL_DLI_UNET,    // notebooks 03-06: GroupNorm/GELU, rearrange pooling, class context
    ND_MODEL_DLI_UNET_V1, // notebooks 01-02: BatchNorm/ReLU/MaxPool
    ND_MODEL_T2I_UNET,    // ResBlocks + TransformerBlocks with cross-attention to a token sequence
    ND_MODEL_RES_UNET,    // t2i-unet's network conditioned on a class: its embedding joins the time embedding
                          // and is the one token the cross-attention reads
} nd_model_kind;

typedef struct nd_model_config {
    nd_model_kind kind;
    int img_ch, img_size;         // square images
    int T;                        // diffusion steps; the models see t / T
    int down_chs[3];              // dli-unet: (64, 64, 128); v1: (16, 32, 64); t2i: base widths of the three levels
    int t_embed_dim;              // dli-unet: 8; v1: 1 with a time embedding (02), 0 without (01)
    int c_embed_dim;              // dli-unet, res-unet: classes (10) or 0 for unconditional; t2i: context width D
    int small_groups, big_groups; // GroupNorm group counts (course: 8 and 32)
    int heads;                    // t2i attention heads
} nd_model_config;

// The course's configurations: notebook 03 (16x16, unconditional), 04 (16x16, 10 classes), 06 (28x28 MNIST).
nd_model_config nd_model_config_default(nd_model_kind kind, int img_ch, int img_size, int c_embed_dim);
const char *nd_model_kind_name(nd_model_kind kind);
// "dli-unet" / "dli-unet-v1" / "t2i-unet" / "res-unet" -> kind; false for an unknown name
bool nd_model_kind_parse(const char *name, nd_model_kind *kind);

typedef struct nd_model {
    nd_model_config config;
    nd_params params;  // trained tensors
    nd_params buffers; // BatchNorm running statistics
    void *impl;        // the model's layers
} nd_model;

// Whether a model can be built from c: sizes that fit its architecture (an image size its poolings halve
// evenly, group counts that divide the channels, attention heads that divide the width, an even time
// embedding) and at most max_params parameters (counted without allocating). False with the reason in why.
bool nd_model_config_check(const nd_model_config *c, int64_t max_params, char *why, size_t size);
// Registers every parameter (not yet allocated: call nd_params_alloc(&model->params, ctx) and
// nd_params_alloc(&model->buffers, ctx) after, or use nd_model_create).
void nd_model_init(nd_model *m, nd_model_config config);
// init + allocation + PyTorch-default initialization from the context's RNG.
void nd_model_create(nd_model *m, nd_model_config config, nd_ctx *ctx);
void nd_model_free(nd_model *m);
// Predicted noise for x (B, C, S, S) at timesteps t (B,) (raw step numbers, divided by T inside) given the
// context: dli-unet and res-unet (B, classes) one-hot already multiplied by its mask, or NULL when
// unconditional;
// t2i-unet (B, tokens, D). training selects BatchNorm's batch statistics (v1 only). With grad mode off
// (sampling, evaluation) a large batch runs in chunks whose intermediates are released as it goes.
nd_tensor *nd_model_forward(nd_ctx *ctx, const nd_model *m, nd_tensor *x, nd_tensor *t, nd_tensor *context,
                            bool training);
// Prints each block's output shape and parameter count for a batch of one, then the total.
void nd_model_summary(nd_ctx *ctx, const nd_model *m, FILE *out);

#include "clip.h" // the CLIP model (needs the layers above)

#endif
