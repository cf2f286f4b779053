// The deterministic samplers (DDIM, Euler, Heun, DPM-Solver++) against their numpy twin, and the stochastic SDE-DPM-Solver++ against its moments
// (fixtures/make_sampler_fixtures.py), with the exact denoiser of Gaussian data; the timestep spacings
// against diffusers' definitions; the solvers' accuracy against the exact ODE solution.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "sample.h"
#include "test.h"

enum { PIXELS = 16 }; // one 1 x 4 x 4 image, each pixel its own 1-D Gaussian

static const char *solver_names[] = {"ddim", "euler", "heun", "dpm-solver++"};
static const char *spacing_names[] = {"linspace", "leading", "trailing"};
static const char *prediction_names[] = {"eps", "x0", "v"};

// The exact model of data N(mu, s^2) per pixel: E[x0 | x_t] in closed form, output as eps, x0 or v.
typedef struct gaussian_model {
    const float *mu, *s, *alpha_bar;
    nd_prediction prediction;
    int calls;
} gaussian_model;

static nd_tensor *gaussian_predict(void *user, nd_ctx *ctx, nd_tensor *x, int t) {
    gaussian_model *g = user;
    g->calls++;
    float *xh = malloc((size_t)x->numel * sizeof(float)), *out = malloc((size_t)x->numel * sizeof(float));
    nd_copy_to_host(ctx, x, xh);
    double a = g->alpha_bar[t];
    for (int64_t i = 0; i < x->numel; i++) { // any number of images (n, 1, 4, 4)
        int j = (int)(i % PIXELS);
        double mu = g->mu[j], var = (double)g->s[j] * g->s[j];
        double x0 = mu + sqrt(a) * var * (xh[i] - sqrt(a) * mu) / (a * var + 1.0 - a);
        double eps = (xh[i] - sqrt(a) * x0) / sqrt(1.0 - a);
        out[i] = (float)(g->prediction == ND_PREDICT_EPS  ? eps
                         : g->prediction == ND_PREDICT_X0 ? x0
                                                          : sqrt(a) * eps - sqrt(1.0 - a) * x0);
    }
    nd_tensor *result = nd_from_host(ctx, x->shape, out);
    free(xh);
    free(out);
    return result;
}

typedef struct fixture_data {
    const fx_tensor *mu, *s, *x_T, *exact;
} fixture_data;

// One deterministic run from the fixture's x_T (start_mean = x_T, start_std = 0), into out.
static int run_sampler(nd_ctx *ctx, const nd_schedule *sched, const fixture_data *fx, nd_sample_config sc, float *out) {
    float zeros[PIXELS] = {0};
    sc.start_mean = fx->x_T->data, sc.start_std = zeros;
    gaussian_model g = {
        .mu = fx->mu->data, .s = fx->s->data, .alpha_bar = sched->alpha_bar, .prediction = sc.prediction};
    nd_sample_run(ctx, sched, &sc, ND_SHAPE(1, 1, 4, 4), gaussian_predict, &g, out, NULL, NULL);
    return g.calls;
}

static void test_timesteps(const fx_file *f) {
    int ts[1000];
    for (int k = 0; k < f->count; k++) {
        const fx_tensor *ref = &f->tensors[k];
        char spacing[16];
        int T, steps;
        if (sscanf(ref->name, "ts/%d/%15[a-z]/%d", &T, spacing, &steps) != 3) continue;
        nd_sample_config sc = nd_sample_defaults();
        sc.sampler = ND_SAMPLER_DDIM, sc.steps = steps;
        CHECK(nd_spacing_parse(spacing, &sc.spacing), "spacing %s", spacing);
        CHECK(nd_sample_steps(&sc, T) == ref->numel, "%s: %d steps, expected %lld", ref->name, nd_sample_steps(&sc, T),
              (long long)ref->numel);
        if (nd_sample_steps(&sc, T) != ref->numel) continue;
        nd_sample_timesteps(&sc, T, ts);
        int wrong = -1;
        for (int i = 0; i < ref->numel; i++)
            if (ts[i] != (int)ref->data[i] && wrong < 0) wrong = i;
        CHECK(wrong < 0, "%s: timestep %d is %d, expected %d", ref->name, wrong, wrong < 0 ? 0 : ts[wrong],
              wrong < 0 ? 0 : (int)ref->data[wrong]);
    }
}

