// DDPM training and sampling on a tiny model and a synthetic data set: the loss falls, one batch can be
// overfit, a resumed run continues bit-identically, every sampler runs, guidance behaves, the matched start
// has q(x_T)'s moments, bad input is refused with a message.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "nd_random.h"
#include "sample.h"
#include "test.h"
#include "train.h"

enum { CLASSES = 4, SIZE = 8 };

static char dir[64];

// n 8x8 images: class k is a bright horizontal bar at rows 2k..2k+1 on a dark ground, with a little texture.
static void write_bars(const char *path, int n, bool same) {
    float *images = malloc((size_t)n * SIZE * SIZE * sizeof(float));
    int32_t *labels = malloc((size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        int k = same ? 1 : i % CLASSES;
        labels[i] = k;
        for (int y = 0; y < SIZE; y++)
            for (int x = 0; x < SIZE; x++)
                images[(i * SIZE + y) * SIZE + x] = (y / 2 == k ? 0.9f : 0.1f) +
                                                    (same ? 0.0f : 0.05f * (float)((i * 7 + x * 3 + y) % 3));
    }
    nd_error err;
    if (!nd_samples_write_hdf5(path, images, n, 1, SIZE, SIZE, labels, &err)) fprintf(stderr, "%s\n", err.msg);
    free(images);
    free(labels);
}

static nd_ddpm_config tiny(const char *data) {
    nd_ddpm_config c = nd_ddpm_defaults();
    c.model = nd_model_config_default(ND_MODEL_DLI_UNET, 1, SIZE, -1);
    c.model.down_chs[0] = 8, c.model.down_chs[1] = 8, c.model.down_chs[2] = 16;
    c.model.small_groups = 4, c.model.big_groups = 8;
    // 50 steps with the course's beta range would leave x_T ~78% signal, so the class could be read off every
    // x_t and the context would go unused; beta up to 0.25 takes x_T to pure noise as T = 150 nearly does
    c.model.T = 50;
    c.beta_end = 0.25;
    snprintf(c.data, sizeof c.data, "%s", data);
    c.batch_size = 16;
    c.epochs = 1000;
    c.random_flip = false;
    return c;
}

static double mean_loss(const char *csv, int from, int to) {
    FILE *f = fopen(csv, "r");
    char line[256];
    double sum = 0;
    int n = 0, row = 0;
    if (!f) return NAN;
    if (!fgets(line, sizeof line, f)) line[0] = 0; // header
    while (fgets(line, sizeof line, f)) {
        long long step, epoch;
        double loss;
        if (sscanf(line, "%lld,%lld,%lf", &step, &epoch, &loss) == 3 && row >= from && row < to) sum += loss, n++;
        row++;
    }
    fclose(f);
    return n ? sum / n : NAN;
}

// Trains c for c.max_steps into dir/name; returns the mean loss of its first and last 20 steps.
static void train_first_last(nd_ddpm_config c, const char *name, double *first, double *last) {
    char out[128], csv[160];
    snprintf(out, sizeof out, "%s/%s", dir, name);
    nd_ddpm_result r;
    nd_error err;
    bool ok = nd_ddpm_train(&c, out, false, ND_CPU, false, &r, &err);
    CHECK(ok, "%s: training failed: %s", name, ok ? "" : err.msg);
    snprintf(csv, sizeof csv, "%s/loss.csv", out);
    *first = mean_loss(csv, 0, 20);
    *last = mean_loss(csv, (int)c.max_steps - 20, (int)c.max_steps);
    printf("%s: first 20 steps %.4f, last 20 %.4f\n", name, *first, *last);
}

static void test_loss_falls(const char *data) {
    nd_ddpm_config c = tiny(data);
    // 250 steps at lr 3e-3 also teach the context (PyTorch's twin: 8 of 8 bars right after them, 5 after 150)
    c.max_steps = 250;
    c.lr = 3e-3f;
    double first, last;
    train_first_last(c, "falls", &first, &last);
    // the noise-prediction loss starts near 1 (predicting nothing); a tiny model learns the bars quickly
    CHECK(last < 0.6 * first, "the loss did not fall: %.4f -> %.4f", first, last);
}

static void test_overfit_one_batch(void) {
    char data[128];
    snprintf(data, sizeof data, "%s/one.h5", dir);
    write_bars(data, 16, true); // one batch of one image
    nd_ddpm_config c = tiny(data);
    c.max_steps = 200;
    c.cfg_drop = 0.0f;
    double first, last;
    train_first_last(c, "overfit", &first, &last);
    // a memorised x0 makes the noise exactly recoverable from x_t: the loss goes far below its start
    CHECK(last < 0.25 * first, "one batch was not overfit: %.4f -> %.4f", first, last);
}

static bool same_file_params(const char *a, const char *b) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 20, 0);
    nd_model ma, mb;
    nd_ddpm_config ca, cb;
    nd_error err;
    bool ok = nd_checkpoint_load_model(a, false, &ma, &ca, &ctx, &err) &&
              nd_checkpoint_load_model(b, false, &mb, &cb, &ctx, &err);
    bool same = ok && ma.params.total == mb.params.total &&
                memcmp(ma.params.data, mb.params.data, (size_t)ma.params.total * sizeof(float)) == 0;
    if (ok) nd_model_free(&ma), nd_model_free(&mb);
    nd_ctx_free(&ctx);
    return same;
}

