// The lesson's clamped reverse step (sampler ddpm-clamped, and --clamp-x0 on DDIM) against an independent
// PyTorch float64 twin (tests/fixtures/sampler.ndfx from fixtures/make_sampler_step_fixtures.py).
#include <math.h>
#include <stdlib.h>

#include "fixture.h"
#include "sample.h"
#include "test.h"

static const fx_tensor *get(const fx_file *f, const char *name) {
    const fx_tensor *t = fx_get(f, name);
    if (!t) {
        fprintf(stderr, "sampler.ndfx: no tensor %s (regenerate with make_sampler_step_fixtures.py)\n", name);
        exit(1);
    }
    return t;
}

// float32 arithmetic on the same float32 schedule as the twin's float64: a few ulps of values near 1
#define STEP_ATOL 2e-6
#define STEP_RTOL 2e-5

static void check_close(const char *what, const float *got, const float *want, long long n) {
    long long worst;
    double v = test_max_violation(got, want, n, STEP_ATOL, STEP_RTOL, &worst);
    CHECK(v <= 1.0, "%s differs from the twin: %.3f of tolerance at %lld (%.8g vs %.8g)", what, v, worst,
          worst >= 0 ? got[worst] : 0.0, worst >= 0 ? want[worst] : 0.0);
}

// x_{t-1} = mean + sigma z: the step's noise z is redrawn from the same RNG state, so the comparison covers the
// mean and sigma at once.
static void test_clamped_step(const fx_file *f, const nd_schedule *s, int t) {
    char key[64];
    const fx_tensor *x_t = get(f, "step/x_t"), *eps = get(f, "step/eps");
    snprintf(key, sizeof key, "step/t%d/mean", t);
    const fx_tensor *mean = get(f, key);
    snprintf(key, sizeof key, "step/t%d/sigma", t);
    float sigma = get(f, key)->data[0];
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 16, 0);
    nd_sample_config cfg = nd_sample_defaults();
    cfg.sampler = ND_SAMPLER_DDPM_CLAMPED;
    nd_tensor *x = nd_from_host(&ctx, x_t->shape, x_t->data), *e = nd_from_host(&ctx, eps->shape, eps->data);
    ctx.rng = (nd_rng){.seed = 42, .offset = 0};
    nd_tensor *next = nd_sample_step(&ctx, s, &cfg, x, e, t, t - 1);
    float *got = malloc((size_t)x_t->numel * sizeof(float)), *want = malloc((size_t)x_t->numel * sizeof(float));
    nd_copy_to_host(&ctx, next, got);
    ctx.rng = (nd_rng){.seed = 42, .offset = 0};
    nd_tensor *z = nd_empty(&ctx, x_t->shape);
    nd_rand_normal(&ctx, z, 0.0f, 1.0f);
    nd_copy_to_host(&ctx, z, want);
    for (long long i = 0; i < x_t->numel; i++) want[i] = mean->data[i] + sigma * (t > 0 ? want[i] : 0.0f);
    snprintf(key, sizeof key, "ddpm-clamped step at t = %d", t);
    check_close(key, got, want, x_t->numel);
    free(got);
    free(want);
    nd_ctx_free(&ctx);
}

// The clamp must bite on these inputs, or the test would not tell a clamped step from an unclamped one.
static void test_clamp_matters(const fx_file *f, const nd_schedule *s) {
    const fx_tensor *x_t = get(f, "step/x_t"), *eps = get(f, "step/eps");
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 16, 0);
    nd_sample_config cfg = nd_sample_defaults();
    cfg.sampler = ND_SAMPLER_DDPM_POSTERIOR;
    nd_tensor *x = nd_from_host(&ctx, x_t->shape, x_t->data), *e = nd_from_host(&ctx, eps->shape, eps->data);
    float *got = malloc((size_t)x_t->numel * sizeof(float));
    nd_copy_to_host(&ctx, nd_sample_step(&ctx, s, &cfg, x, e, 0, -1), got);
    const fx_tensor *clamped = get(f, "step/t0/mean");
    int differ = 0;
    for (long long i = 0; i < x_t->numel; i++) differ += fabsf(got[i] - clamped->data[i]) > 1e-3f;
    CHECK(differ >= 4, "only %d of %lld pixels of x0_hat were clamped: the fixture does not test the clamp", differ,
          (long long)x_t->numel);
    free(got);
    nd_ctx_free(&ctx);
}

static void test_ddim_clamped(const fx_file *f, const nd_schedule *s) {
    const fx_tensor *x_t = get(f, "step/x_t"), *eps = get(f, "step/eps"), *want = get(f, "ddim/t149_to_99");
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 16, 0);
    nd_sample_config cfg = nd_sample_defaults();
    cfg.sampler = ND_SAMPLER_DDIM;
    cfg.clamp_x0 = true;
    nd_tensor *x = nd_from_host(&ctx, x_t->shape, x_t->data), *e = nd_from_host(&ctx, eps->shape, eps->data);
    float *got = malloc((size_t)x_t->numel * sizeof(float));
    nd_copy_to_host(&ctx, nd_sample_step(&ctx, s, &cfg, x, e, 149, 99), got);
    check_close("DDIM through a clamped x0_hat, 149 -> 99", got, want->data, x_t->numel);
    free(got);
    nd_ctx_free(&ctx);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_sampler_step FIXTURES_DIR/sampler.ndfx\n");
        return 2;
    }
    fx_file f;
    if (!fx_load(&f, argv[1])) return 1;
    nd_schedule s;
    nd_schedule_linear(&s, 150, 1e-4, 0.02);
    int ts[] = {149, 60, 1, 0};
    for (int i = 0; i < 4; i++) test_clamped_step(&f, &s, ts[i]);
    test_clamp_matters(&f, &s);
    test_ddim_clamped(&f, &s);
    nd_schedule_free(&s);
    fx_free(&f);
    return test_finish("sampler_step");
}
