"""The GPU check's runs, started by check.sh (which finds the binary, fixtures and torch's libraries).

In order, each in its own process, within --budget-s seconds in all (what does not fit is reported
as skipped): our parity against PyTorch's fixtures (seed64, and dsteps2 and sn32 where staged; TF32
off, which decides the exit status; eagerly, with deferred numbers and, on a GPU, through a CUDA
graph; then with libtorch's default TF32 convolutions for information), a save/load round trip on
the device (gpu_check roundtrip), our data-parallel step as two Gloo
ranks on the one device against PyTorch DDP's and, with synchronised BatchNorm, against one
process on the global batches (both decide the exit status too), then for each batch size our training
step (default layout, channels-last, bf16 where the build has it) and the eager PyTorch variants,
then the torch.compile variants, whose first step includes the compilation. Prints one table (and
writes it with every number to --out as JSON): median ms per step, images/s, the step's necessary
convolution FLOPs per second (flops.py) and their share of the card's peak for the precision.
"""
import argparse
import json
import os
import platform
import shutil
import signal
import tempfile
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import flops  # noqa: E402

EAGER = ["tuned", "tuned+channels_last", "tuned+channels_last+bf16"]
COMPILED = ["tuned+compile", "tuned+compile+bf16"]
# Our sides: the binary's flags and environment. DCGAN_CHANNELS_LAST picks the layout (gan.rs).
OURS = {
    "ours": ([], {"DCGAN_CHANNELS_LAST": "0"}),
    "ours+channels_last": ([], {"DCGAN_CHANNELS_LAST": "1"}),
    "ours+bf16": (["--precision", "bf16"], {}),
    # The host does not wait for each step's numbers (train_step_deferred), batch on the device or
    # uploaded from the host at every step (pinned, non-blocking), as training from Node does.
    "ours+deferred": (["--defer-stats", "1"], {}),
    "ours+host-batch": (["--host-batch", "1"], {}),
    "ours+host-batch+deferred": (["--host-batch", "1", "--defer-stats", "1"], {}),
    # The same with each batch uploaded on a copy stream of its own (DCGAN_COPY_STREAM=1, device.rs),
    # overlapping the step still running instead of queueing behind it.
    "ours+host-batch+deferred+copy-stream": (["--host-batch", "1", "--defer-stats", "1"], {"DCGAN_COPY_STREAM": "1"}),
    # The step captured once as a CUDA graph and replayed (libdcgan_cuda_graph.so, staged in lib/
    # by prepare.sh and named by DCGAN_CUDA_GRAPH_LIB, which check.sh sets).
    "ours+graph": (["--cuda-graph", "1"], {}),
    # The same without waiting for each step's numbers, the batch from the host: what the host
    # does per step is then one copy of batch and noise and one graph launch.
    "ours+graph+host-batch+deferred": (["--cuda-graph", "1", "--host-batch", "1", "--defer-stats", "1"], {}),
    # Both options with the batch on the device, as PyTorch's workers keep theirs: the host only
    # launches the graph (the batch's range is judged with the numbers), in each precision.
    "ours+graph+deferred": (["--cuda-graph", "1", "--defer-stats", "1"], {}),
    "ours+bf16+graph+deferred": (["--precision", "bf16", "--cuda-graph", "1", "--defer-stats", "1"], {}),
    "ours+bf16+channels_last": (["--precision", "bf16"], {"DCGAN_CHANNELS_LAST": "1"}),
}
# Our sides that the targets most likely compare (the defaults and the fastest options), timed
# before PyTorch's loops; the others, which say what each option gains, after torch.compile.
TARGET_SIDES = ["ours", "ours+bf16", "ours+graph+deferred", "ours+bf16+graph+deferred"]
# Our sides timed last: what uploading from the host costs, not what the targets compare.
HOST_BATCH_SIDES = {"ours+host-batch", "ours+host-batch+deferred", "ours+host-batch+deferred+copy-stream",
                    "ours+graph+host-batch+deferred"}