static void test_against_twin(nd_ctx *ctx, const nd_schedule *sched, const fx_file *f, const fixture_data *fx) {
    nd_sampler_kind kinds[] = {ND_SAMPLER_DDIM, ND_SAMPLER_EULER, ND_SAMPLER_HEUN, ND_SAMPLER_DPM_SOLVER_PP};
    int steps_list[] = {5, 20};
    float out[PIXELS];
    for (int k = 0; k < 4; k++)
        for (int sp = 0; sp < 3; sp++)
            for (int st = 0; st < 2; st++)
                for (int pr = 0; pr < 3; pr++)
                    for (int clip = 0; clip < 2; clip++) {
                        char name[96];
                        snprintf(name, sizeof name, "%s/%s/%d/%s/%d", solver_names[k], spacing_names[sp],
                                 steps_list[st], prediction_names[pr], clip);
                        const fx_tensor *ref = fx_get(f, name);
                        CHECK(ref && ref->numel == PIXELS, "fixture %s missing", name);
                        if (!ref) continue;
                        nd_sample_config sc = nd_sample_defaults();
                        sc.sampler = kinds[k], sc.steps = steps_list[st], sc.spacing = (nd_spacing)sp;
                        sc.prediction = (nd_prediction)pr, sc.clamp_x0 = clip;
                        int calls = run_sampler(ctx, sched, fx, sc, out);
                        CHECK(calls == nd_sample_evaluations(&sc, sched->T), "%s: %d model calls, expected %d", name,
                              calls, nd_sample_evaluations(&sc, sched->T));
                        // float32 steps against the twin's float64: rounding of O(1) values over <= 39
                        // model calls, whose gain near t = 0 is up to 1 / sqrt(1 - abar_0) = 100
                        long long worst;
                        double v = test_max_violation(out, ref->data, PIXELS, 2e-4, 2e-4, &worst);
                        CHECK(v <= 1.0, "%s: pixel %lld is %.7g, the twin's %.7g", name, worst, out[worst],
                              ref->data[worst]);
                    }
}

// Max |out - exact| of one solver run, exact the Gaussian's probability-flow ODE solution.
static double error_to_exact(nd_ctx *ctx, const nd_schedule *sched, const fixture_data *fx, nd_sampler_kind kind,
                             nd_spacing spacing, int steps) {
    nd_sample_config sc = nd_sample_defaults();
    sc.sampler = kind, sc.steps = steps, sc.spacing = spacing;
    float out[PIXELS];
    run_sampler(ctx, sched, fx, sc, out);
    double worst = 0;
    for (int j = 0; j < PIXELS; j++) worst = fmax(worst, fabs((double)out[j] - fx->exact->data[j]));
    return worst;
}

