// Unit tests of the autograd core: arena growth and stable addresses, views, the tape and the gradient
// buffers of backward, shape errors,
// the counter-based RNG, FNV-1a hashing, flat parameter buffers, batch prefetching, and the BLAS the program
// really loads.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autograd.h"
#include "elementwise_math.h"
#include "test.h"

int openblas_get_parallel(void); // 0 sequential, 1 pthreads, 2 OpenMP

static void add_mismatch(void) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 16, 0);
    nd_add(&ctx, nd_zeros(&ctx, ND_SHAPE(2, 3)), nd_zeros(&ctx, ND_SHAPE(4, 3)));
}

static void matmul_mismatch(void) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 16, 0);
    nd_matmul(&ctx, nd_zeros(&ctx, ND_SHAPE(2, 3)), nd_zeros(&ctx, ND_SHAPE(4, 5)), false, false);
}

static void test_shape_errors(void) {
    char err[2048];
    bool aborted = test_aborts_with(add_mismatch, err, sizeof err);
    CHECK(aborted, "nd_add of (2,3) and (4,3) must abort");
    CHECK(strstr(err, "nd_add") && strstr(err, "(2,3)") && strstr(err, "(4,3)"), "message lacks op/shapes: %s", err);
    CHECK(strstr(err, "test_autograd_unit.c:"), "message lacks the caller's location: %s", err);
    aborted = test_aborts_with(matmul_mismatch, err, sizeof err);
    CHECK(aborted && strstr(err, "nd_matmul") && strstr(err, "(2,3)") && strstr(err, "(4,5)"), "nd_matmul mismatch: %s",
          err);
}

static void test_arena(void) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 4096, 0); // far too small: the first step overflows
    float *first[3] = {0};
    for (int step = 0; step < 3; step++) {
        nd_tensor *a = nd_zeros(&ctx, ND_SHAPE(100, 100));
        nd_tensor *b = nd_zeros(&ctx, ND_SHAPE(50, 100));
        nd_tensor *c = nd_add(&ctx, a, nd_sum(&ctx, b, ((int[]){0}), 1, false));
        if (step == 1) {
            first[0] = a->data, first[1] = b->data, first[2] = c->data;
        } else if (step == 2) {
            CHECK(a->data == first[0] && b->data == first[1] && c->data == first[2],
                  "addresses must be stable from the second step on");
            CHECK(ctx.step.overflow == NULL, "the arena must fit the step in one block after growing");
        }
        nd_ctx_step_end(&ctx);
    }
    CHECK(nd_ctx_peak_bytes(&ctx) >= (100 * 100 * 2 + 5000) * sizeof(float), "peak %zu too small",
          nd_ctx_peak_bytes(&ctx));
    nd_ctx_free(&ctx);
}

static void test_views_and_tape(void) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 16, 0);
    float values[6] = {1, 2, 3, 4, 5, 6};
    nd_tensor *x = nd_from_host(&ctx, ND_SHAPE(2, 3), values);
    nd_requires_grad(&ctx, x, false);
    nd_tensor *v = nd_reshape(&ctx, x, ND_SHAPE(3, -1));
    CHECK(v->data == x->data && v->shape.d[1] == 2, "reshape must share storage and infer -1");
    // y = sum(v * v) twice through the same view: d/dx = 4x (accumulation across two uses)
    nd_tensor *y = nd_add(&ctx, nd_sum_all(&ctx, nd_square(&ctx, v)), nd_sum_all(&ctx, nd_mul(&ctx, v, v)));
    nd_backward(&ctx, y);
    float grad[6];
    nd_grad_to_host(&ctx, x, grad);
    for (int i = 0; i < 6; i++) CHECK(grad[i] == 4 * values[i], "grad[%d] = %g, want %g", i, grad[i], 4 * values[i]);
    CHECK(ctx.tape.n == 0, "backward consumes the tape");
    // no-grad mode records nothing
    nd_ctx_set_grad(&ctx, false);
    nd_tensor *z = nd_exp(&ctx, x);
    CHECK(!z->requires_grad && ctx.tape.n == 0, "no-grad mode must not record");
    nd_ctx_free(&ctx);
}

