"""Guided sampling with an exact denoiser: do the stochastic DDPM and the ODE solvers draw the same samples?

Without guidance they must: the course's DDPM and the probability-flow ODE (DDIM at eta = 0, DPM-Solver++)
are two ways of sampling one distribution. Classifier-free guidance breaks that. Its output,
x0_c + w (x0_c - x0_u), is not the denoiser of any noised distribution, so the reverse SDE and the ODE
driven by it no longer end at the same place: how far apart they land says how much of a gap between
DDPM and DPM-Solver++ on a trained model is the guidance itself, not the solver's error.

The data are one pixel from two overlapping classes, N(-M, S^2) and N(M, S^2) (a Bayes classifier
labels 91% of them correctly, as nanodiff's judge does Fashion-MNIST's test images); the conditional and
the unconditional (mixture) denoisers are exact. Guidance is the course's, with nanodiff's
--guidance-interval: w where sigma_t = sqrt((1 - abar_t) / abar_t) is in (LO, HI], none elsewhere.
Printed per sampler: the share of class-1 samples that the Bayes classifier calls class 1, and the
Frechet distance of 1-D Gaussians to the class, (mean - M)^2 + (std - S)^2 (standard errors: about
0.2 points of accuracy at N samples).

Run: /usr/bin/python3 tools/guided_sde_ode_toy.py
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
from make_sampler_fixtures import (  # noqa: E402
    ddim, dpm_solver_pp_2m, dpm_solver_pp_2m_sde, linear_alpha_bar, timesteps, zero_snr)

T, M, S, N = 150, 0.335, 0.25, 20000
MUS = np.array([-M, M])


def x0_class(x, a, mu):
    return mu + np.sqrt(a) * S**2 * (x - np.sqrt(a) * mu) / (a * S**2 + 1 - a)


def x0_mixture(x, a):
    var = a * S**2 + 1 - a
    logp = np.stack([-((x - np.sqrt(a) * m) ** 2) / (2 * var) for m in MUS])
    weights = np.exp(logp - logp.max(0))
    weights /= weights.sum(0)
    return sum(weights[k] * x0_class(x, a, MUS[k]) for k in range(len(MUS)))


class Guided:
    """The exact denoiser of class c, guided with w where sigma_t is in (lo, hi]: the solvers' model."""

    def __init__(self, abar, c, w, lo, hi):
        self.abar, self.c, self.w, self.lo, self.hi = abar, c, w, lo, hi

    def x0_eps(self, x, t):
        a = self.abar[t]
        with np.errstate(divide="ignore"):
            sigma = np.sqrt((1 - a) / a)
        w = self.w if self.lo < sigma <= self.hi else 0.0
        x0c = x0_class(x, a, MUS[self.c])
        x0 = x0c + w * (x0c - x0_mixture(x, a)) if w else x0c
        return x0, (x - np.sqrt(a) * x0) / np.sqrt(1 - a)


def ddpm(model, x, abar, rng):
    """The course's reverse_q in its x0 form (exact at a zero-SNR first step): the posterior mean of x_{t-1}
    given x_t and x0, plus sqrt(beta_{t-1}) z, as nanodiff's `ddpm`."""
    betas = 1 - abar / np.append(1.0, abar[:-1])
    for t in range(len(abar) - 1, -1, -1):
        x0, _ = model.x0_eps(x, t)
        if t == 0:
            return x0
        a, a_prev = abar[t], abar[t - 1]
        x = betas[t] * np.sqrt(a_prev) / (1 - a) * x0 + np.sqrt(1 - betas[t]) * (1 - a_prev) / (1 - a) * x
        x = x + np.sqrt(betas[t - 1]) * rng.standard_normal(x.shape)
    return x


def score(x, c):
    logp = np.stack([-((x - m) ** 2) for m in MUS])
    accuracy = 100.0 * np.mean(logp.argmax(0) == c)
    return accuracy, (x.mean() - MUS[c]) ** 2 + (x.std() - S) ** 2


def main():
    c = 1
    rng = np.random.default_rng(0)
    real = MUS[c] + S * rng.standard_normal(N)
    print(f"real class-{c} data: {score(real, c)[0]:.1f}% classified as class {c}")
    settings = [
        ("the course's schedule (abar_T = 0.22)", linear_alpha_bar(T, 1e-4, 0.02),
         [(0.0, 0, np.inf), (2.0, 0, np.inf), (3.0, 0.3, np.inf)]),
        ("zero terminal SNR", zero_snr(linear_alpha_bar(T, 1e-4, 0.02)),
         [(0.0, 0, np.inf), (0.6, 0, np.inf), (2.0, 0, np.inf), (2.0, 0.5, 2.5)]),
    ]
    for name, abar, guidance in settings:
        print(f"\n{name}")
        # the deterministic samplers start from q(x_T)'s moments, as nanodiff's `--start auto`
        mean_T = np.sqrt(abar[-1]) * MUS.mean()
        var_T = abar[-1] * (S**2 + MUS.var()) + 1 - abar[-1]
        for w, lo, hi in guidance:
            model = Guided(abar, c, w, lo, hi)
            runs = {
                "DDPM 150": ddpm(model, rng.standard_normal(N), abar, rng),
                "DDIM 150 (the ODE)": ddim(model, mean_T + np.sqrt(var_T) * rng.standard_normal(N),
                                           timesteps("linspace", T, T), abar),
                "DPM-Solver++ 20": dpm_solver_pp_2m(model, mean_T + np.sqrt(var_T) * rng.standard_normal(N),
                                                    timesteps("trailing", T, 20), abar),
                "SDE-DPM-Solver++ 20": dpm_solver_pp_2m_sde(model, rng.standard_normal(N),
                                                            timesteps("trailing", T, 20), abar, rng),
            }
            where = "every step" if lo == 0 and hi == np.inf else f"sigma_t in ({lo:g}, {hi:g}]"
            cells = "  ".join(f"{k} {v[0]:5.1f}% FD {v[1]:.4f}" for k, v in
                              ((k, score(x, c)) for k, x in runs.items()))
            print(f"  w = {w:<3g} {where:22s} {cells}")


if __name__ == "__main__":
    main()
