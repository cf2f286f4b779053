// Dropout (F.dropout) with a mask drawn from the context's counter-based RNG. The mask is never stored:
// backward recomputes it from the (seed, offset) the forward drew at.
#include "elementwise_math.h"
#include "internal.h"

static void dropout_backward(nd_ctx *ctx, nd_node *node) {
    nd_tensor *x = node->in[0], *y = node->out;
    if (!x->grad) return;
    ctx->be->dropout(x->grad, y->grad, x->numel, (uint64_t)node->iarg[0], (uint64_t)node->iarg[1], node->farg[0], true);
}

// F.dropout(x, p, training): in training each element is zeroed with probability p and the kept ones are
// scaled by 1 / (1 - p); identity (x itself) when not training or p == 0.
nd_tensor *nd_dropout_at(nd_ctx *ctx, nd_tensor *x, float p, bool training, nd_loc loc) {
    nd_check_device(ctx, "nd_dropout", loc, &x, 1);
    if (!(p >= 0.0f && p <= 1.0f)) nd_abort_at(loc, "nd_dropout", "probability %g is outside [0, 1]", p);
    if (!training || p == 0.0f) return x;
    // Take this draw's counters, as nd_rand_bernoulli does, so the next draw never reuses them.
    uint64_t seed = ctx->rng.seed, offset = ctx->rng.offset;
    ctx->rng.offset += nd_philox_counters(x->numel);
    nd_tensor *y = nd_op_output(ctx, x->shape, &x, 1);
    ctx->be->dropout(y->data, x->data, x->numel, seed, offset, p, false);
    nd_node *node = nd_record(ctx, "nd_dropout", dropout_backward, y, &x, 1);
    if (node) {
        node->iarg[0] = (int64_t)seed;
        node->iarg[1] = (int64_t)offset;
        node->farg[0] = p;
    }
    return y;
}
