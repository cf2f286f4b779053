// Normalization ops: F.group_norm, F.layer_norm and F.batch_norm on (N, C, H, W), each with its backward.
// Group and layer norm are one row norm: a view of x as (rows, len) whose rows are normalized on their own,
// then a per-channel affine. The statistics of the forward are saved for backward. Group norm with its
// activation (nd_group_norm_act) is the same row norm with the activation applied in the same pass.
#define ND_NO_ACT (-1) // a row norm without activation
#include "internal.h"

// x is required; the optional inputs (weight, bias, running statistics) are checked where present.
static void check_devices(nd_ctx *ctx, const char *op, nd_loc loc, nd_tensor *const *in, int n) {
    nd_check_device(ctx, op, loc, in, 1);
    for (int i = 1; i < n; i++)
        if (in[i]) nd_check_device(ctx, op, loc, &in[i], 1);
}

// An optional per-channel parameter must be NULL or (channels,).
static void check_channel_param(nd_tensor *param, int64_t channels, nd_tensor *x, const char *op, const char *what,
                                nd_loc loc) {
    if (param && (param->shape.ndim != 1 || param->shape.d[0] != channels))
        nd_abort_shapes(loc, op, what, param->shape, x->shape);
}

// ---------------------------------------------------------------------------------------------------
// row norms: layer norm and group norm

typedef struct row_norm_dims {
    int64_t rows, len;       // x viewed as (rows, len), one set of statistics per row
    int64_t channels, inner; // element i's affine channel is (i / inner) % channels
} row_norm_dims;

// With an activation, y = act(h) for the norm's output h, which is not kept: dy becomes the gradient of h,
// act'(h) dy, with h made again from x and the saved statistics, in scratch released on return.
static void row_norm_backward(nd_ctx *ctx, nd_node *node) {
    nd_tensor *x = node->in[0], *y = node->out;           // (rows, len) when flattened
    nd_tensor *weight = node->in[1], *bias = node->in[2]; // (channels,) or NULL
    int64_t rows = node->iarg[0], len = node->iarg[1], channels = node->iarg[2], inner = node->iarg[3];
    int act = (int)node->iarg[4];
    const float *mean = node->saved, *rstd = node->saved + rows; // (rows,) each
    float *dweight = weight ? weight->grad : NULL, *dbias = bias ? bias->grad : NULL;
    if (!x->grad && !dweight && !dbias) return;
    nd_arena_mark mark = nd_arena_get_mark(&ctx->step);
    const float *dh = y->grad; // (rows, len)
    if (act != ND_NO_ACT) {
        float *dh_act = nd_scratch(ctx, x->numel); // (rows, len)
        ctx->be->norm_row_act_backward(dh_act, y->grad, x->data, y->data, mean, rstd, weight ? weight->data : NULL,
                                       bias ? bias->data : NULL, rows, len, channels, inner, (nd_unary_kind)act);
        dh = dh_act;
    }
    if (x->grad)
        ctx->be->norm_row_backward(x->grad, dh, x->data, mean, rstd, weight ? weight->data : NULL, rows, len, channels,
                                   inner);
    if (dweight || dbias)
        ctx->be->norm_row_affine_backward(dweight, dbias, dh, x->data, mean, rstd, rows, len, channels, inner);
    nd_arena_release(&ctx->step, mark);
}

