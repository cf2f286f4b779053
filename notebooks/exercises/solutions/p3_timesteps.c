// Lesson practice P3: the timesteps DDPM and DDIM visit.
//
// DDPM's reverse process is a Markov chain: x_{t-1} is drawn from p(x_{t-1} | x_t), a small step whose
// variance was fitted for going from t to t - 1 only, so it must visit every t = T-1, T-2, ..., 0.
// DDIM reads the same trained model differently: from x_t and the predicted noise it estimates x_0
// (x0_hat = (x_t - sqrt(1 - abar_t) e) / sqrt(abar_t)), and with eta = 0 it jumps deterministically to any
// earlier step, x_s = sqrt(abar_s) x0_hat + sqrt(1 - abar_s) e. The process is non-Markovian (x_s depends on
// x0_hat, not only on x_t's one-step posterior), so evenly spaced steps suffice: 50 instead of 1000.
// nanodiff's sampler spaces `steps` timesteps evenly from T - 1 down to 0, both ends included, rounded to the
// nearest integer: ts[i] = round((T - 1) (steps - 1 - i) / (steps - 1)) (T = 1000, 50 steps: 999, 979,
// 958, ..., 0; one step: T - 1). The lesson's 999, 979, ..., 19 is the variant that steps by T / steps and
// never reaches 0.
// The reference solution.
#include <math.h>

#include "exercise.h"

int ex_ddpm_timesteps(int T, int *ts) {
    for (int i = 0; i < T; i++) ts[i] = T - 1 - i;
    return T;
}

int ex_ddim_timesteps(int T, int steps, int *ts) {
    for (int i = 0; i < steps; i++)
        ts[i] = steps == 1 ? T - 1 : (int)lround((double)(T - 1) * (double)(steps - 1 - i) / (steps - 1));
    return steps;
}
