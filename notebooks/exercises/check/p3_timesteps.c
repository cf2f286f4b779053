// Checks the timesteps against the ones nanodiff's samplers visit, observed through nd_sample_images' step
// callback on a tiny model (the sampler keeps its timestep list private).
#include "check.h"

typedef struct seen {
    int ts[1000], n;
} seen;

static void record(void *user, int step_index, int t, nd_ctx *ctx, const nd_tensor *x) {
    seen *s = user;
    if (step_index >= 0) s->ts[s->n++] = t;
}

static bool compare(const char *what, const int *got, int n_got, const seen *want, int T, int steps) {
    if (n_got != want->n) return ck_fail("%s: %d timesteps, expected %d", what, n_got, want->n);
    for (int i = 0; i < n_got; i++)
        if (got[i] != want->ts[i]) {
            bool lesson = steps > 1;
            for (int j = 0; j < n_got && lesson; j++) lesson = got[j] == T - 1 - j * (T / steps);
            return ck_fail("%s: step %d is t = %d, expected %d (sequence %d, %d, %d, ..., %d)%s", what, i, got[i],
                           want->ts[i], want->ts[0], want->ts[1], want->ts[2], want->ts[want->n - 1],
                           lesson ? "; yours steps by T / steps from T - 1 and never reaches t = 0, where nanodiff's "
                                    "sampler spaces its steps evenly from T - 1 to 0"
                                  : "");
        }
    return true;
}

static bool check(nd_ctx *ctx) {
    static int got[1000];
    bool ok = true;
    const struct { int T, steps; } cases[] = {{150, 0}, {1000, 50}, {150, 10}, {150, 1}};
    for (int k = 0; k < 4 && ok; k++) {
        int T = cases[k].T, steps = cases[k].steps;
        nd_model model;
        ck_tiny_model(ctx, &model, T);
        nd_schedule s;
        nd_schedule_linear(&s, T, 1e-4, 0.02);
        nd_sample_config sc = nd_sample_defaults();
        sc.guided = false;
        if (steps > 0) sc.sampler = ND_SAMPLER_DDIM, sc.steps = steps;
        seen want = {.n = 0};
        float out[64];
        if (steps > 0 || T <= 150) nd_sample_images(ctx, &model, &s, &sc, 1, NULL, NULL, out, record, &want);
        char what[64];
        if (steps == 0) {
            snprintf(what, sizeof what, "DDPM with T = %d", T);
            ok = compare(what, got, ex_ddpm_timesteps(T, got), &want, T, steps);
        } else {
            snprintf(what, sizeof what, "DDIM with T = %d and %d steps", T, steps);
            ok = compare(what, got, ex_ddim_timesteps(T, steps, got), &want, T, steps);
        }
        nd_schedule_free(&s);
        nd_model_free(&model);
    }
    return ok;
}
