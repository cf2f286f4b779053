// The linear beta schedule and its derived coefficients (course: utils/ddpm_utils.py, DDPM.__init__).
#include <math.h>
#include <stdlib.h>

#include "sample.h"

void nd_schedule_linear(nd_schedule *s, int T, double beta_start, double beta_end) {
    s->T = T;
    float **arrays[] = {&s->beta, &s->alpha, &s->alpha_bar, &s->sqrt_alpha_bar, &s->sqrt_one_minus_alpha_bar,
                        &s->sqrt_alpha_inv, &s->pred_noise_coeff};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) *arrays[i] = calloc((size_t)T, sizeof(float));
    double alpha_bar = 1.0;
    for (int t = 0; t < T; t++) {
        double beta = T > 1 ? beta_start + (beta_end - beta_start) * t / (T - 1) : beta_start;
        double alpha = 1.0 - beta;
        alpha_bar *= alpha;
        s->beta[t] = (float)beta;
        s->alpha[t] = (float)alpha;
        s->alpha_bar[t] = (float)alpha_bar;
        s->sqrt_alpha_bar[t] = (float)sqrt(alpha_bar);
        s->sqrt_one_minus_alpha_bar[t] = (float)sqrt(1.0 - alpha_bar);
        s->sqrt_alpha_inv[t] = (float)sqrt(1.0 / alpha);
        s->pred_noise_coeff[t] = (float)((1.0 - alpha) / sqrt(1.0 - alpha_bar));
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
