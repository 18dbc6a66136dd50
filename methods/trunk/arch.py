"""What the AlexNet trunk is made of, importable without torch: its convs per width, its taps, the smallest
input it takes, its input normalisation and its reference initialisation.

Apart from the module (``alexnet.py``) because trial configs check ``arch`` and ``img_size`` against these,
and heads initialise with ``init_weights``, where no trunk is built (``monosweep validate``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from methods._lazy import lazy
from methods.metrics import LAYERS

nn = lazy("torch.nn")

__all__ = ["ARCHS", "IMAGENET_MEAN", "IMAGENET_STD", "MIN_INPUT_SIZE", "PLAIN", "POOLED", "TAPS", "TrunkStyle",
           "conv_sides", "init_weights", "pool5_dim"]

# (out_channels, kernel, stride, padding) per conv; a 3x3/2 max-pool follows conv1, conv2 and conv5.
ARCHS: dict[str, tuple[tuple[int, int, int, int], ...]] = {
    "big": ((96, 11, 4, 2), (256, 5, 1, 2), (384, 3, 1, 1), (384, 3, 1, 1), (256, 3, 1, 1)),
    "small": ((64, 11, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1)),
}
TAPS = LAYERS
POOLED = frozenset({0, 1, 4})  # the convs a 3x3/2 max-pool follows
# Below 63 px the three max-pools leave no pixel for pool5.
MIN_INPUT_SIZE = 63
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class TrunkStyle:
    """How a method's original builds its AlexNet on the arch's layer table (a method declares its own)."""

    negative_slope: float = 0.0  # 0: ReLU after every conv; BiGAN's encoder: LeakyReLU(0.2)
    conv1_bn: bool = True  # BiGAN's encoder has no BatchNorm after conv1 (nor a bias: its convs have none)


PLAIN = TrunkStyle()  # ReLU and BatchNorm after every conv: RotNet's, DeepCluster's, the baselines'


def conv_sides(arch: str, size: int) -> list[int]:
    """The side of each conv's output map for a ``size`` px input (before the pool that may follow it)."""
    sides, side = [], size
    for i, (_, kernel, stride, pad) in enumerate(ARCHS[arch]):
        side = (side + 2 * pad - kernel) // stride + 1
        sides.append(side)
        if i in POOLED:
            side = (side - 3) // 2 + 1
    return sides


def pool5_dim(arch: str, size: int) -> int:
    """Width of the flattened pool5 output, what the methods' heads read."""
    side = (conv_sides(arch, size)[-1] - 3) // 2 + 1
    return ARCHS[arch][-1][0] * side * side


def init_weights(module: nn.Module) -> None:
    """Reference initialisation: conv N(0, sqrt(2 / (k*k*out))), linear N(0, 0.01), zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and m.weight.requires_grad:
            fan = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
