"""The GAN stabilisers dcgan offers as training options, on the seed's loop, for the parity fixtures.

StabilisedLoop is the seed's loop (dcgan.SeedLoop, with fake.detach() for the D update) with every
training option dcgan has, alone or together:
  d_steps        k discriminator updates per generator update, the batch split in k equal parts,
                 one per update; only the last part's fakes keep a graph and feed the generator
                 update (what dcgan.OptionsLoop computes, which make_ddp_fixtures.py still uses on
                 DDP-wrapped modules)
  generator_loss 'minimax': G minimises mean log(1 - D(G(z))) on D's probabilities (the paper's
                 objective) instead of the non-saturating BCE(D(G(z)), 1)
  lr_d, lr_g     separate learning rates of D's and G's Adam (TTUR, Heusel et al. 2017)
  beta1, beta2, eps  Adam's hyperparameters for both optimisers (unset: the seed's 0.5, 0.999, 1e-8)
  real_label     D's BCE target for real images (0.9: one-sided label smoothing, Salimans et al. 2016)
  loss 'hinge'   D minimises mean relu(1 - D(x)) + mean relu(1 + D(G(z))) on logits, G minimises
                 -mean D(G(z)) (SNGAN, Miyato et al. 2018)
  spectral norm  torch.nn.utils.spectral_norm on every Conv2d of D (apply_spectral_norm)
  r1_gamma       gamma/2 * mean ||grad_x D(x)||^2 on D's logits for the (augmented) real batch, added
                 to D's loss (Mescheder et al. 2018); r1_every N: on every N-th D update only
                 (counting D updates from the first, d_steps of them a step), scaled by N (lazy
                 regularisation, StyleGAN2)
  augment        DiffAugment (Zhao et al. 2020) 'translation', 'cutout' or 'translation,cutout' on
                 every image D sees: real then fake in the D update, fake in the G update; the
                 draws are recorded in self.draws (one N×4 int64 tensor per call) for the fixture
  ema_decay      an exponential moving average of G's parameters and floating buffers after every G
                 update, decay min(ema_decay, (1 + t) / (10 + t)) at G update t = 1, 2, …

The DiffAugment functions are DiffAugment_pytorch.py's (github.com/mit-han-lab/data-efficient-gans)
with the random draws as arguments.
"""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from dcgan import SeedLoop


def max_shift(side):
    return int(side * 0.125 + 0.5)


def cutout_side(side):
    return int(side * 0.5 + 0.5)


def draw_augment(n, side):
    """One call's draws, N×4: translation x, y, cutout offset x, y (every column, whatever the policy)."""
    shift, cut = max_shift(side), cutout_side(side)
    offsets = side + (1 - cut % 2)
    tx = torch.randint(-shift, shift + 1, size=[n])
    ty = torch.randint(-shift, shift + 1, size=[n])
    ox = torch.randint(0, offsets, size=[n])
    oy = torch.randint(0, offsets, size=[n])
    return torch.stack([tx, ty, ox, oy], 1)


def rand_translation(x, tx, ty):
    translation_x, translation_y = tx.view(-1, 1, 1), ty.view(-1, 1, 1)
    grid_batch, grid_x, grid_y = torch.meshgrid(
        torch.arange(x.size(0), dtype=torch.long, device=x.device),
        torch.arange(x.size(2), dtype=torch.long, device=x.device),
        torch.arange(x.size(3), dtype=torch.long, device=x.device),
        indexing="ij",
    )
    grid_x = torch.clamp(grid_x + translation_x + 1, 0, x.size(2) + 1)
    grid_y = torch.clamp(grid_y + translation_y + 1, 0, x.size(3) + 1)
    x_pad = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])
    return x_pad.permute(0, 2, 3, 1).contiguous()[grid_batch, grid_x, grid_y].permute(0, 3, 1, 2)


