"""Median time of one step of PyTorch's loops on the CPU, as one line of JSON per loop:
the seed's loop (fp32), and the tuned loop in channels-last under bf16 autocast (the recipe of
make_bf16_fixtures.py). Compare with crates/dcgan-core/examples/step_bench.rs.

    node scripts/with-torch.mjs python benchmark/reference/time_bf16.py --image-size 32 --features 8 --batch 32
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dcgan import SeedLoop, build  # noqa: E402
from make_bf16_fixtures import AutocastLoop  # noqa: E402


def median_ms(loop, real, z_dim, steps, warmup):
    times = []
    cpu_start = time.process_time()
    for i in range(warmup + steps):
        if i == warmup:
            cpu_start = time.process_time()
        noise = torch.randn(real.shape[0], z_dim, 1, 1)
        t0 = time.perf_counter()
        loop.step(real, noise)
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1000)
    cpu_per_step = (time.process_time() - cpu_start) * 1000 / steps
    times.sort()
    return times[len(times) // 2], times[0], cpu_per_step


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--features", type=int, default=8)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--loops", default="seed,bf16-cl", help="comma-separated: seed, bf16-cl")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    for name in a.loops.split(","):
        gen, disc = build(100, 1, a.features, a.features, a.image_size)
        real = torch.rand(a.batch, 1, a.image_size, a.image_size) * 2 - 1
        if name == "seed":
            loop = SeedLoop(gen, disc)
        else:
            gen, disc = gen.to(memory_format=torch.channels_last), disc.to(memory_format=torch.channels_last)
            real = real.contiguous(memory_format=torch.channels_last)
            loop = AutocastLoop(gen, disc)
        med, best, cpu = median_ms(loop, real, 100, a.steps, a.warmup)
        print(json.dumps({"loop": name, "imageSize": a.image_size, "features": a.features, "batch": a.batch,
                          "threads": a.threads, "steps": a.steps, "medianMs": round(med, 3), "minMs": round(best, 3),
                          "cpuMsPerStep": round(cpu, 3)}))


if __name__ == "__main__":
    main()
