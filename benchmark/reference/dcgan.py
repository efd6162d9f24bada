"""The seed's DCGAN (../shared/seed), made runnable: same modules, key names and hyperparameters.

Generalised to image sizes 16…256 by the rule dcgan (this library) uses: 64 gives exactly the
seed's network; other sizes add or drop middle blocks, channels doubling towards the 4×4 layer.

    python benchmark/reference/dcgan.py --image-size 32 --features 8 --batch 32 --steps 20
"""
import argparse
import math
import time

import torch
import torch.nn as nn
import torch.optim as optim

LEARNING_RATE = 2e-4
BETAS = (0.5, 0.999)


def _upsamplings(image_size):
    n = int(math.log2(image_size)) - 2
    if image_size < 16 or image_size > 256 or 2 ** (n + 2) != image_size:
        raise ValueError(f"image_size must be a power of two from 16 to 256, got {image_size}")
    return n


class Generator(nn.Module):
    def __init__(self, z_dim, channels_img, features_g, image_size=64):
        super(Generator, self).__init__()
        n = _upsamplings(image_size)
        layers = [self._block(z_dim, features_g * 2 ** n, 4, 1, 0)]  # become 4 * 4
        for i in range(1, n):
            layers.append(self._block(features_g * 2 ** (n - i + 1), features_g * 2 ** (n - i), 4, 2, 1))
        layers += [
            nn.ConvTranspose2d(features_g * 2, channels_img, kernel_size=4, stride=2, padding=1),
            nn.Tanh(),
        ]
        self.gen = nn.Sequential(*layers)

    def _block(self, in_channels, out_channels, kernel_size, stride, padding):
        return nn.Sequential(
            nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )

    def forward(self, x):
        return self.gen(x)


class Discriminator(nn.Module):
    def __init__(self, channels_img, features_d, image_size=64):
        super(Discriminator, self).__init__()
        n = _upsamplings(image_size)
        layers = [
            nn.Conv2d(channels_img, features_d, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
        ]
        for j in range(1, n):
            layers.append(self._block(features_d * 2 ** (j - 1), features_d * 2 ** j, 4, 2, 1))
        layers += [
            nn.Conv2d(features_d * 2 ** (n - 1), 1, kernel_size=4, stride=2, padding=0),  # become 1 * 1
            nn.Sigmoid(),
        ]
        self.disc = nn.Sequential(*layers)

    def _block(self, in_channels, out_channels, kernel_size, stride, padding):
        return nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.LeakyReLU(0.2),
        )

    def forward(self, x):
        return self.disc(x)


def initialize_weights(model, init="seed"):
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d)):
            if init == "pytorch-example" and isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight.data, 1.0, 0.02)
                nn.init.constant_(m.bias.data, 0)
            else:
                nn.init.normal_(m.weight.data, 0.0, 0.02)


class SeedLoop:
    """One iteration of the seed's loop body, exactly as written (retain_graph on an undetached fake)."""

    def __init__(self, gen, disc):
        self.gen, self.disc = gen, disc
        self.opt_gen = optim.Adam(gen.parameters(), lr=LEARNING_RATE, betas=BETAS)
        self.opt_disc = optim.Adam(disc.parameters(), lr=LEARNING_RATE, betas=BETAS)
        self.criterion = nn.BCELoss()

    def step(self, real, noise):
        gen, disc, criterion = self.gen, self.disc, self.criterion
        fake = gen(noise)

        # Train Discriminator max log(D(x)) + log(1 - D(G(z)))
        disc_real = disc(real).reshape(-1)
        loss_disc_real = criterion(disc_real, torch.ones_like(disc_real))
        disc_fake = disc(fake).reshape(-1)
        loss_disc_fake = criterion(disc_fake, torch.zeros_like(disc_fake))
        loss_disc = (loss_disc_real + loss_disc_fake) / 2
        disc.zero_grad()
        loss_disc.backward(retain_graph=True)
        self.opt_disc.step()

        # Train Generator min log(1 - D(G(z))) <-> max log(D(x))
        output = disc(fake).reshape(-1)
        loss_gen = criterion(output, torch.ones_like(output))
        gen.zero_grad()
        loss_gen.backward()
        self.opt_gen.step()
        return loss_disc, loss_gen, disc_real.mean(), disc_fake.mean(), output.mean()


