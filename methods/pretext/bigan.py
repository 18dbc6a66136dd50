"""BiGAN (Donahue et al. 2017): an encoder and a generator against one joint discriminator.

As jeffdonahue/bigan's ImageNet script (``train_imagenet.sh``) builds it. The encoder E is the AlexNet
trunk in the original's style (LeakyReLU 0.2, no BatchNorm on conv1; that trunk is what gets probed) and
one bias-free linear map of its flattened conv5 (no pool5, no FC layers) squashed into the latent's
range: E(x) = 2 sigmoid(W h) - 1, as the original's ``logits_to_sample`` of a uniform latent. The
generator G maps a uniform latent in [-1, 1]^latent_dim to a 64 px image; the discriminator D sees pairs
(x, E(x)) and (G(z), z) at 64 px, z conditioning each of its hidden layers (``_bigan_nets.py``); E reads
the trial's size, as in the original's high-resolution-encoder variant. The objective of that script
(``--joint_discrim_weight 1 --encode_gen_weight 1``): D minimises the cross-entropy of "real pair" vs
"generated pair", E and G minimise it with the labels swapped. Adam with lr 2e-4 and beta1 0.5 (the
script's ``--momentum``), weight decay 2.5e-5, batch 128; the learning rate is constant for the first half
of the epochs and decays exponentially to 1 % at the last one, as ``--epochs``/``--decay_epochs`` do.
Kept different on purpose (docs/methods.md): the trunk's own initialisation (shared with the random
baseline, so that "beats random" measures training), ungrouped convs and unpadded pools, sequential
D then E+G steps.

The paper reports that BiGAN fails to converge for N > 1. A non-finite loss or a collapsed
discriminator (its mean loss over an epoch below ``_COLLAPSE``: it wins outright and G, E get no signal)
ends the trial as ``diverged`` with the last good state, which is still probed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from methods._lazy import lazy
from methods.method import Diverged, Method
from methods.registry import register
from methods.trial.config import MethodOptions, TrainingDefaults, check_field
from methods.trunk.arch import TrunkStyle

if TYPE_CHECKING:
    from methods.trial.context import TrialContext
    from methods.trunk.alexnet import AlexNet

torch, F, nn = lazy("torch"), lazy("torch.nn.functional"), lazy("torch.nn")
nets = lazy("methods.pretext._bigan_nets")  # (torch classes: loaded when a BiGAN is built, not declared)

__all__ = ["BiGAN", "BiGANOptions"]

_COLLAPSE = 1e-3


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
    lr_scales_with_batch = False  # Adam's step is normalised by the gradient's scale: no linear rule
    passes_per_patch = 2.5  # the encoder at the trial's size; G and D (at 64 px) about as much again and more
    trunk_style = TrunkStyle(negative_slope=0.2, conv1_bn=False)

    def __init__(self, trunk: AlexNet, ctx: TrialContext) -> None:
        super().__init__(trunk, ctx)
        cfg, latent = self.cfg, self.options.latent_dim
        device = ctx.device
        with torch.no_grad():  # the encoder reads conv5 as it is (the original has no pool5)
            probe = torch.zeros(1, 3, cfg.img_size, cfg.img_size, device=next(trunk.parameters()).device)
            conv5 = trunk.eval().taps(probe, ("conv5",))["conv5"][0].numel()
        trunk.train()
        self.encoder_head = nn.Linear(conv5, latent, bias=False).to(device)
        nn.init.normal_(self.encoder_head.weight, 0.0, 0.02)  # (the original's LinearPredictor)
        self.generator = nets.Generator(latent).to(device)
        self.discriminator = nets.JointDiscriminator(latent).to(device)
        if ctx.cuda:
            self.generator.to(memory_format=torch.channels_last)
            self.discriminator.to(memory_format=torch.channels_last)
        adam = {"lr": cfg.lr, "betas": (cfg.momentum, 0.999), "weight_decay": cfg.weight_decay}
        encoder_generator = [p for m in (trunk, self.encoder_head, self.generator) for p in m.parameters()
                             if p.requires_grad]
        self.optimizer = torch.optim.Adam(encoder_generator, **adam)
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), **adam)
        half = cfg.epochs / 2

        def decay(epoch: int) -> float:  # constant, then exponential decay reaching 1 % at the last epoch
            return 1.0 if epoch < half else 0.01 ** ((epoch - half + 1) / max(cfg.epochs - half, 1))

        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, decay)
        self.d_schedule = torch.optim.lr_scheduler.LambdaLR(self.d_optimizer, decay)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """E(x) in (-1, 1)^latent_dim: the squashed linear map of the trunk's flattened conv5."""
        features = self.trunk.taps(x, ("conv5",))["conv5"].flatten(1)
        return torch.sigmoid(self.encoder_head(features)) * 2.0 - 1.0

    def end_epoch(self, epoch: int) -> None:
        super().end_epoch(epoch)
        self.d_schedule.step()

    def training_step(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.ctx.prepare(batch)
        z = torch.rand(x.shape[0], self.options.latent_dim, device=x.device) * 2.0 - 1.0
        with self.ctx.autocast():
            encoded = self.encode(x)
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
