// Reductions: torch.sum and torch.mean over a set of axes (keepdim or not) or over everything.
#include "internal.h"

static void reduce_backward(nd_ctx *ctx, nd_node *node) {
    nd_tensor *x = node->in[0];
    if (!x->grad) return;
    nd_shape keep = {.ndim = x->shape.ndim};
    for (int k = 0; k < x->shape.ndim; k++) keep.d[k] = (node->iarg[0] >> k) & 1 ? 1 : x->shape.d[k];
    nd_reduce_plan plan = nd_reduce_plan_make(keep, keep);
    for (int k = 0; k < x->shape.ndim; k++) plan.dst_shape[k] = x->shape.d[k];
    ctx->be->broadcast_accumulate(x->grad, node->out->grad, &plan, node->farg[0]);
}

nd_tensor *nd_reduce_at(nd_ctx *ctx, nd_tensor *x, const int *axes, int n_axes, bool keepdim, bool mean, nd_loc loc) {
    const char *op = mean ? "nd_mean" : "nd_sum";
    nd_check_device(ctx, op, loc, &x, 1);
    int ndim = x->shape.ndim;
    int64_t mask = 0; // bit k set when axis k is reduced
    if (n_axes == 0) mask = (1 << ndim) - 1;
    for (int i = 0; i < n_axes; i++) {
        int a = nd_axis(axes[i], ndim, op, loc);
        if (mask >> a & 1) nd_abort_at(loc, op, "axis %d is listed twice", axes[i]);
        mask |= (int64_t)1 << a;
    }
    nd_shape keep = {.ndim = ndim}, out_shape = {0};
    int64_t count = 1;
    for (int k = 0; k < ndim; k++) {
        bool reduced = mask >> k & 1;
        keep.d[k] = reduced ? 1 : x->shape.d[k];
        if (reduced) count *= x->shape.d[k];
        if (!reduced || keepdim) out_shape.d[out_shape.ndim++] = keep.d[k];
    }
    float scale = mean ? (count ? 1.0f / (float)count : 0.0f) : 1.0f;
    nd_tensor *out = nd_op_output(ctx, out_shape, &x, 1);
    nd_reduce_plan plan = nd_reduce_plan_make(x->shape, keep);
    ctx->be->reduce_sum(out->data, x->data, &plan, scale, false);
    nd_node *node = nd_record(ctx, op, reduce_backward, out, &x, 1);
    if (node) {
        node->iarg[0] = mask;
        node->farg[0] = scale;
    }
    return out;
}
