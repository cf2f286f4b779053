#!/usr/bin/env python3
"""PyTorch twin of bench_train_step.c (eager mode): one DDPM training step of the course's U-Net at batch 128
(16x16 and 28x28), and 150 guided DDPM steps for 100 images. Prints "torch NAME MS" lines."""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from course_unet import UNet  # noqa: E402


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def train_step_ms(device, size, batch, repeats):
    model = UNet(150, 1, size, c_embed_dim=10).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    B = torch.linspace(1e-4, 0.02, 150, device=device)
    a_bar = torch.cumprod(1 - B, 0)
    x0 = torch.rand(batch, 1, size, size, device=device) * 2 - 1
    c = F.one_hot(torch.arange(batch, device=device) % 10, 10).float()
    times = []
    for r in range(repeats + 2):
        start = time.perf_counter()
        t = torch.randint(0, 150, (batch,), device=device)
        noise = torch.randn_like(x0)
        x_t = a_bar[t].sqrt()[:, None, None, None] * x0 + (1 - a_bar[t]).sqrt()[:, None, None, None] * noise
        mask = torch.bernoulli(torch.ones_like(c) - 0.1)
        loss = F.mse_loss(noise, model(x_t, t.float(), c, mask))
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()
        sync(device)
        times.append(time.perf_counter() - start)
    return 1e3 * sorted(times[2:])[len(times[2:]) // 2]


@torch.no_grad()
def sampling_ms(device):
    model = UNet(150, 1, 16, c_embed_dim=10).to(device).eval()
    B = torch.linspace(1e-4, 0.02, 150, device=device)
    a = 1 - B
    a_bar = torch.cumprod(a, 0)
    n, w = 100, 2.0
    c = F.one_hot(torch.arange(n, device=device) // 10, 10).float()
    c2 = torch.cat([c, c])
    mask = torch.cat([torch.ones_like(c), torch.zeros_like(c)])
    start = time.perf_counter()
    x = torch.randn(n, 1, 16, 16, device=device)
    for i in range(149, -1, -1):
        t = torch.full((2 * n,), float(i), device=device)
        e = model(torch.cat([x, x]), t, c2, mask)
        e = (1 + w) * e[:n] - w * e[n:]
        u = (1 / a[i]).sqrt() * (x - (1 - a[i]) / (1 - a_bar[i]).sqrt() * e)
        x = u if i == 0 else u + B[i - 1].sqrt() * torch.randn_like(x)
    sync(device)
    return 1e3 * (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-sampling", action="store_true")
    args = parser.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(os.cpu_count() or 2)
    for size in (16, 28):
        print(f"torch train_step_{size}px_b128 {train_step_ms(args.device, size, 128, args.repeats):.1f}", flush=True)
    if not args.no_sampling:
        print(f"torch sample_150_steps_100img {sampling_ms(args.device):.1f}", flush=True)


if __name__ == "__main__":
    main()
