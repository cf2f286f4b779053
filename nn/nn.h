// nanodiff nn: layers as structs of parameter tensors plus forward functions, named as PyTorch modules.
#ifndef ND_NN_H
#define ND_NN_H

#include "autograd.h"

// nn.Linear(in_features, out_features, bias): weight (out, in), bias (out,), PyTorch's default init.
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

#endif