class TunedLoop(SeedLoop):
    """The same algorithm as pytorch/examples writes it: fake.detach() for the D step, grads set to none."""

    def step(self, real, noise):
        gen, disc, criterion = self.gen, self.disc, self.criterion
        fake = gen(noise)
        disc_real = disc(real).reshape(-1)
        loss_disc_real = criterion(disc_real, torch.ones_like(disc_real))
        disc_fake = disc(fake.detach()).reshape(-1)
        loss_disc_fake = criterion(disc_fake, torch.zeros_like(disc_fake))
        loss_disc = (loss_disc_real + loss_disc_fake) / 2
        disc.zero_grad(set_to_none=True)
        loss_disc.backward()
        self.opt_disc.step()

        output = disc(fake).reshape(-1)
        loss_gen = criterion(output, torch.ones_like(output))
        gen.zero_grad(set_to_none=True)
        loss_gen.backward()
        self.opt_gen.step()
        return loss_disc, loss_gen, disc_real.mean(), disc_fake.mean(), output.mean()


class OptionsLoop(SeedLoop):
    """The seed's loop with dcgan's training options, for the parity fixtures.

    d_steps: k discriminator updates per generator update (the paper's Algorithm 1), the batch
    split in k equal parts, one per update; the generator update uses the fake images of the last
    part (as the seed's loop uses the fakes of its single D update). generator_loss "minimax":
    the generator minimises mean log(1 - D(G(z))), the objective as the paper writes it, instead of
    the seed's non-saturating BCE(D(G(z)), 1).
    """

    def __init__(self, gen, disc, d_steps=1, generator_loss="non-saturating"):
        super().__init__(gen, disc)
        self.d_steps, self.generator_loss = d_steps, generator_loss

    def step(self, real, noise):
        gen, disc, criterion = self.gen, self.disc, self.criterion
        parts = list(zip(real.chunk(self.d_steps), noise.chunk(self.d_steps)))
        for i, (real_i, noise_i) in enumerate(parts):
            if i == len(parts) - 1:
                fake = gen(noise_i)
            else:
                with torch.no_grad():  # only the last part's fakes reach the generator update
                    fake = gen(noise_i)
            disc_real = disc(real_i).reshape(-1)
            loss_disc_real = criterion(disc_real, torch.ones_like(disc_real))
            disc_fake = disc(fake.detach()).reshape(-1)
            loss_disc_fake = criterion(disc_fake, torch.zeros_like(disc_fake))
            loss_disc = (loss_disc_real + loss_disc_fake) / 2
            disc.zero_grad()
            loss_disc.backward()
            self.opt_disc.step()

        output = disc(fake).reshape(-1)
        if self.generator_loss == "minimax":
            loss_gen = torch.log(1 - output).mean()
        else:
            loss_gen = criterion(output, torch.ones_like(output))
        gen.zero_grad()
        loss_gen.backward()
        self.opt_gen.step()
        return loss_disc, loss_gen, disc_real.mean(), disc_fake.mean(), output.mean()


def build(z_dim=100, channels=1, features_g=64, features_d=64, image_size=64, init="seed", device="cpu"):
    gen = Generator(z_dim, channels, features_g, image_size).to(device)
    disc = Discriminator(channels, features_d, image_size).to(device)
    initialize_weights(gen, init)
    initialize_weights(disc, init)
    gen.train()
    disc.train()
    return gen, disc


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--z-dim", type=int, default=100)
    p.add_argument("--features", type=int, default=64, help="features_g = features_d")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--loop", choices=["seed", "tuned"], default="seed")
    a = p.parse_args()
    torch.manual_seed(a.seed)
    if a.threads:
        torch.set_num_threads(a.threads)
    gen, disc = build(a.z_dim, a.channels, a.features, a.features, a.image_size)
    loop = (SeedLoop if a.loop == "seed" else TunedLoop)(gen, disc)
    real = torch.rand(a.batch, a.channels, a.image_size, a.image_size) * 2 - 1
    for step in range(a.steps):
        noise = torch.randn((a.batch, a.z_dim, 1, 1))
        t0 = time.perf_counter()
        loss_d, loss_g, d_x, d_gz, _ = loop.step(real, noise)
        dt = time.perf_counter() - t0
        print(f"step {step}: loss_d {loss_d.item():.4f} loss_g {loss_g.item():.4f} "
              f"D(x) {d_x.item():.4f} D(G(z)) {d_gz.item():.4f} {dt * 1000:.1f} ms")


if __name__ == "__main__":
    main()
