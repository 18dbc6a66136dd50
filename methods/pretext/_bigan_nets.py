"""BiGAN's generator and joint discriminator (``bigan.py`` is the method): torch classes, apart so that
declaring the method loads no torch."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from methods.trunk.arch import init_weights

__all__ = ["Generator", "JointDiscriminator"]

_WIDTH = 64  # base channel width of G and D (DCGAN's)


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