# glibc's malloc as this library tunes it for itself (executor.rs), given to the Python workers.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(256 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", required=True, help="gpu_check built by prepare.sh")
    p.add_argument("--fixture", required=True, help="folder with init/io/after3.safetensors (seed64)")
    p.add_argument("--ddp-fixture", help="folder with the ddp32 fixture (init, io, after3[.rank1|.global]); no distributed check without it")
    p.add_argument("--reference-dir", required=True, help="folder with dcgan.py, variants.py, bench_worker.py")
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="tiny sizes (32px, 8 features, batches 32,64, 5 steps): a test of the script")
    p.add_argument("--image-size", type=int)
    p.add_argument("--features", type=int)
    p.add_argument("--batches", help="comma-separated (default 128,512)")
    p.add_argument("--steps", type=int)
    p.add_argument("--warmup", type=int)
    p.add_argument("--variants", help=f"Python variants (default {','.join(EAGER + COMPILED)})")
    p.add_argument("--ours", default=",".join(OURS), help=f"our sides (default {','.join(OURS)})")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for both sides (0: each library's default)")
    p.add_argument("--cudnn-benchmark", type=int, default=1,
                   help="cuDNN autotuning on both sides: 1 (the library's default on CUDA, and what a tuned PyTorch loop sets) or 0")
    p.add_argument("--peak-bf16-tflops", type=float, help="dense bf16 peak of the card (default on CUDA: from the card's name, CARD_PEAKS)")
    p.add_argument("--peak-tf32-tflops", type=float, help="dense TF32 peak (default on CUDA: from the card's name)")
    p.add_argument("--bf16-fixtures", help="the committed bf16 fixtures (seed64/, wide32/: init and io), whose inputs "
                   "PyTorch's autocast recipe is run from on this device; no bf16 parity without it")
    p.add_argument("--node", help="Node.js for the Node check (default: node on PATH, else no Node check)")
    p.add_argument("--node-check", help="node/dist/node-check.cjs staged by prepare.sh (its addon and libtorch link beside it)")
    p.add_argument("--budget-s", type=float, default=500, help="seconds for all runs together")
    p.add_argument("--run-timeout-s", type=float, default=240, help="seconds for one run")
    p.add_argument("--no-malloc-tuning", action="store_true", help="leave glibc's malloc defaults to the Python workers")
    p.add_argument("--out", default=".", help="folder for gpu-check-<time>.json")
    a = p.parse_args()
    a.peak_source = "--peak-* given"  # set_peaks says otherwise on CUDA
    a.node = a.node or shutil.which("node")
    quick = a.quick
    a.image_size = a.image_size or (32 if quick else 64)
    a.features = a.features or (8 if quick else 64)
    a.batches = [int(b) for b in (a.batches or ("32,64" if quick else "128,512")).split(",")]
    a.steps = a.steps or (5 if quick else 50)
    a.warmup = a.warmup if a.warmup is not None else (2 if quick else 10)
    a.variants = a.variants.split(",") if a.variants else EAGER + COMPILED
    a.ours = [o for o in a.ours.split(",") if o]
    for o in a.ours:
        if o not in OURS:
            p.error(f"--ours: unknown side '{o}'; allowed: {', '.join(OURS)}")
    return a


# Dense (no sparsity) bf16 and TF32 peaks in TFLOPS from NVIDIA's data sheets, by a substring of
# torch.cuda.get_device_name; the first match wins, so the more specific names come first.
CARD_PEAKS = [("H200 NVL", 835.0, 418.0), ("H200", 989.0, 494.0), ("H100 PCIe", 756.0, 378.0), ("H100 NVL", 835.0, 418.0),
              ("H100", 989.0, 494.0), ("A100", 312.0, 156.0), ("L40S", 362.0, 183.0)]


def set_peaks(a, gpu_name):
    """The card's peaks where --peak-* were not given: from CARD_PEAKS, else the H200's (said so)."""
    found = next(((b, t, name) for name, b, t in CARD_PEAKS if name in gpu_name), None)
    bf16, tf32, source = found if found else (989.0, 494.0, None)
    a.peak_source = (f"--peak-* given" if a.peak_bf16_tflops and a.peak_tf32_tflops else
                     f"data sheet of the {source}" if source else
                     f"'{gpu_name}' not in the table: the H200's peaks assumed (give --peak-bf16-tflops, --peak-tf32-tflops)")
    a.peak_bf16_tflops = a.peak_bf16_tflops or bf16
    a.peak_tf32_tflops = a.peak_tf32_tflops or tf32


class Budget:
    def __init__(self, seconds, per_run):
        self.end = time.monotonic() + seconds
        self.per_run = per_run

    def timeout(self):
        return min(self.per_run, self.end - time.monotonic())


def run_json(cmd, env_extra, budget, cap=None):
    """Runs `cmd` (for at most `cap` seconds when given); returns (its last JSON line or an error
    object, wall seconds)."""
    timeout = min(budget.timeout(), cap or float("inf"))
    if timeout < 5:
        return {"skipped": "time budget spent"}, 0.0
    env = {**os.environ, **env_extra}
    t0 = time.monotonic()
    # A session of its own, so that a timeout also ends torch.compile's worker processes.
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        # A run that printed its result and then hung on exit still counts; one that did not is skipped.
        done = next((line for line in reversed(out.strip().splitlines()) if line.startswith("{")), None)
        if done is None:
            return {"skipped": f"stopped after {timeout:.0f} s"}, time.monotonic() - t0
    wall = time.monotonic() - t0
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line), wall
            except json.JSONDecodeError:
                break
    tail = " | ".join(err.strip().splitlines()[-3:])
    return {"error": f"exit {proc.returncode}: {tail[-400:]}"}, wall


def say(text):
    print(text, file=sys.stderr, flush=True)