// The EMA's warm-up: update k uses min(decay, (1 + k) / (10 + k)), so the first updates follow the weights
// closely instead of keeping the random initial ones (0.999^1000 = 37% of them after 1,000 steps).
static void test_ema_warmup(void) {
    CHECK(nd_ema_decay_at(0.999f, 0) == 0.1f && nd_ema_decay_at(0.5f, 0) == 0.1f, "first decay %g",
          nd_ema_decay_at(0.999f, 0));
    CHECK(fabsf(nd_ema_decay_at(0.999f, 90) - 0.91f) < 1e-7f && nd_ema_decay_at(0.9f, 90) == 0.9f &&
              nd_ema_decay_at(0.999f, 100000) == 0.999f,
          "decays %g %g %g", nd_ema_decay_at(0.999f, 90), nd_ema_decay_at(0.9f, 90), nd_ema_decay_at(0.999f, 100000));
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 16, 0);
    nd_params p;
    nd_params_init(&p);
    nd_params_add(&p, "w", ND_SHAPE(1), ND_INIT_ZEROS, 0.0f);
    nd_params_alloc(&p, &ctx);
    nd_ema ema;
    nd_ema_init(&ema, &p, &ctx, 0.999f); // shadow 0
    p.data[0] = 1.0f;
    nd_ema_update(&ema, &p, &ctx, 0); // 0.1 * 0 + 0.9 * 1
    p.data[0] = 2.0f;
    nd_ema_update(&ema, &p, &ctx, 1); // 2/11 * 0.9 + 9/11 * 2
    float want = 2.0f / 11.0f * 0.9f + 9.0f / 11.0f * 2.0f;
    CHECK(fabsf(ema.shadow[0] - want) < 1e-6f, "EMA after two warm-up updates: %g, want %g", ema.shadow[0], want);
    nd_ema_free(&ema);
    nd_params_free(&p);
    nd_ctx_free(&ctx);
}

static void test_resume(const char *data) {
    char straight[128], split[128];
    snprintf(straight, sizeof straight, "%s/straight", dir);
    snprintf(split, sizeof split, "%s/split", dir);
    nd_ddpm_config c = tiny(data);
    c.ema_decay = 0.9f;
    nd_ddpm_result r;
    nd_error err;
    c.max_steps = 12;
    bool ok = nd_ddpm_train(&c, straight, false, ND_CPU, false, &r, &err);
    c.max_steps = 5; // stops inside the first epoch (64 images / 16 = 4 batches): resumes mid-epoch
    ok = ok && nd_ddpm_train(&c, split, false, ND_CPU, false, &r, &err);
    c.max_steps = 12;
    ok = ok && nd_ddpm_train(&c, split, true, ND_CPU, false, &r, &err);
    CHECK(ok, "training failed: %s", ok ? "" : err.msg);
    char a[160], b[160];
    snprintf(a, sizeof a, "%s/model.h5", straight);
    snprintf(b, sizeof b, "%s/model.h5", split);
    CHECK(same_file_params(a, b), "12 steps straight and 5 + 7 resumed give different parameters");
    snprintf(a, sizeof a, "%s/loss.csv", straight);
    snprintf(b, sizeof b, "%s/loss.csv", split);
    for (int s = 5; s < 12; s++)
        CHECK(mean_loss(a, s, s + 1) == mean_loss(b, s, s + 1), "step %d: loss %.9g straight, %.9g resumed", s,
              mean_loss(a, s, s + 1), mean_loss(b, s, s + 1));
}

