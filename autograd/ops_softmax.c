// Softmax family and losses: F.softmax, F.log_softmax, F.cross_entropy, F.mse_loss; and F.embedding.
#include "internal.h"

static void softmax_backward(nd_ctx *ctx, nd_node *node) {
    nd_tensor *x = node->in[0], *y = node->out;
    if (!x->grad) return;
    ctx->be->softmax_backward(x->grad, y->grad, y->data, node->iarg[0], node->iarg[1], node->iarg[2], node->iarg[3]);
}

nd_tensor *nd_softmax_at(nd_ctx *ctx, nd_tensor *x, int axis, bool log, nd_loc loc) {
    const char *op = log ? "nd_log_softmax" : "nd_softmax";
    nd_check_device(ctx, op, loc, &x, 1);
    int a = nd_axis(axis, x->shape.ndim, op, loc);
    int64_t outer = 1, inner = 1, n = x->shape.d[a];
    for (int k = 0; k < a; k++) outer *= x->shape.d[k];
    for (int k = a + 1; k < x->shape.ndim; k++) inner *= x->shape.d[k];
    nd_tensor *y = nd_op_output(ctx, x->shape, &x, 1);
    ctx->be->softmax_forward(y->data, x->data, outer, n, inner, log);
    nd_node *node = nd_record(ctx, op, softmax_backward, y, &x, 1);
    if (node) {
        node->iarg[0] = outer;
        node->iarg[1] = n;
        node->iarg[2] = inner;
        node->iarg[3] = log;
    }
    return y;
}

// ---------------------------------------------------------------------------------------------------
// cross entropy: log_softmax + mean negative log-likelihood, fused so backward is softmax - onehot.

static void cross_entropy_backward(nd_ctx *ctx, nd_node *node) {
    nd_tensor *logits = node->in[0], *labels = node->in[1], *loss = node->out;
    if (!logits->grad) return;
    int64_t rows = logits->shape.d[0], classes = logits->shape.d[1];
    ctx->be->cross_entropy_backward(logits->grad, node->saved, labels->data, loss->grad, 1.0f / (float)rows, rows,
                                    classes);
}

nd_tensor *nd_cross_entropy_at(nd_ctx *ctx, nd_tensor *logits, nd_tensor *labels, nd_loc loc) {
    nd_tensor *in[2] = {logits, labels};
    nd_check_device(ctx, "nd_cross_entropy", loc, in, 2);
    if (logits->shape.ndim != 2 || labels->shape.ndim != 1 || labels->shape.d[0] != logits->shape.d[0])
        nd_abort_shapes(loc, "nd_cross_entropy", "expected logits (N, C) and labels (N)", logits->shape, labels->shape);
    int64_t rows = logits->shape.d[0], classes = logits->shape.d[1];
    if (labels->requires_grad && ctx->grad_enabled)
        nd_abort_at(loc, "nd_cross_entropy", "labels are class indices and cannot require grad");
    if (ctx->device == ND_CPU)
        for (int64_t r = 0; r < rows; r++) {
            float label = labels->data[r];
            if (!(label >= 0.0f && label < (float)classes) || label != (float)(int64_t)label)
                nd_abort_at(loc, "nd_cross_entropy", "label %g of row %lld is not a class index in [0, %lld)", label,
                            (long long)r, (long long)classes);
        }
    float *logp = nd_scratch(ctx, logits->numel); // (N, C)
    float *row_loss = nd_scratch(ctx, rows);      // (N,)
    ctx->be->softmax_forward(logp, logits->data, rows, classes, 1, true);
    ctx->be->nll_forward(row_loss, logp, labels->data, rows, classes);
    nd_tensor *loss = nd_op_output(ctx, nd_shape_from(NULL, 0), in, 1);
    nd_reduce_plan plan = nd_reduce_plan_make(ND_SHAPE(rows), ND_SHAPE(1));
    ctx->be->reduce_sum(loss->data, row_loss, &plan, rows ? 1.0f / (float)rows : 0.0f, false);
    nd_node *node = nd_record(ctx, "nd_cross_entropy", cross_entropy_backward, loss, in, 2);
    if (node) node->saved = logp;
    return loss;
}

