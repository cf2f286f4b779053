// Attention: masked fill (Tensor.masked_fill) and F.scaled_dot_product_attention composed of batched
// products, the mask and softmax, so its backward is theirs.
#include <math.h>

#include "internal.h"

// ---------------------------------------------------------------------------------------------------
// masked fill

static void masked_fill_backward(nd_ctx *ctx, nd_node *node) {
    nd_tensor *x = node->in[0], *mask = node->in[1], *y = node->out;
    if (!x->grad) return;
    // filled elements do not depend on x: their gradient is 0
    ctx->be->masked_fill(x->grad, y->grad, mask->data, x->numel, mask->numel, 0.0f, true);
}

// Tensor.masked_fill(mask, value): x where mask is 0, value where it is not. mask's shape equals x's
// trailing dims (it repeats over the leading ones, as broadcasting would) and it has no gradient.
nd_tensor *nd_masked_fill_at(nd_ctx *ctx, nd_tensor *x, nd_tensor *mask, float value, nd_loc loc) {
    const char *op = "nd_masked_fill";
    nd_tensor *in[2] = {x, mask};
    nd_check_device(ctx, op, loc, in, 2);
    bool trailing = mask->shape.ndim <= x->shape.ndim;
    for (int k = 1; trailing && k <= mask->shape.ndim; k++)
        trailing = mask->shape.d[mask->shape.ndim - k] == x->shape.d[x->shape.ndim - k];
    if (!trailing || mask->numel == 0)
        nd_abort_shapes(loc, op, "the mask's shape must equal the input's trailing dims", x->shape, mask->shape);
    if (mask->requires_grad && ctx->grad_enabled) nd_abort_at(loc, op, "the mask cannot require grad");
    nd_tensor *y = nd_op_output(ctx, x->shape, in, 1);
    ctx->be->masked_fill(y->data, x->data, mask->data, x->numel, mask->numel, value, false);
    nd_record(ctx, op, masked_fill_backward, y, in, 2);
    return y;
}

// ---------------------------------------------------------------------------------------------------
// scaled dot-product attention

// F.scaled_dot_product_attention(q, k, v, is_causal=causal): softmax(q k^T / sqrt(D)) v for q (..., Lq, D),
// k (..., Lk, D), v (..., Lk, Dv) with equal leading dims; the causal mask lets query i see keys 0..i.
nd_tensor *nd_attention_at(nd_ctx *ctx, nd_tensor *q, nd_tensor *k, nd_tensor *v, bool causal, nd_loc loc) {
    const char *op = "nd_attention";
    nd_tensor *in[3] = {q, k, v};
    nd_check_device(ctx, op, loc, in, 3);
    int ndim = q->shape.ndim;
    if (ndim < 2 || k->shape.ndim != ndim)
        nd_abort_shapes(loc, op, "q and k need the same rank, at least 2", q->shape, k->shape);
    if (v->shape.ndim != ndim) nd_abort_shapes(loc, op, "q and v need the same rank", q->shape, v->shape);
    for (int i = 0; i < ndim - 2; i++) {
        if (k->shape.d[i] != q->shape.d[i])
            nd_abort_shapes(loc, op, "leading dims of q and k differ", q->shape, k->shape);
        if (v->shape.d[i] != q->shape.d[i])
            nd_abort_shapes(loc, op, "leading dims of q and v differ", q->shape, v->shape);
    }
    int64_t lq = q->shape.d[ndim - 2], dim = q->shape.d[ndim - 1], lk = k->shape.d[ndim - 2];
    if (k->shape.d[ndim - 1] != dim)
        nd_abort_shapes(loc, op, "q (..., Lq, D) and k (..., Lk, D) differ in D", q->shape, k->shape);
    if (v->shape.d[ndim - 2] != lk)
        nd_abort_shapes(loc, op, "k (..., Lk, D) and v (..., Lk, Dv) differ in Lk", k->shape, v->shape);
    if (dim == 0 || lk == 0) nd_abort_shapes(loc, op, "D and Lk must be positive", q->shape, k->shape);
    // Scaling q rather than the scores touches Lq*D values instead of Lq*Lk.
    nd_tensor *q_scaled = nd_unary_at(ctx, ND_UNARY_AFFINE, q, 1.0f / sqrtf((float)dim), 0.0f, loc); // (..., Lq, D)
    nd_tensor *scores = nd_matmul_at(ctx, q_scaled, k, false, true, loc);                            // (..., Lq, Lk)
    if (causal) {
        nd_tensor *mask = nd_empty(ctx, ND_SHAPE(lq, lk)); // (Lq, Lk), 1 above the diagonal
        ctx->be->causal_mask(mask->data, lq, lk);
        // -inf gives masked keys exactly zero weight; key 0 is never masked, so no row is all -inf
        scores = nd_masked_fill_at(ctx, scores, mask, -INFINITY, loc);
    }
    nd_tensor *weights = nd_softmax_at(ctx, scores, -1, false, loc); // (..., Lq, Lk)
    return nd_matmul_at(ctx, weights, v, false, false, loc);         // (..., Lq, Dv)
}