// act: an nd_unary_kind applied to the norm's output, or ND_NO_ACT.
static nd_tensor *row_norm(nd_ctx *ctx, const char *op, nd_tensor *x, nd_tensor *weight, nd_tensor *bias,
                           row_norm_dims d, float eps, int act) {
    nd_tensor *in[3] = {x, weight, bias};
    float *stats = nd_scratch(ctx, 2 * d.rows); // mean (rows,) then rstd (rows,)
    ctx->be->norm_row_stats(stats, stats + d.rows, x->data, d.rows, d.len, eps);
    nd_tensor *y = nd_op_output(ctx, x->shape, in, 3); // x's shape
    const float *w = weight ? weight->data : NULL, *b = bias ? bias->data : NULL;
    if (act == ND_NO_ACT)
        ctx->be->norm_row_forward(y->data, x->data, stats, stats + d.rows, w, b, d.rows, d.len, d.channels, d.inner);
    else
        ctx->be->norm_row_act_forward(y->data, x->data, stats, stats + d.rows, w, b, d.rows, d.len, d.channels, d.inner,
                                      (nd_unary_kind)act);
    nd_node *node = nd_record(ctx, op, row_norm_backward, y, in, 3);
    if (node) {
        node->iarg[0] = d.rows;
        node->iarg[1] = d.len;
        node->iarg[2] = d.channels;
        node->iarg[3] = d.inner;
        node->iarg[4] = act;
        node->saved = stats;
    }
    return y;
}

// F.group_norm: x (N, C, ...) normalized over each group of C / num_groups channels of each image, then
// the activation act when it is not ND_NO_ACT.
static nd_tensor *group_norm(nd_ctx *ctx, const char *op, nd_tensor *x, int num_groups, nd_tensor *weight,
                             nd_tensor *bias, float eps, int act, nd_loc loc) {
    nd_tensor *in[3] = {x, weight, bias};
    check_devices(ctx, op, loc, in, 3);
    char s[96];
    if (x->shape.ndim < 2 || x->numel == 0)
        nd_abort_at(loc, op, "input %s must be a non-empty (N, C, ...)", nd_shape_str(x->shape, s, sizeof s));
    int64_t channels = x->shape.d[1];
    if (num_groups <= 0 || channels % num_groups)
        nd_abort_at(loc, op, "the %lld channels of input %s do not split into %d groups", (long long)channels,
                    nd_shape_str(x->shape, s, sizeof s), num_groups);
    check_channel_param(weight, channels, x, op, "weight must be (C,) for input (N, C, ...)", loc);
    check_channel_param(bias, channels, x, op, "bias must be (C,) for input (N, C, ...)", loc);
    int64_t inner = x->numel / (x->shape.d[0] * channels); // (H*W...) per channel
    row_norm_dims d = {
        .rows = x->shape.d[0] * num_groups, .len = channels / num_groups * inner, .channels = channels, .inner = inner};
    return row_norm(ctx, op, x, weight, bias, d, eps, act);
}

nd_tensor *nd_group_norm_at(nd_ctx *ctx, nd_tensor *x, int num_groups, nd_tensor *weight, nd_tensor *bias, float eps,
                            nd_loc loc) {
    return group_norm(ctx, "nd_group_norm", x, num_groups, weight, bias, eps, ND_NO_ACT, loc);
}

nd_tensor *nd_group_norm_act_at(nd_ctx *ctx, nd_tensor *x, int num_groups, nd_tensor *weight, nd_tensor *bias,
                                float eps, nd_unary_kind act, nd_loc loc) {
    const char *op = "nd_group_norm_act";
    if (act == ND_UNARY_AFFINE || act == ND_UNARY_RECIP || (int)act < 0 || act >= ND_UNARY_COUNT)
        nd_abort_at(loc, op, "activation %d must be a unary kind without parameters (GELU, SiLU, ReLU...)", (int)act);
    return group_norm(ctx, op, x, num_groups, weight, bias, eps, (int)act, loc);
}

// F.layer_norm with normalized_shape (D,): x (..., D) normalized over its last dim.
nd_tensor *nd_layer_norm_at(nd_ctx *ctx, nd_tensor *x, nd_tensor *weight, nd_tensor *bias, float eps, nd_loc loc) {
    const char *op = "nd_layer_norm";
    nd_tensor *in[3] = {x, weight, bias};
    check_devices(ctx, op, loc, in, 3);
    char s[96];
    if (x->shape.ndim < 1 || x->numel == 0)
        nd_abort_at(loc, op, "input %s must be a non-empty (..., D)", nd_shape_str(x->shape, s, sizeof s));
    int64_t dim = x->shape.d[x->shape.ndim - 1];
    check_channel_param(weight, dim, x, op, "weight must be (D,) for input (..., D)", loc);
    check_channel_param(bias, dim, x, op, "bias must be (D,) for input (..., D)", loc);
    row_norm_dims d = {.rows = x->numel / dim, .len = dim, .channels = dim, .inner = 1};
    return row_norm(ctx, op, x, weight, bias, d, eps, ND_NO_ACT);
}