def ours_cmd(a, mode, extra):
    cmd = [a.binary, mode, "--device", a.device]
    if mode == "parity":
        return cmd + (extra if "--fixture" in extra else ["--fixture", a.fixture] + extra)
    sizes = ["--image-size", a.image_size, "--features", a.features, "--steps", a.steps, "--warmup", a.warmup,
             "--threads", a.threads, "--cudnn-benchmark", a.cudnn_benchmark]
    return cmd + [str(x) for x in sizes] + extra


def python_cmd(a, variant, batch):
    args = ["--variant", variant, "--image-size", a.image_size, "--features", a.features, "--batch", batch,
            "--steps", a.steps, "--warmup", a.warmup, "--threads", a.threads, "--device", a.device,
            "--cudnn-benchmark", a.cudnn_benchmark]
    return [sys.executable, os.path.join(a.reference_dir, "bench_worker.py")] + [str(x) for x in args]


def parity_runs(a, budget, out, save):
    runs = [("strict", {"NVIDIA_TF32_OVERRIDE": "0"}, []),
            # The same steps not waiting for their numbers (pinned copy + event): the same numbers.
            ("strict, deferred numbers", {"NVIDIA_TF32_OVERRIDE": "0"}, ["--defer-stats", "1"])]
    if a.device.startswith("cuda"):
        runs.append(("default TF32", {}, []))  # libtorch lets cuDNN convolutions use TF32 by default
        # Step 1 eager, step 2 captured and replayed, step 3 replayed: the same three steps.
        runs.append(("strict, CUDA graph", {"NVIDIA_TF32_OVERRIDE": "0"}, ["--cuda-graph", "1"]))
        runs.append(("strict, CUDA graph, deferred numbers", {"NVIDIA_TF32_OVERRIDE": "0"}, ["--cuda-graph", "1", "--defer-stats", "1"]))
        # Host batches uploaded on the copy stream while the previous step runs: the same numbers.
        runs.append(("strict, copy stream, deferred numbers", {"NVIDIA_TF32_OVERRIDE": "0", "DCGAN_COPY_STREAM": "1"}, ["--defer-stats", "1"]))
    # Fixtures beside seed64 with other training options: two D updates per step, and spectral
    # normalisation (power iterations in place), each eagerly and, on a GPU, through a graph.
    for fixture, what in (("dsteps2", "dSteps 2"), ("sn32", "spectral norm")):
        folder = os.path.join(os.path.dirname(a.fixture), fixture)
        if not os.path.isdir(folder):
            continue
        runs.append((f"strict, {what}", {"NVIDIA_TF32_OVERRIDE": "0"}, ["--fixture", folder]))
        if a.device.startswith("cuda"):
            runs.append((f"strict, {what}, CUDA graph", {"NVIDIA_TF32_OVERRIDE": "0"}, ["--fixture", folder, "--cuda-graph", "1"]))
    for name, env, extra in runs:
        say(f"parity ({name})...")
        out[name], _ = run_json(ours_cmd(a, "parity", extra), env, budget)
        say(f"  {json.dumps(out[name])}")
        save()
    return out