static void test_accuracy(nd_ctx *ctx, const nd_schedule *sched, const fixture_data *fx) {
    // Euler on sigma = sqrt((1 - abar) / abar) is DDIM (Karras et al., section 4): the same to rounding
    float a[PIXELS], b[PIXELS];
    nd_sample_config sc = nd_sample_defaults();
    sc.sampler = ND_SAMPLER_DDIM, sc.steps = 10;
    run_sampler(ctx, sched, fx, sc, a);
    sc.sampler = ND_SAMPLER_EULER;
    run_sampler(ctx, sched, fx, sc, b);
    long long worst;
    CHECK(test_max_violation(a, b, PIXELS, 1e-5, 1e-5, &worst) <= 1.0, "euler %.7g, ddim %.7g at pixel %lld", b[worst],
          a[worst], worst);
    // second order where the steps are even in log-SNR: doubling Heun's 10 linspace steps to 20 cuts its error
    // to the exact solution about 4x (twin: 0.040 -> 0.0089), DDIM's only 2x (0.110 -> 0.054)
    double heun10 = error_to_exact(ctx, sched, fx, ND_SAMPLER_HEUN, ND_SPACING_LINSPACE, 10);
    double heun20 = error_to_exact(ctx, sched, fx, ND_SAMPLER_HEUN, ND_SPACING_LINSPACE, 20);
    double ddim20 = error_to_exact(ctx, sched, fx, ND_SAMPLER_DDIM, ND_SPACING_LINSPACE, 20);
    CHECK(heun20 < heun10 / 3.0 && heun20 < ddim20 / 4.0, "heun: error %.3g at 10 steps, %.3g at 20 (ddim %.3g)",
          heun10, heun20, ddim20);
    // DPM-Solver++(2M) beats DDIM at the same model calls on trailing steps (twin: 0.028 vs 0.053 at 20)
    double dpm20 = error_to_exact(ctx, sched, fx, ND_SAMPLER_DPM_SOLVER_PP, ND_SPACING_TRAILING, 20);
    double ddim20t = error_to_exact(ctx, sched, fx, ND_SAMPLER_DDIM, ND_SPACING_TRAILING, 20);
    CHECK(dpm20 < 0.7 * ddim20t, "dpm-solver++ error %.3g, ddim %.3g (20 trailing steps)", dpm20, ddim20t);
    // clipping keeps every sample in [-1, 1] (the fixture's first four pixels end beyond it unclipped)
    sc = nd_sample_defaults();
    sc.sampler = ND_SAMPLER_DPM_SOLVER_PP, sc.steps = 20;
    run_sampler(ctx, sched, fx, sc, a);
    sc.clamp_x0 = true;
    run_sampler(ctx, sched, fx, sc, b);
    bool outside = false, inside = true;
    for (int j = 0; j < PIXELS; j++) outside = outside || fabsf(a[j]) > 1.0f, inside = inside && fabsf(b[j]) <= 1.0f;
    CHECK(outside && inside, "clipping: unclipped samples must leave [-1, 1] (%d), clipped ones not (%d)", outside,
          inside);
}

