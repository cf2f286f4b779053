// The basic layers: nn.Linear, nn.Conv2d, nn.ConvTranspose2d, nn.GroupNorm, nn.LayerNorm, nn.BatchNorm2d,
// nn.Embedding, each registering PyTorch-named parameters with PyTorch's default initialization.
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "nn.h"

#define ND_NORM_EPS 1e-5f // PyTorch's default eps for every norm layer
#define ND_BATCH_NORM_MOMENTUM 0.1f

const char *nd_module_name(char *buf, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(buf, ND_NAME_MAX, fmt, args);
    va_end(args);
    if (n < 0 || n >= ND_NAME_MAX) {
        fprintf(stderr, "nanodiff: module name \"%s...\" is longer than %d characters\n", buf, ND_NAME_MAX - 1);
        abort();
    }
    return buf;
}

static nd_tensor *add_param(nd_params *params, const char *name, const char *leaf, nd_shape shape, nd_init_kind init,
                            float bound) {
    char key[ND_NAME_MAX];
    return nd_params_add(params, nd_module_name(key, "%s.%s", name, leaf), shape, init, bound);
}

// kaiming_uniform_(a=sqrt(5)) gives bound sqrt(6 / ((1 + 5) fan_in)) = 1/sqrt(fan_in); biases use the same bound.
static float default_bound(int64_t fan_in) { return 1.0f / sqrtf((float)fan_in); }

void nd_linear_layer_init(nd_linear_layer *layer, nd_params *params, const char *name, int64_t in_features,
                          int64_t out_features, bool bias) {
    float bound = default_bound(in_features);
    layer->in_features = in_features;
    layer->out_features = out_features;
    layer->weight = add_param(params, name, "weight", ND_SHAPE(out_features, in_features), ND_INIT_UNIFORM, bound);
    layer->bias = bias ? add_param(params, name, "bias", ND_SHAPE(out_features), ND_INIT_UNIFORM, bound) : NULL;
}

nd_tensor *nd_linear_layer_forward(nd_ctx *ctx, const nd_linear_layer *layer, nd_tensor *x) {
    return nd_linear(ctx, x, layer->weight, layer->bias);
}

void nd_conv2d_layer_init(nd_conv2d_layer *layer, nd_params *params, const char *name, int64_t in_channels,
                          int64_t out_channels, int kernel, int stride, int padding, bool bias) {
    float bound = default_bound(in_channels * kernel * kernel);
    layer->stride = stride;
    layer->padding = padding;
    layer->weight = add_param(params, name, "weight", ND_SHAPE(out_channels, in_channels, kernel, kernel),
                              ND_INIT_UNIFORM, bound);
    layer->bias = bias ? add_param(params, name, "bias", ND_SHAPE(out_channels), ND_INIT_UNIFORM, bound) : NULL;
}

nd_tensor *nd_conv2d_layer_forward(nd_ctx *ctx, const nd_conv2d_layer *layer, nd_tensor *x) {
    return nd_conv2d(ctx, x, layer->weight, layer->bias, layer->stride, layer->padding);
}

void nd_conv_transpose2d_layer_init(nd_conv_transpose2d_layer *layer, nd_params *params, const char *name,
                                    int64_t in_channels, int64_t out_channels, int kernel, int stride, int padding,
                                    int output_padding) {
    // PyTorch takes fan_in from the weight's dim 1, which for a transposed conv is out_channels
    float bound = default_bound(out_channels * kernel * kernel);
    layer->stride = stride;
    layer->padding = padding;
    layer->output_padding = output_padding;
    layer->weight = add_param(params, name, "weight", ND_SHAPE(in_channels, out_channels, kernel, kernel),
                              ND_INIT_UNIFORM, bound);
    layer->bias = add_param(params, name, "bias", ND_SHAPE(out_channels), ND_INIT_UNIFORM, bound);
}

