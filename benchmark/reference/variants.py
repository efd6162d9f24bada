"""The Python training loops that `npm run bench` and benchmark/gpu/check.sh time, by name.

A variant is `seed`, or `tuned` followed by any of `+channels_last`, `+bf16`, `+compile`:
  seed      the seed's loop as written (dcgan.SeedLoop)
  tuned     pytorch/examples' form of the same algorithm: fake.detach() for the D step, grads set to none
  +channels_last  weights and input batches in channels-last memory format
  +bf16     forwards under torch.autocast(device, bfloat16); the losses as BCE-with-logits on D's
            pre-sigmoid output (Sigmoid + BCELoss is not autocast-safe), computed in fp32
  +compile  torch.compile of both networks (default mode); the first steps include the compilation
"""
import torch
import torch.nn as nn

from dcgan import SeedLoop, TunedLoop

FEATURES = ("channels_last", "bf16", "compile")
DEFAULT_VARIANTS = (
    "seed",
    "tuned",
    "tuned+channels_last",
    "tuned+channels_last+bf16",
    "tuned+compile",
    "tuned+compile+bf16",
)


def parse_variant(name):
    """'tuned+compile+bf16' -> {'channels_last': False, 'bf16': True, 'compile': True}; seed -> None."""
    base, *parts = name.split("+")
    if base == "seed" and not parts:
        return None
    unknown = [p for p in parts if p not in FEATURES]
    if base != "tuned" or unknown or len(set(parts)) != len(parts):
        raise ValueError(f"unknown variant '{name}': use 'seed', or 'tuned' with any of +{', +'.join(FEATURES)}")
    return {f: f in parts for f in FEATURES}


def precision_of(name):
    """'bf16' for the variants that run their forwards in bfloat16, 'fp32' otherwise."""
    return "bf16" if "bf16" in name.split("+") else "fp32"


class VariantLoop(TunedLoop):
    """TunedLoop (same losses, same update order) with the optional layout, autocast and compilation.

    Without any option it computes exactly what TunedLoop computes.
    """

    def __init__(self, gen, disc, device, channels_last=False, bf16=False, compile=False):
        if channels_last:
            gen.to(memory_format=torch.channels_last)
            disc.to(memory_format=torch.channels_last)
        super().__init__(gen, disc)  # the optimisers take the parameters after the layout change
        self.device_type = torch.device(device).type
        self.channels_last = channels_last
        self.bf16 = bf16
        # Under bf16 D is run without its final Sigmoid: the losses take its logits.
        d = nn.Sequential(*list(disc.disc)[:-1]) if bf16 else disc
        self.criterion = nn.BCEWithLogitsLoss() if bf16 else nn.BCELoss()
        self.g = torch.compile(gen) if compile else gen
        self.d = torch.compile(d) if compile else d

    def _autocast(self):
        return torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.bf16)

    def _loss(self, out, target):
        return self.criterion(out.float(), torch.full_like(out, target, dtype=torch.float32))

    def _prob(self, out):
        return torch.sigmoid(out.float()) if self.bf16 else out

    def step(self, real, noise):
        if self.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            fake = self.g(noise)
            disc_real = self.d(real).reshape(-1)
            disc_fake = self.d(fake.detach()).reshape(-1)
        loss_disc = (self._loss(disc_real, 1.0) + self._loss(disc_fake, 0.0)) / 2
        self.disc.zero_grad(set_to_none=True)
        loss_disc.backward()
        self.opt_disc.step()

        with self._autocast():
            output = self.d(fake).reshape(-1)
        loss_gen = self._loss(output, 1.0)
        self.gen.zero_grad(set_to_none=True)
        loss_gen.backward()
        self.opt_gen.step()
        return (loss_disc, loss_gen, self._prob(disc_real).mean(), self._prob(disc_fake).mean(),
                self._prob(output).mean())


def make_loop(name, gen, disc, device):
    options = parse_variant(name)
    if options is None:
        return SeedLoop(gen, disc)
    if not any(options.values()):
        return TunedLoop(gen, disc)
    return VariantLoop(gen, disc, device, **options)
