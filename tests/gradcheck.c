// The finite-difference gradient check harness (see gradcheck.h).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "test.h"

static double projected_loss(nd_ctx *ctx, const gc_case *c, nd_tensor **inputs, const float *proj) {
    bool previous = nd_ctx_set_grad(ctx, false);
    nd_tensor *out = c->build(ctx, inputs);
    float *host = malloc((size_t)out->numel * sizeof(float));
    nd_copy_to_host(ctx, out, host);
    double loss = 0.0;
    for (int64_t i = 0; i < out->numel; i++) loss += (double)host[i] * proj[i];
    free(host);
    nd_ctx_step_end(ctx);
    nd_ctx_set_grad(ctx, previous);
    return loss;
}

typedef struct keyed_index {
    float key;
    int64_t index;
} keyed_index;

static int by_key(const void *a, const void *b) {
    float x = ((const keyed_index *)a)->key, y = ((const keyed_index *)b)->key;
    return (x > y) - (x < y);
}

// Replaces random values by their ranks, spaced `step` apart around 0: a perturbation of +-eps never
// changes which of two elements is larger.
static void distinct_ramp(float *host, int64_t n, double step) {
    keyed_index *order = malloc((size_t)n * sizeof *order);
    for (int64_t i = 0; i < n; i++) order[i] = (keyed_index){host[i], i};
    qsort(order, (size_t)n, sizeof *order, by_key);
    for (int64_t r = 0; r < n; r++) host[order[r].index] = (float)((r - (n - 1) / 2.0) * step);
    free(order);
}

static void fill_input(nd_ctx *ctx, nd_tensor *t, const gc_input *in, double eps) {
    float *host = malloc((size_t)t->numel * sizeof(float));
    nd_tensor *tmp = nd_empty(ctx, t->shape);
    if (in->fill == GC_FILL_POSITIVE)
        nd_rand_uniform(ctx, tmp, 0.5f, 2.0f);
    else if (in->fill == GC_FILL_CLASSES)
        nd_rand_uniform(ctx, tmp, 0.0f, (float)in->classes);
    else
        nd_rand_normal(ctx, tmp, 0.0f, 1.0f);
    nd_copy_to_host(ctx, tmp, host);
    for (int64_t i = 0; i < t->numel; i++) {
        if (in->fill == GC_FILL_CLASSES) host[i] = fminf(floorf(host[i]), (float)(in->classes - 1));
        if (in->fill == GC_FILL_AWAY_ZERO && fabsf(host[i]) < 4 * eps) host[i] = host[i] < 0 ? -0.5f : 0.5f;
    }
    if (in->fill == GC_FILL_DISTINCT) distinct_ramp(host, t->numel, 4 * eps);
    nd_copy_from_host(ctx, t, host);
    free(host);
    nd_ctx_step_end(ctx);
}

int gc_run(const gc_case *c) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 20, 1234);
    double eps = c->eps ? c->eps : GC_DEFAULT_EPS;
    double atol = c->atol ? c->atol : GC_DEFAULT_ATOL, rtol = c->rtol ? c->rtol : GC_DEFAULT_RTOL;
    nd_tensor *inputs[ND_NODE_MAX_INPUTS];
    for (int i = 0; i < c->n_inputs; i++) {
        inputs[i] = nd_empty_persistent(&ctx, c->inputs[i].shape);
        fill_input(&ctx, inputs[i], &c->inputs[i], eps);
        if (c->inputs[i].fill != GC_FILL_CLASSES) nd_requires_grad(&ctx, inputs[i], true);
    }

    // analytic gradients of sum(out * R)
    nd_tensor *out = c->build(&ctx, inputs);
    int64_t n_out = out->numel;
    float *proj = malloc((size_t)n_out * sizeof(float));
    nd_tensor *r = nd_empty(&ctx, out->shape);
    nd_rand_normal(&ctx, r, 0.0f, 1.0f);
    nd_copy_to_host(&ctx, r, proj);
    nd_backward(&ctx, nd_sum_all(&ctx, nd_mul(&ctx, out, r)));
    nd_ctx_step_end(&ctx);

    int failures = 0;
    for (int i = 0; i < c->n_inputs; i++) {
        nd_tensor *x = inputs[i];
        if (!x->requires_grad) continue;
        int64_t n = x->numel;
        float *value = malloc((size_t)n * sizeof(float)), *analytic = malloc((size_t)n * sizeof(float));
        float *numeric = malloc((size_t)n * sizeof(float));
        nd_copy_to_host(&ctx, x, value);
        nd_grad_to_host(&ctx, x, analytic);
        for (int64_t j = 0; j < n; j++) {
            float saved = value[j];
            value[j] = saved + (float)eps;
            nd_copy_from_host(&ctx, x, value);
            double plus = projected_loss(&ctx, c, inputs, proj);
            value[j] = saved - (float)eps;
            nd_copy_from_host(&ctx, x, value);
            double minus = projected_loss(&ctx, c, inputs, proj);
            value[j] = saved;
            nd_copy_from_host(&ctx, x, value);
            numeric[j] = (float)((plus - minus) / (2.0 * eps));
        }
        long long worst;
        double v = test_max_violation(analytic, numeric, n, atol, rtol, &worst);
        printf("gradcheck %s input %d (%lld values): worst at %lld analytic %.6g numeric %.6g (%.2f of tolerance)\n",
               c->name, i, (long long)n, worst, worst >= 0 ? analytic[worst] : 0.0, worst >= 0 ? numeric[worst] : 0.0,
               v);
        CHECK(v <= 1.0, "%s: gradient of input %d differs from central differences", c->name, i);
        if (v > 1.0) failures++;
        free(value);
        free(analytic);
        free(numeric);
    }
    free(proj);
    nd_ctx_free(&ctx);
    return failures;
}
