// nn.Linear.
#include <math.h>
#include <stdio.h>

#include "nn.h"

void nd_linear_layer_init(nd_linear_layer *layer, nd_params *params, const char *name, int64_t in_features,
                          int64_t out_features, bool bias) {
    char key[256];
    // kaiming_uniform_(a=sqrt(5)) gives bound sqrt(6 / ((1 + 5) * fan_in)) = 1/sqrt(fan_in); the bias uses the same
    float bound = 1.0f / sqrtf((float)in_features);
    layer->in_features = in_features;
    layer->out_features = out_features;
    snprintf(key, sizeof key, "%s.weight", name);
    layer->weight = nd_params_add(params, key, ND_SHAPE(out_features, in_features), ND_INIT_UNIFORM, bound);
    layer->bias = NULL;
    if (bias) {
        snprintf(key, sizeof key, "%s.bias", name);
        layer->bias = nd_params_add(params, key, ND_SHAPE(out_features), ND_INIT_UNIFORM, bound);
    }
}

nd_tensor *nd_linear_layer_forward(nd_ctx *ctx, const nd_linear_layer *layer, nd_tensor *x) {
    return nd_linear(ctx, x, layer->weight, layer->bias);
}
