// Whole models against their PyTorch twins (tests/fixtures/models.ndfx from make_model_fixtures.py): the
// twin's parameters are loaded by name — every state_dict key must be a nanodiff parameter or buffer and
// the reverse — then the output, every parameter gradient and BatchNorm's updated running statistics must
// match.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "nn.h"
#include "test.h"

// float32 through ~40 layers against a float64 reference, relative to each tensor's largest value: the
// bounds of a single op (DESIGN.md: forward 1e-5, gradients 1e-4) hold for whole models too (seen: ~1e-6).
#define OUTPUT_TOL 1e-5
#define GRAD_TOL 1e-4
// A conv bias followed by BatchNorm has an exactly zero gradient, where float32's cancellation leaves ~1e-5:
// such tensors (reference below 1e-6 of the model's largest gradient) are measured against that largest one.
#define VANISHING 1e-6

static const fx_tensor *get(const fx_file *f, const char *model, const char *what) {
    char key[ND_NAME_MAX + 64];
    snprintf(key, sizeof key, "%s/%s", model, what);
    return fx_get(f, key);
}

static double max_abs(const fx_tensor *b) {
    double m = 0;
    for (int64_t i = 0; i < b->numel; i++) m = fmax(m, fabs((double)b->data[i]));
    return m;
}

// max |a - b| / max |b|, or / floor when max |b| is below it
static double relative_error(const float *a, const fx_tensor *b, double floor) {
    double diff = 0, scale = 0;
    for (int64_t i = 0; i < b->numel; i++) {
        double d = fabs((double)a[i] - b->data[i]);
        diff = d > diff || isnan(d) ? d : diff;
        scale = fmax(scale, fabs((double)b->data[i]));
    }
    return diff / (scale > floor ? scale : floor > 0 ? floor : 1.0);
}

static bool load_named(nd_ctx *ctx, const fx_file *f, const char *model, const nd_params *p) {
    bool ok = true;
    for (int i = 0; i < p->n; i++) {
        char what[ND_NAME_MAX + 8];
        snprintf(what, sizeof what, "param/%s", p->items[i].name);
        const fx_tensor *t = get(f, model, what);
        CHECK(t, "%s: the PyTorch twin has no parameter %s", model, p->items[i].name);
        if (!t) {
            ok = false;
            continue;
        }
        CHECK(nd_shape_equal(t->shape, p->items[i].tensor->shape), "%s: %s has another shape", model, p->items[i].name);
        if (nd_shape_equal(t->shape, p->items[i].tensor->shape))
            nd_copy_from_host(ctx, p->items[i].tensor, t->data);
        else
            ok = false;
    }
    return ok;
}