// Backward makes an op output's gradient when a gradient first flows into it and reuses it once spent: a
// chain of 16 same-sized ops needs a few gradient buffers, not 16; the input's gradient is right; the
// intermediate gradients are not kept afterwards.
static void test_backward_memory(void) {
    enum { N = 4096, DEPTH = 16 };
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 4 << 20, 2);
    nd_tensor *x = nd_empty(&ctx, ND_SHAPE(N));
    nd_rand_normal(&ctx, x, 0.0f, 1.0f);
    nd_requires_grad(&ctx, x, false);
    nd_tensor *h = x, *mid = NULL; // h_{k+1} = 0.9 h_k (+ a reshape in the middle: a view shares its gradient)
    for (int k = 0; k < DEPTH; k++) {
        h = nd_mul_scalar(&ctx, h, 0.9f);
        if (k == DEPTH / 2) h = mid = nd_reshape(&ctx, h, ND_SHAPE(64, 64));
    }
    nd_tensor *loss = nd_sum_all(&ctx, h);
    size_t before = ctx.step.data_used, buffer = N * sizeof(float);
    ctx.step.data_peak = 0;
    nd_backward(&ctx, loss);
    size_t used = ctx.step.data_peak > before ? ctx.step.data_peak - before : 0;
    CHECK(used <= 3 * buffer, "backward of %d ops took %zu bytes, %zu per gradient", DEPTH, used, buffer);
    float *grad = malloc(buffer), want = powf(0.9f, DEPTH);
    nd_grad_to_host(&ctx, x, grad);
    for (int i = 0; i < N; i++)
        if (fabsf(grad[i] - want) > 1e-6f * want) {
            CHECK(false, "grad[%d] = %g, want %g", i, grad[i], want);
            break;
        }
    free(grad);
    CHECK(!h->grad && !mid->grad && !loss->grad, "op outputs keep no gradient after backward");
    nd_ctx_free(&ctx);
}

// FNV-1a against the published test vectors (Fowler, Noll, Vo), whole and in pieces.
static void test_fnv1a(void) {
    const struct {
        const char *s;
        uint32_t h32;
        uint64_t h64;
    } cases[] = {{"", 0x811c9dc5u, 0xcbf29ce484222325ull},
                 {"a", 0xe40c292cu, 0xaf63dc4c8601ec8cull},
                 {"foobar", 0xbf9cf968u, 0x85944171f73967e8ull}};
    for (int k = 0; k < ND_COUNT(cases); k++) {
        size_t n = strlen(cases[k].s);
        CHECK(nd_fnv1a32(ND_FNV1A32_OFFSET, cases[k].s, n) == cases[k].h32, "FNV-1a 32 of \"%s\"", cases[k].s);
        CHECK(nd_fnv1a64(ND_FNV1A64_OFFSET, cases[k].s, n) == cases[k].h64, "FNV-1a 64 of \"%s\"", cases[k].s);
    }
    uint64_t pieces = nd_fnv1a64(nd_fnv1a64(ND_FNV1A64_OFFSET, "foo", 3), "bar", 3);
    CHECK(pieces == 0x85944171f73967e8ull &&
              nd_fnv1a32(nd_fnv1a32(ND_FNV1A32_OFFSET, "foo", 3), "bar", 3) == 0xbf9cf968u,
          "FNV-1a in pieces hashes as the whole");
}

static void test_rng(void) {
    nd_ctx a, b;
    nd_ctx_init(&a, ND_CPU, 1 << 22, 42);
    nd_ctx_init(&b, ND_CPU, 1 << 22, 42);
    enum { N = 200000 };
    nd_tensor *ta = nd_empty(&a, ND_SHAPE(N)), *tb = nd_empty(&b, ND_SHAPE(N));
    nd_rand_normal(&a, ta, 0.0f, 1.0f);
    nd_rand_normal(&b, tb, 0.0f, 1.0f);
    CHECK(memcmp(ta->data, tb->data, N * sizeof(float)) == 0, "same seed, same offset: same draws");
    double mean = 0, var = 0;
    for (int i = 0; i < N; i++) mean += ta->data[i];
    mean /= N;
    for (int i = 0; i < N; i++) var += (ta->data[i] - mean) * (ta->data[i] - mean);
    var /= N;
    // standard error of the mean is 1/sqrt(N) = 0.0022; of the variance sqrt(2/N) = 0.0032: 5 sigma bounds
    CHECK(fabs(mean) < 0.011 && fabs(var - 1.0) < 0.016, "normal draws: mean %g var %g", mean, var);
    nd_rand_normal(&a, ta, 0.0f, 1.0f);
    CHECK(memcmp(ta->data, tb->data, N * sizeof(float)) != 0, "the next draw must differ");
    nd_rand_uniform(&a, ta, -1.0f, 3.0f);
    double lo = 1e9, hi = -1e9, sum = 0;
    for (int i = 0; i < N; i++) {
        lo = fmin(lo, ta->data[i]);
        hi = fmax(hi, ta->data[i]);
        sum += ta->data[i];
    }
    CHECK(lo >= -1.0 && hi <= 3.0 && fabs(sum / N - 1.0) < 0.02, "uniform(-1,3): [%g, %g] mean %g", lo, hi, sum / N);
    nd_rand_bernoulli(&a, ta, 0.3f);
    double ones = 0;
    for (int i = 0; i < N; i++) ones += ta->data[i];
    // binomial standard error sqrt(0.21/N) = 0.001: 5 sigma
    CHECK(fabs(ones / N - 0.3) < 0.005, "bernoulli(0.3) kept %g", ones / N);
    nd_ctx_free(&a);
    nd_ctx_free(&b);
}