// Nichol & Dhariwal's cosine schedule and Lin et al.'s zero-terminal-SNR rescaling against the twin, and every
// deterministic sampler on them (x0 and v prediction where the last step is pure noise).
static void test_schedules(nd_ctx *ctx, const fx_file *f, const fixture_data *fx) {
    const char *names[] = {"cosine", "linear-zero-snr", "cosine-zero-snr"};
    nd_sampler_kind kinds[] = {ND_SAMPLER_DDIM, ND_SAMPLER_EULER, ND_SAMPLER_HEUN, ND_SAMPLER_DPM_SOLVER_PP};
    for (int k = 0; k < 3; k++) {
        nd_schedule sched;
        nd_schedule_make(&sched, k == 1 ? ND_SCHEDULE_LINEAR : ND_SCHEDULE_COSINE, 150, 1e-4, 0.02, k > 0);
        char name[96];
        snprintf(name, sizeof name, "alpha_bar/%s", names[k]);
        const fx_tensor *abar = fx_get(f, name);
        snprintf(name, sizeof name, "x_T/%s", names[k]);
        const fx_tensor *x_T = fx_get(f, name);
        CHECK(abar && x_T && abar->numel == 150, "fixture %s missing", names[k]);
        if (!abar || !x_T || abar->numel != 150) {
            nd_schedule_free(&sched);
            continue;
        }
        long long worst;
        // float32 cumulative products of 150 factors on both sides, the betas from float64 formulas
        double v = test_max_violation(sched.alpha_bar, abar->data, 150, 1e-7, 1e-5, &worst);
        CHECK(v <= 1.0, "%s: alpha_bar[%lld] %.9g, the twin's %.9g", names[k], worst, sched.alpha_bar[worst],
              abar->data[worst]);
        CHECK((k > 0) == (sched.alpha_bar[149] == 0.0f), "%s: alpha_bar_T %g", names[k], sched.alpha_bar[149]);
        // the samplers run on the twin's alpha_bar itself: Heun's first step from the cosine schedule's
        // sigma_T = 1100 turns their 1e-6 relative difference at t = T - 1 into 1e-3 in the samples
        for (int t = 0; t < 150; t++) sched.alpha_bar[t] = abar->data[t];
        fixture_data fs = *fx;
        fs.x_T = x_T;
        for (int kind = 0; kind < 4; kind++)
            for (int sp = 0; sp < 2; sp++)
                for (int pr = k > 0 ? 1 : 0; pr < (k > 0 ? 3 : 1); pr++) {
                    nd_sample_config sc = nd_sample_defaults();
                    sc.sampler = kinds[kind], sc.steps = 10;
                    sc.spacing = sp ? ND_SPACING_TRAILING : ND_SPACING_LINSPACE, sc.prediction = (nd_prediction)pr;
                    snprintf(name, sizeof name, "%s/%s/%s/%s", names[k], solver_names[kind], spacing_names[sc.spacing],
                             prediction_names[pr]);
                    const fx_tensor *ref = fx_get(f, name);
                    CHECK(ref && ref->numel == PIXELS, "fixture %s missing", name);
                    if (!ref) continue;
                    float out[PIXELS];
                    run_sampler(ctx, &sched, &fs, sc, out);
                    // as test_against_twin's, but for Heun on the cosine schedule with eps: at sigma_T = 3044
                    // x0 = (x - sqrt(1 - abar) eps) / sqrt(abar) carries eps's float32 rounding 3044 times, and
                    // the correction's weight (sigma_next - sigma) / 2 = -1500 multiplies it again (the twin
                    // moves by 0.015 when its eps moves by 1e-7 relative)
                    double tol = k == 0 && kinds[kind] == ND_SAMPLER_HEUN ? 3e-2 : 2e-4;
                    v = test_max_violation(out, ref->data, PIXELS, tol, tol, &worst);
                    CHECK(v <= 1.0, "%s: pixel %lld is %.7g, the twin's %.7g", name, worst, out[worst],
                          ref->data[worst]);
                }
        if (k > 0) { // the DDPM samplers' first step from pure noise (alpha_T = 0) takes the posterior mean's x0 form
            for (int ddpm = 0; ddpm < 2; ddpm++) {
                nd_sample_config sc = nd_sample_defaults();
                sc.sampler = ddpm ? ND_SAMPLER_DDPM_POSTERIOR : ND_SAMPLER_DDPM, sc.prediction = ND_PREDICT_V;
                sc.seed = 7;
                float out[PIXELS];
                run_sampler(ctx, &sched, &fs, sc, out);
                bool finite = true;
                for (int j = 0; j < PIXELS; j++) finite = finite && isfinite(out[j]) && fabsf(out[j]) < 10.0f;
                CHECK(finite, "%s: %s samples are not finite", names[k], nd_sampler_name(sc.sampler));
            }
        }
        nd_schedule_free(&sched);
    }
}