static void check_model(const fx_file *f, const char *name, nd_model_config config) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 16 << 20, 0);
    nd_model m;
    nd_model_create(&m, config, &ctx);
    // every state_dict key of the twin must name one of ours
    char prefix[64];
    int twin_params = 0;
    snprintf(prefix, sizeof prefix, "%s/param/", name);
    for (int i = 0; i < f->count; i++)
        if (strncmp(f->tensors[i].name, prefix, strlen(prefix)) == 0) {
            const char *key = f->tensors[i].name + strlen(prefix);
            twin_params++;
            CHECK(nd_params_find(&m.params, key) || nd_params_find(&m.buffers, key), "%s: nanodiff lacks %s", name,
                  key);
        }
    CHECK(twin_params == m.params.n + m.buffers.n, "%s: the twin has %d tensors, nanodiff %d", name, twin_params,
          m.params.n + m.buffers.n);
    bool loaded = load_named(&ctx, f, name, &m.params) && load_named(&ctx, f, name, &m.buffers);
    const fx_tensor *x = get(f, name, "x"), *t = get(f, name, "t"), *c = get(f, name, "context");
    const fx_tensor *want = get(f, name, "out"), *gout = get(f, name, "gout");
    if (!loaded || !x || !t || !want || !gout) {
        CHECK(false, "%s: fixture incomplete (regenerate models.ndfx)", name);
        return;
    }
    nd_tensor *out = nd_model_forward(&ctx, &m, nd_from_host(&ctx, x->shape, x->data),
                                      nd_from_host(&ctx, t->shape, t->data),
                                      c ? nd_from_host(&ctx, c->shape, c->data) : NULL, true);
    float *host = malloc((size_t)out->numel * sizeof(float));
    nd_copy_to_host(&ctx, out, host);
    double err = relative_error(host, want, 0.0);
    printf("%-12s output                      relative error %.2e\n", name, err);
    CHECK(err <= OUTPUT_TOL, "%s: output differs from PyTorch by %.2e", name, err);
    free(host);
    nd_backward(&ctx, nd_sum_all(&ctx, nd_mul(&ctx, out, nd_from_host(&ctx, gout->shape, gout->data))));
    double worst = 0, model_scale = 0;
    const char *worst_name = "";
    for (int i = 0; i < m.params.n; i++) {
        char what[ND_NAME_MAX + 8];
        snprintf(what, sizeof what, "grad/%s", m.params.items[i].name);
        const fx_tensor *g = get(f, name, what);
        if (g) model_scale = fmax(model_scale, max_abs(g));
    }
    for (int i = 0; i < m.params.n; i++) {
        char what[ND_NAME_MAX + 8];
        snprintf(what, sizeof what, "grad/%s", m.params.items[i].name);
        const fx_tensor *g = get(f, name, what);
        nd_tensor *p = m.params.items[i].tensor;
        float *grad = malloc((size_t)p->numel * sizeof(float));
        nd_grad_to_host(&ctx, p, grad);
        double e = g ? relative_error(grad, g, VANISHING * model_scale > max_abs(g) ? model_scale : 0.0) : INFINITY;
        if (e > worst || isnan(e)) worst = e, worst_name = m.params.items[i].name;
        CHECK(e <= GRAD_TOL, "%s: gradient of %s differs from PyTorch by %.2e", name, m.params.items[i].name, e);
        free(grad);
    }
    printf("%-12s %3d parameter gradients   worst relative error %.2e (%s)\n", name, m.params.n, worst, worst_name);
    for (int i = 0; i < m.buffers.n; i++) {
        char what[ND_NAME_MAX + 8];
        snprintf(what, sizeof what, "after/%s", m.buffers.items[i].name);
        const fx_tensor *b = get(f, name, what);
        float *value = malloc((size_t)m.buffers.items[i].tensor->numel * sizeof(float));
        nd_copy_to_host(&ctx, m.buffers.items[i].tensor, value);
        double e = b ? relative_error(value, b, 0.0) : INFINITY;
        CHECK(e <= OUTPUT_TOL, "%s: running statistic %s differs from PyTorch by %.2e", name, m.buffers.items[i].name,
              e);
        free(value);
    }
    nd_model_free(&m);
    nd_ctx_free(&ctx);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_model_reference FIXTURES_DIR/models.ndfx\n");
        return 2;
    }
    fx_file f;
    if (!fx_load(&f, argv[1])) return 1;
    // the twins' narrow configurations (make_model_fixtures.py)
    nd_model_config dli = nd_model_config_default(ND_MODEL_DLI_UNET, 1, 16, 10);
    dli.down_chs[0] = 16, dli.down_chs[1] = 16, dli.down_chs[2] = 32, dli.small_groups = 4, dli.big_groups = 8;
    check_model(&f, "dli_unet", dli);
    nd_model_config v1 = nd_model_config_default(ND_MODEL_DLI_UNET_V1, 1, 16, 0);
    v1.down_chs[0] = 8, v1.down_chs[1] = 8, v1.down_chs[2] = 16;
    check_model(&f, "dli_unet_v1", v1);
    nd_model_config t2i = nd_model_config_default(ND_MODEL_T2I_UNET, 1, 16, 16);
    t2i.down_chs[0] = 8, t2i.down_chs[1] = 8, t2i.down_chs[2] = 16, t2i.heads = 2, t2i.small_groups = 4;
    check_model(&f, "t2i_unet", t2i);
    nd_model_config res = nd_model_config_default(ND_MODEL_RES_UNET, 1, 16, 10);
    res.down_chs[0] = 8, res.down_chs[1] = 8, res.down_chs[2] = 16, res.heads = 2, res.small_groups = 4;
    check_model(&f, "res_unet", res);
    fx_free(&f);
    return test_finish("model_reference");
}
