// nanodiff sample: noise schedules, DDPM / DDIM steps, classifier-free guidance, sampling pipelines.
#ifndef ND_SAMPLE_H
#define ND_SAMPLE_H

#include "autograd.h"

// The DDPM schedule of the course (utils/ddpm_utils.py): linear betas and every derived coefficient,
// host arrays of length T indexed by the integer timestep t in [0, T).
typedef struct nd_schedule {
    int T;
    float *beta;                 // linspace(beta_start, beta_end, T)
    float *alpha;                // 1 - beta
    float *alpha_bar;            // cumprod(alpha)
    float *sqrt_alpha_bar;       // sqrt(alpha_bar)
    float *sqrt_one_minus_alpha_bar;
    float *sqrt_alpha_inv;       // sqrt(1 / alpha)
    float *pred_noise_coeff;     // (1 - alpha) / sqrt(1 - alpha_bar)
} nd_schedule;

// torch.linspace(beta_start, beta_end, T) and the course's derived terms, in float32 as torch computes them.
void nd_schedule_linear(nd_schedule *s, int T, double beta_start, double beta_end);
void nd_schedule_free(nd_schedule *s);

#endif
