// Unit tests of nd_dropout: PyTorch cannot reproduce our random mask, so instead of a fixture these check
// what F.dropout promises: the fraction kept, the exact scaling of kept values, identity when not training,
// reproducibility from (seed, offset), a fresh mask per draw, and a backward that uses the forward's mask.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autograd.h"
#include "test.h"

enum { N = 200000 };
#define DROP_PROB 0.3f

// x = 1, 2, 3, ...: never 0, so a zero in the output marks a dropped element
static nd_tensor *counting(nd_ctx *ctx) {
    nd_tensor *x = nd_empty(ctx, ND_SHAPE(N));
    for (int i = 0; i < N; i++) x->data[i] = (float)(i % 1000 + 1);
    return x;
}

static void test_statistics_and_scaling(void) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 23, 42);
    nd_tensor *x = counting(&ctx);
    nd_tensor *y = nd_dropout(&ctx, x, DROP_PROB, true);
    float scale = 1.0f / (1.0f - DROP_PROB);
    long long kept = 0, wrong = 0;
    for (int i = 0; i < N; i++) {
        if (y->data[i] != 0.0f) kept++;
        // the kernel multiplies by 1 / (1 - p) computed in float, as here: kept values match exactly
        if (y->data[i] != 0.0f && y->data[i] != x->data[i] * scale) wrong++;
    }
    // the kept count is binomial: standard error of the fraction sqrt(0.21 / N) = 0.001, so 5 sigma is 0.005
    double fraction = (double)kept / N;
    CHECK(fabs(fraction - (1.0 - DROP_PROB)) < 0.005, "kept fraction %g, expected %g", fraction, 1.0 - DROP_PROB);
    CHECK(wrong == 0, "%lld kept values are not x / (1 - p)", wrong);

    // The mask is the Bernoulli(1 - p) draw at the same counters.
    ctx.rng.offset = 0;
    nd_tensor *keep = nd_empty(&ctx, ND_SHAPE(N));
    nd_rand_bernoulli(&ctx, keep, 1.0f - DROP_PROB);
    long long differ = 0;
    for (int i = 0; i < N; i++) differ += (keep->data[i] != 0.0f) != (y->data[i] != 0.0f);
    CHECK(differ == 0, "%lld elements differ from nd_rand_bernoulli(1 - p) at the same offset", differ);
    nd_ctx_free(&ctx);
}

static void test_identity(void) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 16, 42);
    nd_tensor *x = nd_full(&ctx, ND_SHAPE(10), 2.0f);
    uint64_t offset = ctx.rng.offset;
    CHECK(nd_dropout(&ctx, x, DROP_PROB, false) == x, "eval mode must return its input");
    CHECK(nd_dropout(&ctx, x, 0.0f, true) == x, "p = 0 must return its input");
    CHECK(ctx.rng.offset == offset, "an identity dropout must not consume random numbers");
    nd_tensor *zero = nd_dropout(&ctx, x, 1.0f, true);
    bool all_zero = true;
    for (int i = 0; i < 10; i++) all_zero = all_zero && zero->data[i] == 0.0f;
    CHECK(all_zero, "p = 1 must zero everything (and divide by nothing)");
    nd_ctx_free(&ctx);
}

static void test_reproducibility(void) {
    nd_ctx a, b;
    nd_ctx_init(&a, ND_CPU, 1 << 23, 7);
    nd_ctx_init(&b, ND_CPU, 1 << 23, 7);
    nd_tensor *ya = nd_dropout(&a, counting(&a), DROP_PROB, true);
    nd_tensor *yb = nd_dropout(&b, counting(&b), DROP_PROB, true);
    CHECK(memcmp(ya->data, yb->data, N * sizeof(float)) == 0, "same seed and offset must give the same mask");
    // a second draw on the same context sits at a later offset
    nd_tensor *next = nd_dropout(&a, counting(&a), DROP_PROB, true);
    long long differ = 0;
    for (int i = 0; i < N; i++) differ += (next->data[i] == 0.0f) != (ya->data[i] == 0.0f);
    // independent masks disagree on 2 p (1 - p) = 42% of elements; 10% is far below any plausible draw
    CHECK(differ > N / 10, "the next draw's mask must differ (%lld of %d elements differ)", differ, N);
    nd_ctx c;
    nd_ctx_init(&c, ND_CPU, 1 << 23, 8);
    nd_tensor *yc = nd_dropout(&c, counting(&c), DROP_PROB, true);
    CHECK(memcmp(ya->data, yc->data, N * sizeof(float)) != 0, "another seed must give another mask");
    nd_ctx_free(&a);
    nd_ctx_free(&b);
    nd_ctx_free(&c);
}

static void test_backward_uses_forward_mask(void) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 16, 3);
    enum { M = 1000 };
    nd_tensor *x = nd_full(&ctx, ND_SHAPE(M), 1.0f);
    nd_requires_grad(&ctx, x, false);
    nd_tensor *y = nd_dropout(&ctx, x, 0.5f, true);
    float y_host[M];
    memcpy(y_host, y->data, sizeof y_host);
    nd_rand_normal(&ctx, nd_empty(&ctx, ND_SHAPE(M)), 0.0f, 1.0f); // a draw between forward and backward
    nd_backward(&ctx, nd_sum_all(&ctx, y));
    long long wrong = 0;
    for (int i = 0; i < M; i++) wrong += x->grad[i] != y_host[i]; // d sum(x * m) / dx = m = y for x = 1
    CHECK(wrong == 0, "%lld gradient elements differ from the forward's mask", wrong);
    nd_ctx_free(&ctx);
}

static void bad_probability(void) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 16, 0);
    nd_dropout(&ctx, nd_zeros(&ctx, ND_SHAPE(3)), 1.5f, true);
}

static void test_bad_probability(void) {
    char err[2048];
    bool aborted = test_aborts_with(bad_probability, err, sizeof err);
    CHECK(aborted && strstr(err, "nd_dropout") && strstr(err, "1.5"), "p = 1.5 must abort naming the op: %s", err);
}

int main(void) {
    test_statistics_and_scaling();
    test_identity();
    test_reproducibility();
    test_backward_uses_forward_mask();
    test_bad_probability();
    return test_finish("dropout");
}
