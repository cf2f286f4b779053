// Optimizers, learning-rate schedules, gradient clipping and the DDPM schedule against PyTorch (tests/fixtures/train.ndfx).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "sample.h"
#include "test.h"
#include "train.h"

static const fx_tensor *get(const fx_file *f, const char *name) {
    const fx_tensor *t = fx_get(f, name);
    if (!t) {
        fprintf(stderr, "train.ndfx: no tensor %s (regenerate with make_train_fixtures.py)\n", name);
        exit(1);
    }
    return t;
}

static void check_close(const char *what, const float *got, const fx_tensor *want, double atol, double rtol) {
    long long worst;
    double v = test_max_violation(got, want->data, want->numel, atol, rtol, &worst);
    CHECK(v <= 1.0, "%s differs from PyTorch: %.3f of tolerance at %lld (%.8g vs %.8g)", what, v, worst,
          worst >= 0 ? got[worst] : 0.0, worst >= 0 ? want->data[worst] : 0.0);
}

static void test_optimizer(const fx_file *f, const char *name, nd_adam_config config) {
    char key[64];
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 16, 0);
    nd_params params;
    nd_params_init(&params);
    snprintf(key, sizeof key, "%s/param0", name);
    const fx_tensor *p0 = get(f, key);
    snprintf(key, sizeof key, "%s/grads", name);
    const fx_tensor *grads = get(f, key);
    nd_tensor *p = nd_params_add(&params, "p", p0->shape, ND_INIT_ZEROS, 0.0f);
    nd_params_alloc(&params, &ctx);
    nd_copy_from_host(&ctx, p, p0->data);
    nd_adam opt;
    nd_adam_init(&opt, &params, &ctx, config);
    int steps = (int)grads->shape.d[0];
    for (int s = 0; s < steps; s++) {
        memcpy(params.grad, grads->data + s * p->numel, (size_t)p->numel * sizeof(float));
        nd_adam_step(&opt, &params, &ctx);
    }
    snprintf(key, sizeof key, "%s/param%d", name, steps);
    // five float32 updates against PyTorch's float32 updates: rounding differs by a few ulps per step
    check_close(name, p->data, get(f, key), 1e-6, 1e-5);
    nd_adam_free(&opt);
    nd_params_free(&params);
    nd_ctx_free(&ctx);
}

static void test_clip(const fx_file *f) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 16, 0);
    nd_params params;
    nd_params_init(&params);
    const fx_tensor *g = get(f, "clip/grad");
    nd_params_add(&params, "p", g->shape, ND_INIT_ZEROS, 0.0f);
    nd_params_alloc(&params, &ctx);
    memcpy(params.grad, g->data, (size_t)g->numel * sizeof(float));
    float norm = nd_clip_grad_norm(&params, &ctx, 1.5f);
    check_close("clip norm", &norm, get(f, "clip/norm"), 1e-6, 1e-6);
    check_close("clipped gradient", params.grad, get(f, "clip/clipped"), 1e-7, 1e-6);
    nd_params_free(&params);
    nd_ctx_free(&ctx);
}

static void test_schedule(const fx_file *f) {
    nd_schedule s;
    nd_schedule_linear(&s, 150, 1e-4, 0.02);
    // both in float32; torch's linspace and cumprod may round the last bit differently, which the
    // cancellation in 1 - alpha_bar at small t magnifies to ~1e-5 relative
    check_close("beta", s.beta, get(f, "schedule/beta"), 0.0, 1e-6);
    check_close("alpha_bar", s.alpha_bar, get(f, "schedule/alpha_bar"), 0.0, 1e-6);
    check_close("sqrt_one_minus_alpha_bar", s.sqrt_one_minus_alpha_bar, get(f, "schedule/sqrt_one_minus_alpha_bar"),
                0.0, 2e-5);
    check_close("sqrt_alpha_inv", s.sqrt_alpha_inv, get(f, "schedule/sqrt_alpha_inv"), 0.0, 1e-6);
    check_close("pred_noise_coeff", s.pred_noise_coeff, get(f, "schedule/pred_noise_coeff"), 0.0, 2e-5);
    nd_schedule_free(&s);
}

