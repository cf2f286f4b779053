// Elementwise ops: binary with broadcasting (torch.add/sub/mul/div) and unary maps (exp, gelu, ...).
#include "internal.h"

// ---------------------------------------------------------------------------------------------------
// binary

static const char *binary_name[] = {"nd_add", "nd_sub", "nd_mul", "nd_div"};

// Right-aligned broadcasting as NumPy and PyTorch define it.
static nd_bcast broadcast(nd_shape a, nd_shape b, const char *op, nd_loc loc) {
    nd_bcast bc = {0};
    bc.ndim = a.ndim > b.ndim ? a.ndim : b.ndim;
    int64_t a_stride = 1, b_stride = 1;
    bc.numel = 1;
    for (int k = bc.ndim - 1; k >= 0; k--) {
        int ia = k - (bc.ndim - a.ndim), ib = k - (bc.ndim - b.ndim);
        int64_t da = ia >= 0 ? a.d[ia] : 1, db = ib >= 0 ? b.d[ib] : 1;
        if (da != db && da != 1 && db != 1) nd_abort_shapes(loc, op, "shapes cannot broadcast", a, b);
        bc.shape[k] = da > db ? da : db;
        if (da == 0 || db == 0) bc.shape[k] = 0;
        bc.a_stride[k] = da == 1 ? 0 : a_stride;
        bc.b_stride[k] = db == 1 ? 0 : b_stride;
        a_stride *= da;
        b_stride *= db;
        bc.numel *= bc.shape[k];
    }
    return bc;
}

// The input's shape padded on the left with 1s to the output's rank (its keepdim reduce target).
static nd_shape padded(nd_shape s, int ndim) {
    nd_shape p = {.ndim = ndim};
    int lead = ndim - s.ndim;
    for (int k = 0; k < ndim; k++) p.d[k] = k < lead ? 1 : s.d[k - lead];
    return p;
}

static void binary_backward(nd_ctx *ctx, nd_node *node) {
    nd_tensor *a = node->in[0], *b = node->in[1], *out = node->out;
    nd_binary_kind kind = (nd_binary_kind)node->iarg[0];
    nd_bcast bc = broadcast(a->shape, b->shape, node->op, ND_HERE);
    for (int which = 0; which < 2; which++) {
        nd_tensor *x = node->in[which];
        if (!x->grad) continue;
        if (x->numel == out->numel) {
            ctx->be->binary_backward(x->grad, out->grad, a->data, b->data, &bc, kind, which, true);
        } else {
            float *full = nd_scratch(ctx, out->numel); // (out shape)
            ctx->be->binary_backward(full, out->grad, a->data, b->data, &bc, kind, which, false);
            nd_shape out_shape = {.ndim = bc.ndim};
            for (int k = 0; k < bc.ndim; k++) out_shape.d[k] = bc.shape[k];
            nd_reduce_plan plan = nd_reduce_plan_make(out_shape, padded(x->shape, bc.ndim));
            ctx->be->reduce_sum(x->grad, full, &plan, 1.0f, true);
        }
    }
}

static nd_tensor *binary(nd_ctx *ctx, nd_binary_kind kind, nd_tensor *a, nd_tensor *b, nd_loc loc) {
    const char *op = binary_name[kind];
    nd_tensor *in[2] = {a, b};
    nd_check_device(ctx, op, loc, in, 2);
    nd_bcast bc = broadcast(a->shape, b->shape, op, loc);
    nd_shape shape = {.ndim = bc.ndim};
    for (int k = 0; k < bc.ndim; k++) shape.d[k] = bc.shape[k];
    nd_tensor *out = nd_op_output(ctx, shape, in, 2);
    ctx->be->binary_forward(out->data, a->data, b->data, &bc, kind);
    nd_node *node = nd_record(ctx, op, binary_backward, out, in, 2);
    if (node) node->iarg[0] = kind;
    return out;
}

nd_tensor *nd_add_at(nd_ctx *ctx, nd_tensor *a, nd_tensor *b, nd_loc loc) {
    return binary(ctx, ND_BINARY_ADD, a, b, loc);
}
nd_tensor *nd_sub_at(nd_ctx *ctx, nd_tensor *a, nd_tensor *b, nd_loc loc) {
    return binary(ctx, ND_BINARY_SUB, a, b, loc);
}
nd_tensor *nd_mul_at(nd_ctx *ctx, nd_tensor *a, nd_tensor *b, nd_loc loc) {
    return binary(ctx, ND_BINARY_MUL, a, b, loc);
}
nd_tensor *nd_div_at(nd_ctx *ctx, nd_tensor *a, nd_tensor *b, nd_loc loc) {
    return binary(ctx, ND_BINARY_DIV, a, b, loc);
}

// ---------------------------------------------------------------------------------------------------
// unary

static const char *unary_names[ND_UNARY_COUNT] = {
    "nd_affine", "nd_recip", "nd_neg",  "nd_exp",     "nd_log",  "nd_sqrt", "nd_square",
    "nd_relu",   "nd_gelu",  "nd_silu", "nd_sigmoid", "nd_tanh", "nd_sin",  "nd_cos",
};

const char *nd_unary_name(nd_unary_kind kind) { return kind < ND_UNARY_COUNT ? unary_names[kind] : "nd_unary?"; }

static void unary_backward(nd_ctx *ctx, nd_node *node) {
    nd_tensor *x = node->in[0], *y = node->out;
    if (!x->grad) return;
    ctx->be->unary_backward(x->grad, y->grad, x->data, y->data, x->numel, (nd_unary_kind)node->iarg[0], node->farg[0],
                            node->farg[1]);
}

nd_tensor *nd_unary_at(nd_ctx *ctx, nd_unary_kind kind, nd_tensor *x, float alpha, float beta, nd_loc loc) {
    const char *op = nd_unary_name(kind);
    if (kind >= ND_UNARY_COUNT) nd_abort_at(loc, op, "unknown unary kind %d", (int)kind);
    nd_check_device(ctx, op, loc, &x, 1);
    nd_tensor *y = nd_op_output(ctx, x->shape, &x, 1);
    ctx->be->unary_forward(y->data, x->data, x->numel, kind, alpha, beta);
    nd_node *node = nd_record(ctx, op, unary_backward, y, &x, 1);
    if (node) {
        node->iarg[0] = kind;
        node->farg[0] = alpha;
        node->farg[1] = beta;
    }
    return y;
}