// A CPU context holding the tiny model trained by test_loss_falls, and its schedule; false (a failed check,
// nothing left to free) when it cannot load.
static bool load_falls(nd_ctx *ctx, nd_model *m, nd_ddpm_config *cfg, nd_schedule *s) {
    char ckpt[160];
    snprintf(ckpt, sizeof ckpt, "%s/falls/model.h5", dir);
    nd_error err;
    nd_ctx_init(ctx, ND_CPU, 1 << 22, 0);
    if (!nd_checkpoint_load_model(ckpt, false, m, cfg, ctx, &err)) {
        CHECK(false, "%s", err.msg);
        nd_ctx_free(ctx);
        return false;
    }
    nd_schedule_linear(s, m->config.T, cfg->beta_start, cfg->beta_end);
    return true;
}

// The persistent one-hot context of n images of classes 0, 1, ..., CLASSES - 1, 0, 1, ...: (n, CLASSES).
static nd_tensor *class_context(nd_ctx *ctx, int n) {
    int32_t labels[16];
    for (int i = 0; i < n; i++) labels[i] = i % CLASSES;
    return nd_class_context(ctx, labels, n, CLASSES, true);
}

static void test_samplers(const char *data) {
    nd_ctx ctx;
    nd_model m;
    nd_ddpm_config cfg;
    nd_schedule s;
    if (!load_falls(&ctx, &m, &cfg, &s)) return;
    nd_tensor *context = class_context(&ctx, 8);
    float a[8 * SIZE * SIZE], b[8 * SIZE * SIZE];
    nd_sampler_kind kinds[] = {ND_SAMPLER_DDPM, ND_SAMPLER_DDPM_POSTERIOR, ND_SAMPLER_DDIM};
    for (int k = 0; k < 3; k++) {
        nd_sample_config sc = nd_sample_defaults();
        sc.sampler = kinds[k], sc.steps = 10, sc.seed = 3;
        nd_sample_images(&ctx, &m, &s, &sc, 8, context, NULL, a, NULL, NULL);
        nd_sample_images(&ctx, &m, &s, &sc, 8, context, NULL, b, NULL, NULL);
        bool finite = true;
        for (int i = 0; i < 8 * SIZE * SIZE; i++) finite = finite && isfinite(a[i]);
        CHECK(finite, "%s: non-finite samples", nd_sampler_name(kinds[k]));
        CHECK(memcmp(a, b, sizeof a) == 0, "%s: the same seed must give the same samples", nd_sampler_name(kinds[k]));
        sc.seed = 4;
        nd_sample_images(&ctx, &m, &s, &sc, 8, context, NULL, b, NULL, NULL);
        CHECK(memcmp(a, b, sizeof a) != 0, "%s: another seed must give other samples", nd_sampler_name(kinds[k]));
    }
    // w = 0 is the conditional prediction alone: the guided batch and one conditional pass agree
    nd_sample_config sc = nd_sample_defaults();
    sc.sampler = ND_SAMPLER_DDIM, sc.steps = 10, sc.w = 0.0f;
    nd_sample_images(&ctx, &m, &s, &sc, 8, context, NULL, a, NULL, NULL);
    sc.guided = false;
    nd_sample_images(&ctx, &m, &s, &sc, 8, context, NULL, b, NULL, NULL);
    double diff = 0;
    for (int i = 0; i < 8 * SIZE * SIZE; i++) diff = fmax(diff, fabs((double)a[i] - b[i]));
    // the two batch sizes may block the GEMMs differently: rounding only
    CHECK(diff < 1e-4, "w = 0 guided and unguided samples differ by %g", diff);
    // the trained model draws the requested bar: class k's rows 2k..2k+1 are the brightest (guided, w = 2)
    sc = nd_sample_defaults();
    sc.seed = 9;
    nd_sample_images(&ctx, &m, &s, &sc, 8, context, NULL, a, NULL, NULL);
    int right = 0;
    for (int i = 0; i < 8; i++) {
        int best = 0;
        double best_sum = -1e9;
        for (int k = 0; k < CLASSES; k++) {
            double sum = 0;
            for (int y = 2 * k; y < 2 * k + 2; y++)
                for (int x = 0; x < SIZE; x++) sum += a[(i * SIZE + y) * SIZE + x];
            if (sum > best_sum) best_sum = sum, best = k;
        }
        right += best == i % CLASSES;
    }
    printf("guided DDPM samples with the requested bar: %d of 8\n", right);
    CHECK(right >= 6, "only %d of 8 guided samples show their class's bar", right);
    nd_schedule_free(&s);
    nd_model_free(&m);
    nd_ctx_free(&ctx);
}

