"""BiGAN (Donahue et al. 2017): an encoder and a generator against one joint discriminator.

The encoder E is the AlexNet trunk plus a head to a ``latent_dim``-d code (that trunk is what gets
probed); the generator G maps a uniform latent in [-1, 1]^latent_dim to an image at the trial's size;
the discriminator D sees pairs (x, E(x)) and (G(z), z) and tells which is which. The objective of
jeffdonahue/bigan's ImageNet script (``--joint_discrim_weight 1 --encode_gen_weight 1``): D minimises
the cross-entropy of "real pair" vs "generated pair", E and G minimise it with the labels swapped.
Adam with lr 2e-4 and beta1 0.5 (that script's ``--momentum``), weight decay 2.5e-5, batch 128; the
learning rate is constant for the first half of the epochs and decays exponentially to 1 % over the
second half, as ``--epochs``/``--decay_epochs`` do.

The paper reports that BiGAN fails to converge for N > 1. A non-finite loss or a collapsed
discriminator (its mean loss over an epoch below ``_COLLAPSE``: it wins outright and G, E get no signal)
ends the trial as ``diverged`` with the last good state, which is still probed.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from methods.method import Diverged, Method
from methods.registry import register
from methods.trial.config import MethodOptions, TrainingDefaults, check_field
from methods.trunk.alexnet import init_weights
from methods.trunk.heads import mlp_head

if TYPE_CHECKING:
    from methods.trial.context import TrialContext
    from methods.trunk.alexnet import AlexNet

__all__ = ["BiGAN", "BiGANOptions", "Generator", "JointDiscriminator"]

_WIDTH = 64  # base channel width of G and D (DCGAN's)
_COLLAPSE = 1e-3


class Generator(nn.Module):
    """DCGAN-style: FC to 4x4, stride-2 transposed convs up to the next power of two, resized to ``size``."""

    def __init__(self, latent: int, size: int) -> None:
        super().__init__()
        ups = max(1, math.ceil(math.log2(size / 4)))
        widths = [min(512, _WIDTH * 2 ** (ups - 1 - i)) for i in range(ups)]
        self.size, self.base = size, widths[0]
        self.fc = nn.Sequential(nn.Linear(latent, widths[0] * 16, bias=False), nn.BatchNorm1d(widths[0] * 16),
                                nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers.append(nn.ConvTranspose2d(widths[-1], 3, 4, 2, 1))
        self.net = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = torch.sigmoid(self.net(self.fc(z).view(-1, self.base, 4, 4)))
        if x.shape[-1] != self.size:
            x = F.interpolate(x, (self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        return x


class JointDiscriminator(nn.Module):
    """D(x, z): a strided conv stack on x, an FC layer on z, joint FC layers to one logit."""

    def __init__(self, latent: int, size: int, hidden: int = 1024) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, _WIDTH, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        channels, spatial = _WIDTH, size // 2
        while spatial > 4:
            out = min(512, channels * 2)
            layers += [nn.Conv2d(channels, out, 4, 2, 1, bias=False), nn.BatchNorm2d(out),
                       nn.LeakyReLU(0.2, inplace=True)]
            channels, spatial = out, spatial // 2
        self.image = nn.Sequential(*layers)
        with torch.no_grad():
            image_dim = self.image(torch.zeros(1, 3, size, size)).numel()
        self.latent = nn.Sequential(nn.Linear(latent, 512), nn.LeakyReLU(0.2, inplace=True))
        self.joint = nn.Sequential(nn.Linear(image_dim + 512, hidden), nn.LeakyReLU(0.2, inplace=True),
                                   nn.Linear(hidden, 1))
        init_weights(self)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        features = torch.cat([torch.flatten(self.image(x), 1), self.latent(z)], dim=1)
        return self.joint(features).squeeze(1)


def _bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits.float(), target)


class BiGANOptions(MethodOptions):
    latent_dim: int = Field(200, description="BiGAN: size of the uniform latent (default 200)")

    _latent = check_field("latent_dim", ok=lambda v: v >= 1, says="{name}={value} is too small")


@register
class BiGAN(Method[BiGANOptions]):
    """BiGAN: encoder + generator against a joint (image, latent) discriminator."""

    name = "bigan"
    Options = BiGANOptions
    defaults = TrainingDefaults(epochs=400, batch_size=128, lr=2e-4, momentum=0.5, weight_decay=2.5e-5)
    passes_per_patch = 2.5  # encoder, generator and joint discriminator

    def __init__(self, trunk: AlexNet, ctx: TrialContext) -> None:
        super().__init__(trunk, ctx)
        cfg, latent = self.cfg, self.options.latent_dim
        device = ctx.device
        self.encoder_head = mlp_head(trunk.output_dim(cfg.img_size), latent, cfg.head_hidden).to(device)
        self.generator = Generator(latent, cfg.img_size).to(device)
        self.discriminator = JointDiscriminator(latent, cfg.img_size).to(device)
        if ctx.cuda:
            self.generator.to(memory_format=torch.channels_last)
            self.discriminator.to(memory_format=torch.channels_last)
        adam = {"lr": cfg.lr, "betas": (cfg.momentum, 0.999), "weight_decay": cfg.weight_decay}
        encoder_generator = [p for m in (trunk, self.encoder_head, self.generator) for p in m.parameters()
                             if p.requires_grad]
        self.optimizer = torch.optim.Adam(encoder_generator, **adam)
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), **adam)
        half = cfg.epochs / 2

        def decay(epoch: int) -> float:  # constant, then exponential decay to 1 % at the last epoch
            return 1.0 if epoch < half else 0.01 ** ((epoch - half) / max(cfg.epochs - half, 1))

        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, decay)
        self.d_schedule = torch.optim.lr_scheduler.LambdaLR(self.d_optimizer, decay)

    def end_epoch(self, epoch: int) -> None:
        super().end_epoch(epoch)
        self.d_schedule.step()

    def training_step(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.ctx.prepare(batch)
        z = torch.rand(x.shape[0], self.options.latent_dim, device=x.device) * 2.0 - 1.0
        with self.ctx.autocast():
            encoded = self.encoder_head(self.trunk(x))
            generated = self.ctx.prepare(self.generator(z))
            real = self.discriminator(x, encoded.detach())
            fake = self.discriminator(generated.detach(), z)
            d_loss = _bce(real, True) + _bce(fake, False)
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_optimizer.step()

        with self.ctx.autocast():  # E and G: the same game with the labels swapped
            ge_loss = _bce(self.discriminator(x, encoded), False) + _bce(self.discriminator(generated, z), True)
        self.optimizer.zero_grad(set_to_none=True)
        ge_loss.backward()
        self.optimizer.step()
        d_acc = ((real.detach() > 0).float().mean() + (fake.detach() < 0).float().mean()) / 2
        return {"loss": (d_loss + ge_loss).detach(), "d_loss": d_loss.detach(), "ge_loss": ge_loss.detach(),
                "d_acc": d_acc}

    def check(self, metrics: dict[str, Any], epoch_end: bool = False) -> None:
        super().check(metrics, epoch_end)
        if epoch_end and float(metrics["d_loss"]) < _COLLAPSE:
            raise Diverged(f"discriminator collapsed (mean loss {float(metrics['d_loss']):.2e}, "
                           f"accuracy {float(metrics['d_acc']):.3f})")
