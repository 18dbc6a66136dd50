"""AlexNet trunk with named taps ``conv1..conv5``, as the paper's probe code builds it.

Two widths: ``big`` (96-256-384-384-256, DeepCluster's AlexNet, which the paper's linear-probe code
loads) and ``small`` (64-192-384-256-256, RotNet's). BatchNorm after every conv (a method's ``TrunkStyle``
may leave out conv1's and use LeakyReLU, as BiGAN's encoder does), an optional frozen
Sobel front end (DeepCluster trains with it), and the reference initialisation. A tap is the output of
a conv's ReLU, before any pooling, which is where the paper's probes attach.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from methods.errors import InputError
from methods.trunk.arch import (
    ARCHS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MIN_INPUT_SIZE,
    PLAIN,
    POOLED,
    TAPS,
    TrunkStyle,
    init_weights,
    pool5_dim,
)

__all__ = ["AlexNet", "Sobel"]


class Sobel(nn.Module):
    """Frozen greyscale + horizontal/vertical Sobel filters: 3 channels in, 2 out."""

    def __init__(self) -> None:
        super().__init__()
        grey = nn.Conv2d(3, 1, kernel_size=1, bias=False)
        grey.weight.data.fill_(1.0 / 3.0)
        sobel = nn.Conv2d(1, 2, kernel_size=3, padding=1, bias=False)
        gx = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
        sobel.weight.data.copy_(torch.stack([gx, gx.t()]).unsqueeze(1))
        self.filters = nn.Sequential(grey, sobel)
        self.filters.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.filters(x)


class AlexNet(nn.Module):
    """AlexNet conv trunk taking images in [0, 1]; ``forward`` returns the flattened pool5 output.

    Input normalisation (ImageNet mean/std) lives inside the trunk so that patches, probe images and
    supervised images all enter it the same way.
    """

    def __init__(self, arch: str = "big", sobel: bool = False, bn: bool = True,
                 style: TrunkStyle = PLAIN) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise InputError(f"unknown arch {arch!r}; known: {', '.join(sorted(ARCHS))}")
        self.arch = arch
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.sobel = Sobel() if sobel else None
        in_ch = 2 if sobel else 3
        self.convs = nn.ModuleList()
        for i, (out_ch, k, s, p) in enumerate(ARCHS[arch]):
            layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, k, s, p, bias=not bn)]
            if bn and (i > 0 or style.conv1_bn):
                layers.append(nn.BatchNorm2d(out_ch))
            slope = style.negative_slope
            layers.append(nn.LeakyReLU(slope, inplace=True) if slope else nn.ReLU(inplace=True))
            self.convs.append(nn.Sequential(*layers))
            in_ch = out_ch
        self.pool = nn.MaxPool2d(3, 2)
        init_weights(self)

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(c[0] for c in ARCHS[self.arch])

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        size = min(x.shape[-2:])
        if size < MIN_INPUT_SIZE:
            raise InputError(f"input of {size} px is below the {MIN_INPUT_SIZE} px AlexNet needs")
        x = (x - self.mean) / self.std
        return self.sobel(x) if self.sobel is not None else x

    def taps(self, x: torch.Tensor, names: Sequence[str] = TAPS) -> dict[str, torch.Tensor]:
        """Outputs of the requested convs' ReLUs (before pooling); stops after the deepest one."""
        unknown = set(names) - set(TAPS)
        if unknown:
            raise InputError(f"unknown taps {sorted(unknown)}; known: {', '.join(TAPS)}")
        last = max(TAPS.index(n) for n in names)
        out: dict[str, torch.Tensor] = {}
        x = self._stem(x)
        for i, conv in enumerate(self.convs[: last + 1]):
            x = conv(x)
            if TAPS[i] in names:
                out[TAPS[i]] = x
            if i in POOLED:
                x = self.pool(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._stem(x)
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i in POOLED:
                x = self.pool(x)
        return torch.flatten(x, 1)

    def output_dim(self, size: int) -> int:
        """Length of ``forward``'s output for square inputs of ``size`` px (from the layer table)."""
        return pool5_dim(self.arch, size)
