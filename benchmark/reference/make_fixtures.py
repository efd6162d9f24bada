"""Writes the parity fixtures of __test__/fixtures from the reference (dcgan.py) on PyTorch.

For each configuration: the initial weights (state_dict keys of both networks), the inputs, the
outputs of G and D, and the state of both networks after one and after three steps of the seed's
loop (StabilisedLoop of stabilisers.py for the configurations with training options; for those in
ADAM_STATE also both Adams' state after three steps, adam3.safetensors). Run it with `npm run fixtures`
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
from dcgan import SeedLoop, build  # noqa: E402
from stabilisers import StabilisedLoop, apply_spectral_norm  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "__test__", "fixtures")

CONFIGS = {
    # The seed's own network shape (64×64, gen.4 / disc.5), with few features.
    "seed64": dict(z_dim=100, channels=1, features_g=2, features_d=3, image_size=64, batch=4),
    # A generalised size with RGB images and another zDim.
    "rgb32": dict(z_dim=16, channels=3, features_g=4, features_d=6, image_size=32, batch=6),
    # Training options, each alone on a small network.
    "minimax32": dict(z_dim=8, channels=1, features_g=2, features_d=3, image_size=32, batch=6,
                      generator_loss="minimax"),
    "dsteps2": dict(z_dim=8, channels=1, features_g=2, features_d=3, image_size=32, batch=8, d_steps=2),
    "example-init32": dict(z_dim=8, channels=1, features_g=2, features_d=3, image_size=32, batch=6,
                           init="pytorch-example"),
}
# The stabilisers (StabilisedLoop in stabilisers.py), each alone on the same small network.
SMALL = dict(z_dim=8, channels=1, features_g=2, features_d=3, image_size=32, batch=6)
CONFIGS.update({
    "ttur32": dict(SMALL, lr_d=4e-4, lr_g=1e-4),
    "smooth32": dict(SMALL, real_label=0.9),
    "hinge32": dict(SMALL, loss="hinge"),
    "sn32": dict(SMALL, spectral_norm=True),
    "r1-32": dict(SMALL, r1_gamma=10.0),
    "r1lazy32": dict(SMALL, r1_gamma=10.0, r1_every=2),
    "augment32": dict(SMALL, augment="translation,cutout"),
    "ema32": dict(SMALL, ema_decay=0.999),
    # The options together: two D updates a step (so lazy R1's count of D updates is not the count
    # of steps), the minimax generator loss on D's logits (R1 needs them), DiffAugment, label
    # smoothing, a moving average whose decay reaches its cap from G update 2 (min(0.2, 3/12)),
    # TTUR and Adam's hyperparameters other than the seed's.
    "combo16": dict(SMALL, image_size=16, batch=8, d_steps=2, generator_loss="minimax", r1_gamma=10.0, r1_every=2,
                    augment="translation,cutout", real_label=0.9, ema_decay=0.2, lr_d=4e-4, lr_g=1e-4,
                    beta1=0.9, beta2=0.99, eps=1e-6),
})
# Configurations whose Adam state after the last step is written too (adam3.safetensors), under the
# names a dcgan checkpoint gives it: optim.{gen,disc}.{exp_avg,exp_avg_sq}.<parameter>.
ADAM_STATE = ("combo16",)
# Keys of a configuration that are training options, not build() arguments.
TRAIN_OPTIONS = ("d_steps", "generator_loss", "lr_d", "lr_g", "beta1", "beta2", "eps", "real_label", "loss", "r1_gamma",
                 "r1_every", "augment", "ema_decay")
# Python name → the option's name in dcgan (written to the fixture's 'config' only where set).
JS_KEYS = (("init", "init"), ("d_steps", "dSteps"), ("generator_loss", "generatorLoss"), ("lr_d", "lrD"),
           ("lr_g", "lrG"), ("real_label", "realLabel"), ("loss", "loss"), ("r1_gamma", "r1Gamma"),
           ("r1_every", "r1Every"), ("augment", "augment"), ("ema_decay", "emaDecay"),
           ("spectral_norm", "spectralNorm"), ("beta1", "beta1"), ("beta2", "beta2"), ("eps", "eps"))
STEPS = 3


def state(gen, disc, ema=None):
    sd = {**gen.state_dict(), **disc.state_dict()}
    if ema is not None:
        sd.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    return {k: v.detach().clone().contiguous() for k, v in sd.items()}


def make(name, cfg):
    torch.manual_seed(1234)
    torch.set_num_threads(1)
    batch = cfg["batch"]
    model = {k: v for k, v in cfg.items() if k not in ("batch", "spectral_norm", *TRAIN_OPTIONS)}
    options = {k: v for k, v in cfg.items() if k in TRAIN_OPTIONS}
    gen, disc = build(**model)
    if cfg.get("spectral_norm"):
        apply_spectral_norm(disc)
    out = os.path.join(ROOT, name)
    os.makedirs(out, exist_ok=True)
    config = {"zDim": cfg["z_dim"], "channels": cfg["channels"], "featuresG": cfg["features_g"],
              "featuresD": cfg["features_d"], "imageSize": cfg["image_size"], "batch": batch}
    # Only where set, so that the older fixtures keep their bytes.
    for key, js_key in JS_KEYS:
        if key in cfg:
            config[js_key] = cfg[key]
    meta = {"config": json.dumps(config), "torch": torch.__version__}
    ema = copy.deepcopy(gen) if options.get("ema_decay") else None
    save_file(state(gen, disc, ema), os.path.join(out, "init.safetensors"), metadata=meta)

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

    # StabilisedLoop with the seed's options computes what SeedLoop computes but for fake.detach()
    # (the same updates, other rounding): the seed's configurations keep the seed's own loop.
    loop = StabilisedLoop(gen, disc, **options) if options or cfg.get("spectral_norm") else SeedLoop(gen, disc)
    for step in range(1, STEPS + 1):
        loss_d, loss_g, d_x, d_gz1, d_gz2 = loop.step(io[f"real.{step}"], io[f"noise.{step}"])
        io[f"stats.{step}"] = torch.stack([loss_d, loss_g, d_x, d_gz1, d_gz2]).detach()
        if getattr(loop, "draws", None):
            # The DiffAugment draws of this step (D real, D fake, G fake), for the test to replay.
            io[f"augment.{step}"] = torch.stack(loop.draws)
            loop.draws = []
        if step in (1, STEPS):
            save_file(state(gen, disc, getattr(loop, "ema", None)), os.path.join(out, f"after{step}.safetensors"), metadata=meta)
    # A generator trained in PyTorch, sampled in eval mode: what loading it elsewhere must reproduce.
    g = copy.deepcopy(gen).eval()
    with torch.no_grad():
        io["trained.gen_eval"] = g(io["noise.1"])
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(out, "io.safetensors"), metadata=meta)
    if name in ADAM_STATE:
        tensors, adam_meta = adam_state(loop, meta)
        save_file(tensors, os.path.join(out, f"adam{STEPS}.safetensors"), metadata=adam_meta)
    print(f"{name}: wrote {out}")


def adam_state(loop, meta):
    """torch.optim.Adam's own state of both optimisers, by parameter name; its step counts as metadata."""
    tensors, meta = {}, dict(meta)
    for net, module, opt in (("gen", loop.gen, loop.opt_gen), ("disc", loop.disc, loop.opt_disc)):
        steps = set()
        for name, p in module.named_parameters():
            st = opt.state[p]
            for kind in ("exp_avg", "exp_avg_sq"):
                tensors[f"optim.{net}.{kind}.{name}"] = st[kind].detach().clone().contiguous()
            steps.add(int(st["step"].item()))
        assert len(steps) == 1, steps
        meta[f"optim.{net}.step"] = str(steps.pop())
    return tensors, meta


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
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        sys.exit(f"unknown fixture(s) {', '.join(unknown)}; known: {', '.join(CONFIGS)}")
    for name in names:
        make(name, CONFIGS[name])
    if not sys.argv[1:]:
        param_counts()