// nd_ddpm_loss for every prediction, with and without min-SNR weights, against the formulas in double.
static void test_ddpm_loss(void) {
    enum { B = 4, PIX = 4 };
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 20, 0);
    nd_schedule s;
    nd_schedule_make(&s, ND_SCHEDULE_COSINE, 150, 0, 0, true); // zero SNR: t = 149 has SNR 0
    const int t_host[B] = {0, 20, 90, 149};
    float x0[B * PIX], noise[B * PIX], pred[B * PIX];
    for (int i = 0; i < B * PIX; i++)
        x0[i] = sinf(1.3f * i), noise[i] = cosf(0.7f * i + 0.2f), pred[i] = 0.5f * sinf(2.1f * i + 1.0f);
    nd_prediction kinds[] = {ND_PREDICT_EPS, ND_PREDICT_X0, ND_PREDICT_V};
    for (int k = 0; k < 3; k++)
        for (int g = 0; g < 2; g++) {
            nd_ddpm_config cfg = nd_ddpm_defaults();
            cfg.prediction = kinds[k], cfg.min_snr_gamma = g ? 5.0f : 0.0f;
            if (kinds[k] == ND_PREDICT_EPS && g) continue; // eps at SNR 0 has no weight (refused with zero SNR)
            nd_shape shape = ND_SHAPE(B, 1, 2, 2);
            nd_tensor *loss = nd_ddpm_loss(&ctx, &cfg, &s, nd_from_host(&ctx, shape, x0),
                                           nd_from_host(&ctx, shape, noise), nd_from_host(&ctx, shape, pred), t_host);
            double expected = 0;
            for (int b = 0; b < B; b++) {
                double abar = s.alpha_bar[t_host[b]], snr = abar / (1.0 - abar), w = 1.0;
                if (g) w = kinds[k] == ND_PREDICT_V ? fmin(snr, 5.0) / (snr + 1.0) : fmin(snr, 5.0);
                for (int j = 0; j < PIX; j++) {
                    int i = b * PIX + j;
                    double target = kinds[k] == ND_PREDICT_EPS  ? noise[i]
                                    : kinds[k] == ND_PREDICT_X0 ? x0[i]
                                                                : sqrt(abar) * noise[i] - sqrt(1.0 - abar) * x0[i];
                    expected += w * (pred[i] - target) * (pred[i] - target) / (B * PIX);
                }
            }
            float got = nd_item(&ctx, loss);
            // float32 arithmetic over 16 terms of size ~1
            CHECK(fabs(got - expected) <= 1e-5 * (1.0 + fabs(expected)), "%s loss, gamma %g: %.7g, expected %.7g",
                  nd_prediction_name(kinds[k]), cfg.min_snr_gamma, got, expected);
            nd_ctx_step_end(&ctx);
        }
    nd_schedule_free(&s);
    nd_ctx_free(&ctx);
}

// nd_lr_at against PyTorch's schedulers (LinearLR warm-up, then CosineAnnealingLR or a constant), lr 0.01.
static void test_lr_schedules(const fx_file *f) {
    const char *names[] = {"cosine_warmup", "cosine", "constant_warmup"};
    for (int k = 0; k < 3; k++) {
        char key[64];
        snprintf(key, sizeof key, "lr/%s/config", names[k]);
        const fx_tensor *config = get(f, key); // warmup, total, cosine
        snprintf(key, sizeof key, "lr/%s", names[k]);
        const fx_tensor *want = get(f, key);
        int64_t warmup = (int64_t)config->data[0], total = (int64_t)config->data[1];
        CHECK(want->numel == total, "%s: %lld learning rates for %lld steps", key, (long long)want->numel,
              (long long)total);
        float got[64];
        for (int64_t s = 0; s < total && s < 64; s++) got[s] = nd_lr_at(0.01f, config->data[2] != 0, warmup, s, total);
        check_close(key, got, want, 1e-9, 1e-6);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_train_unit FIXTURES_DIR/train.ndfx\n");
        return 2;
    }
    fx_file f;
    if (!fx_load(&f, argv[1])) return 1;
    test_ddpm_loss();
    test_optimizer(&f, "adam", nd_adam_defaults());
    nd_adam_config l2 = nd_adam_defaults();
    l2.lr = 0.01f;
    l2.weight_decay = 0.1f;
    test_optimizer(&f, "adam_l2", l2);
    nd_adam_config w = nd_adamw_defaults();
    w.lr = 0.01f;
    test_optimizer(&f, "adamw", w);
    test_clip(&f);
    test_schedule(&f);
    test_lr_schedules(&f);
    fx_free(&f);
    return test_finish("train_unit");
}
