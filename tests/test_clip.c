// CLIP against its PyTorch twin (tests/fixtures/clip.ndfx from make_clip_fixtures.py): the contrastive loss
// alone, and a tiny whole CLIP (both towers) — the pooled embeddings, the loss and every parameter's gradient,
// the logit scale's included. Then finite differences of the loss along random directions of all parameters
// and element by element for the contrastive loss, the logit scale's clamp, and the per-token text features.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "nn.h"
#include "test.h"

// float32 against a float64 reference through ~20 layers, relative to each tensor's largest value: the
// single-op bounds of DESIGN.md (forward 1e-5, gradients 1e-4) hold for the whole model.
#define OUTPUT_TOL 1e-5
#define GRAD_TOL 1e-4

static nd_clip_config tiny_config(void) {
    return (nd_clip_config){.vocab_size = 262,
                            .context_length = 8,
                            .text_width = 8,
                            .text_layers = 2,
                            .text_heads = 2,
                            .img_ch = 1,
                            .img_size = 8,
                            .patch_size = 4,
                            .vision_width = 8,
                            .vision_layers = 2,
                            .vision_heads = 2,
                            .embed_dim = 6};
}

// max |a - b| / max |b|
static double relative_error(const float *a, const fx_tensor *b) {
    double diff = 0, scale = 0;
    for (int64_t i = 0; i < b->numel; i++) {
        double d = fabs((double)a[i] - b->data[i]);
        diff = d > diff || isnan(d) ? d : diff;
        scale = fmax(scale, fabs((double)b->data[i]));
    }
    return diff / (scale > 0 ? scale : 1.0);
}

static const fx_tensor *need(const fx_file *f, const char *name) {
    const fx_tensor *t = fx_get(f, name);
    CHECK(t, "fixture lacks %s", name);
    if (!t) exit(test_finish("clip"));
    return t;
}

static void check_tensor(nd_ctx *ctx, const nd_tensor *t, const fx_tensor *want, double tol, const char *what) {
    CHECK(t->numel == want->numel, "%s: %lld values, PyTorch %lld", what, (long long)t->numel, (long long)want->numel);
    if (t->numel != want->numel) return;
    float *host = malloc((size_t)t->numel * sizeof *host);
    nd_copy_to_host(ctx, t, host);
    double e = relative_error(host, want);
    CHECK(e <= tol, "%s: relative error %.3g > %.1g", what, e, tol);
    free(host);
}

static void check_contrastive(const fx_file *f) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 20, 0);
    nd_tensor *in[3];
    for (int i = 0; i < 3; i++) {
        char key[64];
        snprintf(key, sizeof key, "contrastive/in%d", i);
        const fx_tensor *t = need(f, key);
        in[i] = nd_from_host(&ctx, t->shape, t->data);
        nd_requires_grad(&ctx, in[i], false);
    }
    nd_tensor *loss = nd_clip_contrastive_loss(&ctx, in[0], in[1], in[2]);
    check_tensor(&ctx, loss, need(f, "contrastive/out"), OUTPUT_TOL, "contrastive loss");
    nd_tensor *weighted = nd_mul_scalar(&ctx, loss, need(f, "contrastive/gout")->data[0]);
    nd_backward(&ctx, weighted);
    for (int i = 0; i < 3; i++) {
        char key[64];
        snprintf(key, sizeof key, "contrastive/grad%d", i);
        const fx_tensor *want = need(f, key);
        float *g = malloc((size_t)want->numel * sizeof *g);
        nd_grad_to_host(&ctx, in[i], g);
        double e = relative_error(g, want);
        CHECK(e <= GRAD_TOL, "contrastive loss: gradient of input %d: relative error %.3g", i, e);
        free(g);
    }
    nd_ctx_free(&ctx);
}

// The fixture's token ids as ints.
static int32_t *fixture_ids(const fx_file *f) {
    const fx_tensor *t = need(f, "clip/ids");
    int32_t *ids = malloc((size_t)t->numel * sizeof *ids);
    for (int64_t i = 0; i < t->numel; i++) ids[i] = (int32_t)t->data[i];
    return ids;
}

static void load_twin(nd_ctx *ctx, const fx_file *f, nd_clip *clip) {
    nd_clip_create(clip, tiny_config(), ctx);
    int twin = 0;
    for (int i = 0; i < f->count; i++)
        if (strncmp(f->tensors[i].name, "clip/param/", 11) == 0) {
            twin++;
            const nd_param *p = nd_params_find(&clip->params, f->tensors[i].name + 11);
            CHECK(p, "nanodiff lacks the twin's %s", f->tensors[i].name + 11);
            if (!p) continue;
            CHECK(nd_shape_equal(p->tensor->shape, f->tensors[i].shape), "%s: another shape", p->name);
            if (nd_shape_equal(p->tensor->shape, f->tensors[i].shape))
                nd_copy_from_host(ctx, p->tensor, f->tensors[i].data);
        }
    CHECK(twin == clip->params.n, "the twin has %d tensors, nanodiff %d", twin, clip->params.n);
}