typedef struct first_x {
    float *x_T;
    int calls_before; // on_step calls before the one with step_index -1
    int calls;
} first_x;

static void keep_x_T(void *user, int step_index, int t, nd_ctx *ctx, const nd_tensor *x) {
    first_x *f = user;
    (void)t;
    if (step_index == -1) {
        f->calls_before = f->calls;
        nd_copy_to_host(ctx, x, f->x_T);
    }
    f->calls++;
}

// The matched start: its moments are q(x_T)'s (checked by drawing x_T = sqrt(abar_T) x0 + sqrt(1 - abar_T) e
// with x0 as the loader hands images out, flips included), and the sampler starts from mean + std * z.
// Every step's x of a 10-step DDIM run (4 images): trajectory[step][image values].
typedef struct trajectory {
    float x[10][4 * SIZE * SIZE];
} trajectory;

static void record_step(void *user, int step_index, int t, nd_ctx *ctx, const nd_tensor *x) {
    (void)t;
    if (step_index >= 0) nd_copy_to_host(ctx, x, ((trajectory *)user)->x[step_index]);
}

// The first step at which two trajectories differ (10: none).
static int first_difference(const trajectory *a, const trajectory *b) {
    for (int i = 0; i < 10; i++)
        if (memcmp(a->x[i], b->x[i], sizeof a->x[i]) != 0) return i;
    return 10;
}

// --guidance-interval: sigma_t, which timesteps nd_guided_at guides ((min, max]: min out, max in), and a
// sampling run that follows the all-guided trajectory exactly while it is guided and the unguided one exactly
// while it is not.
static void test_guidance_interval(void) {
    nd_schedule z;
    nd_schedule_make(&z, ND_SCHEDULE_LINEAR, 150, 1e-4, 0.02, true);
    CHECK(isinf(nd_schedule_sigma(&z, 149)) && nd_schedule_sigma(&z, 0) > 0.0 && nd_schedule_sigma(&z, -1) == 0.0,
          "zero terminal SNR: sigma_149 %g (expected inf), sigma_0 %g, sigma_-1 %g (the clean image, expected 0)",
          nd_schedule_sigma(&z, 149), nd_schedule_sigma(&z, 0), nd_schedule_sigma(&z, -1));
    nd_sample_config sc = nd_sample_defaults();
    CHECK(nd_guided_at(&sc, &z, 149) && nd_guided_at(&sc, &z, 0), "the default interval must guide every step");
    float s70 = (float)nd_schedule_sigma(&z, 70); // the interval's bounds are floats
    double abar = z.alpha_bar[70];
    CHECK(fabs(s70 - sqrt((1 - abar) / abar)) < 1e-5 * s70, "sigma_70 %g, expected %g", s70, sqrt((1 - abar) / abar));
    sc.guidance_sigma_min = s70, sc.guidance_sigma_max = INFINITY;
    CHECK(!nd_guided_at(&sc, &z, 70) && nd_guided_at(&sc, &z, 71) && nd_guided_at(&sc, &z, 149),
          "(sigma_70, inf] must guide t = 71..149, not 70");
    sc.guidance_sigma_min = 0.0f, sc.guidance_sigma_max = s70;
    CHECK(nd_guided_at(&sc, &z, 70) && !nd_guided_at(&sc, &z, 71) && nd_guided_at(&sc, &z, 0),
          "(0, sigma_70] must guide t = 0..70, not 71");
    sc.guided = false;
    CHECK(!nd_guided_at(&sc, &z, 0), "an unguided run guides no step");
    nd_schedule_free(&z);

    nd_ctx ctx;
    nd_model m;
    nd_ddpm_config cfg;
    nd_schedule s;
    if (!load_falls(&ctx, &m, &cfg, &s)) return;
    nd_tensor *context = class_context(&ctx, 4);
    static trajectory all, none, high, low;
    float out[4 * SIZE * SIZE];
    sc = nd_sample_defaults();
    sc.sampler = ND_SAMPLER_DDIM, sc.steps = 10, sc.seed = 5, sc.w = 3.0f;
    int ts[150];
    nd_sample_timesteps(&sc, s.T, ts);
    float mid = (float)nd_schedule_sigma(&s, ts[4]); // steps 0..3 above it, 4..9 at or below
    nd_sample_images(&ctx, &m, &s, &sc, 4, context, NULL, out, record_step, &all);
    sc.guidance_sigma_min = mid; // guided at steps 0..3
    nd_sample_images(&ctx, &m, &s, &sc, 4, context, NULL, out, record_step, &high);
    sc.guidance_sigma_min = 0.0f, sc.guidance_sigma_max = mid; // guided at steps 4..9
    nd_sample_images(&ctx, &m, &s, &sc, 4, context, NULL, out, record_step, &low);
    sc.guided = false;
    sc.guidance_sigma_max = INFINITY;
    nd_sample_images(&ctx, &m, &s, &sc, 4, context, NULL, out, record_step, &none);
    CHECK(first_difference(&all, &none) == 0, "guidance w = 3 must change the first step");
    // guided where the all-guided run is: its x bit for bit until the first unguided step, then not
    CHECK(first_difference(&high, &all) == 4, "(sigma_t4, inf]: first differs from all-guided at step %d, expected 4",
          first_difference(&high, &all));
    CHECK(first_difference(&low, &none) == 4, "(0, sigma_t4]: first differs from unguided at step %d, expected 4",
          first_difference(&low, &none));
    nd_schedule_free(&s);
    nd_model_free(&m);
    nd_ctx_free(&ctx);
}