def rand_cutout(x, offset_x, offset_y):
    cutout_size = cutout_side(x.size(2)), cutout_side(x.size(3))
    offset_x, offset_y = offset_x.view(-1, 1, 1), offset_y.view(-1, 1, 1)
    grid_batch, grid_x, grid_y = torch.meshgrid(
        torch.arange(x.size(0), dtype=torch.long, device=x.device),
        torch.arange(cutout_size[0], dtype=torch.long, device=x.device),
        torch.arange(cutout_size[1], dtype=torch.long, device=x.device),
        indexing="ij",
    )
    grid_x = torch.clamp(grid_x + offset_x - cutout_size[0] // 2, min=0, max=x.size(2) - 1)
    grid_y = torch.clamp(grid_y + offset_y - cutout_size[1] // 2, min=0, max=x.size(3) - 1)
    mask = torch.ones(x.size(0), x.size(2), x.size(3), dtype=x.dtype, device=x.device)
    mask[grid_batch, grid_x, grid_y] = 0
    return x * mask.unsqueeze(1)


def diff_augment(x, policy, draws):
    if "translation" in policy:
        x = rand_translation(x, draws[:, 0], draws[:, 1])
    if "cutout" in policy:
        x = rand_cutout(x, draws[:, 2], draws[:, 3])
    return x


def apply_spectral_norm(disc):
    """torch.nn.utils.spectral_norm on every Conv2d of D (u and v drawn from torch's generator)."""
    for name, m in list(disc.disc.named_modules()):
        if isinstance(m, nn.Conv2d):
            nn.utils.spectral_norm(m)
    return disc


class StabilisedLoop(SeedLoop):
    def __init__(self, gen, disc, d_steps=1, generator_loss="non-saturating", lr_d=None, lr_g=None, beta1=None,
                 beta2=None, eps=None, real_label=1.0, loss="bce", r1_gamma=0.0, r1_every=1, augment="none",
                 ema_decay=0.0):
        super().__init__(gen, disc)
        for opt, lr in ((self.opt_disc, lr_d), (self.opt_gen, lr_g)):
            for group in opt.param_groups:
                if lr is not None:
                    group["lr"] = lr
                if beta1 is not None or beta2 is not None:
                    b1, b2 = group["betas"]
                    group["betas"] = (b1 if beta1 is None else beta1, b2 if beta2 is None else beta2)
                if eps is not None:
                    group["eps"] = eps
        self.d_steps, self.generator_loss = d_steps, generator_loss
        self.real_label, self.loss, self.r1_gamma, self.r1_every = real_label, loss, r1_gamma, r1_every
        self.policy = augment
        self.needs_logits = loss == "hinge" or r1_gamma > 0
        self.logits = nn.Sequential(*list(disc.disc)[:-1])  # D without its Sigmoid, same modules
        self.ema_decay = ema_decay
        self.ema = copy.deepcopy(gen) if ema_decay > 0 else None
        self.draws = []
        self.d_updates = self.g_updates = 0

    def augment(self, x):
        if self.policy == "none":
            return x
        draws = draw_augment(x.size(0), x.size(2))
        self.draws.append(draws)
        return diff_augment(x, self.policy, draws)

    def raw(self, x):
        return (self.logits(x) if self.needs_logits else self.disc(x)).reshape(-1)

    def probs(self, raw):
        return torch.sigmoid(raw) if self.needs_logits else raw

    def bce(self, raw, target):
        p = self.probs(raw)
        return self.criterion(p, torch.full_like(p, target))

    def prob(self, raw):
        return self.probs(raw).mean()

    def disc_update(self, real, fake):
        """One D update on a real batch and a detached fake one; returns (loss, D's raw outputs)."""
        disc = self.disc
        real_in = self.augment(real)
        fake_in = self.augment(fake)
        r1 = self.r1_gamma > 0 and self.d_updates % self.r1_every == 0
        if r1:
            real_in = real_in.detach().requires_grad_(True)
        out_real = self.raw(real_in)
        out_fake = self.raw(fake_in)
        if self.loss == "hinge":
            loss_disc = F.relu(1 - out_real).mean() + F.relu(1 + out_fake).mean()
        else:
            loss_disc = (self.bce(out_real, self.real_label) + self.bce(out_fake, 0.0)) / 2
        total = loss_disc
        if r1:
            (grad,) = torch.autograd.grad(out_real.sum(), real_in, create_graph=True)
            total = loss_disc + grad.square().sum([1, 2, 3]).mean() * (self.r1_gamma / 2 * self.r1_every)
        disc.zero_grad()
        total.backward()
        self.opt_disc.step()
        self.d_updates += 1
        return loss_disc, out_real, out_fake

    def step(self, real, noise):
        gen = self.gen
        parts = list(zip(real.chunk(self.d_steps), noise.chunk(self.d_steps)))
        for i, (real_i, noise_i) in enumerate(parts):
            if i == len(parts) - 1:
                fake = gen(noise_i)
            else:
                with torch.no_grad():  # only the last part's fakes reach the generator update
                    fake = gen(noise_i)
            loss_disc, out_real, out_fake = self.disc_update(real_i, fake.detach())

        output = self.raw(self.augment(fake))
        if self.loss == "hinge":
            loss_gen = -output.mean()
        elif self.generator_loss == "minimax":
            loss_gen = torch.log(1 - self.probs(output)).mean()
        else:
            loss_gen = self.bce(output, 1.0)
        gen.zero_grad()
        loss_gen.backward()
        self.opt_gen.step()
        self.g_updates += 1
        if self.ema is not None:
            self.update_ema()
        return loss_disc, loss_gen, self.prob(out_real), self.prob(out_fake), self.prob(output)

    @torch.no_grad()
    def update_ema(self):
        t = self.g_updates
        decay = min(self.ema_decay, (1 + t) / (10 + t))
        for pe, p in zip(self.ema.parameters(), self.gen.parameters()):
            pe.lerp_(p, 1 - decay)
        for be, b in zip(self.ema.buffers(), self.gen.buffers()):
            if be.dtype.is_floating_point:
                be.lerp_(b, 1 - decay)
            else:
                be.copy_(b)