static void check_whole_clip(const fx_file *f) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 4 << 20, 0);
    nd_clip clip;
    load_twin(&ctx, f, &clip);
    int32_t *ids = fixture_ids(f);
    const fx_tensor *img = need(f, "clip/images");
    nd_tensor *images = nd_from_host(&ctx, img->shape, img->data);
    check_tensor(&ctx, nd_clip_encode_text(&ctx, &clip, ids, 3, NULL), need(f, "clip/text_emb"), OUTPUT_TOL,
                 "text embedding");
    check_tensor(&ctx, nd_clip_encode_image(&ctx, &clip, images), need(f, "clip/image_emb"), OUTPUT_TOL,
                 "image embedding");
    nd_ctx_step_end(&ctx);
    images = nd_from_host(&ctx, img->shape, img->data);
    nd_tensor *loss = nd_clip_loss(&ctx, &clip, images, ids);
    check_tensor(&ctx, loss, need(f, "clip/loss"), OUTPUT_TOL, "CLIP loss");
    nd_backward(&ctx, loss);
    for (int i = 0; i < clip.params.n; i++) {
        const nd_param *p = &clip.params.items[i];
        char key[ND_NAME_MAX + 16];
        snprintf(key, sizeof key, "clip/grad/%s", p->name);
        const fx_tensor *want = fx_get(f, key);
        CHECK(want, "fixture lacks %s", key);
        if (!want) continue;
        float *g = malloc((size_t)want->numel * sizeof *g);
        nd_grad_to_host(&ctx, p->tensor, g);
        double e = relative_error(g, want);
        CHECK(e <= GRAD_TOL, "gradient of %s: relative error %.3g > %.1g", p->name, e, GRAD_TOL);
        free(g);
    }
    // The per-token features cover the whole context and give the same pooled vector as the cropped pass.
    nd_ctx_step_end(&ctx);
    nd_tensor *tokens = NULL;
    nd_tensor *pooled = nd_clip_encode_text(&ctx, &clip, ids, 3, &tokens);
    CHECK(tokens && nd_shape_equal(tokens->shape, ND_SHAPE(3, 8, 8)), "per-token features are not (3, 8, 8)");
    check_tensor(&ctx, pooled, need(f, "clip/text_emb"), OUTPUT_TOL, "text embedding with per-token features");
    free(ids);
    nd_clip_free(&clip);
    nd_ctx_free(&ctx);
}

// Short prompts only (end tokens at 3 and 1): the text tower runs on 4 positions instead of 8. The pooled vectors
// must equal the fixture's rows, and the gradients of sum(pooled * R) those of the full-length pass.
static void check_cropped_text(const fx_file *f) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 4 << 20, 0);
    nd_clip clip;
    load_twin(&ctx, f, &clip);
    int32_t *all = fixture_ids(f), ids[16];
    memcpy(ids, all, 8 * sizeof *ids), memcpy(ids + 8, all + 16, 8 * sizeof *ids); // rows 0 and 2
    const fx_tensor *want = need(f, "clip/text_emb");
    float r[12], grads[2][8192];
    for (int i = 0; i < 12; i++) r[i] = (float)(i % 5) - 1.7f;
    CHECK(clip.params.total <= 8192, "tiny CLIP has %lld parameters", (long long)clip.params.total);
    if (clip.params.total > 8192) return;
    for (int full = 0; full < 2; full++) {
        nd_tensor *tokens = NULL;
        nd_tensor *pooled = nd_clip_encode_text(&ctx, &clip, ids, 2, full ? &tokens : NULL); // (2, 6)
        float got[12];
        nd_copy_to_host(&ctx, pooled, got);
        double diff = 0, scale = 0;
        for (int b = 0; b < 2; b++)
            for (int e = 0; e < 6; e++) {
                double w = want->data[(b ? 2 : 0) * 6 + e];
                diff = fmax(diff, fabs(got[b * 6 + e] - w)), scale = fmax(scale, fabs(w));
            }
        CHECK(diff <= OUTPUT_TOL * scale, "%s pass: pooled text differs by %.3g", full ? "full" : "cropped", diff);
        nd_backward(&ctx, nd_sum_all(&ctx, nd_mul(&ctx, pooled, nd_from_host(&ctx, ND_SHAPE(2, 6), r))));
        memcpy(grads[full], clip.params.grad, (size_t)clip.params.total * sizeof(float));
        nd_params_zero_grad(&clip.params, &ctx);
        nd_ctx_step_end(&ctx);
    }
    double gdiff = 0, gscale = 0;
    for (int64_t i = 0; i < clip.params.total; i++)
        gdiff = fmax(gdiff, fabs(grads[0][i] - grads[1][i])), gscale = fmax(gscale, fabs(grads[1][i]));
    CHECK(gdiff <= GRAD_TOL * gscale, "cropped and full text passes: gradients differ by %.3g of %.3g", gdiff, gscale);
    free(all);
    nd_clip_free(&clip);
    nd_ctx_free(&ctx);
}