static void test_start(const char *data) {
    enum { PIXELS = SIZE * SIZE, DRAWS = 40000 };
    nd_ddpm_config c = tiny(data);
    c.random_flip = true; // the bars' texture is not symmetric: flips change the moments
    nd_schedule course;
    nd_schedule_linear(&course, 150, 1e-4, 0.02); // alpha_bar_T = 0.22: the start's mean is far from 0
    float mean[PIXELS], std[PIXELS];
    nd_error err;
    bool ok = nd_ddpm_start_moments(&c, &course, mean, std, &err);
    CHECK(ok, "start moments: %s", ok ? "" : err.msg);
    nd_dataset ds;
    ok = ok && nd_dataset_load(&ds, data, ND_SPLIT_ALL, &err);
    if (!ok) return;
    double sum[PIXELS] = {0}, sum2[PIXELS] = {0}, a = sqrt(course.alpha_bar[149]),
           b = sqrt(1.0 - course.alpha_bar[149]);
    float x0[PIXELS];
    for (int d = 0; d < DRAWS; d++) {
        int64_t i = (int64_t)(nd_philox_uniform(11, 0, (uint64_t)d) * (float)ds.n) % ds.n;
        nd_dataset_sample(x0, &ds, i, nd_philox_uniform(12, 0, (uint64_t)d) < 0.5f, false);
        for (int j = 0; j < PIXELS; j++) {
            double x_T = a * x0[j] + b * nd_philox_normal(13, (uint64_t)d * PIXELS, (uint64_t)j);
            sum[j] += x_T, sum2[j] += x_T * x_T;
        }
    }
    double worst_mean = 0, worst_std = 0;
    for (int j = 0; j < PIXELS; j++) {
        double m = sum[j] / DRAWS, sd = sqrt(sum2[j] / DRAWS - m * m);
        worst_mean = fmax(worst_mean, fabs(m - mean[j]));
        worst_std = fmax(worst_std, fabs(sd - std[j]));
    }
    // standard errors near 0.9 / sqrt(40000) = 0.0045 for the mean and 0.0032 for the deviation
    CHECK(worst_mean < 0.02 && worst_std < 0.015, "start moments off q(x_T)'s: mean by %g, std by %g", worst_mean,
          worst_std);
    // a pixel is 0.9 in one image of four, else 0.1, plus texture 0.05 on average: 0.35 in [0, 1], -0.3 in
    // [-1, 1], so q(x_T)'s mean is sqrt(alpha_bar_T) * -0.3 = -0.1406, far from N(0, I)'s 0
    double expected = sqrt(course.alpha_bar[149]) * -0.3;
    CHECK(fabs(mean[0] - expected) < 0.005, "start mean %g, expected %g", mean[0], expected);
    nd_dataset_free(&ds);

    // the sampler starts from mean + std * z, z the N(0, I) start of the same seed
    nd_ctx ctx;
    nd_model m;
    nd_ddpm_config cfg;
    nd_schedule s;
    if (!load_falls(&ctx, &m, &cfg, &s)) return;
    nd_tensor *context = class_context(&ctx, 4);
    float z[4 * PIXELS], x_T[4 * PIXELS], out[4 * PIXELS];
    first_x fz = {.x_T = z}, fx = {.x_T = x_T};
    nd_sample_config sc = nd_sample_defaults();
    sc.sampler = ND_SAMPLER_DDIM, sc.steps = 3, sc.seed = 5;
    nd_sample_images(&ctx, &m, &s, &sc, 4, context, NULL, out, keep_x_T, &fz);
    sc.start_mean = mean, sc.start_std = std;
    nd_sample_images(&ctx, &m, &s, &sc, 4, context, NULL, out, keep_x_T, &fx);
    double worst = 0;
    for (int i = 0; i < 4 * PIXELS; i++)
        worst = fmax(worst, fabs(x_T[i] - (mean[i % PIXELS] + std[i % PIXELS] * z[i])));
    CHECK(worst < 1e-5, "x_T is not mean + std * z (off by %g)", worst);
    CHECK(fz.calls_before == 0 && fz.calls == 4, "on_step: x_T first, then one call a step (%d before, %d in all)",
          fz.calls_before, fz.calls);
    nd_schedule_free(&s);
    nd_schedule_free(&course);
    nd_model_free(&m);
    nd_ctx_free(&ctx);
}