static void test_params(void) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 16, 7);
    nd_params p;
    nd_params_init(&p);
    nd_tensor *w = nd_params_add(&p, "fc.weight", ND_SHAPE(300, 200), ND_INIT_UNIFORM, 0.5f);
    nd_tensor *b = nd_params_add(&p, "fc.bias", ND_SHAPE(300), ND_INIT_ZEROS, 0.0f);
    nd_tensor *g = nd_params_add(&p, "norm.weight", ND_SHAPE(4), ND_INIT_ONES, 0.0f);
    nd_params_alloc(&p, &ctx);
    CHECK(p.total == 300 * 200 + 300 + 4, "total %lld", (long long)p.total);
    CHECK(w->data == p.data && b->data == p.data + 60000 && g->grad == p.grad + 60300, "flat layout");
    float lo = 1, hi = -1;
    for (int i = 0; i < 60000; i++) {
        lo = fminf(lo, w->data[i]);
        hi = fmaxf(hi, w->data[i]);
    }
    CHECK(lo >= -0.5f && hi <= 0.5f && lo < -0.49f && hi > 0.49f, "uniform init range [%g, %g]", lo, hi);
    CHECK(b->data[0] == 0.0f && g->data[3] == 1.0f, "zeros and ones init");
    CHECK(nd_params_find(&p, "fc.bias")->tensor == b && !nd_params_find(&p, "fc.nope"), "lookup by name");
    nd_params_free(&p);
    nd_ctx_free(&ctx);
}

static void test_fast_erf(void) {
    double worst = 0;
    for (double x = -6.0; x <= 6.0; x += 1e-4) worst = fmax(worst, fabs((double)nd_erff((float)x) - erf(x)));
    CHECK(worst < 5e-7, "nd_erff is off by %g", worst);
}

// GELU's derivative uses a vectorizable exp for its Gaussian factor exp(-x^2/2): within 2 ulp of expf.
static void test_exp_neg(void) {
    double worst = 0;
    for (double x = -87.0; x <= 0.0; x += 1e-3) {
        float xf = (float)x;
        double want = exp((double)xf);
        worst = fmax(worst, fabs((double)nd_exp_neg(xf) - want) / want);
    }
    CHECK(worst < 2.5e-7, "nd_exp_neg is off by a relative %g", worst);
}

// Sigmoid (and SiLU, x * sigmoid) from exp(-|x|): within float rounding of the double formula over the
// whole range, exactly 0/1 far out, NaN through; softmax of a row with -inf (masked) scores gives those 0
// exactly and a NaN score makes the row NaN, as torch.softmax does.
static void test_sigmoid_softmax(void) {
    double worst = 0;
    for (double x = -87.0; x <= 90.0; x += 1e-3) { // below -87: 1.6e-38 (exp's floor), not a denormal
        float xf = (float)x;
        double want = 1.0 / (1.0 + exp(-(double)xf));
        worst = fmax(worst, fabs((double)nd_sigmoidf(xf) - want) / want);
    }
    CHECK(worst < 1e-6, "nd_sigmoidf is off by a relative %g", worst);
    CHECK(isnan(nd_sigmoidf(NAN)) && isnan(nd_unary_f(ND_UNARY_SILU, NAN, 1, 0)), "sigmoid/SiLU lose a NaN");
    CHECK(nd_sigmoidf(200.0f) == 1.0f && nd_sigmoidf(-200.0f) < 1e-37f, "sigmoid's tails: %g %g", nd_sigmoidf(200.0f),
          nd_sigmoidf(-200.0f));

    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 16, 0);
    float row[2][5] = {{1.0f, -INFINITY, 3.0f, -INFINITY, 0.5f}, {1.0f, NAN, 2.0f, 0.0f, 0.0f}};
    nd_tensor *x = nd_from_host(&ctx, ND_SHAPE(2, 5), &row[0][0]);
    float y[10];
    nd_copy_to_host(&ctx, nd_softmax(&ctx, x, -1), y);
    double z = exp(1.0) + exp(3.0) + exp(0.5);
    CHECK(y[1] == 0.0f && y[3] == 0.0f, "masked scores weigh %g and %g, not 0", y[1], y[3]);
    CHECK(fabs(y[0] - exp(1.0) / z) < 1e-7 && fabs(y[2] - exp(3.0) / z) < 1e-7, "softmax row %g %g", y[0], y[2]);
    bool all_nan = true;
    for (int j = 5; j < 10; j++) all_nan = all_nan && isnan(y[j]);
    CHECK(all_nan, "a NaN score left the softmax row finite: %g %g", y[5], y[6]);
    nd_ctx_free(&ctx);
}

