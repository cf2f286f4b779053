// Noise schedules: the course's linear betas (utils/ddpm_utils.py, DDPM.__init__), Nichol & Dhariwal's cosine,
// Lin et al.'s rescaling to zero terminal SNR; and the coefficients derived from the betas.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sample.h"

// The arrays of a T-step schedule from its betas: alpha_bar as a float32 cumulative product, as torch's
// cumprod of float32 alphas, and the course's derived coefficients.
static void schedule_from_betas(nd_schedule *s, int T, const float *betas) {
    s->T = T;
    float **arrays[] = {&s->beta, &s->alpha, &s->alpha_bar, &s->sqrt_alpha_bar, &s->sqrt_one_minus_alpha_bar,
                        &s->sqrt_alpha_inv, &s->pred_noise_coeff};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) *arrays[i] = nd_xcalloc((size_t)T, sizeof(float));
    float alpha_bar = 1.0f;
    for (int t = 0; t < T; t++) {
        float beta = betas[t], alpha = 1.0f - beta;
        alpha_bar *= alpha;
        s->beta[t] = beta;
        s->alpha[t] = alpha;
        s->alpha_bar[t] = alpha_bar;
        s->sqrt_alpha_bar[t] = sqrtf(alpha_bar);
        s->sqrt_one_minus_alpha_bar[t] = sqrtf(1.0f - alpha_bar);
        s->sqrt_alpha_inv[t] = sqrtf(1.0f / alpha);
        s->pred_noise_coeff[t] = (1.0f - alpha) / sqrtf(1.0f - alpha_bar);
    }
}

void nd_schedule_linear(nd_schedule *s, int T, double beta_start, double beta_end) {
    // float32 throughout, as the course's torch code computes it: 1 - alpha_bar at t = 0 cancels to
    // 1.00008e-4 rather than 1e-4, and matching that keeps samples comparable with the course's
    float *betas = nd_xmalloc((size_t)T * sizeof(float));
    for (int t = 0; t < T; t++)
        betas[t] = (float)(T > 1 ? beta_start + (beta_end - beta_start) * t / (T - 1) : beta_start);
    schedule_from_betas(s, T, betas);
    free(betas);
}

// alpha_bar(u) of Nichol & Dhariwal (2021), eq. 17 before normalisation: cos^2((u + s) / (1 + s) pi / 2).
static double cosine_f(double u) {
    const double offset = 0.008; // their s: keeps beta_0 from being too small near u = 0
    const double pi = 3.14159265358979323846;
    double c = cos((u + offset) / (1.0 + offset) * pi / 2.0);
    return c * c;
}

void nd_schedule_cosine(nd_schedule *s, int T) {
    // beta_t = 1 - abar((t + 1) / T) / abar(t / T), at most 0.999 (their clipping of the singular end),
    // as diffusers' betas_for_alpha_bar computes them in float64
    float *betas = nd_xmalloc((size_t)T * sizeof(float));
    for (int t = 0; t < T; t++) betas[t] = (float)fmin(1.0 - cosine_f((t + 1.0) / T) / cosine_f((double)t / T), 0.999);
    schedule_from_betas(s, T, betas);
    free(betas);
}

void nd_schedule_rescale_zero_snr(nd_schedule *s) {
    // Lin et al. (2024), Algorithm 1: shift sqrt(abar) so its last value is 0, scale it so its first is
    // unchanged, and take the betas of the result; in float64, from the float32 schedule
    int T = s->T;
    double first = sqrt((double)s->alpha_bar[0]), last = sqrt((double)s->alpha_bar[T - 1]);
    float *betas = nd_xmalloc((size_t)T * sizeof(float));
    double prev = 1.0; // abar before t = 0
    for (int t = 0; t < T; t++) {
        double root = (sqrt((double)s->alpha_bar[t]) - last) * first / (first - last), abar = root * root;
        betas[t] = (float)(1.0 - abar / prev);
        prev = abar;
    }
    nd_schedule_free(s);
    schedule_from_betas(s, T, betas);
    free(betas); // the last beta is 1: alpha_bar_T is 0 exactly, and sqrt_alpha_inv_T infinite (unused then)
}

void nd_schedule_free(nd_schedule *s) {
    free(s->beta);
    free(s->alpha);
    free(s->alpha_bar);
    free(s->sqrt_alpha_bar);
    free(s->sqrt_one_minus_alpha_bar);
    free(s->sqrt_alpha_inv);
    free(s->pred_noise_coeff);
    *s = (nd_schedule){0};
}

static const char *schedule_names[] = {"linear", "cosine"};

bool nd_schedule_kind_parse(const char *name, nd_schedule_kind *kind) {
    for (int k = 0; k < ND_COUNT(schedule_names); k++)
        if (strcmp(name, schedule_names[k]) == 0) {
            *kind = (nd_schedule_kind)k;
            return true;
        }
    return false;
}

const char *nd_schedule_kind_name(nd_schedule_kind kind) { return schedule_names[kind]; }

void nd_schedule_make(nd_schedule *s, nd_schedule_kind kind, int T, double beta_start, double beta_end, bool zero_snr) {
    if (kind == ND_SCHEDULE_COSINE) nd_schedule_cosine(s, T);
    else nd_schedule_linear(s, T, beta_start, beta_end);
    if (zero_snr) nd_schedule_rescale_zero_snr(s);
}
