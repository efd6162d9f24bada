"""Writes the data-parallel parity fixture (__test__/fixtures/ddp32) with PyTorch's own DDP.

Two processes (torch.multiprocessing, Gloo on 127.0.0.1) each wrap G and D in
DistributedDataParallel (gradients averaged by an all-reduce; find_unused_parameters=False; G with
broadcast_buffers=True, rank 0's BatchNorm running statistics broadcast before every forward; D
with broadcast_buffers=False, see rank_main) and run three iterations of the seed's loop as OptionsLoop writes it (dcgan.py):
D on real and on fake.detach() in one backward, then G through D. That is the order of dcgan's own
step. The seed's literal loop (D on the undetached fake, backward(retain_graph=True), then a second
backward through the same G forward) cannot run under DDP: G's reducer would see two backward
passes for one forward, so G's gradients of the second one would not be averaged. The two loops
compute the same updates in one process (G's gradients from the D step are zeroed before use).

Each rank takes its contiguous half of every global batch (real images and noise): rank r rows
[r·n/2, (r+1)·n/2), as dcgan's ranks do. Written: init.safetensors (the weights both start
from), io.safetensors (the global batches, stats of rank 0 per step), after3.safetensors (rank 0's
state_dict after three steps) and after3.rank1.safetensors (rank 1's: the same weights and G
buffers; D's running statistics its own; and its statistics stats.N); after3.global.safetensors is one process's state after
the same three global batches, the reference for synchronised BatchNorm (write_global).

Run it with `node scripts/with-torch.mjs python benchmark/reference/make_ddp_fixtures.py`.
"""
import json
import os
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import save_file
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dcgan import OptionsLoop, build  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "__test__", "fixtures")
NAME = "ddp32"
CFG = dict(z_dim=8, channels=1, features_g=2, features_d=3, image_size=32)
BATCH = 8  # global: 4 per rank
WORLD = 2
STEPS = 3


def state(gen, disc):
    sd = {**gen.state_dict(), **disc.state_dict()}
    return {k: v.detach().clone().contiguous() for k, v in sd.items()}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_main(rank, port, out, io, init):
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    gen, disc = build(**CFG)
    # The modules' own keys already start with "gen."/"disc." (their Sequential's attribute).
    gen.load_state_dict({k: v for k, v in init.items() if k.startswith("gen.")})
    disc.load_state_dict({k: v for k, v in init.items() if k.startswith("disc.")})
    # G: DDP's defaults (broadcast_buffers=True, find_unused_parameters=False). D: its buffers cannot
    # be broadcast before each forward: D runs twice (real, fake) before one backward, and the
    # broadcast before the second forward overwrites, in place, running statistics that the first
    # forward's BatchNorm saved for backward ("modified by an inplace operation"), the known limit
    # of DDP for GANs. Rank 0's state is the same either way: rank 0 is the broadcast's source.
    ddp_gen, ddp_disc = DDP(gen), DDP(disc, broadcast_buffers=False)
    loop = OptionsLoop(ddp_gen, ddp_disc)
    per_rank = BATCH // WORLD
    stats = {}
    for step in range(1, STEPS + 1):
        rows = slice(rank * per_rank, (rank + 1) * per_rank)
        loss_d, loss_g, d_x, d_gz1, d_gz2 = loop.step(io[f"real.{step}"][rows], io[f"noise.{step}"][rows])
        stats[f"stats.{step}"] = torch.stack([loss_d, loss_g, d_x, d_gz1, d_gz2]).detach()
    meta = {"config": json.dumps(config_json()), "torch": torch.__version__}
    suffix = "" if rank == 0 else f".rank{rank}"
    # The wrapped modules' state_dict: the seed's keys, not DDP's "module." ones. Rank 1's file also
    # holds its own statistics (stats.N): the mean of the two ranks' is what dcgan logs.
    extra = {} if rank == 0 else stats
    save_file({**state(gen, disc), **extra}, os.path.join(out, f"after{STEPS}{suffix}.safetensors"), metadata=meta)
    if rank == 0:
        save_file({**io, **stats}, os.path.join(out, "io.safetensors"), metadata=meta)
    dist.destroy_process_group()


def config_json():
    return {"zDim": CFG["z_dim"], "channels": CFG["channels"], "featuresG": CFG["features_g"],
            "featuresD": CFG["features_d"], "imageSize": CFG["image_size"], "batch": BATCH, "worldSize": WORLD}


def main():
    torch.manual_seed(1234)
    torch.set_num_threads(1)
    gen, disc = build(**CFG)
    out = os.path.join(ROOT, NAME)
    os.makedirs(out, exist_ok=True)
    init = state(gen, disc)
    meta = {"config": json.dumps(config_json()), "torch": torch.__version__}
    save_file(init, os.path.join(out, "init.safetensors"), metadata=meta)
    s, c, z = CFG["image_size"], CFG["channels"], CFG["z_dim"]
    io = {}
    for step in range(1, STEPS + 1):
        io[f"real.{step}"] = torch.rand(BATCH, c, s, s) * 2 - 1
        io[f"noise.{step}"] = torch.randn(BATCH, z, 1, 1)
    mp.spawn(rank_main, args=(free_port(), out, io, init), nprocs=WORLD, join=True)
    write_global(out, io, init, meta)
    print(f"{NAME}: wrote {out}")


def write_global(out, io, init, meta):
    """One process on the whole global batches: what DDP with torch.nn.SyncBatchNorm computes (its
    BatchNorm statistics are the global batch's; the averaged gradients of the ranks' means are the
    global mean's gradient). SyncBatchNorm itself runs on GPUs only, so this is its CPU reference."""
    gen, disc = build(**CFG)
    gen.load_state_dict({k: v for k, v in init.items() if k.startswith("gen.")})
    disc.load_state_dict({k: v for k, v in init.items() if k.startswith("disc.")})
    loop = OptionsLoop(gen, disc)
    stats = {}
    for step in range(1, STEPS + 1):
        loss_d, loss_g, d_x, d_gz1, d_gz2 = loop.step(io[f"real.{step}"], io[f"noise.{step}"])
        stats[f"stats.{step}"] = torch.stack([loss_d, loss_g, d_x, d_gz1, d_gz2]).detach()
    save_file({**state(gen, disc), **{f"global.{k}": v for k, v in stats.items()}}, os.path.join(out, f"after{STEPS}.global.safetensors"), metadata=meta)


if __name__ == "__main__":
    main()
