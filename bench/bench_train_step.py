#!/usr/bin/env python3
"""PyTorch twin of bench_train_step.c (eager mode): one DDPM training step of the course's U-Net at batch 128
(16x16 and 28x28), and 150 guided DDPM steps for 100 images (or the first --sample-steps of them). Prints
"torch NAME MS CPU_MS RSS_MIB" lines: wall time, the process's CPU time (all threads) and its peak resident
memory so far. --precision bf16 runs the model's forward under torch.autocast('cpu', dtype=torch.bfloat16)
(convolutions and linear layers in bf16, the loss and the optimizer in float32), nanodiff's --precision bf16."""
import argparse
import contextlib
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from course_unet import UNet  # noqa: E402


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def autocast(device, precision):
    """The products in `precision`: bf16 through autocast (CPU), float32 as they are."""
    if precision == "bf16":
        return torch.autocast(device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def norms_in_float32(model):
    """torch 1.13's CPU autocast leaves GroupNorm off its float32 list, so a bf16 convolution's output meets
    the norm's float32 weights and the call fails; cast its input to float32, as nanodiff keeps its norms."""
    for m in model.modules():
        if isinstance(m, torch.nn.GroupNorm):
            m.register_forward_pre_hook(lambda module, inputs: tuple(i.float() for i in inputs))
    return model


def train_step_ms(device, size, batch, repeats, precision):
    model = norms_in_float32(UNet(150, 1, size, c_embed_dim=10).to(device))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    B = torch.linspace(1e-4, 0.02, 150, device=device)
    a_bar = torch.cumprod(1 - B, 0)
    x0 = torch.rand(batch, 1, size, size, device=device) * 2 - 1
    c = F.one_hot(torch.arange(batch, device=device) % 10, 10).float()
    times, cpu_times = [], []
    for r in range(repeats + 2):
        start, cpu_start = time.perf_counter(), time.process_time()
        t = torch.randint(0, 150, (batch,), device=device)
        noise = torch.randn_like(x0)
        x_t = a_bar[t].sqrt()[:, None, None, None] * x0 + (1 - a_bar[t]).sqrt()[:, None, None, None] * noise
        mask = torch.bernoulli(torch.ones_like(c) - 0.1)
        with autocast(device, precision):
            pred = model(x_t, t.float(), c, mask)
        loss = F.mse_loss(noise, pred.float())
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()
        sync(device)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    return 1e3 * sorted(times[2:])[len(times[2:]) // 2], 1e3 * sorted(cpu_times[2:])[len(cpu_times[2:]) // 2]


@torch.no_grad()
def sampling_ms(device, steps, precision):
    model = norms_in_float32(UNet(150, 1, 16, c_embed_dim=10).to(device).eval())
    B = torch.linspace(1e-4, 0.02, 150, device=device)
    a = 1 - B
    a_bar = torch.cumprod(a, 0)
    n, w = 100, 2.0
    c = F.one_hot(torch.arange(n, device=device) // 10, 10).float()
    c2 = torch.cat([c, c])
    mask = torch.cat([torch.ones_like(c), torch.zeros_like(c)])
    start, cpu_start = time.perf_counter(), time.process_time()
    x = torch.randn(n, 1, 16, 16, device=device)
    for i in range(steps - 1, -1, -1):
        t = torch.full((2 * n,), float(i), device=device)
        with autocast(device, precision):
            e = model(torch.cat([x, x]), t, c2, mask).float()
        e = (1 + w) * e[:n] - w * e[n:]
        u = (1 / a[i]).sqrt() * (x - (1 - a[i]) / (1 - a_bar[i]).sqrt() * e)
        x = u if i == 0 else u + B[i - 1].sqrt() * torch.randn_like(x)
    sync(device)
    return 1e3 * (time.perf_counter() - start), 1e3 * (time.process_time() - cpu_start)


def max_rss_mib():
    """The process's peak resident memory so far (MiB): cases run smallest first, so each line's value is
    that case's peak."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-sampling", action="store_true")
    parser.add_argument("--no-training", action="store_true")
    parser.add_argument("--sample-steps", type=int, default=150)
    parser.add_argument("--precision", choices=("f32", "bf16"), default="f32")
    args = parser.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(os.cpu_count() or 2)
    for size in () if args.no_training else (16, 28):
        wall, cpu = train_step_ms(args.device, size, 128, args.repeats, args.precision)
        print(f"torch train_step_{size}px_b128 {wall:.1f} {cpu:.1f} {max_rss_mib():.1f}", flush=True)
    if not args.no_sampling:
        wall, cpu = sampling_ms(args.device, args.sample_steps, args.precision)
        print(f"torch sample_{args.sample_steps}_steps_100img {wall:.1f} {cpu:.1f} {max_rss_mib():.1f}", flush=True)


if __name__ == "__main__":
    main()