// The loss at the current parameters, without gradient.
static double loss_value(nd_ctx *ctx, nd_clip *clip, const fx_tensor *img, const int32_t *ids) {
    bool was = nd_ctx_set_grad(ctx, false);
    double v = nd_item(ctx, nd_clip_loss(ctx, clip, nd_from_host(ctx, img->shape, img->data), ids));
    nd_ctx_step_end(ctx);
    nd_ctx_set_grad(ctx, was);
    return v;
}

// KANN's kad_check_grad: (L(p + eps d) - L(p - eps d)) / 2 eps against grad . d for random unit directions d.
static void check_finite_differences(const fx_file *f) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 4 << 20, 0);
    nd_clip clip;
    load_twin(&ctx, f, &clip);
    int32_t *ids = fixture_ids(f);
    const fx_tensor *img = need(f, "clip/images");
    int64_t n = clip.params.total;
    float *p0 = malloc((size_t)n * sizeof *p0), *g = malloc((size_t)n * sizeof *g), *d = malloc((size_t)n * sizeof *d);
    float *moved = malloc((size_t)n * sizeof *moved);
    nd_tensor flat = {.data = clip.params.data, .shape = ND_SHAPE(n), .numel = n, .device = ND_CPU};
    nd_tensor *images = nd_from_host(&ctx, img->shape, img->data);
    nd_backward(&ctx, nd_clip_loss(&ctx, &clip, images, ids));
    memcpy(g, clip.params.grad, (size_t)n * sizeof *g);
    nd_ctx_step_end(&ctx);
    memcpy(p0, clip.params.data, (size_t)n * sizeof *p0);
    uint64_t state = 42;
    for (int trial = 0; trial < 4; trial++) {
        double norm = 0, gd = 0;
        for (int64_t i = 0; i < n; i++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            d[i] = (float)((double)(state >> 11) / 9007199254740992.0 - 0.5);
            norm += (double)d[i] * d[i];
        }
        for (int64_t i = 0; i < n; i++) d[i] = (float)(d[i] / sqrt(norm)), gd += (double)g[i] * d[i];
        // eps 1e-2 on a unit direction: truncation ~eps^2 |L'''| and rounding ~1e-7 |L| / eps are both ~1e-4
        const double eps = 1e-2;
        for (int64_t i = 0; i < n; i++) moved[i] = p0[i] + (float)eps * d[i];
        nd_copy_from_host(&ctx, &flat, moved);
        double plus = loss_value(&ctx, &clip, img, ids);
        for (int64_t i = 0; i < n; i++) moved[i] = p0[i] - (float)eps * d[i];
        nd_copy_from_host(&ctx, &flat, moved);
        double minus = loss_value(&ctx, &clip, img, ids);
        double fd = (plus - minus) / (2 * eps);
        CHECK(fabs(fd - gd) <= 1e-3 + 1e-2 * fabs(gd), "direction %d: finite difference %.6g, gradient %.6g", trial, fd,
              gd);
    }
    nd_copy_from_host(&ctx, &flat, p0);
    free(p0), free(g), free(d), free(moved), free(ids);
    nd_clip_free(&clip);
    nd_ctx_free(&ctx);
}

