// Gradient-check cases for the core ops (elementwise, reductions, products, shape ops, softmax, losses).
#include "gradcheck.h"

#define IN(...)                                                                                                        \
    { .shape = GC_SHAPE(__VA_ARGS__) }
#define IN_POS(...)                                                                                                    \
    { .shape = GC_SHAPE(__VA_ARGS__), .fill = GC_FILL_POSITIVE }
#define IN_AWAY(...)                                                                                                   \
    { .shape = GC_SHAPE(__VA_ARGS__), .fill = GC_FILL_AWAY_ZERO }

static nd_tensor *add(nd_ctx *c, nd_tensor **x) { return nd_add(c, x[0], x[1]); }
static nd_tensor *sub(nd_ctx *c, nd_tensor **x) { return nd_sub(c, x[0], x[1]); }
static nd_tensor *mul(nd_ctx *c, nd_tensor **x) { return nd_mul(c, x[0], x[1]); }
static nd_tensor *div_(nd_ctx *c, nd_tensor **x) { return nd_div(c, x[0], x[1]); }
static nd_tensor *add_scalar(nd_ctx *c, nd_tensor **x) { return nd_add_scalar(c, x[0], 0.7f); }
static nd_tensor *sub_scalar(nd_ctx *c, nd_tensor **x) { return nd_sub_scalar(c, x[0], 0.7f); }
static nd_tensor *rsub_scalar(nd_ctx *c, nd_tensor **x) { return nd_rsub_scalar(c, x[0], 0.7f); }
static nd_tensor *mul_scalar(nd_ctx *c, nd_tensor **x) { return nd_mul_scalar(c, x[0], -1.5f); }
static nd_tensor *div_scalar(nd_ctx *c, nd_tensor **x) { return nd_div_scalar(c, x[0], 4.0f); }
static nd_tensor *rdiv_scalar(nd_ctx *c, nd_tensor **x) { return nd_rdiv_scalar(c, x[0], 3.0f); }
static nd_tensor *neg(nd_ctx *c, nd_tensor **x) { return nd_neg(c, x[0]); }
static nd_tensor *exp_(nd_ctx *c, nd_tensor **x) { return nd_exp(c, x[0]); }
static nd_tensor *log_(nd_ctx *c, nd_tensor **x) { return nd_log(c, x[0]); }
static nd_tensor *sqrt_(nd_ctx *c, nd_tensor **x) { return nd_sqrt(c, x[0]); }
static nd_tensor *square(nd_ctx *c, nd_tensor **x) { return nd_square(c, x[0]); }
static nd_tensor *relu(nd_ctx *c, nd_tensor **x) { return nd_relu(c, x[0]); }
static nd_tensor *gelu(nd_ctx *c, nd_tensor **x) { return nd_gelu(c, x[0]); }
static nd_tensor *silu(nd_ctx *c, nd_tensor **x) { return nd_silu(c, x[0]); }
static nd_tensor *sigmoid(nd_ctx *c, nd_tensor **x) { return nd_sigmoid(c, x[0]); }
static nd_tensor *tanh_(nd_ctx *c, nd_tensor **x) { return nd_tanh(c, x[0]); }
static nd_tensor *sin_(nd_ctx *c, nd_tensor **x) { return nd_sin(c, x[0]); }
static nd_tensor *cos_(nd_ctx *c, nd_tensor **x) { return nd_cos(c, x[0]); }

static nd_tensor *sum_axes(nd_ctx *c, nd_tensor **x) { return nd_sum(c, x[0], ((int[]){0, 2}), 2, false); }
static nd_tensor *sum_keepdim(nd_ctx *c, nd_tensor **x) { return nd_sum(c, x[0], ((int[]){-1}), 1, true); }
static nd_tensor *sum_all(nd_ctx *c, nd_tensor **x) { return nd_sum_all(c, x[0]); }
static nd_tensor *mean_axes(nd_ctx *c, nd_tensor **x) { return nd_mean(c, x[0], ((int[]){1}), 1, true); }
static nd_tensor *mean_all(nd_ctx *c, nd_tensor **x) { return nd_mean_all(c, x[0]); }

static nd_tensor *matmul(nd_ctx *c, nd_tensor **x) { return nd_matmul(c, x[0], x[1], false, false); }
static nd_tensor *matmul_ta(nd_ctx *c, nd_tensor **x) { return nd_matmul(c, x[0], x[1], true, false); }
static nd_tensor *matmul_tb(nd_ctx *c, nd_tensor **x) { return nd_matmul(c, x[0], x[1], false, true); }
static nd_tensor *matmul_tt(nd_ctx *c, nd_tensor **x) { return nd_matmul(c, x[0], x[1], true, true); }
static nd_tensor *linear(nd_ctx *c, nd_tensor **x) { return nd_linear(c, x[0], x[1], x[2]); }
static nd_tensor *linear_nobias(nd_ctx *c, nd_tensor **x) { return nd_linear(c, x[0], x[1], NULL); }

