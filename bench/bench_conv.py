#!/usr/bin/env python3
"""PyTorch twin of bench_conv.c: F.conv2d forward and forward+backward on the same cases.

Run with Debian's python3-torch:  /usr/bin/python3 bench/bench_conv.py [--threads N]   (default 2)
Prints one line per case: "case <name> fwd_ms <best> fwd_bwd_ms <best>" (best of 10 runs, as bench_conv.c).
"""
import argparse
import sys
import time

import torch
import torch.nn.functional as F

# (name, batch, channels, size): the 3x3 64->64 convolutions that dominate the course U-Net's training
CASES = [("3x3_64ch_16px", 128, 64, 16), ("3x3_64ch_28px", 128, 64, 28)]
REPEATS = 10


def best_ms(fn):
    for _ in range(2):
        fn()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return min(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    torch.set_num_threads(parser.parse_args().threads)
    torch.manual_seed(0)
    for name, batch, channels, size in CASES:
        x = torch.randn(batch, channels, size, size, requires_grad=True)
        w = (torch.randn(channels, channels, 3, 3) * 0.05).requires_grad_()
        b = torch.zeros(channels, requires_grad=True)

        def forward():
            with torch.no_grad():
                F.conv2d(x, w, b, 1, 1)

        def forward_backward():
            F.conv2d(x, w, b, 1, 1).sum().backward()

        print(f"case {name} fwd_ms {best_ms(forward):.2f} fwd_bwd_ms {best_ms(forward_backward):.2f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