// --profile's table: every op of a forward and backward with its calls, and GFLOP/s where the op states
// its work (a convolution's 2 * outputs * C * kh * kw).
static void test_profile(void) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 20, 1);
    nd_tensor *x = nd_empty(&ctx, ND_SHAPE(2, 3, 8, 8)), *w = nd_empty(&ctx, ND_SHAPE(4, 3, 3, 3));
    nd_rand_normal(&ctx, x, 0.0f, 1.0f);
    nd_rand_normal(&ctx, w, 0.0f, 1.0f);
    nd_requires_grad(&ctx, w, false);
    nd_profile_begin(&ctx);
    for (int step = 0; step < 2; step++) {
        nd_backward(&ctx, nd_sum_all(&ctx, nd_gelu(&ctx, nd_conv2d(&ctx, x, w, NULL, 1, 1))));
        nd_ctx_step_end(&ctx);
    }
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    nd_profile_report(&ctx, out);
    fclose(out);
    CHECK(ctx.profile == NULL, "the report ends profiling");
    char *conv = strstr(text, "nd_conv2d"), *gelu = strstr(text, "nd_gelu");
    CHECK(conv && gelu && strstr(text, "nd_sum"), "ops missing from the profile:\n%s", text);
    long long fwd_calls = 0, bwd_calls = 0;
    double fwd_ms, bwd_ms;
    char fwd_rate[32] = "-";
    if (conv) sscanf(conv, "nd_conv2d %lld %lf %31s %lld %lf", &fwd_calls, &fwd_ms, fwd_rate, &bwd_calls, &bwd_ms);
    CHECK(fwd_calls == 2 && bwd_calls == 2, "conv2d ran twice each way, the profile says %lld and %lld:\n%s", fwd_calls,
          bwd_calls, text);
    CHECK(strcmp(fwd_rate, "-") != 0, "conv2d states its work, so its forward has a GFLOP/s figure:\n%s", text);
    free(text);
    nd_ctx_free(&ctx);
}

// Batches put one ahead of the takes come back in order and intact through both lanes; a third waiting
// batch is a programmer error.
static void test_prefetch(void) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 16, 0);
    nd_prefetch p;
    nd_prefetch_init(&p, &ctx, 6 * sizeof(float));
    float batch[6], got[6];
    int wrong = 0;
    for (int k = 0; k < 5; k++) {
        if (k == 0) {
            for (int i = 0; i < 6; i++) batch[i] = (float)(100 * k + i);
            nd_prefetch_put(&p, batch, sizeof batch);
        }
        nd_tensor *x = nd_prefetch_take(&p, ND_SHAPE(2, 3));
        for (int i = 0; i < 6; i++) batch[i] = (float)(100 * (k + 1) + i); // the next batch, put before use
        nd_prefetch_put(&p, batch, sizeof batch);
        memset(batch, 0, sizeof batch); // the put copied it
        nd_copy_to_host(&ctx, x, got);
        for (int i = 0; i < 6; i++) wrong += got[i] != (float)(100 * k + i);
        nd_ctx_step_end(&ctx);
    }
    CHECK(wrong == 0, "%d prefetched values differ from what was put", wrong);
    CHECK(p.puts == 6 && p.takes == 5, "puts %lld takes %lld", (long long)p.puts, (long long)p.takes);
    nd_prefetch_free(&p);
    nd_ctx_free(&ctx);
}

static void prefetch_three_waiting(void) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 16, 0);
    nd_prefetch p;
    nd_prefetch_init(&p, &ctx, 4 * sizeof(float));
    float batch[4] = {0};
    for (int k = 0; k < 3; k++) nd_prefetch_put(&p, batch, sizeof batch);
}

static void test_prefetch_misuse(void) {
    char err[2048];
    bool aborted = test_aborts_with(prefetch_three_waiting, err, sizeof err);
    CHECK(aborted && strstr(err, "nd_prefetch_put") && strstr(err, "at most 2"), "third waiting batch: %s", err);
}

static void test_blas_threading(void) {
    // Debian's OpenMP OpenBLAS shares our OpenMP pool; the pthread build would oversubscribe the cores.
    CHECK(openblas_get_parallel() == 2, "the loaded OpenBLAS is not the OpenMP build (parallel mode %d)",
          openblas_get_parallel());
}

int main(void) {
    test_shape_errors();
    test_arena();
    test_views_and_tape();
    test_backward_memory();
    test_rng();
    test_fnv1a();
    test_params();
    test_fast_erf();
    test_exp_neg();
    test_sigmoid_softmax();
    test_profile();
    test_prefetch();
    test_prefetch_misuse();
    test_blas_threading();
    return test_finish("autograd_unit");
}