// SDE-DPM-Solver++(2M) draws fresh noise every step: 4,000 of its samples, started from q(x_T), against the
// per-pixel mean and standard deviation of the twin's 200,000 (which also carry the solver's discretization
// error: at 5 steps its deviation is up to 0.085 off the data's), within five standard errors.
static void test_sde(nd_ctx *ctx, const fx_file *f, const fixture_data *fx) {
    enum { DRAWS = 4000 };
    static const struct {
        const char *name;
        bool zero_snr;
        nd_prediction prediction;
        int steps;
    } cases[] = {{"sde/linear/eps/5", false, ND_PREDICT_EPS, 5},
                 {"sde/linear/eps/20", false, ND_PREDICT_EPS, 20},
                 {"sde/linear-zero-snr/v/20", true, ND_PREDICT_V, 20}};
    float *out = malloc((size_t)DRAWS * PIXELS * sizeof(float)),
          *again = malloc((size_t)DRAWS * PIXELS * sizeof(float));
    for (int c = 0; c < 3; c++) {
        char name[80];
        snprintf(name, sizeof name, "%s/mean", cases[c].name);
        const fx_tensor *ref_mean = fx_get(f, name);
        snprintf(name, sizeof name, "%s/std", cases[c].name);
        const fx_tensor *ref_std = fx_get(f, name);
        CHECK(ref_mean && ref_std, "fixture %s missing", cases[c].name);
        if (!ref_mean || !ref_std) continue;
        nd_schedule sched;
        nd_schedule_make(&sched, ND_SCHEDULE_LINEAR, 150, 1e-4, 0.02, cases[c].zero_snr);
        double abar_T = sched.alpha_bar[149];
        float start_mean[PIXELS], start_std[PIXELS];
        for (int j = 0; j < PIXELS; j++) {
            double var = (double)fx->s->data[j] * fx->s->data[j];
            start_mean[j] = (float)(sqrt(abar_T) * fx->mu->data[j]);
            start_std[j] = (float)sqrt(abar_T * var + 1.0 - abar_T);
        }
        nd_sample_config sc = nd_sample_defaults();
        sc.sampler = ND_SAMPLER_DPM_SOLVER_PP_SDE, sc.steps = cases[c].steps, sc.spacing = ND_SPACING_TRAILING;
        sc.prediction = cases[c].prediction, sc.seed = 7, sc.start_mean = start_mean, sc.start_std = start_std;
        gaussian_model g = {
            .mu = fx->mu->data, .s = fx->s->data, .alpha_bar = sched.alpha_bar, .prediction = sc.prediction};
        nd_sample_run(ctx, &sched, &sc, ND_SHAPE(DRAWS, 1, 4, 4), gaussian_predict, &g, out, NULL, NULL);
        nd_sample_run(ctx, &sched, &sc, ND_SHAPE(DRAWS, 1, 4, 4), gaussian_predict, &g, again, NULL, NULL);
        CHECK(memcmp(out, again, (size_t)DRAWS * PIXELS * sizeof(float)) == 0, "%s: the same seed drew other samples",
              cases[c].name);
        double worst_mean = 0, worst_std = 0;
        for (int j = 0; j < PIXELS; j++) {
            double sum = 0, sum2 = 0;
            for (int i = 0; i < DRAWS; i++) sum += out[i * PIXELS + j];
            double mean = sum / DRAWS;
            for (int i = 0; i < DRAWS; i++) sum2 += (out[i * PIXELS + j] - mean) * (out[i * PIXELS + j] - mean);
            double sd = sqrt(sum2 / DRAWS), ref_sd = ref_std->data[j];
            // standard errors of a mean and of a deviation from DRAWS samples: sd / sqrt(n), sd / sqrt(2n)
            worst_mean = fmax(worst_mean, fabs(mean - ref_mean->data[j]) / (ref_sd / sqrt(DRAWS)));
            worst_std = fmax(worst_std, fabs(sd - ref_sd) / (ref_sd / sqrt(2.0 * DRAWS)));
        }
        printf("%s: worst pixel %.2f standard errors off the twin's mean, %.2f off its deviation\n", cases[c].name,
               worst_mean, worst_std);
        CHECK(worst_mean < 5.0 && worst_std < 5.0, "%s: a pixel's mean is %.2f, its deviation %.2f standard errors off",
              cases[c].name, worst_mean, worst_std);
        nd_schedule_free(&sched);
    }
    free(out);
    free(again);
}

static void test_names(void) {
    for (int k = 0; k < ND_SAMPLER_COUNT; k++) {
        nd_sampler_kind kind;
        CHECK(nd_sampler_parse(nd_sampler_name((nd_sampler_kind)k), &kind) && kind == (nd_sampler_kind)k, "sampler %d",
              k);
    }
    nd_sampler_kind kind;
    nd_spacing spacing;
    nd_prediction prediction;
    CHECK(!nd_sampler_parse("dpm-solver", &kind) && !nd_spacing_parse("even", &spacing) &&
              !nd_prediction_parse("epsilon", &prediction),
          "unknown names must be refused");
    nd_sample_config sc = nd_sample_defaults();
    sc.sampler = ND_SAMPLER_HEUN, sc.steps = 500;
    CHECK(nd_sample_steps(&sc, 150) == 150 && nd_sample_evaluations(&sc, 150) == 299, "heun steps clamp to T");
    sc.sampler = ND_SAMPLER_DDPM, sc.steps = 10;
    CHECK(nd_sample_steps(&sc, 150) == 150, "the DDPM samplers take every timestep");
    CHECK(nd_start_resolve(ND_START_AUTO, ND_SAMPLER_DPM_SOLVER_PP) == ND_START_MATCHED &&
              nd_start_resolve(ND_START_AUTO, ND_SAMPLER_DDPM_POSTERIOR) == ND_START_NOISE,
          "auto start: matched for the deterministic samplers, noise for DDPM");
}