// ---------------------------------------------------------------------------------------------------
// batch norm

static void batch_norm_backward(nd_ctx *ctx, nd_node *node) {
    nd_tensor *x = node->in[0], *y = node->out;           // (N, C, H, W)
    nd_tensor *weight = node->in[1], *bias = node->in[2]; // (C,) or NULL
    int64_t outer = x->shape.d[0], channels = x->shape.d[1], inner = x->shape.d[2] * x->shape.d[3];
    float *dweight = weight ? weight->grad : NULL, *dbias = bias ? bias->grad : NULL;
    if (!x->grad && !dweight && !dbias) return;
    ctx->be->batch_norm_backward(x->grad, dweight, dbias, y->grad, x->data, node->saved, node->saved + channels,
                                 weight ? weight->data : NULL, outer, channels, inner, node->iarg[0]);
}

// F.batch_norm on x (N, C, H, W). Training normalizes with the batch's statistics and updates the running
// ones in place (running_mean/var may then be NULL); eval normalizes with the running statistics.
nd_tensor *nd_batch_norm2d_at(nd_ctx *ctx, nd_tensor *x, nd_tensor *weight, nd_tensor *bias, nd_tensor *running_mean,
                              nd_tensor *running_var, bool training, float momentum, float eps, nd_loc loc) {
    const char *op = "nd_batch_norm2d";
    nd_tensor *all[5] = {x, weight, bias, running_mean, running_var};
    check_devices(ctx, op, loc, all, 5);
    char s[96];
    if (x->shape.ndim != 4 || x->numel == 0)
        nd_abort_at(loc, op, "input %s must be a non-empty (N, C, H, W)", nd_shape_str(x->shape, s, sizeof s));
    int64_t outer = x->shape.d[0], channels = x->shape.d[1], inner = x->shape.d[2] * x->shape.d[3];
    check_channel_param(weight, channels, x, op, "weight must be (C,) for input (N, C, H, W)", loc);
    check_channel_param(bias, channels, x, op, "bias must be (C,) for input (N, C, H, W)", loc);
    check_channel_param(running_mean, channels, x, op, "running_mean must be (C,) for input (N, C, H, W)", loc);
    check_channel_param(running_var, channels, x, op, "running_var must be (C,) for input (N, C, H, W)", loc);
    if (!training && (!running_mean || !running_var))
        nd_abort_at(loc, op, "eval mode normalizes with the running statistics, which are NULL");
    if ((running_mean && running_mean->requires_grad) || (running_var && running_var->requires_grad))
        nd_abort_at(loc, op, "running statistics are buffers and cannot require grad");
    if (training && outer * inner == 1)
        nd_abort_at(loc, op, "training needs more than one value per channel; input %s has one",
                    nd_shape_str(x->shape, s, sizeof s));
    float *stats = nd_scratch(ctx, 2 * channels); // mean (C,) then rstd (C,)
    ctx->be->batch_norm_stats(stats, stats + channels, running_mean ? running_mean->data : NULL,
                              running_var ? running_var->data : NULL, x->data, outer, channels, inner, momentum, eps,
                              training);
    nd_tensor *in[3] = {x, weight, bias};
    nd_tensor *y = nd_op_output(ctx, x->shape, in, 3); // (N, C, H, W)
    ctx->be->batch_norm_forward(y->data, x->data, stats, stats + channels, weight ? weight->data : NULL,
                                bias ? bias->data : NULL, outer, channels, inner);
    nd_node *node = nd_record(ctx, op, batch_norm_backward, y, in, 3);
    if (node) {
        node->iarg[0] = training;
        node->saved = stats;
    }
    return y;
}
