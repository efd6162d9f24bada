"""Times one Python training loop (a variant of variants.py) for `npm run bench` (benchmark/bench.mjs)
and benchmark/gpu/check.sh.

Prints 'FIRST' after the first step, then one JSON line: per-step times after the warm-up steps,
the warm-up steps' own times (with torch.compile, the first includes the compilation), peak memory,
and whether glibc malloc runs with the tuning that this library sets for itself. When the loop
cannot run (e.g. torch.compile finds no C++ compiler) the JSON line is {"error": ...} and the exit
status 3, so that a caller can report that variant as failed and go on.
"""
import argparse
import ctypes
import ctypes.util
import json
import os
import resource
import sys
import time
import traceback

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dcgan import build  # noqa: E402
from variants import DEFAULT_VARIANTS, make_loop, parse_variant, precision_of  # noqa: E402

FAILED = 3


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def malloc_keeps_large_blocks():
    """Whether a 64 MiB malloc stays in the heap instead of being mmapped: true when the process runs
    with MALLOC_MMAP_THRESHOLD_ above it, as this library's mallopt(M_MMAP_THRESHOLD, 256 MiB) does.
    None where glibc's mallinfo2 is not available."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallinfo2.restype = _Mallinfo2
        libc.malloc.restype = ctypes.c_void_p
        libc.free.argtypes = [ctypes.c_void_p]
    except (OSError, AttributeError, TypeError):
        return None
    before = libc.mallinfo2().hblks
    p = libc.malloc(64 << 20)
    mmapped = libc.mallinfo2().hblks > before
    libc.free(p)
    return not mmapped


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--variant", help=f"one of {', '.join(DEFAULT_VARIANTS)} (see variants.py)")
    p.add_argument("--loop", choices=["seed", "tuned"], help="old name of --variant seed|tuned")
    p.add_argument("--image-size", type=int, required=True)
    p.add_argument("--features", type=int, required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--cudnn-benchmark", type=int, default=0, help="1: torch.backends.cudnn.benchmark = True")
    a = p.parse_args()
    a.variant = a.variant or a.loop
    if not a.variant:
        p.error("give --variant")
    try:
        parse_variant(a.variant)  # rejects unknown names before any work
    except ValueError as e:
        p.error(str(e))
    return a


def run(a, device):
    gen, disc = build(channels=1, features_g=a.features, features_d=a.features, image_size=a.image_size, device=device)
    loop = make_loop(a.variant, gen, disc, device)
    real = (torch.rand(a.batch, 1, a.image_size, a.image_size) * 2 - 1).to(device)
    times, warmup_times, losses = [], [], None
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        noise = torch.randn((a.batch, 100, 1, 1)).to(device)
        losses = loop.step(real, noise)
        sync(device)
        dt = (time.perf_counter() - t0) * 1000
        if i == 0:
            print("FIRST", flush=True)
        (times if i >= a.warmup else warmup_times).append(dt)
    return times, warmup_times, [float(x.detach()) for x in losses[:2]]


def main():
    a = parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.backends.cudnn.benchmark = bool(a.cudnn_benchmark)
    torch.manual_seed(0)
    device = torch.device("cuda" if a.device.startswith("cuda") and torch.cuda.is_available() else a.device)
    try:
        times, warmup_times, losses = run(a, device)
    except Exception as e:  # noqa: BLE001 - reported to the caller, which goes on with the other variants
        traceback.print_exc()
        # Every line, the end kept: torch.compile's first line ("backend='inductor' raised:") says
        # nothing, the cause (a missing C compiler, say) comes last.
        reason = " | ".join(line.strip() for line in str(e).strip().splitlines() if line.strip())
        print(json.dumps({"error": f"{type(e).__name__}: {reason}"[-500:], "variant": a.variant}), flush=True)
        sys.exit(FAILED)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {
        "variant": a.variant,
        "precision": precision_of(a.variant),
        "stepMs": times,
        "warmupStepMs": warmup_times,
        "peakRssMb": peak_mb,
        "device": str(device),
        "lossesLastStep": losses,
        "mallocKeepsLargeBlocks": malloc_keeps_large_blocks(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if device.type == "cuda":
        out["peakCudaMb"] = torch.cuda.max_memory_allocated(device) / 2**20
        out["gpu"] = torch.cuda.get_device_name(device)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