// What the step callback of test_evaluations_done saw: each step's model calls against the count promised.
typedef struct calls_seen {
    const gaussian_model *g;
    const nd_sample_config *sc;
    const nd_schedule *s;
    int wrong_step, calls, expected; // the first step whose count differs (-1: none), and its two counts
} calls_seen;

static void check_calls(void *user, int step_index, int t, nd_ctx *ctx, const nd_tensor *x) {
    (void)t, (void)ctx, (void)x;
    calls_seen *seen = user;
    if (step_index < 0 || seen->wrong_step >= 0) return;
    int expected = nd_sample_evaluations_done(seen->sc, seen->s, step_index);
    if (seen->g->calls != expected)
        seen->wrong_step = step_index, seen->calls = seen->g->calls, seen->expected = expected;
}

// nd_sample_evaluations_done (what the progress line counts) against the model calls every sampler makes,
// step by step, on the course's schedule and on its zero-terminal-SNR rescaling, where Heun's step from
// t = T - 1 (alpha_bar = 0) is Euler's and makes one call.
static void test_evaluations_done(nd_ctx *ctx, const fixture_data *fx) {
    int steps_list[] = {1, 2, 5};
    for (int zero = 0; zero < 2; zero++) {
        nd_schedule sched;
        nd_schedule_make(&sched, ND_SCHEDULE_LINEAR, 150, 1e-4, 0.02, zero);
        for (int k = 0; k < ND_SAMPLER_COUNT; k++)
            for (int sp = 0; sp < 3; sp++)
                for (int st = 0; st < 3; st++) {
                    nd_sample_config sc = nd_sample_defaults();
                    sc.sampler = (nd_sampler_kind)k, sc.spacing = (nd_spacing)sp, sc.steps = steps_list[st];
                    sc.prediction = ND_PREDICT_V; // well defined at zero SNR
                    float zeros[PIXELS] = {0}, out[PIXELS];
                    sc.start_mean = fx->x_T->data, sc.start_std = zeros;
                    gaussian_model g = {.mu = fx->mu->data,
                                        .s = fx->s->data,
                                        .alpha_bar = sched.alpha_bar,
                                        .prediction = sc.prediction};
                    calls_seen seen = {.g = &g, .sc = &sc, .s = &sched, .wrong_step = -1};
                    nd_sample_run(ctx, &sched, &sc, ND_SHAPE(1, 1, 4, 4), gaussian_predict, &g, out, check_calls,
                                  &seen);
                    int steps = nd_sample_steps(&sc, 150), total = nd_sample_evaluations_done(&sc, &sched, steps - 1);
                    CHECK(seen.wrong_step < 0, "%s, %s, %d steps%s: %d model calls by step %d, counted %d",
                          nd_sampler_name(sc.sampler), spacing_names[sp], sc.steps, zero ? ", zero SNR" : "",
                          seen.calls, seen.wrong_step, seen.expected);
                    CHECK(g.calls == total, "%s, %s, %d steps%s: %d model calls, counted %d",
                          nd_sampler_name(sc.sampler), spacing_names[sp], sc.steps, zero ? ", zero SNR" : "", g.calls,
                          total);
                    // Heun: 2N - 1, one fewer where it starts at zero SNR (linspace and trailing start at T - 1)
                    int heun = 2 * steps - 1 - (zero && sp != ND_SPACING_LEADING && steps > 1);
                    int want = sc.sampler == ND_SAMPLER_HEUN ? heun : steps;
                    CHECK(total == want, "%s, %s, %d steps%s: counted %d model calls, expected %d",
                          nd_sampler_name(sc.sampler), spacing_names[sp], sc.steps, zero ? ", zero SNR" : "", total,
                          want);
                }
        nd_schedule_free(&sched);
    }
}

