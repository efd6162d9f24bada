"""Times the seed's loop or the tuned loop for `npm run bench` (benchmark/bench.mjs).

Prints 'FIRST' after the first step, then one JSON line with per-step times and peak memory.
"""
import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dcgan import SeedLoop, TunedLoop, build  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--loop", choices=["seed", "tuned"], required=True)
    p.add_argument("--image-size", type=int, required=True)
    p.add_argument("--features", type=int, required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    device = torch.device("cuda" if a.device.startswith("cuda") and torch.cuda.is_available() else a.device)
    gen, disc = build(channels=1, features_g=a.features, features_d=a.features, image_size=a.image_size, device=device)
    loop = (SeedLoop if a.loop == "seed" else TunedLoop)(gen, disc)
    real = (torch.rand(a.batch, 1, a.image_size, a.image_size) * 2 - 1).to(device)
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        noise = torch.randn((a.batch, 100, 1, 1)).to(device)
        loop.step(real, noise)
        sync(device)
        dt = time.perf_counter() - t0
        if i == 0:
            print("FIRST", flush=True)
        if i >= a.warmup:
            times.append(dt * 1000)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"stepMs": times, "peakRssMb": peak_mb, "device": str(device)}), flush=True)


if __name__ == "__main__":
    main()
