// Gradient-check cases for the normalization and attention ops (group/layer/batch norm, masked fill,
// scaled dot-product attention). Their PyTorch references are in fixtures/norm.ndfx.
#include "gradcheck.h"

#define IN(...)                                                                                                        \
    { .shape = GC_SHAPE(__VA_ARGS__) }
#define MASK(...)                                                                                                      \
    { .shape = GC_SHAPE(__VA_ARGS__), .fill = GC_FILL_CLASSES, .classes = 2 }

#define NORM_EPS 1e-5f     // PyTorch's default for every norm
#define BN_MOMENTUM 0.1f   // nn.BatchNorm2d's default
#define MASKED_VALUE -2.5f // finite, so the check's projected loss stays finite
// Eval-mode running statistics, exact in float32; make_fixtures.py uses the same values.
static const float bn_eval_mean[3] = {0.5f, -0.25f, 1.0f};
static const float bn_eval_var[3] = {0.75f, 1.5f, 0.25f};

static nd_tensor *group_norm(nd_ctx *c, nd_tensor **x) { return nd_group_norm(c, x[0], 3, x[1], x[2], NORM_EPS); }
static nd_tensor *group_norm_noaffine(nd_ctx *c, nd_tensor **x) {
    return nd_group_norm(c, x[0], 3, NULL, NULL, NORM_EPS);
}
static nd_tensor *group_norm_gelu(nd_ctx *c, nd_tensor **x) {
    return nd_group_norm_act(c, x[0], 3, x[1], x[2], NORM_EPS, ND_UNARY_GELU);
}
static nd_tensor *group_norm_silu_noaffine(nd_ctx *c, nd_tensor **x) {
    return nd_group_norm_act(c, x[0], 2, NULL, NULL, NORM_EPS, ND_UNARY_SILU);
}
static nd_tensor *group_norm_tanh(nd_ctx *c, nd_tensor **x) { // an activation whose derivative reads its output
    return nd_group_norm_act(c, x[0], 3, x[1], x[2], NORM_EPS, ND_UNARY_TANH);
}
static nd_tensor *layer_norm(nd_ctx *c, nd_tensor **x) { return nd_layer_norm(c, x[0], x[1], x[2], NORM_EPS); }
static nd_tensor *layer_norm_noaffine(nd_ctx *c, nd_tensor **x) { return nd_layer_norm(c, x[0], NULL, NULL, NORM_EPS); }

// Training updates the running statistics on every forward. The check evaluates the op many times, so each
// call starts from fresh statistics in the step arena; the output reads only the batch's statistics, so the
// update cannot change what the check measures.
static nd_tensor *batch_norm2d_train(nd_ctx *c, nd_tensor **x) {
    int64_t channels = x[0]->shape.d[1];
    nd_tensor *running_mean = nd_zeros(c, ND_SHAPE(channels)), *running_var = nd_full(c, ND_SHAPE(channels), 1.0f);
    return nd_batch_norm2d(c, x[0], x[1], x[2], running_mean, running_var, true, BN_MOMENTUM, NORM_EPS);
}
static nd_tensor *batch_norm2d_eval(nd_ctx *c, nd_tensor **x) {
    nd_tensor *running_mean = nd_from_host(c, ND_SHAPE(3), bn_eval_mean);
    nd_tensor *running_var = nd_from_host(c, ND_SHAPE(3), bn_eval_var);
    return nd_batch_norm2d(c, x[0], x[1], x[2], running_mean, running_var, false, BN_MOMENTUM, NORM_EPS);
}
static nd_tensor *batch_norm2d_train_noaffine(nd_ctx *c, nd_tensor **x) {
    return nd_batch_norm2d(c, x[0], NULL, NULL, NULL, NULL, true, BN_MOMENTUM, NORM_EPS);
}

static nd_tensor *masked_fill(nd_ctx *c, nd_tensor **x) { return nd_masked_fill(c, x[0], x[1], MASKED_VALUE); }
static nd_tensor *attention(nd_ctx *c, nd_tensor **x) { return nd_attention(c, x[0], x[1], x[2], false); }
static nd_tensor *attention_causal(nd_ctx *c, nd_tensor **x) { return nd_attention(c, x[0], x[1], x[2], true); }

const gc_case gc_cases_norm[] = {
    {.name = "group_norm", .n_inputs = 3, .inputs = {IN(2, 6, 3, 3), IN(6), IN(6)}, .build = group_norm},
    {.name = "group_norm_noaffine", .n_inputs = 1, .inputs = {IN(2, 6, 3, 3)}, .build = group_norm_noaffine},
    {.name = "group_norm_gelu", .n_inputs = 3, .inputs = {IN(2, 6, 3, 3), IN(6), IN(6)}, .build = group_norm_gelu},
    {.name = "group_norm_silu_noaffine", .n_inputs = 1, .inputs = {IN(2, 4, 2, 3)}, .build = group_norm_silu_noaffine},
    {.name = "group_norm_tanh", .n_inputs = 3, .inputs = {IN(2, 6, 3, 3), IN(6), IN(6)}, .build = group_norm_tanh},
    // A row of 5 values can have a small variance, where normalization curves sharply: at the default eps the
    // truncation error reaches half the tolerance. 5e-3 cuts it 4x while rounding, which grows as 1/eps, stays
    // small (worst seen 0.05 of the tolerance).
    {.name = "layer_norm", .n_inputs = 3, .inputs = {IN(2, 3, 5), IN(5), IN(5)}, .build = layer_norm, .eps = 5e-3},
    {.name = "layer_norm_noaffine", .n_inputs = 1, .inputs = {IN(2, 3, 5)}, .build = layer_norm_noaffine},
    {.name = "batch_norm2d_train",
     .n_inputs = 3,
     .inputs = {IN(2, 3, 3, 3), IN(3), IN(3)},
     .build = batch_norm2d_train},
    {.name = "batch_norm2d_eval", .n_inputs = 3, .inputs = {IN(2, 3, 3, 3), IN(3), IN(3)}, .build = batch_norm2d_eval},
    {.name = "batch_norm2d_train_noaffine",
     .n_inputs = 1,
     .inputs = {IN(2, 3, 2, 2)},
     .build = batch_norm2d_train_noaffine},
    {.name = "masked_fill", .n_inputs = 2, .inputs = {IN(2, 3, 4), MASK(3, 4)}, .build = masked_fill},
    // cross-attention shapes: 3 queries over 5 keys
    {.name = "attention",
     .n_inputs = 3,
     .inputs = {IN(2, 2, 3, 4), IN(2, 2, 5, 4), IN(2, 2, 5, 3)},
     .build = attention},
    {.name = "attention_causal",
     .n_inputs = 3,
     .inputs = {IN(1, 2, 4, 4), IN(1, 2, 4, 4), IN(1, 2, 4, 3)},
     .build = attention_causal},
    // Lq != Lk: the mask is aligned to the top left, as PyTorch's is_causal
    {.name = "attention_causal_cross",
     .n_inputs = 3,
     .inputs = {IN(1, 2, 3, 4), IN(1, 2, 5, 4), IN(1, 2, 5, 3)},
     .build = attention_causal},
};
const int gc_cases_norm_count = (int)(sizeof gc_cases_norm / sizeof gc_cases_norm[0]);
