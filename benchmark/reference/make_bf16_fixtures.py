"""Writes the bf16 fixtures of __test__/fixtures/bf16 from PyTorch's own mixed-precision recipe.

The loop is the tuned seed loop (fake.detach() for the D step) under
`torch.autocast('cpu', dtype=torch.bfloat16)`: the forwards run inside autocast (convolutions in
bfloat16 on bfloat16 copies of the float32 weights), D's Sigmoid is left out and the losses are
BCE-with-logits on its float32-cast logits (Sigmoid + BCELoss is not autocast-safe), backward and
Adam run outside autocast on the float32 weights. Model and inputs are channels-last, as in
PyTorch's fastest CPU recipe.

For each configuration it writes init.safetensors (when not reused), io.safetensors (inputs and
the five statistics of each step), after1/after3.safetensors (state_dicts). With --measure it
also prints how far variants of the recipe land from these numbers: the same recipe in the
contiguous layout (the noise a correct bf16 step may show) and three wrong implementations (the
size a bug makes), which is what the tolerances of the tests are chosen between.

    node scripts/with-torch.mjs python benchmark/reference/make_bf16_fixtures.py [--measure] [--out DIR]

With --device cuda (the GPU check) the same recipe runs under CUDA's autocast, from the committed
inputs (--inputs names their folder where the script is not in the repository), and its last
line is a JSON summary. Without the safetensors package (a torch-only environment) the files
are read and written by the small reader and writer below.
"""
import argparse
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

try:
    if os.environ.get("DCGAN_NO_SAFETENSORS"):  # to test the fallback where the package exists
        raise ImportError
    from safetensors.torch import load_file, save_file
except ImportError:
    from safetensors_fallback import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dcgan import BETAS, LEARNING_RATE, build  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "__test__", "fixtures")
ROOT = os.path.join(FIXTURES, "bf16")
OUT = ROOT  # --out: where to write (the test runner writes this machine's reference there)
DEVICE = "cpu"  # --device: where PyTorch's recipe runs
STEPS = 3

CONFIGS = {
    # The seed's 64×64 network with few features: weights and inputs of ../seed64.
    "seed64": dict(z_dim=100, channels=1, features_g=2, features_d=3, image_size=64, batch=4, reuse="seed64"),
    # Wider layers and a larger batch, so that BatchNorm statistics and losses average over more values.
    "wide32": dict(z_dim=32, channels=3, features_g=16, features_d=16, image_size=32, batch=16),
}


def d_logits(disc, x):
    """D without its final Sigmoid: the pre-sigmoid output, one per image."""
    return disc.disc[:-1](x).reshape(-1)


class AutocastLoop:
    """PyTorch's bf16 autocast version of the tuned seed loop. `variant` makes a deliberate mistake."""

    def __init__(self, gen, disc, variant="correct"):
        self.gen, self.disc, self.variant = gen, disc, variant
        self.opt_gen = torch.optim.Adam(gen.parameters(), lr=LEARNING_RATE, betas=BETAS)
        self.opt_disc = torch.optim.Adam(disc.parameters(), lr=LEARNING_RATE, betas=BETAS)

    def loss(self, out, target):
        if self.variant == "loss-on-probabilities":
            # The seed's Sigmoid + BCELoss on the bfloat16 output: probabilities rounded to bfloat16.
            p = torch.sigmoid(out)
            return F.binary_cross_entropy(p, torch.full_like(p, target)).float()
        return F.binary_cross_entropy_with_logits(out.float(), torch.full_like(out.float(), target))

    def step(self, real, noise):
        gen, disc = self.gen, self.disc
        with torch.autocast(torch.device(DEVICE).type, dtype=torch.bfloat16):
            fake = gen(noise)
            logits_real = d_logits(disc, real)
            logits_fake = d_logits(disc, fake.detach())
            loss_d = (self.loss(logits_real, 1.0) + self.loss(logits_fake, 0.0)) / 2
        disc.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_disc.step()

        with torch.autocast(torch.device(DEVICE).type, dtype=torch.bfloat16):
            output = d_logits(disc, fake)
            loss_gen = self.loss(output, 1.0)
        gen.zero_grad(set_to_none=True)
        loss_gen.backward()
        self.opt_gen.step()
        self.after_step()
        mean_p = lambda x: torch.sigmoid(x.float()).mean()  # noqa: E731
        return loss_d, loss_gen, mean_p(logits_real), mean_p(logits_fake), mean_p(output)

    def after_step(self):
        if self.variant == "bn-stats-bf16":
            for m in list(self.gen.modules()) + list(self.disc.modules()):
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.copy_(m.running_mean.bfloat16().float())
                    m.running_var.copy_(m.running_var.bfloat16().float())
        if self.variant == "weights-bf16":
            with torch.no_grad():
                for p in list(self.gen.parameters()) + list(self.disc.parameters()):
                    p.copy_(p.bfloat16().float())


