"""BiGAN's generator and joint discriminator (``bigan.py`` is the method), as jeffdonahue/bigan's ImageNet
script builds them (``net.py``: ``deconvnet_64`` and ``convnet_64`` with ``--deconv_ksize 5``): torch classes,
apart so that declaring the method loads no torch.

Both work at the original's 64 px whatever the trial's size (the encoder reads the trial's size, as in
the original's high-resolution-encoder variant); the discriminator resizes the real images it is given.
Every layer but one has no bias of its own (the original's Conv/Deconv/FC have none: biases come from
BatchNorm); the latent z conditions every hidden layer of both (``apply_cond``: a per-sample, per-channel
bias, a bias-free linear map of z, added before BatchNorm); weights start N(0, 0.02), the conditioning
maps N(0, 0.02 k^2), the discriminator's logit at zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SIZE", "Generator", "JointDiscriminator"]

SIZE = 64  # G's output and D's input side, px
_WIDTHS = (512, 256, 128, 64)  # G's deconvs (4 -> 8 -> 16 -> 32 px), then RGB at 64; D's convs reversed
_KERNEL = 5
_STD = 0.02
_SLOPE = 0.2


class _LatentBias(nn.Module):
    """``apply_cond``: a bias per sample and channel from z, for a conv output (N, C, H, W)."""

    def __init__(self, latent: int, channels: int) -> None:
        super().__init__()
        self.fc = nn.Linear(latent, channels, bias=False)

    def forward(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return h + self.fc(z).to(h.dtype)[:, :, None, None]


def _init(module: nn.Module) -> None:
    """The original's initialisation: weights N(0, 0.02), the conditioning maps N(0, 0.02 k^2), BN at 1 / 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, _STD)
        elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in module.modules():
        if isinstance(m, _LatentBias):
            nn.init.normal_(m.fc.weight, 0.0, _STD * _KERNEL**2)


class Generator(nn.Module):
    """``deconvnet_64``: z -> FC to 512x4x4 with BatchNorm over all 8192 units, ReLU -> three 5x5/2 deconvs
    (256, 128, 64 channels), each conditioned on z, BatchNorm, ReLU -> a 5x5/2 deconv to RGB, sigmoid: a
    64 px image in [0, 1]."""

    def __init__(self, latent: int) -> None:
        super().__init__()
        self.fc = nn.Linear(latent, _WIDTHS[0] * 16, bias=False)
        self.fc_bn = nn.BatchNorm1d(_WIDTHS[0] * 16)
        pairs = list(zip(_WIDTHS[:-1], _WIDTHS[1:], strict=True))
        self.ups = nn.ModuleList(_deconv(c_in, c_out) for c_in, c_out in pairs)
        self.conds = nn.ModuleList(_LatentBias(latent, c_out) for _, c_out in pairs)
        self.bns = nn.ModuleList(nn.BatchNorm2d(c_out) for _, c_out in pairs)
        self.out = _deconv(_WIDTHS[-1], 3)
        _init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc_bn(self.fc(z))).view(-1, _WIDTHS[0], 4, 4)
        for up, cond, bn in zip(self.ups, self.conds, self.bns, strict=True):
            h = F.relu(bn(cond(up(h), z)))
        return torch.sigmoid(self.out(h))


class JointDiscriminator(nn.Module):
    """``convnet_64`` on x, conditioned on z: a 5x5/2 conv (64 channels), LeakyReLU, no BatchNorm, no z ->
    three 5x5/2 convs (128, 256, 512), each conditioned on z, BatchNorm, LeakyReLU(0.2) -> a linear logit
    on the 512x4x4 map. It reads x in [0, 1] at any size: resized (antialiased) to 64 px, mapped to [-1, 1]
    as the original's data are."""

    def __init__(self, latent: int) -> None:
        super().__init__()
        widths = (_WIDTHS[-1], *reversed(_WIDTHS[:-1]))  # 64, 128, 256, 512
        self.first = _conv(3, widths[0])
        pairs = list(zip(widths[:-1], widths[1:], strict=True))
        self.convs = nn.ModuleList(_conv(c_in, c_out) for c_in, c_out in pairs)
        self.conds = nn.ModuleList(_LatentBias(latent, c_out) for _, c_out in pairs)
        self.bns = nn.ModuleList(nn.BatchNorm2d(c_out) for _, c_out in pairs)
        self.logit = nn.Linear(widths[-1] * 4 * 4, 1, bias=False)
        _init(self)
        nn.init.zeros_(self.logit.weight)  # (the original's BinaryClassifier starts at zero)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != SIZE or x.shape[-2] != SIZE:
            x = F.interpolate(x, (SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False)
        h = F.leaky_relu(self.first(x * 2.0 - 1.0), _SLOPE)
        for conv, cond, bn in zip(self.convs, self.conds, self.bns, strict=True):
            h = F.leaky_relu(bn(cond(conv(h), z)), _SLOPE)
        return self.logit(torch.flatten(h, 1)).squeeze(1)


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    """A 5x5 stride-2 conv that halves the side (pad SAME)."""
    return nn.Conv2d(c_in, c_out, _KERNEL, 2, _KERNEL // 2, bias=False)


def _deconv(c_in: int, c_out: int) -> nn.ConvTranspose2d:
    """A 5x5 stride-2 deconv that doubles the side exactly (Theano's ``Deconv`` with pad SAME)."""
    return nn.ConvTranspose2d(c_in, c_out, _KERNEL, 2, _KERNEL // 2, output_padding=1, bias=False)
