"""Writes the parity fixtures of __test__/fixtures from the reference (dcgan.py) on PyTorch.

For each configuration: the initial weights (state_dict keys of both networks), the inputs, the
outputs of G and D, and the state of both networks after one and after three steps of the seed's
loop (OptionsLoop for the configurations with training options). Run it with `npm run fixtures`
(every configuration) or `npm run fixtures -- NAME…` (only those); the tests compare this library
against these files.

Regenerated on another machine the numbers may differ in their last bits (seed64 and rgb32 moved
by up to 4.3e-7 between the machine that wrote them and ours: different CPU kernels), and
safetensors writes the two metadata entries in either order: regenerate only what you change.
"""
import copy
import json
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dcgan import OptionsLoop, SeedLoop, build  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "__test__", "fixtures")

CONFIGS = {
    # The seed's own network shape (64×64, gen.4 / disc.5), with few features.
    "seed64": dict(z_dim=100, channels=1, features_g=2, features_d=3, image_size=64, batch=4),
    # A generalised size with RGB images and another zDim.
    "rgb32": dict(z_dim=16, channels=3, features_g=4, features_d=6, image_size=32, batch=6),
    # Training options (OptionsLoop), each alone on a small network.
    "minimax32": dict(z_dim=8, channels=1, features_g=2, features_d=3, image_size=32, batch=6,
                      generator_loss="minimax"),
    "dsteps2": dict(z_dim=8, channels=1, features_g=2, features_d=3, image_size=32, batch=8, d_steps=2),
    "example-init32": dict(z_dim=8, channels=1, features_g=2, features_d=3, image_size=32, batch=6,
                           init="pytorch-example"),
}
# Keys of a configuration that are training options, not build() arguments.
LOOP_OPTIONS = ("d_steps", "generator_loss")
STEPS = 3


def state(gen, disc):
    sd = {**gen.state_dict(), **disc.state_dict()}
    return {k: v.detach().clone().contiguous() for k, v in sd.items()}


def make(name, cfg):
    torch.manual_seed(1234)
    torch.set_num_threads(1)
    batch = cfg["batch"]
    model = {k: v for k, v in cfg.items() if k != "batch" and k not in LOOP_OPTIONS}
    options = {k: v for k, v in cfg.items() if k in LOOP_OPTIONS}
    gen, disc = build(**model)
    out = os.path.join(ROOT, name)
    os.makedirs(out, exist_ok=True)
    config = {"zDim": cfg["z_dim"], "channels": cfg["channels"], "featuresG": cfg["features_g"],
              "featuresD": cfg["features_d"], "imageSize": cfg["image_size"], "batch": batch}
    # Only where set, so that the older fixtures keep their bytes.
    for key, js_key in (("init", "init"), ("d_steps", "dSteps"), ("generator_loss", "generatorLoss")):
        if key in cfg:
            config[js_key] = cfg[key]
    meta = {"config": json.dumps(config), "torch": torch.__version__}
    save_file(state(gen, disc), os.path.join(out, "init.safetensors"), metadata=meta)

    s, c, z = cfg["image_size"], cfg["channels"], cfg["z_dim"]
    io = {}
    for step in range(1, STEPS + 1):
        io[f"real.{step}"] = torch.rand(batch, c, s, s) * 2 - 1
        io[f"noise.{step}"] = torch.randn(batch, z, 1, 1)

    # Forward parity, on copies so that running statistics stay at their initial values.
    with torch.no_grad():
        g, d = copy.deepcopy(gen), copy.deepcopy(disc)
        io["forward.gen_train"] = g(io["noise.1"])
        io["forward.disc_train"] = d(io["real.1"]).reshape(-1)
        g.eval(), d.eval()
        io["forward.gen_eval"] = g(io["noise.1"])
        io["forward.disc_eval"] = d(io["real.1"]).reshape(-1)

    loop = OptionsLoop(gen, disc, **options) if options else SeedLoop(gen, disc)
    for step in range(1, STEPS + 1):
        loss_d, loss_g, d_x, d_gz1, d_gz2 = loop.step(io[f"real.{step}"], io[f"noise.{step}"])
        io[f"stats.{step}"] = torch.stack([loss_d, loss_g, d_x, d_gz1, d_gz2]).detach()
        if step in (1, STEPS):
            save_file(state(gen, disc), os.path.join(out, f"after{step}.safetensors"), metadata=meta)
    # A generator trained in PyTorch, sampled in eval mode: what loading it elsewhere must reproduce.
    g = copy.deepcopy(gen).eval()
    with torch.no_grad():
        io["trained.gen_eval"] = g(io["noise.1"])
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(out, "io.safetensors"), metadata=meta)
    print(f"{name}: wrote {out}")


def param_counts():
    """Parameter counts of both networks for every image size, as PyTorch counts them."""
    rows = []
    for size in (16, 32, 64, 128, 256):
        for z_dim, channels, features in ((100, 1, 8), (32, 3, 4)):
            gen, disc = build(z_dim=z_dim, channels=channels, features_g=features, features_d=features, image_size=size)
            rows.append({"imageSize": size, "zDim": z_dim, "channels": channels, "features": features,
                         "generator": sum(p.numel() for p in gen.parameters()),
                         "discriminator": sum(p.numel() for p in disc.parameters())})
    # The seed's full network.
    gen, disc = build()
    rows.append({"imageSize": 64, "zDim": 100, "channels": 1, "features": 64,
                 "generator": sum(p.numel() for p in gen.parameters()),
                 "discriminator": sum(p.numel() for p in disc.parameters())})
    with open(os.path.join(ROOT, "param-counts.json"), "w") as f:
        json.dump(rows, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    names = sys.argv[1:] or list(CONFIGS)
    for name in names:
        make(name, CONFIGS[name])
    if not sys.argv[1:]:
        param_counts()