// ---------------------------------------------------------------------------------------------------
// mse

static void mse_backward(nd_ctx *ctx, nd_node *node) {
    nd_tensor *a = node->in[0], *b = node->in[1], *loss = node->out;
    float scale = 2.0f / (float)a->numel;
    // d/da = dloss * scale * (a - b), d/db = -dloss * scale * (a - b); the difference was saved in forward
    if (a->grad) ctx->be->accumulate(a->grad, node->saved, scale, loss->grad, a->numel);
    if (b->grad) ctx->be->accumulate(b->grad, node->saved, -scale, loss->grad, a->numel);
}

nd_tensor *nd_mse_loss_at(nd_ctx *ctx, nd_tensor *a, nd_tensor *b, nd_loc loc) {
    nd_tensor *in[2] = {a, b};
    nd_check_device(ctx, "nd_mse_loss", loc, in, 2);
    if (!nd_shape_equal(a->shape, b->shape)) nd_abort_shapes(loc, "nd_mse_loss", "shapes differ", a->shape, b->shape);
    nd_bcast same = {.ndim = 1, .shape = {a->numel}, .a_stride = {1}, .b_stride = {1}, .numel = a->numel};
    float *diff = nd_scratch(ctx, a->numel);
    float *sq = nd_scratch(ctx, a->numel);
    ctx->be->binary_forward(diff, a->data, b->data, &same, ND_BINARY_SUB);
    ctx->be->unary_forward(sq, diff, a->numel, ND_UNARY_SQUARE, 0.0f, 0.0f);
    nd_tensor *loss = nd_op_output(ctx, nd_shape_from(NULL, 0), in, 2);
    nd_reduce_plan plan = nd_reduce_plan_make(ND_SHAPE(a->numel), ND_SHAPE(1));
    ctx->be->reduce_sum(loss->data, sq, &plan, a->numel ? 1.0f / (float)a->numel : 0.0f, false);
    nd_node *node = nd_record(ctx, "nd_mse_loss", mse_backward, loss, in, 2);
    if (node) node->saved = diff;
    return loss;
}

// ---------------------------------------------------------------------------------------------------
// embedding

static void embedding_backward(nd_ctx *ctx, nd_node *node) {
    nd_tensor *w = node->in[0], *idx = node->in[1], *y = node->out;
    if (!w->grad) return;
    ctx->be->embedding_backward(w->grad, y->grad, idx->data, idx->numel, w->shape.d[1]);
}

nd_tensor *nd_embedding_at(nd_ctx *ctx, nd_tensor *weight, nd_tensor *indices, nd_loc loc) {
    nd_tensor *in[2] = {weight, indices};
    nd_check_device(ctx, "nd_embedding", loc, in, 2);
    if (weight->shape.ndim != 2 || indices->shape.ndim + 1 > ND_MAX_DIMS)
        nd_abort_shapes(loc, "nd_embedding", "expected weight (V, D) and indices of at most 5 dims", weight->shape,
                        indices->shape);
    int64_t vocab = weight->shape.d[0], dim = weight->shape.d[1];
    if (indices->requires_grad && ctx->grad_enabled)
        nd_abort_at(loc, "nd_embedding", "indices are row numbers and cannot require grad");
    if (ctx->device == ND_CPU)
        for (int64_t i = 0; i < indices->numel; i++) {
            float v = indices->data[i];
            if (!(v >= 0.0f && v < (float)vocab) || v != (float)(int64_t)v)
                nd_abort_at(loc, "nd_embedding", "index %g at position %lld is not a row of the (%lld, %lld) table", v,
                            (long long)i, (long long)vocab, (long long)dim);
        }
    nd_shape shape = indices->shape;
    shape.d[shape.ndim++] = dim;
    nd_tensor *y = nd_op_output(ctx, shape, in, 1);
    ctx->be->embedding_forward(y->data, weight->data, indices->data, indices->numel, dim);
    nd_record(ctx, "nd_embedding", embedding_backward, y, in, 2);
    return y;
}