def state(gen, disc):
    sd = {**gen.state_dict(), **disc.state_dict()}
    return {k: v.detach().cpu().clone().contiguous() for k, v in sd.items()}


def inputs(name, cfg):
    """Initial weights and per-step inputs: those of the fp32 fixture, or new ones. With --out, those
    of the committed bf16 fixture, so that a live run starts from exactly the same numbers."""
    committed = os.path.join(ROOT, name)
    if OUT != ROOT and os.path.exists(os.path.join(committed, "io.safetensors")):
        io = {k: v for k, v in load_file(os.path.join(committed, "io.safetensors")).items() if k.startswith(("real.", "noise."))}
        return load_file(os.path.join(committed, "init.safetensors")), io
    if cfg.get("reuse"):
        src = os.path.join(FIXTURES, cfg["reuse"])
        return load_file(os.path.join(src, "init.safetensors")), load_file(os.path.join(src, "io.safetensors"))
    torch.manual_seed(4321)
    model = {k: v for k, v in cfg.items() if k not in ("batch", "reuse")}
    gen, disc = build(**model)
    s, c, z, b = cfg["image_size"], cfg["channels"], cfg["z_dim"], cfg["batch"]
    io = {}
    for step in range(1, STEPS + 1):
        io[f"real.{step}"] = torch.rand(b, c, s, s) * 2 - 1
        io[f"noise.{step}"] = torch.randn(b, z, 1, 1)
    return state(gen, disc), io


def run(cfg, init, io, variant="correct", channels_last=True):
    """Three autocast steps from `init`; returns (stats per step, state after 1, state after 3)."""
    torch.set_num_threads(1)
    model = {k: v for k, v in cfg.items() if k not in ("batch", "reuse")}
    gen, disc = build(**model)
    gen.load_state_dict({k: v for k, v in init.items() if k.startswith("gen.")})
    disc.load_state_dict({k: v for k, v in init.items() if k.startswith("disc.")})
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    gen, disc = gen.to(DEVICE, memory_format=fmt), disc.to(DEVICE, memory_format=fmt)
    if variant == "weights-bf16":
        AutocastLoop(gen, disc, variant).after_step()
    loop = AutocastLoop(gen, disc, variant)
    stats, states = {}, {}
    for step in range(1, STEPS + 1):
        real = io[f"real.{step}"].to(DEVICE).contiguous(memory_format=fmt)
        out = loop.step(real, io[f"noise.{step}"].to(DEVICE))
        stats[step] = torch.stack([x.detach().float() for x in out]).cpu()
        if step in (1, STEPS):
            states[step] = state(gen, disc)
    return stats, states