// Classifier-free guidance and its rescale (nd_guidance_combine) against diffusers' rescale_noise_cfg in torch
// (the fixture's guidance/W/PHI); phi = 0 is exactly the course's (1 + w) e_c - w e_u, and phi = 1 gives each
// image the conditional output's standard deviation.
static void test_guidance_rescale(nd_ctx *ctx, const fx_file *f) {
    const fx_tensor *cond = fx_get(f, "guidance/cond"), *uncond = fx_get(f, "guidance/uncond");
    CHECK(cond && uncond && cond->numel == 96 && uncond->numel == 96, "guidance/cond or guidance/uncond missing");
    if (!cond || !uncond || cond->numel != 96) return;
    const int images = 3, per_image = 32;
    static const float cases[][2] = {{2.0f, 0.0f}, {2.0f, 0.7f}, {2.0f, 1.0f}, {5.0f, 0.5f}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        float w = cases[k][0], phi = cases[k][1];
        char name[64];
        snprintf(name, sizeof name, "guidance/%g/%g", w, phi);
        const fx_tensor *want = fx_get(f, name);
        CHECK(want && want->numel == 96, "%s missing", name);
        if (!want) continue;
        nd_tensor *c = nd_from_host(ctx, ND_SHAPE(images, 2, 4, 4), cond->data);
        nd_tensor *u = nd_from_host(ctx, ND_SHAPE(images, 2, 4, 4), uncond->data);
        float got[96];
        nd_copy_to_host(ctx, nd_guidance_combine(ctx, c, u, w, phi), got);
        long long worst;
        double v = test_max_violation(got, want->data, 96, 1e-6, 1e-5, &worst);
        CHECK(v <= 1.0, "%s: element %lld is %.7g, torch %.7g", name, worst, got[worst], want->data[worst]);
        if (phi == 0.0f)
            for (int i = 0; i < 96; i++) {
                float plain = (1.0f + w) * cond->data[i] - w * uncond->data[i];
                CHECK(got[i] == plain, "w %g without rescale: element %d is %.9g, not (1 + w) c - w u = %.9g", w, i,
                      got[i], plain);
            }
        for (int b = 0; b < images && phi == 1.0f; b++) { // the rescaled image's spread is the conditional one's
            double sums[2][2] = {{0}};
            for (int i = 0; i < per_image; i++) {
                double x[2] = {got[b * per_image + i], cond->data[b * per_image + i]};
                for (int j = 0; j < 2; j++) sums[j][0] += x[j], sums[j][1] += x[j] * x[j];
            }
            double var[2];
            for (int j = 0; j < 2; j++)
                var[j] = sums[j][1] / per_image - (sums[j][0] / per_image) * (sums[j][0] / per_image);
            CHECK(fabs(sqrt(var[0]) / sqrt(var[1]) - 1.0) < 1e-5, "image %d: std %.7g after rescale 1, cond's %.7g", b,
                  sqrt(var[0]), sqrt(var[1]));
        }
        nd_ctx_step_end(ctx);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_samplers fixtures/samplers.ndfx\n");
        return 2;
    }
    fx_file f;
    if (!fx_load(&f, argv[1])) return 1;
    fixture_data fx = {fx_get(&f, "mu"), fx_get(&f, "s"), fx_get(&f, "x_T"), fx_get(&f, "exact")};
    const fx_tensor *abar = fx_get(&f, "alpha_bar");
    if (!fx.mu || !fx.s || !fx.x_T || !fx.exact || !abar) {
        fprintf(stderr, "%s: mu, s, x_T, exact or alpha_bar missing\n", argv[1]);
        fx_free(&f);
        return 1;
    }
    nd_schedule sched;
    nd_schedule_linear(&sched, 150, 1e-4, 0.02);
    long long worst;
    CHECK(abar->numel == 150 && test_max_violation(sched.alpha_bar, abar->data, 150, 0, 1e-6, &worst) <= 1.0,
          "the twin's schedule is not nanodiff's");
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 20, 0);
    test_names();
    test_timesteps(&f);
    test_against_twin(&ctx, &sched, &f, &fx);
    test_accuracy(&ctx, &sched, &fx);
    test_schedules(&ctx, &f, &fx);
    test_evaluations_done(&ctx, &fx);
    test_guidance_rescale(&ctx, &f);
    test_sde(&ctx, &f, &fx);
    nd_ctx_free(&ctx);
    nd_schedule_free(&sched);
    fx_free(&f);
    return test_finish("samplers");
}
