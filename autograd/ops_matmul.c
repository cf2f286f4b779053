// Matrix products: torch.matmul with transpose flags (batched) and F.linear.
#include "internal.h"

typedef struct matmul_dims {
    int64_t batch, m, n, k;
    int64_t stride_a, stride_b; // 0 for an operand shared by every batch
    bool fold;                  // b shared and a not transposed: the batch folds into one tall product
} matmul_dims;

static int64_t batch_of(nd_shape s) {
    int64_t n = 1;
    for (int i = 0; i < s.ndim - 2; i++) n *= s.d[i];
    return n;
}

static matmul_dims matmul_plan(nd_shape a, nd_shape b, bool trans_a, bool trans_b, nd_shape *out, nd_loc loc) {
    if (a.ndim < 2 || b.ndim < 2) nd_abort_shapes(loc, "nd_matmul", "operands need at least 2 dims", a, b);
    matmul_dims d = {0};
    d.m = trans_a ? a.d[a.ndim - 1] : a.d[a.ndim - 2];
    d.k = trans_a ? a.d[a.ndim - 2] : a.d[a.ndim - 1];
    int64_t kb = trans_b ? b.d[b.ndim - 1] : b.d[b.ndim - 2];
    d.n = trans_b ? b.d[b.ndim - 2] : b.d[b.ndim - 1];
    if (d.k != kb) nd_abort_shapes(loc, "nd_matmul", "inner dimensions differ", a, b);
    bool a_batched = a.ndim > 2, b_batched = b.ndim > 2;
    nd_shape lead = a_batched ? a : b;
    if (a_batched && b_batched) {
        bool same = a.ndim == b.ndim;
        for (int i = 0; same && i < a.ndim - 2; i++) same = a.d[i] == b.d[i];
        if (!same) nd_abort_shapes(loc, "nd_matmul", "batch dimensions differ", a, b);
    }
    d.batch = batch_of(lead);
    d.stride_a = a_batched ? d.m * d.k : 0;
    d.stride_b = b_batched ? d.k * d.n : 0;
    d.fold = a_batched && !b_batched && !trans_a;
    *out = lead;
    out->d[out->ndim - 2] = d.m;
    out->d[out->ndim - 1] = d.n;
    return d;
}

// C (batch, m, n) = op(A) op(B), folding a shared B into one product of (batch*m) rows.
static void gemm_batched(nd_ctx *ctx, matmul_dims d, bool ta, bool tb, const float *a, const float *b,
                         float beta, float *c) {
    int64_t lda = ta ? d.m : d.k, ldb = tb ? d.k : d.n;
    if (d.fold)
        ctx->be->gemm(ta, tb, d.batch * d.m, d.n, d.k, 1.0f, a, lda, 0, b, ldb, 0, beta, c, d.n, 0, 1);
    else
        ctx->be->gemm(ta, tb, d.m, d.n, d.k, 1.0f, a, lda, d.stride_a, b, ldb, d.stride_b, beta, c, d.n,
                      d.m * d.n, d.batch);
}

static void matmul_backward(nd_ctx *ctx, nd_node *node) {
    nd_tensor *a = node->in[0], *b = node->in[1], *g = node->out;
    bool ta = node->iarg[0], tb = node->iarg[1];
    nd_shape out_shape;
    matmul_dims d = matmul_plan(a->shape, b->shape, ta, tb, &out_shape, ND_HERE);
    const nd_backend *be = ctx->be;
    int64_t lda = ta ? d.m : d.k, ldb = tb ? d.k : d.n;
    if (a->grad) {
        // dA = dC op(B)^T (or its transpose when A was used transposed)
        if (d.fold) {
            be->gemm(false, !tb, d.batch * d.m, d.k, d.n, 1.0f, g->grad, d.n, 0, b->data, ldb, 0, 1.0f,
                     a->grad, lda, 0, 1);
        } else if (!ta) {
            be->gemm(false, !tb, d.m, d.k, d.n, 1.0f, g->grad, d.n, d.m * d.n, b->data, ldb, d.stride_b, 1.0f,
                     a->grad, lda, d.stride_a, d.stride_a ? d.batch : 1);
            for (int64_t i = 1; !d.stride_a && i < d.batch; i++) // a shared: sum over batches
                be->gemm(false, !tb, d.m, d.k, d.n, 1.0f, g->grad + i * d.m * d.n, d.n, 0,
                         b->data + i * d.stride_b, ldb, 0, 1.0f, a->grad, lda, 0, 1);
        } else {
            // A^T was used: dA (k, m) = op(B) dC^T
            for (int64_t i = 0; i < (d.stride_a ? 1 : d.batch); i++)
                be->gemm(tb, true, d.k, d.m, d.n, 1.0f, b->data + i * d.stride_b, ldb, d.stride_b,
                         g->grad + i * d.m * d.n, d.n, d.m * d.n, 1.0f, a->grad, lda, d.stride_a,
                         d.stride_a ? d.batch : 1);
        }
    }
    if (b->grad) {
        if (d.fold) {
            // dB = op(A)^T dC over all rows of the folded batch (or transposed when B was used transposed)
            if (!tb)
                be->gemm(true, false, d.k, d.n, d.batch * d.m, 1.0f, a->data, lda, 0, g->grad, d.n, 0, 1.0f,
                         b->grad, ldb, 0, 1);
            else
                be->gemm(true, false, d.n, d.k, d.batch * d.m, 1.0f, g->grad, d.n, 0, a->data, lda, 0, 1.0f,
                         b->grad, ldb, 0, 1);
        } else {
            int64_t count = d.stride_b ? 1 : d.batch; // b shared: one product per batch, summed
            int64_t inner = d.stride_b ? d.batch : 1;
            for (int64_t i = 0; i < count; i++) {
                const float *ai = a->data + i * d.stride_a, *gi = g->grad + i * d.m * d.n;
                if (!tb)
                    be->gemm(!ta, false, d.k, d.n, d.m, 1.0f, ai, lda, d.stride_a, gi, d.n, d.m * d.n, 1.0f,
                             b->grad, ldb, d.stride_b, inner);
                else
                    be->gemm(true, ta, d.n, d.k, d.m, 1.0f, gi, d.n, d.m * d.n, ai, lda, d.stride_a, 1.0f,
                             b->grad, ldb, d.stride_b, inner);
            }
        }
    }
}