def max_diffs(a, b):
    """Largest differences between two runs: statistics, weights in units of the learning rate
    (an Adam step moves a weight by about lr at most), BatchNorm running statistics."""
    stats = max((a[0][s] - b[0][s]).abs().max().item() for s in a[0])
    weights, bn, off, total = 0.0, 0.0, 0, 0
    for step in (1, STEPS):
        for k, va in a[1][step].items():
            diff = (va.double() - b[1][step][k].double()).abs()
            if k.endswith("num_batches_tracked"):
                continue
            if "running" in k:
                bn = max(bn, diff.max().item())
            else:
                weights = max(weights, diff.max().item() / LEARNING_RATE)
                off += (diff > LEARNING_RATE / 2).sum().item()
                total += diff.numel()
    # Adam turns a tiny gradient into a step of about lr, so a weight whose gradient is near zero
    # may land a whole lr away: what separates runs is how many weights do.
    return dict(stats=stats, bn_stats=bn, weights_in_lr=weights, weights_off_by_half_lr=off / total)


def make(name, cfg, measure):
    init, io_in = inputs(name, cfg)
    out = os.path.join(OUT, name)
    os.makedirs(out, exist_ok=True)
    config = {"zDim": cfg["z_dim"], "channels": cfg["channels"], "featuresG": cfg["features_g"],
              "featuresD": cfg["features_d"], "imageSize": cfg["image_size"], "batch": cfg["batch"]}
    meta = {"config": json.dumps(config), "torch": torch.__version__, "recipe": "autocast-bf16-channels-last"}
    save_file(init, os.path.join(out, "init.safetensors"), metadata=meta)
    stats, states = run(cfg, init, io_in)
    io = {k: v.contiguous() for k, v in io_in.items() if k.startswith(("real.", "noise."))}
    for step, s in stats.items():
        io[f"stats.{step}"] = s
    save_file(io, os.path.join(out, "io.safetensors"), metadata=meta)
    for step, sd in states.items():
        save_file(sd, os.path.join(out, f"after{step}.safetensors"), metadata=meta)
    print(f"{name}: wrote {out}")
    measured = {}
    if measure:
        ref = (stats, states)
        for variant, cl in (("correct", False), ("loss-on-probabilities", True), ("weights-bf16", True),
                            ("bn-stats-bf16", True)):
            label = f"{variant}{'' if cl else ' (contiguous layout)'}"
            try:
                measured[label] = max_diffs(run(cfg, init, io_in, variant, cl), ref)
            except RuntimeError as e:
                # CUDA's autocast refuses BCELoss on probabilities (the bug that variant imitates).
                measured[label] = {"error": " | ".join(str(e).strip().splitlines())[:300]}
            print(f"  {label}: {json.dumps(measured[label])}")
        # fp32 against bf16: how far the whole recipe moves the numbers.
        fp32 = run_fp32(cfg, init, io_in)
        measured["fp32 (no autocast)"] = max_diffs(fp32, ref)
        print(f"  fp32 (no autocast): {json.dumps(measured['fp32 (no autocast)'])}")
    return measured


def run_fp32(cfg, init, io):
    """The same loop without autocast (float32 everywhere, losses still on logits)."""
    real_autocast = torch.autocast

    class Off:
        def __init__(self, *a, **k):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    torch.autocast = Off
    try:
        return run(cfg, init, io)
    finally:
        torch.autocast = real_autocast


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--measure", action="store_true", help="also print the distance of variants and bugs")
    p.add_argument("--out", help="write the fixtures here instead of __test__/fixtures/bf16, from the committed inputs: "
                   "PyTorch's reference computed on this machine's bfloat16 kernels")
    p.add_argument("--device", default="cpu", help="where PyTorch's recipe runs: cpu (default), cuda, cuda:N")
    p.add_argument("--inputs", help="the committed bf16 fixtures' folder (default __test__/fixtures/bf16), whose "
                   "initial weights and inputs --out starts from")
    a = p.parse_args()
    if a.out:
        OUT = os.path.abspath(a.out)
    if a.inputs:
        ROOT = os.path.abspath(a.inputs)
    DEVICE = a.device
    measures = {name: make(name, cfg, a.measure) for name, cfg in CONFIGS.items()}
    print(json.dumps({"device": DEVICE, "torch": torch.__version__, "out": OUT, "fixtures": list(CONFIGS),
                      "measured": measures}))