static nd_tensor *reshape(nd_ctx *c, nd_tensor **x) {
    // the view's gradient must reach the input through a later op
    return nd_mul(c, nd_reshape(c, x[0], ND_SHAPE(4, -1)), x[1]);
}
static nd_tensor *permute(nd_ctx *c, nd_tensor **x) { return nd_permute(c, x[0], ((int[]){2, 0, 3, 1})); }
static nd_tensor *transpose(nd_ctx *c, nd_tensor **x) { return nd_transpose(c, x[0], 0, -1); }
static nd_tensor *concat(nd_ctx *c, nd_tensor **x) { return nd_concat(c, x, 3, 1); }
static nd_tensor *slice(nd_ctx *c, nd_tensor **x) { return nd_slice(c, x[0], 1, 1, -1); }

static nd_tensor *softmax_last(nd_ctx *c, nd_tensor **x) { return nd_softmax(c, x[0], -1); }
static nd_tensor *softmax_mid(nd_ctx *c, nd_tensor **x) { return nd_softmax(c, x[0], 1); }
static nd_tensor *log_softmax(nd_ctx *c, nd_tensor **x) { return nd_log_softmax(c, x[0], -1); }
static nd_tensor *log_softmax_mid(nd_ctx *c, nd_tensor **x) { return nd_log_softmax(c, x[0], 1); }
static nd_tensor *cross_entropy(nd_ctx *c, nd_tensor **x) { return nd_cross_entropy(c, x[0], x[1]); }
static nd_tensor *mse_loss(nd_ctx *c, nd_tensor **x) { return nd_mse_loss(c, x[0], x[1]); }
static nd_tensor *embedding(nd_ctx *c, nd_tensor **x) { return nd_embedding(c, x[0], x[1]); }

