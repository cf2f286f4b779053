// Compares one op case with PyTorch: inputs, output, upstream gradient and input gradients come from a
// fixture file written by tests/fixtures/make_fixtures.py; the op is the same build function the
// gradient check uses.
#include <stdio.h>
#include <stdlib.h>

#include "fixture.h"
#include "gradcheck.h"
#include "test.h"

// float32 against a float64 reference: forward values carry a few ulps of rounding per op (1e-5);
// gradients pass through one more product or sum (1e-4), as DESIGN.md section 6 sets.
#define FORWARD_ATOL 1e-5
#define FORWARD_RTOL 1e-5
#define GRAD_ATOL 1e-4
#define GRAD_RTOL 1e-4

static const fx_tensor *need(const fx_file *f, const char *path, const char *name, const char *what) {
    char key[256];
    snprintf(key, sizeof key, "%s/%s", name, what);
    const fx_tensor *t = fx_get(f, key);
    if (!t) fprintf(stderr, "%s: no tensor \"%s\" (regenerate the fixtures)\n", path, key);
    return t;
}

static void compare(const char *name, const char *what, const float *got, const fx_tensor *want, double atol,
                    double rtol) {
    long long worst;
    double v = test_max_violation(got, want->data, want->numel, atol, rtol, &worst);
    printf("reference %s %s (%lld values): %.3f of tolerance", name, what, (long long)want->numel, v);
    if (worst >= 0) printf(", worst at %lld: %.8g vs torch %.8g", worst, got[worst], want->data[worst]);
    printf("\n");
    CHECK(v <= 1.0, "%s: %s differs from PyTorch", name, what);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: test_reference FIXTURE_FILE CASE\n");
        return 2;
    }
    const char *path = argv[1], *name = argv[2];
    const gc_case *c = gc_find(name);
    fx_file f;
    if (!c || !fx_load(&f, path)) {
        if (!c) fprintf(stderr, "test_reference: no case named \"%s\"\n", name);
        return 1;
    }
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 20, 0);
    nd_tensor *inputs[ND_NODE_MAX_INPUTS];
    for (int i = 0; i < c->n_inputs; i++) {
        char what[160];
        snprintf(what, sizeof what, "in%d", i);
        const fx_tensor *t = need(&f, path, name, what);
        if (!t) return 1;
        inputs[i] = nd_empty_persistent(&ctx, t->shape);
        nd_copy_from_host(&ctx, inputs[i], t->data);
        snprintf(what, sizeof what, "%s/grad%d", name, i);
        if (fx_get(&f, what)) nd_requires_grad(&ctx, inputs[i], true);
    }
    const fx_tensor *want_out = need(&f, path, name, "out"), *gout = need(&f, path, name, "gout");
    if (!want_out || !gout) return 1;
    nd_tensor *out = c->build(&ctx, inputs);
    CHECK(nd_shape_equal(out->shape, want_out->shape), "%s: output shape differs from PyTorch's", name);
    if (nd_shape_equal(out->shape, want_out->shape)) {
        float *got = malloc((size_t)out->numel * sizeof(float) + 1);
        nd_copy_to_host(&ctx, out, got);
        compare(name, "output", got, want_out, FORWARD_ATOL, FORWARD_RTOL);
        free(got);
        // backward of sum(out * gout) delivers gout as the upstream gradient
        nd_tensor *g = nd_from_host(&ctx, out->shape, gout->data);
        nd_backward(&ctx, nd_sum_all(&ctx, nd_mul(&ctx, out, g)));
        for (int i = 0; i < c->n_inputs; i++) {
            if (!inputs[i]->requires_grad) continue;
            char what[160];
            snprintf(what, sizeof what, "grad%d", i);
            const fx_tensor *want = need(&f, path, name, what);
            float *grad = malloc((size_t)inputs[i]->numel * sizeof(float) + 1);
            nd_grad_to_host(&ctx, inputs[i], grad);
            compare(name, what, grad, want, GRAD_ATOL, GRAD_RTOL);
            free(grad);
        }
    }
    nd_ctx_free(&ctx);
    fx_free(&f);
    return test_finish("reference");
}