nd_tensor *nd_matmul_at(nd_ctx *ctx, nd_tensor *a, nd_tensor *b, bool trans_a, bool trans_b, nd_loc loc) {
    nd_tensor *in[2] = {a, b};
    nd_check_device(ctx, "nd_matmul", loc, in, 2);
    nd_shape out_shape;
    matmul_dims d = matmul_plan(a->shape, b->shape, trans_a, trans_b, &out_shape, loc);
    nd_tensor *out = nd_op_output(ctx, out_shape, in, 2);
    gemm_batched(ctx, d, trans_a, trans_b, a->data, b->data, 0.0f, out->data);
    nd_profile_flops(ctx, 2.0 * (double)d.batch * (double)d.m * (double)d.n * (double)d.k);
    nd_node *node = nd_record(ctx, "nd_matmul", matmul_backward, out, in, 2);
    if (node) {
        node->iarg[0] = trans_a;
        node->iarg[1] = trans_b;
    }
    return out;
}

// ---------------------------------------------------------------------------------------------------
// linear

static void linear_backward(nd_ctx *ctx, nd_node *node) {
    nd_tensor *x = node->in[0], *w = node->in[1], *bias = node->in[2], *y = node->out;
    int64_t out_f = w->shape.d[0], in_f = w->shape.d[1], rows = x->numel / in_f;
    if (x->grad) // dx (rows, in) += dy (rows, out) W (out, in)
        ctx->be->gemm(false, false, rows, in_f, out_f, 1.0f, y->grad, out_f, 0, w->data, in_f, 0, 1.0f, x->grad,
                      in_f, 0, 1);
    if (w->grad) // dW (out, in) += dy^T (out, rows) x (rows, in)
        ctx->be->gemm(true, false, out_f, in_f, rows, 1.0f, y->grad, out_f, 0, x->data, in_f, 0, 1.0f, w->grad,
                      in_f, 0, 1);
    if (bias && bias->grad) {
        nd_reduce_plan plan = nd_reduce_plan_make(ND_SHAPE(rows, out_f), ND_SHAPE(1, out_f));
        ctx->be->reduce_sum(bias->grad, y->grad, &plan, 1.0f, true);
    }
}

nd_tensor *nd_linear_at(nd_ctx *ctx, nd_tensor *x, nd_tensor *weight, nd_tensor *bias, nd_loc loc) {
    nd_tensor *in[3] = {x, weight, bias};
    nd_check_device(ctx, "nd_linear", loc, in, bias ? 3 : 2);
    if (weight->shape.ndim != 2) nd_abort_shapes(loc, "nd_linear", "weight must be (out, in)", x->shape, weight->shape);
    int64_t out_f = weight->shape.d[0], in_f = weight->shape.d[1];
    if (x->shape.ndim < 1 || x->shape.d[x->shape.ndim - 1] != in_f)
        nd_abort_shapes(loc, "nd_linear", "input features differ from weight (out, in)", x->shape, weight->shape);
    if (bias && (bias->shape.ndim != 1 || bias->shape.d[0] != out_f))
        nd_abort_shapes(loc, "nd_linear", "bias must be (out,) for weight", bias->shape, weight->shape);
    nd_shape out_shape = x->shape;
    out_shape.d[out_shape.ndim - 1] = out_f;
    int64_t rows = x->numel / (in_f ? in_f : 1);
    nd_tensor *y = nd_op_output(ctx, out_shape, in, bias ? 3 : 2);
    ctx->be->gemm(false, true, rows, out_f, in_f, 1.0f, x->data, in_f, 0, weight->data, in_f, 0, 0.0f, y->data,
                  out_f, 0, 1);
    if (bias) ctx->be->add_bias(y->data, bias->data, rows, out_f);
    nd_profile_flops(ctx, 2.0 * (double)rows * (double)out_f * (double)in_f);
    nd_record(ctx, "nd_linear", linear_backward, y, in, 3);
    return y;
}
