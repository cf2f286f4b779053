"""DDIM's step count on a toy with an exact denoiser: does the Frechet distance grow with the steps?

The data are one pixel from two classes, N(-0.5, 0.2^2) and N(0.5, 0.2^2); the conditional and the
unconditional (mixture) noise predictions are exact, guidance is the course's (1 + w) e_c - w e_u, the
schedule the course's (T = 150, alpha_bar_T = 0.22), DDIM eta = 0 from a matched start. The per-class
Frechet distance of 1-D Gaussians, (mean - mu)^2 + (std - s)^2, is printed for 10..150 steps and two
starts: q(x_T)'s unconditional moments (what `--start matched` draws) and the class's own q(x_T | c).

Run: /usr/bin/python3 tools/ddim_steps_toy.py
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
from make_sampler_fixtures import linear_alpha_bar, timesteps  # noqa: E402

T, MUS, S, N = 150, np.array([-0.5, 0.5]), 0.2, 20000
ABAR = linear_alpha_bar(T, 1e-4, 0.02)


def x0_given(x, a, mu):
    return mu + np.sqrt(a) * S**2 * (x - np.sqrt(a) * mu) / (a * S**2 + 1 - a)


def eps_from(x, a, x0):
    return (x - np.sqrt(a) * x0) / np.sqrt(1 - a)


def eps_mixture(x, a):
    var = a * S**2 + 1 - a
    logp = np.stack([-((x - np.sqrt(a) * m) ** 2) / (2 * var) for m in MUS])
    weights = np.exp(logp - logp.max(0))
    weights /= weights.sum(0)
    return eps_from(x, a, sum(weights[k] * x0_given(x, a, MUS[k]) for k in range(len(MUS))))


def ddim(x, c, w, steps):
    ts = timesteps("linspace", T, steps)
    for i, t in enumerate(ts):
        a, a_prev = ABAR[t], ABAR[ts[i + 1]] if i + 1 < len(ts) else 1.0
        e = (1 + w) * eps_from(x, a, x0_given(x, a, MUS[c])) - w * eps_mixture(x, a)
        x0 = (x - np.sqrt(1 - a) * e) / np.sqrt(a)
        x = np.sqrt(a_prev) * x0 + np.sqrt(1 - a_prev) * e
    return x


def main():
    z = np.random.default_rng(0).standard_normal(N)
    a_T, c = ABAR[-1], 1
    starts = {"unconditional q(x_T)": (np.sqrt(a_T) * MUS.mean(), a_T * (S**2 + MUS.var()) + 1 - a_T),
              "class q(x_T | c)": (np.sqrt(a_T) * MUS[c], a_T * S**2 + 1 - a_T)}
    for name, (mean, var) in starts.items():
        for w in (0.0, 2.0):
            row = []
            for steps in (10, 20, 50, 150):
                x = ddim(mean + np.sqrt(var) * z, c, w, steps)
                row.append(f"{steps:3d}: mean {x.mean():+.3f} std {x.std():.3f} FD {(x.mean() - MUS[c])**2 + (x.std() - S)**2:.4f}")
            print(f"{name:21s} w = {w}:  " + "  |  ".join(row))


if __name__ == "__main__":
    main()