// Counts the guided samples (8, SIZE, SIZE) whose brightest pair of rows is their class's bar (class i % CLASSES).
static int bars_right(const float *a) {
    int right = 0;
    for (int i = 0; i < 8; i++) {
        int best = 0;
        double best_sum = -1e9;
        for (int k = 0; k < CLASSES; k++) {
            double sum = 0;
            for (int y = 2 * k; y < 2 * k + 2; y++)
                for (int x = 0; x < SIZE; x++) sum += a[(i * SIZE + y) * SIZE + x];
            if (sum > best_sum) best_sum = sum, best = k;
        }
        right += best == i % CLASSES;
    }
    return right;
}

// The modern options together: cosine schedule rescaled to zero terminal SNR, v prediction, min-SNR weights.
// The checkpoint records them, and DPM-Solver++ on that schedule, started from pure noise, draws the bars.
static void test_modern_options(const char *data) {
    nd_ddpm_config c = tiny(data);
    c.max_steps = 250;
    c.lr = 3e-3f;
    c.schedule = ND_SCHEDULE_COSINE, c.zero_snr = true, c.prediction = ND_PREDICT_V, c.min_snr_gamma = 5.0f;
    double first, last;
    train_first_last(c, "modern", &first, &last);
    CHECK(last < 0.8 * first, "v-prediction loss did not fall: %.4f -> %.4f", first, last);
    char ckpt[160];
    snprintf(ckpt, sizeof ckpt, "%s/modern/model.h5", dir);
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 22, 0);
    nd_model m;
    nd_ddpm_config cfg;
    nd_error err;
    if (!nd_checkpoint_load_model(ckpt, false, &m, &cfg, &ctx, &err)) {
        CHECK(false, "%s", err.msg);
        nd_ctx_free(&ctx);
        return;
    }
    CHECK(cfg.schedule == ND_SCHEDULE_COSINE && cfg.zero_snr && cfg.prediction == ND_PREDICT_V &&
              cfg.min_snr_gamma == 5.0f,
          "the checkpoint lost the options: schedule %d, zero SNR %d, prediction %d, gamma %g", (int)cfg.schedule,
          cfg.zero_snr, (int)cfg.prediction, cfg.min_snr_gamma);
    nd_schedule s;
    nd_ddpm_schedule(&cfg, &s);
    CHECK(s.alpha_bar[s.T - 1] == 0.0f, "zero terminal SNR: alpha_bar_T %g", s.alpha_bar[s.T - 1]);
    nd_tensor *context = class_context(&ctx, 8);
    float a[8 * SIZE * SIZE];
    nd_sampler_kind kinds[] = {ND_SAMPLER_DPM_SOLVER_PP, ND_SAMPLER_DDPM};
    for (int k = 0; k < 2; k++) {
        nd_sample_config sc = nd_ddpm_sample_defaults(&cfg);
        sc.sampler = kinds[k], sc.steps = 20, sc.spacing = ND_SPACING_TRAILING, sc.seed = 9;
        nd_sample_images(&ctx, &m, &s, &sc, 8, context, NULL, a, NULL, NULL);
        int right = bars_right(a);
        printf("v prediction, zero SNR, %s: %d of 8 bars right\n", nd_sampler_name(kinds[k]), right);
        CHECK(right >= 6, "%s on the zero-SNR v model: only %d of 8 bars right", nd_sampler_name(kinds[k]), right);
    }
    nd_schedule_free(&s);
    nd_model_free(&m);
    nd_ctx_free(&ctx);
}

