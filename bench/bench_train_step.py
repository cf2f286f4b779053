#!/usr/bin/env python3
"""PyTorch twin of bench_train_step.c (eager mode): one DDPM training step of the course's U-Net at batch 128
(16x16 and 28x28) and of the text-to-image U-Net at batch 64 (16x16; its text context 8 random tokens of
width 64, the frozen CLIP text encoder being outside the step), and 150 guided DDPM steps of the course's
U-Net for 100 images (or the first --sample-steps of them). --cases picks them (t2i, 16, 28, sample).
Prints "torch NAME MS CPU_MS RSS_MIB" lines: wall time, the process's CPU time (all threads) and its peak
resident memory so far. The text-to-image network is tests/fixtures/t2i_unet_twin.py, the PyTorch model the
test suite checks nn/t2i_unet.c against (outputs and every gradient); --t2i-params N (nanodiff's count,
which bench_train_step passes) makes the twin assert that its parameter count is the same. --precision bf16 runs the model's forward under torch.autocast('cpu', dtype=torch.bfloat16)
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
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
from course_unet import UNet  # noqa: E402
from t2i_unet_twin import T2IUNet  # noqa: E402

T2I_TOKENS, T2I_WIDTH = 8, 64  # the text context (B, tokens, width), as in bench_train_step.c


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def autocast(device, precision):
    """The products in `precision`: bf16 through autocast (CPU), float32 as they are."""
    if precision == "bf16":
        return torch.autocast(device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def norms_in_float32(model):
    """torch 1.13's CPU autocast leaves GroupNorm and LayerNorm off its float32 list, so a bf16 convolution's
    or linear layer's output meets the norm's float32 weights and the call fails; cast its input to float32,
    as nanodiff keeps its norms."""
    for m in model.modules():
        if isinstance(m, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
            m.register_forward_pre_hook(lambda module, inputs: tuple(i.float() for i in inputs))
    return model


def t2i_unet():
    """nanodiff's t2i-unet as nd_model_config_default(ND_MODEL_T2I_UNET, 1, 16, 64) makes it: T 150, widths
    32, 64, 64, 4 heads, GroupNorm of 8 groups, context width 64."""
    return T2IUNet(150, 1, (32, 64, 64), context_dim=T2I_WIDTH, heads=4, groups=8)


def train_step_ms(device, size, batch, repeats, precision, t2i=False):
    model = norms_in_float32((t2i_unet() if t2i else UNet(150, 1, size, c_embed_dim=10)).to(device))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    B = torch.linspace(1e-4, 0.02, 150, device=device)
    a_bar = torch.cumprod(1 - B, 0)
    x0 = torch.rand(batch, 1, size, size, device=device) * 2 - 1
    c = F.one_hot(torch.arange(batch, device=device) % 10, 10).float()
    tokens = torch.randn(batch, T2I_TOKENS, T2I_WIDTH, device=device)  # the frozen text encoder's output
    times, cpu_times = [], []
    for r in range(repeats + 2):
        start, cpu_start = time.perf_counter(), time.process_time()
        t = torch.randint(0, 150, (batch,), device=device)
        noise = torch.randn_like(x0)
        x_t = a_bar[t].sqrt()[:, None, None, None] * x0 + (1 - a_bar[t]).sqrt()[:, None, None, None] * noise
        with autocast(device, precision):
            if t2i:
                pred = model(x_t, t.float(), tokens)
            else:
                mask = torch.bernoulli(torch.ones_like(c) - 0.1)
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
    parser.add_argument("--cases", default="t2i,16,28,sample", help="comma-separated: t2i, 16, 28, sample")
    parser.add_argument("--t2i-params", type=int, default=0, help="nanodiff's t2i-unet parameter count")
    args = parser.parse_args()
    cases = set(filter(None, args.cases.split(",")))
    if cases - {"16", "t2i", "28", "sample"}:
        parser.error(f"--cases: unknown {sorted(cases - {'16', 't2i', '28', 'sample'})}")
    if args.no_training:
        cases -= {"16", "t2i", "28"}
    if args.no_sampling:
        cases.discard("sample")
    if args.device == "cpu":
        torch.set_num_threads(os.cpu_count() or 2)
    if "t2i" in cases:
        params = sum(p.numel() for p in t2i_unet().parameters())
        print(f"twin t2i-unet parameters: {params}", flush=True)
        assert args.t2i_params in (0, params), f"nanodiff's t2i-unet has {args.t2i_params} parameters, twin {params}"
    for key in ("t2i", "16", "28"):  # smallest peak memory first, as bench_train_step.c
        if key not in cases:
            continue
        if key == "t2i":
            wall, cpu = train_step_ms(args.device, 16, 64, args.repeats, args.precision, t2i=True)
            name = "train_step_t2i_16px_b64"
        else:
            wall, cpu = train_step_ms(args.device, int(key), 128, args.repeats, args.precision)
            name = f"train_step_{key}px_b128"
        print(f"torch {name} {wall:.1f} {cpu:.1f} {max_rss_mib():.1f}", flush=True)
    if "sample" in cases:
        wall, cpu = sampling_ms(args.device, args.sample_steps, args.precision)
        print(f"torch sample_{args.sample_steps}_steps_100img {wall:.1f} {cpu:.1f} {max_rss_mib():.1f}", flush=True)


if __name__ == "__main__":
    main()