const gc_case gc_cases_core[] = {
    {.name = "add", .n_inputs = 2, .inputs = {IN(3, 4), IN(3, 4)}, .build = add},
    {.name = "add_broadcast", .n_inputs = 2, .inputs = {IN(2, 3, 4), IN(3, 1)}, .build = add},
    {.name = "sub_broadcast", .n_inputs = 2, .inputs = {IN(4), IN(2, 3, 4)}, .build = sub},
    {.name = "mul_broadcast", .n_inputs = 2, .inputs = {IN(2, 1, 4), IN(3, 1)}, .build = mul},
    {.name = "div_broadcast", .n_inputs = 2, .inputs = {IN(2, 3, 4), IN_POS(1, 3, 1)}, .build = div_},
    {.name = "add_scalar", .n_inputs = 1, .inputs = {IN(3, 5)}, .build = add_scalar},
    {.name = "sub_scalar", .n_inputs = 1, .inputs = {IN(3, 5)}, .build = sub_scalar},
    {.name = "rsub_scalar", .n_inputs = 1, .inputs = {IN(3, 5)}, .build = rsub_scalar},
    {.name = "mul_scalar", .n_inputs = 1, .inputs = {IN(3, 5)}, .build = mul_scalar},
    {.name = "div_scalar", .n_inputs = 1, .inputs = {IN(3, 5)}, .build = div_scalar},
    {.name = "rdiv_scalar", .n_inputs = 1, .inputs = {IN_POS(3, 5)}, .build = rdiv_scalar},
    {.name = "neg", .n_inputs = 1, .inputs = {IN(3, 5)}, .build = neg},
    {.name = "exp", .n_inputs = 1, .inputs = {IN(3, 5)}, .build = exp_},
    {.name = "log", .n_inputs = 1, .inputs = {IN_POS(3, 5)}, .build = log_},
    {.name = "sqrt", .n_inputs = 1, .inputs = {IN_POS(3, 5)}, .build = sqrt_},
    {.name = "square", .n_inputs = 1, .inputs = {IN(3, 5)}, .build = square},
    {.name = "relu", .n_inputs = 1, .inputs = {IN_AWAY(3, 5)}, .build = relu},
    {.name = "gelu", .n_inputs = 1, .inputs = {IN(3, 5)}, .build = gelu},
    {.name = "silu", .n_inputs = 1, .inputs = {IN(3, 5)}, .build = silu},
    {.name = "sigmoid", .n_inputs = 1, .inputs = {IN(3, 5)}, .build = sigmoid},
    {.name = "tanh", .n_inputs = 1, .inputs = {IN(3, 5)}, .build = tanh_},
    {.name = "sin", .n_inputs = 1, .inputs = {IN(3, 5)}, .build = sin_},
    {.name = "cos", .n_inputs = 1, .inputs = {IN(3, 5)}, .build = cos_},
    {.name = "sum_axes", .n_inputs = 1, .inputs = {IN(2, 3, 4)}, .build = sum_axes},
    {.name = "sum_keepdim", .n_inputs = 1, .inputs = {IN(2, 3, 4)}, .build = sum_keepdim},
    {.name = "sum_all", .n_inputs = 1, .inputs = {IN(2, 3, 4)}, .build = sum_all},
    {.name = "mean_axes", .n_inputs = 1, .inputs = {IN(2, 3, 4)}, .build = mean_axes},
    {.name = "mean_all", .n_inputs = 1, .inputs = {IN(2, 3, 4)}, .build = mean_all},
    {.name = "matmul", .n_inputs = 2, .inputs = {IN(3, 4), IN(4, 5)}, .build = matmul},
    {.name = "matmul_trans_a", .n_inputs = 2, .inputs = {IN(4, 3), IN(4, 5)}, .build = matmul_ta},
    {.name = "matmul_trans_b", .n_inputs = 2, .inputs = {IN(3, 4), IN(5, 4)}, .build = matmul_tb},
    {.name = "matmul_trans_both", .n_inputs = 2, .inputs = {IN(4, 3), IN(5, 4)}, .build = matmul_tt},
    {.name = "matmul_batched", .n_inputs = 2, .inputs = {IN(2, 3, 3, 4), IN(2, 3, 4, 2)}, .build = matmul},
    {.name = "matmul_batched_trans", .n_inputs = 2, .inputs = {IN(2, 4, 3), IN(2, 5, 4)}, .build = matmul_tt},
    {.name = "matmul_shared_b", .n_inputs = 2, .inputs = {IN(2, 3, 4), IN(4, 5)}, .build = matmul},
    {.name = "matmul_shared_b_trans", .n_inputs = 2, .inputs = {IN(2, 4, 3), IN(5, 4)}, .build = matmul_tt},
    {.name = "matmul_shared_a", .n_inputs = 2, .inputs = {IN(3, 4), IN(2, 4, 5)}, .build = matmul},
    {.name = "matmul_shared_a_trans", .n_inputs = 2, .inputs = {IN(4, 3), IN(2, 5, 4)}, .build = matmul_tt},
    {.name = "linear", .n_inputs = 3, .inputs = {IN(2, 3, 4), IN(5, 4), IN(5)}, .build = linear},
    {.name = "linear_nobias", .n_inputs = 2, .inputs = {IN(3, 4), IN(5, 4)}, .build = linear_nobias},
    {.name = "reshape", .n_inputs = 2, .inputs = {IN(2, 3, 2), IN(4, 3)}, .build = reshape},
    {.name = "permute", .n_inputs = 1, .inputs = {IN(2, 3, 4, 5)}, .build = permute},
    {.name = "transpose", .n_inputs = 1, .inputs = {IN(2, 3, 4)}, .build = transpose},
    {.name = "concat", .n_inputs = 3, .inputs = {IN(2, 1, 3), IN(2, 2, 3), IN(2, 3, 3)}, .build = concat},
    {.name = "slice", .n_inputs = 1, .inputs = {IN(2, 5, 3)}, .build = slice},
    {.name = "softmax", .n_inputs = 1, .inputs = {IN(3, 6)}, .build = softmax_last},
    {.name = "softmax_axis1", .n_inputs = 1, .inputs = {IN(2, 4, 3)}, .build = softmax_mid},
    {.name = "log_softmax", .n_inputs = 1, .inputs = {IN(3, 6)}, .build = log_softmax},
    {.name = "log_softmax_axis1", .n_inputs = 1, .inputs = {IN(2, 4, 3)}, .build = log_softmax_mid},
    {.name = "cross_entropy",
     .n_inputs = 2,
     .inputs = {IN(5, 4), {.shape = GC_SHAPE(5), .fill = GC_FILL_CLASSES, .classes = 4}},
     .build = cross_entropy},
    {.name = "mse_loss", .n_inputs = 2, .inputs = {IN(3, 4), IN(3, 4)}, .build = mse_loss},
    {.name = "embedding",
     .n_inputs = 2,
     .inputs = {IN(6, 3), {.shape = GC_SHAPE(2, 4), .fill = GC_FILL_CLASSES, .classes = 6}},
     .build = embedding},
};
const int gc_cases_core_count = (int)(sizeof gc_cases_core / sizeof gc_cases_core[0]);