// A checkpoint written before the schedule, prediction and loss options (their attributes removed) loads with
// the course's choices; an unknown prediction is refused by name.
static void test_old_checkpoint(void) {
    char src[160], old[160], cmd[400];
    snprintf(src, sizeof src, "%s/falls/model.h5", dir);
    snprintf(old, sizeof old, "%s/old.h5", dir);
    snprintf(cmd, sizeof cmd, "cp %s %s", src, old);
    CHECK(system(cmd) == 0, "copying %s", src);
    hid_t file = H5Fopen(old, H5F_ACC_RDWR, H5P_DEFAULT);
    const char *later[] = {"schedule", "prediction", "zero_snr", "min_snr_gamma"};
    for (int i = 0; i < 4; i++) CHECK(H5Adelete(file, later[i]) >= 0, "%s: no attribute %s to remove", old, later[i]);
    H5Fclose(file);
    nd_ddpm_config cfg;
    nd_error err;
    bool ok = nd_checkpoint_read_config(old, &cfg, &err);
    CHECK(ok && cfg.schedule == ND_SCHEDULE_LINEAR && !cfg.zero_snr && cfg.prediction == ND_PREDICT_EPS &&
              cfg.min_snr_gamma == 0.0f,
          "an old checkpoint: %s", ok ? "not the course's choices" : err.msg);
    file = H5Fopen(old, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t space = H5Screate(H5S_SCALAR), type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, 8);
    hid_t attr = H5Acreate2(file, "prediction", type, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(attr, type, "epsilon");
    H5Aclose(attr);
    H5Tclose(type);
    H5Sclose(space);
    H5Fclose(file);
    ok = nd_checkpoint_read_config(old, &cfg, &err);
    CHECK(!ok && strstr(err.msg, "prediction") && strstr(err.msg, "epsilon") && strstr(err.msg, old),
          "a bad prediction: %s", ok ? "accepted" : err.msg);
}

static void test_bad_input(const char *data) {
    nd_ddpm_result r;
    nd_error err;
    char out[128];
    snprintf(out, sizeof out, "%s/bad", dir);
    nd_ddpm_config c = tiny("/nonexistent/data.h5");
    CHECK(!nd_ddpm_train(&c, out, false, ND_CPU, false, &r, &err) && strstr(err.msg, "/nonexistent/data.h5"),
          "a missing data set must be named: %s", err.msg);
    c = tiny(data);
    c.model.img_ch = 3;
    CHECK(!nd_ddpm_train(&c, out, false, ND_CPU, false, &r, &err) && strstr(err.msg, "channels"),
          "a channel mismatch must be explained: %s", err.msg);
    c = tiny(data);
    c.model.c_embed_dim = 7;
    CHECK(!nd_ddpm_train(&c, out, false, ND_CPU, false, &r, &err) && strstr(err.msg, "classes"),
          "a class-count mismatch must be explained: %s", err.msg);
    c = tiny(data);
    CHECK(!nd_ddpm_train(&c, out, true, ND_CPU, false, &r, &err) && strstr(err.msg, "model.h5"),
          "resuming without a checkpoint must name it: %s", err.msg);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/nanodiff-ddpm-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    char data[128];
    snprintf(data, sizeof data, "%s/bars.h5", dir);
    write_bars(data, 64, false);
    test_loss_falls(data);
    test_overfit_one_batch();
    test_ema_warmup();
    test_resume(data);
    test_samplers(data);
    test_guidance_interval();
    test_start(data);
    test_modern_options(data);
    test_old_checkpoint();
    test_bad_input(data);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_finish("ddpm");
}
