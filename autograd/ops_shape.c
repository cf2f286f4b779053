// Shape ops: reshape (a view sharing storage), and permute, transpose, concat, slice (contiguous copies).
#include "internal.h"

// ---------------------------------------------------------------------------------------------------
// reshape

nd_tensor *nd_reshape_at(nd_ctx *ctx, nd_tensor *x, nd_shape shape, nd_loc loc) {
    nd_check_device(ctx, "nd_reshape", loc, &x, 1);
    int inferred = -1;
    int64_t known = 1;
    for (int k = 0; k < shape.ndim; k++) {
        if (shape.d[k] == -1) {
            if (inferred >= 0) nd_abort_shapes(loc, "nd_reshape", "only one dimension may be -1", x->shape, shape);
            inferred = k;
        } else if (shape.d[k] < 0) {
            nd_abort_shapes(loc, "nd_reshape", "negative dimension", x->shape, shape);
        } else {
            known *= shape.d[k];
        }
    }
    if (inferred >= 0) {
        if (known == 0 || x->numel % known) nd_abort_shapes(loc, "nd_reshape", "cannot infer -1", x->shape, shape);
        shape.d[inferred] = x->numel / known;
    }
    if (nd_shape_numel(shape) != x->numel) nd_abort_shapes(loc, "nd_reshape", "element counts differ", x->shape, shape);
    nd_tensor *out = nd_arena_alloc_meta(&ctx->step, sizeof *out);
    *out = *x;
    out->shape = shape;
    out->grad = NULL;
    out->requires_grad = ctx->grad_enabled && x->requires_grad;
    nd_record(ctx, "nd_reshape", NULL, out, &x, 1);
    return out;
}

// ---------------------------------------------------------------------------------------------------
// permute

// Strides of x read in the order of the output's dims.
static void permuted_strides(nd_shape x, const int *perm, int64_t *src_stride) {
    int64_t stride[ND_MAX_DIMS], s = 1;
    for (int k = x.ndim - 1; k >= 0; k--) {
        stride[k] = s;
        s *= x.d[k];
    }
    for (int k = 0; k < x.ndim; k++) src_stride[k] = stride[perm[k]];
}

static void permute_backward(nd_ctx *ctx, nd_node *node) {
    nd_tensor *x = node->in[0], *y = node->out;
    if (!x->grad) return;
    int perm[ND_MAX_DIMS], inverse[ND_MAX_DIMS];
    for (int k = 0; k < x->shape.ndim; k++) perm[k] = (int)node->iarg[k];
    for (int k = 0; k < x->shape.ndim; k++) inverse[perm[k]] = k;
    int64_t src_stride[ND_MAX_DIMS];
    permuted_strides(y->shape, inverse, src_stride);
    ctx->be->permute(x->grad, y->grad, x->shape.ndim, x->shape.d, src_stride, true);
}

nd_tensor *nd_permute_at(nd_ctx *ctx, nd_tensor *x, const int *perm, nd_loc loc) {
    nd_check_device(ctx, "nd_permute", loc, &x, 1);
    int ndim = x->shape.ndim, seen = 0;
    nd_shape shape = {.ndim = ndim};
    for (int k = 0; k < ndim; k++) {
        int p = nd_axis(perm[k], ndim, "nd_permute", loc);
        if (seen >> p & 1) nd_abort_at(loc, "nd_permute", "axis %d appears twice in the permutation", perm[k]);
        seen |= 1 << p;
        shape.d[k] = x->shape.d[p];
    }
    int norm[ND_MAX_DIMS];
    for (int k = 0; k < ndim; k++) norm[k] = perm[k] < 0 ? perm[k] + ndim : perm[k];
    int64_t src_stride[ND_MAX_DIMS];
    permuted_strides(x->shape, norm, src_stride);
    nd_tensor *y = nd_op_output(ctx, shape, &x, 1);
    ctx->be->permute(y->data, x->data, ndim, shape.d, src_stride, false);
    nd_node *node = nd_record(ctx, "nd_permute", permute_backward, y, &x, 1);
    for (int k = 0; node && k < ndim; k++) node->iarg[k] = norm[k];
    return y;
}

nd_tensor *nd_transpose_at(nd_ctx *ctx, nd_tensor *x, int d0, int d1, nd_loc loc) {
    int ndim = x->shape.ndim;
    int a = nd_axis(d0, ndim, "nd_transpose", loc), b = nd_axis(d1, ndim, "nd_transpose", loc);
    int perm[ND_MAX_DIMS];
    for (int k = 0; k < ndim; k++) perm[k] = k;
    perm[a] = b;
    perm[b] = a;
    return nd_permute_at(ctx, x, perm, loc);
}