def bf16_parity_run(a, budget, out, save):
    """PyTorch's bf16 autocast recipe run on this device from the committed inputs
    (make_bf16_fixtures.py --device, which also measures how far PyTorch's own variants and
    deliberate bugs land), then our bf16 step against it (gpu_check parity-bf16)."""
    script = os.path.join(a.reference_dir, "make_bf16_fixtures.py")
    if not (a.bf16_fixtures and os.path.isdir(a.bf16_fixtures) and os.path.exists(script)):
        out["skipped"] = "no bf16 fixtures or make_bf16_fixtures.py staged"
        return out
    tmp = tempfile.mkdtemp(prefix="dcgan-bf16-")
    try:
        say("bf16: PyTorch's autocast recipe on this device...")
        out["pytorch"], _ = run_json([sys.executable, script, "--device", a.device, "--inputs", a.bf16_fixtures,
                                      "--out", tmp, "--measure"], {"NVIDIA_TF32_OVERRIDE": "0"}, budget)
        say(f"  {json.dumps(out['pytorch'])[:300]}")
        if "fixtures" in out["pytorch"]:
            say("bf16: ours against it...")
            # PyTorch's own recipe in the other layout: the noise of a correct bf16 step on this device.
            noise = {name: m.get("correct (contiguous layout)", {}) for name, m in out["pytorch"].get("measured", {}).items()}
            noise = {name: n for name, n in noise.items() if "error" not in n}
            ours = [a.binary, "parity-bf16", "--device", a.device, "--precision", "bf16", "--fixture", tmp, "--noise", json.dumps(noise)]
            out["ours"], _ = run_json(ours, {"NVIDIA_TF32_OVERRIDE": "0"}, budget)
            say(f"  {json.dumps(out['ours'])}")
            runs = [out["ours"]]
            if a.device.startswith("cuda"):
                say("bf16: ours through a CUDA graph against it...")
                out["oursGraph"], _ = run_json(ours + ["--cuda-graph", "1"], {"NVIDIA_TF32_OVERRIDE": "0"}, budget)
                say(f"  {json.dumps(out['oursGraph'])}")
                runs.append(out["oursGraph"])
            out["pass"] = all(r.get("pass") for r in runs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    save()
    return out


def roundtrip_run(a, budget, out, save):
    """Save, load on the device and on the host, save again; resume; ONNX; loadWeights into a graph."""
    say("save/load round trip...")
    out.update(run_json([a.binary, "roundtrip", "--device", a.device, "--fixture", a.fixture],
                        {"NVIDIA_TF32_OVERRIDE": "0"}, budget)[0])
    say(f"  {json.dumps(out)}")
    save()
    return out


def node_run(a, budget, out, rows, save):
    """The library as Node uses it (node-check.ts): parity through the TypeScript API, the Trainer's
    deferStats/cudaGraph and resume, and steps timed from Node; its timed rows join the table."""
    if not (a.node and a.node_check):
        out["skipped"] = "no Node.js on this machine" if a.node_check else "no node-check staged (prepare.sh)"
        return out
    try:
        version = subprocess.run([a.node, "-p", "process.versions.node"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        version = f"? ({e})"
    if not version.split(".")[0].isdigit() or int(version.split(".")[0]) < 20:
        out["skipped"] = f"{a.node} is Node {version}; the package needs Node 20 or later"
        return out
    say("Node check...")
    cmd = [a.node, a.node_check, "--device", a.device, "--fixture", a.fixture, "--bench-size", str(a.image_size),
           "--bench-features", str(a.features), "--bench-batches", ",".join(map(str, a.batches)),
           "--bench-steps", str(a.steps), "--bench-warmup", str(a.warmup)]
    # No LD_LIBRARY_PATH: the loader would find libtorch there before the addon's RUNPATH, and the
    # point is the route an npm install takes.
    r, wall = run_json(cmd, {"NVIDIA_TF32_OVERRIDE": "0", "LD_LIBRARY_PATH": ""}, budget, cap=150)
    out.update(r, wallS=round(wall, 1))
    for row in r.get("bench", []) if isinstance(r.get("bench"), list) else []:
        say(f"  {row['side']}, batch {row['batch']}: {summary(row)}")
        rows.append(row)
    say(f"  {json.dumps({k: v for k, v in r.items() if k != 'bench'})}")
    save()
    return out


def dist_runs(a, budget, out, save):
    """Two Gloo ranks of our binary on the device, without and with synchronised BatchNorm."""
    if not a.ddp_fixture:
        return out
    for sync in (0, 1):
        name = "SyncBatchNorm" if sync else "DDP"
        say(f"data-parallel, 2 ranks ({name})...")
        cmd = [a.binary, "dist", "--device", a.device, "--fixture", a.ddp_fixture, "--sync-bn", str(sync)]
        # The loopback device for Gloo: a machine without a network may not resolve its own hostname.
        out[name], _ = run_json(cmd, {"NVIDIA_TF32_OVERRIDE": "0", "GLOO_SOCKET_IFNAME": "lo"}, budget)
        say(f"  {json.dumps(out[name])}")
        save()
    return out


def bench_plan(a):
    """The runs in order of what the targets need, so that a budget spent early skips the least:
    per batch our likely fastest sides and PyTorch's eager loops, then torch.compile, then our
    sides that say what each option gains, then those that say what a batch from the host costs."""
    main = [s for s in a.ours if s in TARGET_SIDES]
    extra = ([s for s in a.ours if s not in TARGET_SIDES and s not in HOST_BATCH_SIDES]
             + [s for s in a.ours if s in HOST_BATCH_SIDES])
    plan = []
    for batch in a.batches:
        plan += [("ours", side, batch) for side in main]
        plan += [("python", v, batch) for v in a.variants if v not in COMPILED]
    # The largest batch first: the bf16 utilisation target is measured there.
    plan += [("python", v, batch) for batch in sorted(a.batches, reverse=True) for v in a.variants if v in COMPILED]
    plan += [("ours", side, batch) for batch in a.batches for side in extra]
    return plan


def precision_of(side):
    """A bench side's precision, from its name ("ours+bf16", "tuned+compile+bf16")."""
    return "bf16" if "bf16" in side.split("+") else "fp32"


def no_compiler_reason(a):
    """Why torch.compile cannot run on this GPU machine, or None: Triton builds its launcher with a
    C compiler at first use, and without one every compiled run fails after its set-up."""
    if not a.device.startswith("cuda") or os.environ.get("CC") or any(shutil.which(c) for c in ("gcc", "cc", "clang")):
        return None
    return "no C compiler on this machine (no gcc, cc, clang or CC): Triton needs one to build its launcher"


def bench_runs(a, budget, rows, save):
    python_env = {} if a.no_malloc_tuning else MALLOC_ENV
    no_compiler = no_compiler_reason(a)
    for kind, side, batch in bench_plan(a):
        say(f"{side}, batch {batch}...")
        if kind == "python" and side in COMPILED and no_compiler:
            r = {"skipped": no_compiler, "side": side, "batch": batch, "precision": precision_of(side)}
            say(f"  {no_compiler}")
            rows.append(r)
            save()
            continue
        if kind == "ours":
            flags, env = OURS[side]
            r, wall = run_json(ours_cmd(a, "bench", ["--batch", str(batch)] + flags), env, budget)
            r.setdefault("precision", precision_of(side))
        else:
            r, wall = run_json(python_cmd(a, side, batch), python_env, budget)
            r["firstStepMs"] = r.get("warmupStepMs", [None])[0] if r.get("warmupStepMs") else None
            if "stepMs" in r:
                times = sorted(r["stepMs"])
                r["medianStepMs"] = quantile(times, 0.5)
                r["p10StepMs"], r["p90StepMs"] = quantile(times, 0.1), quantile(times, 0.9)
                r["imagesPerSec"] = batch * 1000 / r["medianStepMs"]
            r.setdefault("precision", precision_of(side))
        r.update(side=side, batch=batch, wallS=round(wall, 1))
        say(f"  {summary(r)}")
        rows.append(r)
        save()
    return rows


def num(x):
    """A measured number for the summary: a NaN comes back from JSON as null, which must print too."""
    return f"{x:.3g}" if isinstance(x, (int, float)) else str(x)


def pct(x):
    return f"{100 * x:.2f}%" if isinstance(x, (int, float)) else str(x)


def quantile(sorted_values, q):
    i = (len(sorted_values) - 1) * q
    lo = int(i)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (i - lo)


def summary(r):
    if "medianStepMs" in r:
        busy = r.get("deviceBusyAtReturn")
        # With deferred numbers the GPU should still be working when a call returns; if it rarely
        # is, something in the step waits for the GPU (a host read or a blocking copy).
        busy = f", device busy at return {100 * busy:.0f}% of steps" if busy is not None else ""
        return f"median {r['medianStepMs']:.2f} ms, {r['imagesPerSec']:.0f} images/s{busy}"
    return next(f"{k}: {r[k]}" for k in ("skipped", "error") if k in r)


def table(a, rows, flop_per_image):
    head = ("| side | precision | batch | median ms/step | p10–p90 ms | images/s | useful TFLOP/s | MFU | "
            "first step ms | ms / ours ms |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|"]
    ours = {r["batch"]: r for r in rows if r["side"] == "ours" and "medianStepMs" in r}
    peaks = {"bf16": a.peak_bf16_tflops, "fp32": a.peak_tf32_tflops}
    for r in rows:
        if "medianStepMs" not in r:
            why = str(r.get("error") or r.get("skipped"))[-150:]
            lines.append(f"| {r['side']} | {r['precision']} | {r['batch']} | {why} | | | | | | |")
            continue
        tflops = flop_per_image * r["batch"] / (r["medianStepMs"] / 1000) / 1e12
        peak = peaks.get(r["precision"])
        mfu = f"{100 * tflops / peak:.1f}%" if peak else "—"
        first = f"{r['firstStepMs']:.0f}" if r.get("firstStepMs") is not None else "—"
        base = ours.get(r["batch"])
        rel = f"{r['medianStepMs'] / base['medianStepMs']:.2f}×" if base else "—"
        lines.append(f"| {r['side']} | {r['precision']} | {r['batch']} | {r['medianStepMs']:.2f} | "
                     f"{r['p10StepMs']:.2f}–{r['p90StepMs']:.2f} | {r['imagesPerSec']:.0f} | {tflops:.3g} | {mfu} | "
                     f"{first} | {rel} |")
    return "\n".join(lines)


# Our sides with the batch resident on the device, as the PyTorch workers keep theirs: what the
# targets compare. The host-batch sides and Node's rows say what uploading costs.
RESIDENT_SIDES = {"ours", "ours+channels_last", "ours+bf16", "ours+deferred", "ours+graph", "ours+graph+deferred",
                  "ours+bf16+graph+deferred", "ours+bf16+channels_last"}
# Issue 8's CUDA targets at the paper size.
TARGET_VS_EAGER, TARGET_VS_FASTEST, TARGET_BF16_MFU, MFU_BATCH = 2.0, 1.2, 0.40, 512


# (side without, side with) for each option whose default on CUDA waits for these numbers.
OPTION_PAIRS = {
    "deferStats": ("ours", "ours+deferred"),
    "cudaGraph": ("ours", "ours+graph"),
    "deferStats with cudaGraph": ("ours+graph", "ours+graph+deferred"),
    "cudaGraph and deferStats in bf16": ("ours+bf16", "ours+bf16+graph+deferred"),
    "channels-last in bf16": ("ours+bf16", "ours+bf16+channels_last"),
    "deferStats from the host": ("ours+host-batch", "ours+host-batch+deferred"),
    "copy stream": ("ours+host-batch+deferred", "ours+host-batch+deferred+copy-stream"),
    "cudaGraph from the host": ("ours+host-batch+deferred", "ours+graph+host-batch+deferred"),
    "deferStats from Node": ("node+host-batch", "node+host-batch+deferred"),
    "Rust instead of Node (deferred)": ("node+host-batch+deferred", "ours+host-batch+deferred"),
}


def targets(a, rows, flop_per_image):
    """Issue 8's CUDA targets from the timed rows, per batch: (JSON-able verdicts, text)."""
    timed = [r for r in rows if "medianStepMs" in r]
    fastest = lambda rs: min(rs, key=lambda r: r["medianStepMs"]) if rs else None  # noqa: E731
    out, lines = {}, []
    for batch in a.batches:
        at = [r for r in timed if r["batch"] == batch]
        verdict = {}
        for precision in ("fp32", "bf16"):
            ours = fastest([r for r in at if r["side"] in RESIDENT_SIDES and r["precision"] == precision])
            theirs = fastest([r for r in at if r["side"].startswith("tuned") and r["precision"] == precision])
            if not (ours and theirs):
                continue
            v = {"ours": ours["side"], "oursMs": ours["medianStepMs"], "fastestPyTorch": theirs["side"],
                 "vsFastest": theirs["medianStepMs"] / ours["medianStepMs"]}
            v["vsFastestMet"] = v["vsFastest"] >= TARGET_VS_FASTEST
            eager = next((r for r in at if r["side"] == "tuned"), None)
            if precision == "fp32" and eager:
                v["vsEagerTuned"] = eager["medianStepMs"] / ours["medianStepMs"]
                v["vsEagerTunedMet"] = v["vsEagerTuned"] >= TARGET_VS_EAGER
            if precision == "bf16" and a.peak_bf16_tflops:
                v["mfu"] = flop_per_image * batch / (ours["medianStepMs"] / 1000) / 1e12 / a.peak_bf16_tflops
                if batch == MFU_BATCH:
                    v["mfuMet"] = v["mfu"] >= TARGET_BF16_MFU
            verdict[precision] = v
            say_met = lambda ok: "met" if ok else "MISSED"  # noqa: E731
            text = (f"batch {batch}, {precision}: ours fastest {ours['side']} {ours['medianStepMs']:.2f} ms; against the "
                    f"fastest PyTorch {theirs['side']} {theirs['medianStepMs']:.2f} ms: {v['vsFastest']:.2f}× "
                    f"(target ≥ {TARGET_VS_FASTEST}×: {say_met(v['vsFastestMet'])})")
            if "vsEagerTuned" in v:
                text += f"; against eager tuned: {v['vsEagerTuned']:.2f}× (target ≥ {TARGET_VS_EAGER}×: {say_met(v['vsEagerTunedMet'])})"
            if "mfu" in v:
                text += f"; MFU {100 * v['mfu']:.1f}%" + (f" (target ≥ {100 * TARGET_BF16_MFU:.0f}% at batch {MFU_BATCH}: "
                                                         f"{say_met(v['mfuMet'])})" if "mfuMet" in v else "")
            lines.append(text)
        # What each experimental option gains, for choosing CUDA's defaults (> 1: the option is faster).
        gains = {}
        by_side = {r["side"]: r["medianStepMs"] for r in at}
        for option, (without, with_) in OPTION_PAIRS.items():
            if without in by_side and with_ in by_side:
                gains[option] = by_side[without] / by_side[with_]
        if gains:
            verdict["optionGains"] = gains
            lines.append(f"batch {batch}, what each option gains (time without / time with): "
                         + ", ".join(f"{k} {v:.2f}×" for k, v in gains.items()))
        out[str(batch)] = verdict
    return out, "\n".join(lines)


def environment(a):
    info = {"python": sys.executable, "torch": torch.__version__, "platform": platform.platform(),
            "cudaAvailable": torch.cuda.is_available(), "device": a.device}
    if a.device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    return info


def main():
    a = parse_args()
    started = time.monotonic()
    budget = Budget(a.budget_s, a.run_timeout_s)
    env = environment(a)
    say(f"environment: {json.dumps(env)}")
    if a.device.startswith("cuda") and not env["cudaAvailable"]:
        # Every run would fail the same way: say so at once instead of spending the machine's time.
        say(f"check.py: --device {a.device}, but this torch sees no CUDA device (torch {env['torch']}, built for CUDA "
            f"{torch.version.cuda}): check the driver (nvidia-smi) or run with --device cpu")
        sys.exit(2)
    if a.device.startswith("cuda"):
        set_peaks(a, env["gpu"])
        env["peaks"] = {"bf16Tflops": a.peak_bf16_tflops, "tf32Tflops": a.peak_tf32_tflops, "source": a.peak_source}
        say(f"peaks: {json.dumps(env['peaks'])}")
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
    count = flops.count(a.image_size, a.features, reference_dir=a.reference_dir)
    say(f"FLOPs per image and step: {json.dumps(count)}")
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, f"gpu-check-{time.strftime('%Y%m%d-%H%M%S')}.json")
    parity, bf16, roundtrip, dist, node, rows = {}, {}, {}, {}, {}, []

    def save(**final):
        # Rewritten after every run, so that a check stopped from outside still leaves its numbers.
        record = {"environment": env, "args": {k: v for k, v in vars(a).items()}, "flops": count,
                  "parity": parity, "bf16Parity": bf16, "roundtrip": roundtrip, "distributed": dist, "node": node, "runs": rows,
                  "pythonMalloc": {} if a.no_malloc_tuning else MALLOC_ENV,
                  "seconds": round(time.monotonic() - started, 1), "complete": False, **final}
        with open(path + ".tmp", "w") as f:
            json.dump(record, f, indent=1)
        os.replace(path + ".tmp", path)

    parity_runs(a, budget, parity, save)
    bf16_parity_run(a, budget, bf16, save)
    roundtrip_run(a, budget, roundtrip, save)
    dist_runs(a, budget, dist, save)
    node_run(a, budget, node, rows, save)
    bench_runs(a, budget, rows, save)
    text = table(a, rows, count["stepFlopPerImage"])
    strict = parity.get("strict", {})
    # Every parity run with TF32 off decides (the default-TF32 run is shown, not judged).
    passed = (strict.get("pass") is True
              and all(r.get("pass") is True for name, r in parity.items() if name.startswith("strict"))
              and roundtrip.get("pass") is True
              and bf16.get("pass") is not False
              # A Node check that timed out or ran out of budget fails; only a machine without Node skips it.
              and (node.get("pass") is True or str(node.get("skipped", "")).startswith(("no ", a.node or "-")))
              and all(r.get("pass") is True for r in dist.values()))
    print()
    print(f"GPU check: {env.get('gpu', a.device)}; torch {env['torch']}; {a.image_size}px, {a.features} features; "
          f"{a.steps} timed steps after {a.warmup}; cuDNN benchmark {'on' if a.cudnn_benchmark else 'off'}; "
          f"Python malloc {'glibc defaults' if a.no_malloc_tuning else 'tuned as ours'}")
    peaks = (f"MFU against {a.peak_bf16_tflops:g} TFLOPS for bf16 and {a.peak_tf32_tflops:g} TFLOPS (TF32, what "
             f"cuDNN convolutions use for fp32 by default) for fp32 ({a.peak_source})" if a.peak_bf16_tflops and a.peak_tf32_tflops
             else "no peak given (--peak-bf16-tflops, --peak-tf32-tflops): no MFU")
    print(f"FLOPs: {count['stepFlopPerImage'] / 1e9:.4g} GFLOP per image per step needed (the tuned PyTorch loop "
          f"executes {count['tunedLoopFlopPerImage'] / 1e9:.4g}, the seed's {count['countedSeedLoopFlopPerImage'] / 1e9:.4g}; "
          f"FlopCounterMode agrees); {peaks}")
    for name, r in parity.items():
        print(f"parity ({name}): " + (f"max |diff| state {num(r['maxStateDiff'])} ({r['worstTensor']}), stats "
                                       f"{num(r['maxStatsDiff'])}, tolerance {r['tolerance']:g}"
                                       + ("" if r.get("deviceBatchOutOfRangeRefused") is None else
                                          f", device batches of bytes and with a NaN refused: {r['deviceBatchOutOfRangeRefused']}")
                                       + ("" if r.get("divergedSaid") is None else f", NaN weights said: {r['divergedSaid']}")
                                       + ("" if r.get("graphReplays") is None else f", graph replays: {r['graphReplays']}")
                                       + f": {'PASS' if r['pass'] else 'FAIL'}"
                                       if "pass" in r else json.dumps(r)))
    if "ours" in bf16 and "fixtures" in bf16["ours"]:
        ours, measured = bf16["ours"], bf16["pytorch"].get("measured", {})
        tol = ours["tolerances"]
        parts = []
        for f in ours["fixtures"]:
            own = measured.get(f["fixture"], {}).get("correct (contiguous layout)", {})
            parts.append(f"{f['fixture']}: stats {num(f['maxStatsDiff'])}, BN statistics {num(f['maxBnStatsDiff'])}, "
                         f"weights off by > lr/2 {pct(f['weightsOffByHalfLr'])} (PyTorch's own recipe in the other "
                         f"layout: {num(own.get('stats', float('nan')))}, {num(own.get('bn_stats', float('nan')))}, "
                         f"{pct(own.get('weights_off_by_half_lr', float('nan')))})")
        # Whether the bounds used still fail each deliberate bug PyTorch's script measured here.
        caught = {}
        for f in ours["fixtures"]:
            b = f.get("bounds", {})
            for bug, d in measured.get(f["fixture"], {}).items():
                if bug.startswith("correct") or "error" in d:
                    continue
                hit = (d["stats"] > b.get("stats", 0) or d["bn_stats"] > b.get("bnStats", 0)
                       or d["weights_off_by_half_lr"] > b.get("weightsOffByHalfLr", 0))
                caught[bug] = caught.get(bug, True) and hit
        print(f"bf16 against PyTorch's autocast recipe run on this device: {'; '.join(parts)}; bounds {tol['stats']:g}, "
              f"{tol['bnStats']:g}, {100 * tol['weightsOffByHalfLr']:g}% (tests/bf16.rs), widened to PyTorch's own "
              f"noise where that is larger: {json.dumps([f.get('bounds') for f in ours['fixtures']])}; deliberate bugs "
              f"those bounds fail on every fixture: {json.dumps(caught)}: {'PASS' if ours['pass'] else 'FAIL'}")
        g = bf16.get("oursGraph", {})
        if "fixtures" in g:
            print("bf16 through a CUDA graph, the same bounds: " + "; ".join(
                f"{f['fixture']}: stats {num(f['maxStatsDiff'])}, BN statistics {num(f['maxBnStatsDiff'])}, weights off by "
                f"> lr/2 {pct(f['weightsOffByHalfLr'])}, graph replays {f.get('graphReplays')}" for f in g["fixtures"])
                + f": {'PASS' if g['pass'] else 'FAIL'}")
        elif g:
            print(f"bf16 through a CUDA graph: {json.dumps(g)[:400]}")
    else:
        print(f"bf16 parity: {json.dumps(bf16)[:600]}")
    c = roundtrip.get("checks", {})
    print("save, load on the device and on the host, save again: " + (
        f"same contents {c['savedLoadedSavedSame']}; step 3 of the loaded model against PyTorch's: max |diff| "
        f"{num(c['resumedStepMaxDiff'])} ({c['resumedWorstTensor']}), counters {c['resumedCountersOk']}; ONNX from the "
        f"device model same as from the host copy: {c['onnxSameAsHostCopy']}; samples' max |diff| from the host copy's "
        f"{num(c['samplesMaxDiffFromHostCopy'])}"
        + ("" if c.get("loadWeightsIntoGraphReplays") is None and c.get("loadWeightsIntoGraphMaxDiff") is None else
           f"; weights loaded into a replaying CUDA graph against an eager model: max |diff| "
           f"{num(c['loadWeightsIntoGraphMaxDiff'])}, replays {c['loadWeightsIntoGraphReplays']}")
        + ("" if c.get("gpuMemoryGuard") is None else f"; memory guard against the GPU's memory: {json.dumps(c['gpuMemoryGuard'])}")
        + f"; tolerance {c['tolerance']:g}: {'PASS' if roundtrip['pass'] else 'FAIL'}" if c else json.dumps(roundtrip)))
    for name, r in dist.items():
        ranks = r.get("ranks", [])
        print(f"data-parallel, 2 Gloo ranks on {a.device} ({name}): " + (
            "; ".join(f"rank {x.get('rank')} max |diff| {num(x.get('maxStateDiff', float('nan')))} against {x.get('reference')}" for x in ranks)
            + f", tolerance {ranks[0].get('tolerance') if ranks else '?'}: {'PASS' if r['pass'] else 'FAIL'}" if "pass" in r else json.dumps(r)))
    if "skipped" in node or "error" in node or "pass" not in node:
        print(f"Node check: {node.get('skipped') or node.get('error') or json.dumps(node)}")
    else:
        t = node.get("trainer", {})
        fast = next((k for k in t if k.startswith("deferStats")), None)
        print(f"Node check (Node {node.get('node')}, the addon with this machine's libtorch): parity through the "
              f"TypeScript API max |diff| {num(node['parity'].get('maxStateDiff', float('nan')))}; Trainer {fast} and a resume "
              f"against the plain run: max |diff| {t.get(fast, {}).get('maxStateDiff', float('nan')):.3g} and "
              f"{t.get('resumedAt5', {}).get('maxStateDiff', float('nan')):.3g}: {'PASS' if node['pass'] else 'FAIL'}"
              if "maxStateDiff" in node.get("parity", {}) else f"Node check: {json.dumps(node)[:600]}")
    verdicts, verdict_text = targets(a, rows, count["stepFlopPerImage"])
    print()
    print(text)
    print(f"\nTargets ({a.image_size}px, {a.features} features; the paper size is 64px, 64 features):\n{verdict_text}")
    save(table=text, targets=verdicts, complete=True)
    print(f"\nwrote {path} ({time.monotonic() - started:.0f} s)")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
