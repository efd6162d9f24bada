"""Adam's update alone, per step, at the flat-buffer sizes of this library's networks: the per-op
arithmetic of torch.optim.Adam's default path (DCGAN_FUSED_ADAM=0) against ATen's fused kernel
(`_fused_adam_`, the library's default). Same torch, same threads, heap kept as the library keeps it.

    node scripts/with-torch.mjs python benchmark/reference/adam_kernels.py [--threads 2]
"""
import argparse
import ctypes
import ctypes.util
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from dcgan import build  # noqa: E402

CONFIGS = {"tiny": (32, 8), "small": (32, 32), "paper": (64, 64)}


def keep_heap():
    """mallopt(M_MMAP_THRESHOLD, 256 MiB) and no trimming, as the library's process does: without it
    every large temporary of the per-op path is a fresh mmap and its page faults."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.mallopt(-3, 256 << 20)  # M_MMAP_THRESHOLD
    libc.mallopt(-1, 512 << 20)  # M_TRIM_THRESHOLD


def per_op(p, g, m, v, step, lr=2e-4, b1=0.5, b2=0.999, eps=1e-8):
    bc1, bc2 = 1 - b1**step, 1 - b2**step
    m.lerp_(g, 1 - b1)
    v.mul_(b2).addcmul_(g, g, value=1 - b2)
    denom = (v.sqrt() / bc2**0.5).add_(eps)
    p.addcdiv_(m, denom, value=-lr / bc1)


def fused(p, g, m, v, count):
    count.add_(1)
    torch._fused_adam_([p], [g], [m], [v], [], [count], lr=2e-4, beta1=0.5, beta2=0.999,
                       weight_decay=0.0, eps=1e-8, amsgrad=False, maximize=False)


def median_ms(f, n):
    times = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            f()
        times.append((time.perf_counter() - t) / n * 1e3)
    return sorted(times)[2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    keep_heap()
    torch.set_num_threads(a.threads)
    for name, (size, features) in CONFIGS.items():
        nets = build(image_size=size, features_g=features, features_d=features)[:2]
        row = {"config": name, "threads": a.threads}
        for kernel in ("perOp", "fused"):
            total = 0.0
            for net in nets:
                n = sum(p.numel() for p in net.parameters())
                p, g = torch.randn(n), torch.randn(n)
                m, v, count = torch.zeros(n), torch.zeros(n), torch.zeros(())
                f = (lambda: per_op(p, g, m, v, 5)) if kernel == "perOp" else (lambda: fused(p, g, m, v, count))
                total += median_ms(f, 2000 if n < 100_000 else 200)
            row[f"{kernel}Ms"] = round(total, 4)
        row["params"] = [sum(p.numel() for p in net.parameters()) for net in nets]
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