nd_tensor *nd_conv_transpose2d_layer_forward(nd_ctx *ctx, const nd_conv_transpose2d_layer *layer, nd_tensor *x) {
    return nd_conv_transpose2d(ctx, x, layer->weight, layer->bias, layer->stride, layer->padding,
                               layer->output_padding);
}

static void norm_init(nd_norm_layer *layer, nd_params *params, const char *name, int64_t channels) {
    layer->weight = add_param(params, name, "weight", ND_SHAPE(channels), ND_INIT_ONES, 0.0f);
    layer->bias = add_param(params, name, "bias", ND_SHAPE(channels), ND_INIT_ZEROS, 0.0f);
}

void nd_group_norm_layer_init(nd_norm_layer *layer, nd_params *params, const char *name, int num_groups,
                              int64_t channels) {
    norm_init(layer, params, name, channels);
    layer->num_groups = num_groups;
}

nd_tensor *nd_group_norm_layer_forward(nd_ctx *ctx, const nd_norm_layer *layer, nd_tensor *x) {
    return nd_group_norm(ctx, x, layer->num_groups, layer->weight, layer->bias, ND_NORM_EPS);
}

nd_tensor *nd_conv2d_norm_act_layers_forward(nd_ctx *ctx, const nd_conv2d_layer *conv, const nd_norm_layer *norm,
                                             nd_tensor *x, nd_unary_kind act) {
    return nd_conv2d_group_norm_act(ctx, x, conv->weight, conv->bias, conv->stride, conv->padding, norm->num_groups,
                                    norm->weight, norm->bias, ND_NORM_EPS, act);
}

nd_tensor *nd_group_norm_layer_act_forward(nd_ctx *ctx, const nd_norm_layer *layer, nd_tensor *x, nd_unary_kind act) {
    return nd_group_norm_act(ctx, x, layer->num_groups, layer->weight, layer->bias, ND_NORM_EPS, act);
}

void nd_layer_norm_layer_init(nd_norm_layer *layer, nd_params *params, const char *name, int64_t dim) {
    norm_init(layer, params, name, dim);
    layer->num_groups = 0;
}

nd_tensor *nd_layer_norm_layer_forward(nd_ctx *ctx, const nd_norm_layer *layer, nd_tensor *x) {
    return nd_layer_norm(ctx, x, layer->weight, layer->bias, ND_NORM_EPS);
}

void nd_batch_norm2d_layer_init(nd_batch_norm2d_layer *layer, nd_params *params, nd_params *buffers, const char *name,
                                int64_t channels) {
    layer->weight = add_param(params, name, "weight", ND_SHAPE(channels), ND_INIT_ONES, 0.0f);
    layer->bias = add_param(params, name, "bias", ND_SHAPE(channels), ND_INIT_ZEROS, 0.0f);
    layer->running_mean = add_param(buffers, name, "running_mean", ND_SHAPE(channels), ND_INIT_ZEROS, 0.0f);
    layer->running_var = add_param(buffers, name, "running_var", ND_SHAPE(channels), ND_INIT_ONES, 0.0f);
    layer->running_mean->requires_grad = false;
    layer->running_var->requires_grad = false;
}

nd_tensor *nd_batch_norm2d_layer_forward(nd_ctx *ctx, const nd_batch_norm2d_layer *layer, nd_tensor *x, bool training) {
    return nd_batch_norm2d(ctx, x, layer->weight, layer->bias, layer->running_mean, layer->running_var, training,
                           ND_BATCH_NORM_MOMENTUM, ND_NORM_EPS);
}

void nd_embedding_layer_init(nd_embedding_layer *layer, nd_params *params, const char *name, int64_t num, int64_t dim) {
    layer->weight = add_param(params, name, "weight", ND_SHAPE(num, dim), ND_INIT_NORMAL, 1.0f);
}

nd_tensor *nd_embedding_layer_forward(nd_ctx *ctx, const nd_embedding_layer *layer, nd_tensor *indices) {
    return nd_embedding(ctx, layer->weight, indices);
}
