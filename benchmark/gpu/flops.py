"""Convolution FLOPs of one DCGAN training step (FLOP = 2 × multiply-accumulate), counted twice:

analytic: per-layer multiply-accumulates of every (transposed) convolution of G and D, from the
  shapes of a batch-1 forward, composed into the work one step needs:
    forwards    G(z), D(real), D(fake.detach()), D(fake)                         G + 3D
    D update    weight and input gradients of D for the real and the fake batch  2 × (D + D − d1)
                (no input gradient of D's first layer: neither batch needs one)
    G update    input gradients of D on the fake batch, weight and input          D + G + (G − g1)
                gradients of G (none for its first layer's input, the noise)
  where a layer's weight gradient and its input gradient each cost what its forward costs, and g1,
  d1 are the first layers. That is 3G − g1 + 8D − 2·d1 per image: the step's necessary work.
  PyTorch's tuned loop (loss_gen.backward()) also computes D's weight gradients in the G update:
  one more D.
counted: torch.utils.flop_counter.FlopCounterMode around one step of the tuned loop, which must equal
  the analytic count plus that extra D.

At the paper's size (64×64, 64 features, zDim 100, 1 channel): G = 406.3 M and D = 101.7 M
multiply-accumulates per image, so the step needs 4.06 GFLOP per image; the tuned loop executes
4.26 GFLOP and the seed's loop 5.89 GFLOP (counted).

    python flops.py --image-size 64 --features 64
"""
import argparse
import json
import math
import os
import sys

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))


def _reference_on_path(reference_dir=None):
    for d in (reference_dir, os.path.join(HERE, "reference"), os.path.join(HERE, "..", "reference")):
        if d and os.path.exists(os.path.join(d, "dcgan.py")):
            sys.path.insert(0, d)
            return
    raise FileNotFoundError("dcgan.py not found next to flops.py (reference/) or in ../reference")


def layer_macs(net, x):
    """Multiply-accumulates per image of each convolution of `net` on input `x` (batch 1), in order."""
    macs = []

    def hook(m, inputs, out):
        w = m.weight
        k = math.prod(w.shape[2:])
        if isinstance(m, nn.ConvTranspose2d):  # one k×k scatter per input position
            macs.append(m.in_channels * m.out_channels * k * math.prod(inputs[0].shape[2:]))
        else:  # one k×k gather per output position
            macs.append(m.in_channels * m.out_channels * k * math.prod(out.shape[2:]))

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    with torch.no_grad():
        y = net(x)
    for h in handles:
        h.remove()
    return macs, y


def analytic(image_size, features, z_dim=100, channels=1):
    from dcgan import build
    gen, disc = build(z_dim=z_dim, channels=channels, features_g=features, features_d=features, image_size=image_size)
    gen.eval(), disc.eval()  # batch 1: BatchNorm needs running statistics; the shapes are the same
    g_layers, fake = layer_macs(gen, torch.zeros(1, z_dim, 1, 1))
    d_layers, _ = layer_macs(disc, fake)
    g, d, g1, d1 = sum(g_layers), sum(d_layers), g_layers[0], d_layers[0]
    needed = 3 * g - g1 + 8 * d - 2 * d1
    return {
        "generatorMacs": g,
        "discriminatorMacs": d,
        "stepFlopPerImage": 2 * needed,
        "tunedLoopFlopPerImage": 2 * (needed + d),
    }


def counted(loop_name, image_size, features, z_dim=100, channels=1, batch=2):
    """FLOPs per image that FlopCounterMode sees in one step of dcgan.SeedLoop or TunedLoop (CPU)."""
    from torch.utils.flop_counter import FlopCounterMode

    import dcgan
    torch.manual_seed(0)
    gen, disc = dcgan.build(z_dim=z_dim, channels=channels, features_g=features, features_d=features, image_size=image_size)
    loop = (dcgan.SeedLoop if loop_name == "seed" else dcgan.TunedLoop)(gen, disc)
    real = torch.rand(batch, channels, image_size, image_size) * 2 - 1
    noise = torch.randn(batch, z_dim, 1, 1)
    with FlopCounterMode(display=False) as fc:
        loop.step(real, noise)
    return fc.get_total_flops() / batch


def count(image_size, features, verify=True, reference_dir=None):
    """The analytic counts, and (verify) FlopCounterMode's counts of the tuned and the seed's loop.
    Raises when the tuned loop's counted FLOPs differ from the analytic ones."""
    _reference_on_path(reference_dir)
    out = {"imageSize": image_size, "features": features, **analytic(image_size, features)}
    if verify:
        out["countedTunedLoopFlopPerImage"] = counted("tuned", image_size, features)
        out["countedSeedLoopFlopPerImage"] = counted("seed", image_size, features)
        want, got = out["tunedLoopFlopPerImage"], out["countedTunedLoopFlopPerImage"]
        if abs(got - want) > 1e-6 * want:
            raise AssertionError(f"FlopCounterMode counts {got:.0f} FLOP per image for the tuned loop, the analytic count {want:.0f}")
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--features", type=int, default=64)
    p.add_argument("--reference-dir")
    a = p.parse_args()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    print(json.dumps(count(a.image_size, a.features, reference_dir=a.reference_dir)))


if __name__ == "__main__":
    main()