// ---------------------------------------------------------------------------------------------------
// concat and slice: both move blocks of (outer, len * inner) between tensors whose axis lengths differ.

static int64_t outer_of(nd_shape s, int axis) {
    int64_t n = 1;
    for (int k = 0; k < axis; k++) n *= s.d[k];
    return n;
}

static int64_t inner_of(nd_shape s, int axis) {
    int64_t n = 1;
    for (int k = axis + 1; k < s.ndim; k++) n *= s.d[k];
    return n;
}

static void concat_backward(nd_ctx *ctx, nd_node *node) {
    nd_tensor *y = node->out;
    int axis = (int)node->iarg[0];
    int64_t outer = outer_of(y->shape, axis), inner = inner_of(y->shape, axis), at = 0;
    int64_t y_row = y->shape.d[axis] * inner;
    for (int i = 0; i < node->n_in; i++) {
        nd_tensor *x = node->in[i];
        int64_t len = x->shape.d[axis] * inner;
        if (x->grad) ctx->be->copy_rows(x->grad, len, y->grad + at, y_row, outer, len, true);
        at += len;
    }
}

nd_tensor *nd_concat_at(nd_ctx *ctx, nd_tensor *const *xs, int n, int axis, nd_loc loc) {
    if (n < 1 || n > ND_NODE_MAX_INPUTS)
        nd_abort_at(loc, "nd_concat", "takes 1 to %d tensors, got %d", ND_NODE_MAX_INPUTS, n);
    nd_check_device(ctx, "nd_concat", loc, xs, n);
    nd_shape shape = xs[0]->shape;
    int a = nd_axis(axis, shape.ndim, "nd_concat", loc);
    for (int i = 1; i < n; i++) {
        nd_shape s = xs[i]->shape;
        bool ok = s.ndim == shape.ndim;
        for (int k = 0; ok && k < s.ndim; k++) ok = k == a || s.d[k] == shape.d[k];
        if (!ok) nd_abort_shapes(loc, "nd_concat", "shapes differ outside the concat axis", xs[0]->shape, s);
        shape.d[a] += s.d[a];
    }
    nd_tensor *y = nd_op_output(ctx, shape, xs, n);
    int64_t outer = outer_of(shape, a), inner = inner_of(shape, a), at = 0;
    for (int i = 0; i < n; i++) {
        int64_t len = xs[i]->shape.d[a] * inner;
        ctx->be->copy_rows(y->data + at, shape.d[a] * inner, xs[i]->data, len, outer, len, false);
        at += len;
    }
    nd_node *node = nd_record(ctx, "nd_concat", concat_backward, y, xs, n);
    if (node) node->iarg[0] = a;
    return y;
}

static void slice_backward(nd_ctx *ctx, nd_node *node) {
    nd_tensor *x = node->in[0], *y = node->out;
    if (!x->grad) return;
    int axis = (int)node->iarg[0];
    int64_t start = node->iarg[1];
    int64_t outer = outer_of(x->shape, axis), inner = inner_of(x->shape, axis);
    int64_t len = y->shape.d[axis] * inner;
    ctx->be->copy_rows(x->grad + start * inner, x->shape.d[axis] * inner, y->grad, len, outer, len, true);
}

nd_tensor *nd_slice_at(nd_ctx *ctx, nd_tensor *x, int axis, int64_t start, int64_t end, nd_loc loc) {
    nd_check_device(ctx, "nd_slice", loc, &x, 1);
    int a = nd_axis(axis, x->shape.ndim, "nd_slice", loc);
    int64_t n = x->shape.d[a];
    if (start < 0) start += n;
    if (end < 0) end += n;
    if (start < 0 || end > n || start > end) {
        char s[96];
        nd_abort_at(loc, "nd_slice", "range [%lld, %lld) is outside axis %d of shape %s", (long long)start,
                    (long long)end, axis, nd_shape_str(x->shape, s, sizeof s));
    }
    nd_shape shape = x->shape;
    shape.d[a] = end - start;
    nd_tensor *y = nd_op_output(ctx, shape, &x, 1);
    int64_t outer = outer_of(x->shape, a), inner = inner_of(x->shape, a), len = shape.d[a] * inner;
    ctx->be->copy_rows(y->data, len, x->data + start * inner, n * inner, outer, len, false);
    nd_node *node = nd_record(ctx, "nd_slice", slice_backward, y, &x, 1);
    if (node) {
        node->iarg[0] = a;
        node->iarg[1] = start;
    }
    return y;
}