// Element by element on the contrastive loss's three inputs.
static void check_contrastive_finite_differences(const fx_file *f) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 20, 0);
    const fx_tensor *fx[3] = {need(f, "contrastive/in0"), need(f, "contrastive/in1"), need(f, "contrastive/in2")};
    float *vals[3];
    for (int k = 0; k < 3; k++)
        vals[k] = malloc((size_t)fx[k]->numel * sizeof(float)),
        memcpy(vals[k], fx[k]->data, (size_t)fx[k]->numel * sizeof(float));
    nd_tensor *in[3];
    for (int k = 0; k < 3; k++) in[k] = nd_from_host(&ctx, fx[k]->shape, vals[k]), nd_requires_grad(&ctx, in[k], false);
    nd_backward(&ctx, nd_clip_contrastive_loss(&ctx, in[0], in[1], in[2]));
    float *grads[3];
    for (int k = 0; k < 3; k++)
        grads[k] = malloc((size_t)fx[k]->numel * sizeof(float)), nd_grad_to_host(&ctx, in[k], grads[k]);
    nd_ctx_step_end(&ctx);
    nd_ctx_set_grad(&ctx, false);
    int bad = 0;
    for (int k = 0; k < 3; k++)
        for (int64_t i = 0; i < fx[k]->numel; i++) {
            double v[2];
            for (int s = 0; s < 2; s++) {
                float keep = vals[k][i];
                vals[k][i] = keep + (s ? -1e-2f : 1e-2f);
                nd_tensor *t[3];
                for (int j = 0; j < 3; j++) t[j] = nd_from_host(&ctx, fx[j]->shape, vals[j]);
                v[s] = nd_item(&ctx, nd_clip_contrastive_loss(&ctx, t[0], t[1], t[2]));
                nd_ctx_step_end(&ctx);
                vals[k][i] = keep;
            }
            double fd = (v[0] - v[1]) / 2e-2;
            if (fabs(fd - grads[k][i]) > 3e-4 + 3e-3 * fabs(fd)) bad++;
        }
    CHECK(bad == 0, "contrastive loss: %d elements' gradients differ from central differences", bad);
    for (int k = 0; k < 3; k++) free(vals[k]), free(grads[k]);
    nd_ctx_free(&ctx);
}

static void check_clamp(void) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 20, 0);
    nd_clip clip;
    nd_clip_create(&clip, tiny_config(), &ctx);
    float v;
    nd_copy_to_host(&ctx, clip.logit_scale, &v);
    CHECK(fabsf(v - logf(1 / 0.07f)) < 1e-6f, "logit scale starts at %g, expected ln(1/0.07)", v);
    const float set[3] = {7.0f, -0.5f, 3.0f}, want[3] = {ND_CLIP_LOGIT_SCALE_MAX, 0.0f, 3.0f};
    for (int i = 0; i < 3; i++) {
        nd_copy_from_host(&ctx, clip.logit_scale, &set[i]);
        nd_clip_clamp_logit_scale(&ctx, &clip);
        nd_copy_to_host(&ctx, clip.logit_scale, &v);
        CHECK(v == want[i], "clamp of %g gave %g, expected %g", set[i], v, want[i]);
    }
    CHECK(fabsf(expf(ND_CLIP_LOGIT_SCALE_MAX) - 100.0f) < 1e-4f, "the clamp is exp %g, expected 100",
          expf(ND_CLIP_LOGIT_SCALE_MAX));
    nd_clip_free(&clip);
    nd_ctx_free(&ctx);
}

// OpenAI's initialisation: the standard deviations of the attention-out and MLP-out projections shrink with
// depth, the embeddings have theirs.
static void check_init(void) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 20, 3);
    nd_clip_config c = nd_clip_config_default(300);
    nd_clip clip;
    nd_clip_create(&clip, c, &ctx);
    struct {
        const char *name;
        double std;
    } want[] = {
        {"token_embedding.weight", 0.02},
        {"positional_embedding", 0.01},
        {"transformer.resblocks.0.attn.to_q.weight", 1 / sqrt(64.0)},
        {"transformer.resblocks.1.attn.to_out.weight", 1 / sqrt(64.0) / sqrt(4.0)},
        {"transformer.resblocks.0.mlp.c_fc.weight", 1 / sqrt(128.0)},
        {"transformer.resblocks.0.mlp.c_proj.weight", 1 / sqrt(64.0) / sqrt(4.0)},
        {"visual.transformer.resblocks.2.mlp.c_proj.weight", 1 / sqrt(64.0) / sqrt(6.0)},
        {"text_projection", 1 / sqrt(64.0)},
        {"visual.proj", 1 / sqrt(64.0)},
    };
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        const nd_param *p = nd_params_find(&clip.params, want[k].name);
        CHECK(p, "no parameter %s", want[k].name);
        if (!p) continue;
        double sq = 0;
        for (int64_t i = 0; i < p->tensor->numel; i++) sq += (double)p->tensor->data[i] * p->tensor->data[i];
        double std = sqrt(sq / (double)p->tensor->numel);
        // >= 4096 draws: the sample std is within 5% of the true one with overwhelming probability
        CHECK(fabs(std / want[k].std - 1) < 0.05, "%s: std %.4g, expected %.4g", want[k].name, std, want[k].std);
    }
    nd_clip_free(&clip);
    nd_ctx_free(&ctx);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_clip clip.ndfx\n");
        return 1;
    }
    fx_file f;
    if (!fx_load(&f, argv[1])) return 1;
    check_contrastive(&f);
    check_whole_clip(&f);
    check_cropped_text(&f);
    check_finite_differences(&f);
    check_contrastive_finite_differences(&f);
    check_clamp();
    check_init();
    fx_free(&f);
    return test_finish("clip");
}
