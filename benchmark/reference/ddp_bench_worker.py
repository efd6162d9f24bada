"""One rank of `npm run bench:scaling -- --nproc` (benchmark/scaling-nproc.mjs): PyTorch's
DistributedDataParallel (Gloo) on the tuned loop (dcgan.py TunedLoop: fake.detach() for the D step,
the algorithm of dcgan's own step), each rank on its share of a fixed global batch. G with DDP's
defaults; D with broadcast_buffers=False (D runs twice before one backward, see
make_ddp_fixtures.py). The group comes from RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT. Rank 0
prints one JSON line of step times."""
import argparse
import json
import os
import sys
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dcgan import TunedLoop, build  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    for name in ("--image-size", "--features", "--batch", "--steps"):
        p.add_argument(name, type=int, required=True)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    gen, disc = build(channels=1, features_g=a.features, features_d=a.features, image_size=a.image_size)
    loop = TunedLoop(DDP(gen), DDP(disc, broadcast_buffers=False))
    n = a.batch // world
    real = torch.rand(n, 1, a.image_size, a.image_size) * 2 - 1
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        loop.step(real, torch.randn(n, 100, 1, 1))
        if i >= a.warmup:
            times.append((time.perf_counter() - t0) * 1000)
    dist.destroy_process_group()
    if rank == 0:
        print(json.dumps({"stepMs": times}))


if __name__ == "__main__":
    main()
