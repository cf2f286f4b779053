// The linear beta schedule and its derived coefficients (course: utils/ddpm_utils.py, DDPM.__init__).
#include <math.h>
#include <stdlib.h>

#include "sample.h"

void nd_schedule_linear(nd_schedule *s, int T, double beta_start, double beta_end) {
    s->T = T;
    float **arrays[] = {&s->beta, &s->alpha, &s->alpha_bar, &s->sqrt_alpha_bar, &s->sqrt_one_minus_alpha_bar,
                        &s->sqrt_alpha_inv, &s->pred_noise_coeff};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) *arrays[i] = nd_xcalloc((size_t)T, sizeof(float));
    // float32 throughout, as the course's torch code computes it: 1 - alpha_bar at t = 0 cancels to
    // 1.00008e-4 rather than 1e-4, and matching that keeps samples comparable with the course's
    float alpha_bar = 1.0f;
    for (int t = 0; t < T; t++) {
        float beta = (float)(T > 1 ? beta_start + (beta_end - beta_start) * t / (T - 1) : beta_start);
        float alpha = 1.0f - beta;
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
