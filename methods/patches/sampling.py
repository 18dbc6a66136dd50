"""What a patch is made of: the released recipe's parameters and each patch's random draws.

Randomness is counter-based: every draw is a hash of (seed, epoch, patch index, stream), so a patch does
not depend on the batch it is drawn in, the device, or how often the trial was restarted. The draws follow
the released recipe step by step (initial crop, random-resized crop with ten tries, rotation, shear, flips,
colour jitter with its op order); :mod:`methods.patches.generator` turns them into pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from methods._lazy import lazy
from methods.patches.augment import FULL

torch = lazy("torch")

__all__ = ["PatchParams", "PatchRecipe", "centre_view", "resized_crop_boxes", "sample_params", "training_views",
           "uniforms"]

_MASK32 = 0xFFFFFFFF
_ATTEMPTS = 10  # random-resized-crop tries before clamping (failure odds per try are < 10 %)


@dataclass(frozen=True)
class PatchRecipe:
    """Parameters of the released recipe; defaults are the script's (deg 30, shear 30, scale 500 1)."""

    size: int = 64
    steps: frozenset[str] = FULL
    init_crop: float = 0.5
    scale: tuple[float, float] = (1.0 / 500.0, 1.0)
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    degrees: float = 30.0
    shear: float = 30.0
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.5

    @property
    def resized(self) -> int:
        """Side R of the random-resized crop; sqrt(2) x S keeps rotation corners out of the centre crop."""
        return int(math.sqrt(2.0) * self.size)

    @property
    def centre_offset(self) -> int:
        return int(round((self.resized - self.size) / 2.0))


# ---------------------------------------------------------------------------------------- randomness
def _hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mixer on int64 tensors (values stay in [0, 2**32)); same on every device."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


def uniforms(seed: int, epoch: int, index: torch.Tensor, streams: int) -> torch.Tensor:
    """(B, streams) float64 uniforms in [0, 1), a pure function of (seed, epoch, index, stream)."""
    base = _hash32(torch.tensor((seed & _MASK32) ^ 0x5BD1E995, dtype=torch.int64))
    key = _hash32(_hash32(base ^ (epoch & _MASK32)) ^ (index.to(torch.int64) & _MASK32))
    key = _hash32(key ^ ((index.to(torch.int64) >> 32) & _MASK32))
    stream_keys = _hash32(torch.arange(streams, dtype=torch.int64) * 0x9E3779B1 & _MASK32)
    bits = _hash32(key.unsqueeze(1) ^ stream_keys.unsqueeze(0))
    return bits.to(torch.float64) / 2.0**32


# Stream numbers of the draws one patch needs.
_SOURCE, _CROP_X, _CROP_Y, _BOX_X, _BOX_Y, _ANGLE, _SHEAR, _HFLIP, _VFLIP, _JITTER = range(10)
_FACTORS = 10  # 4 streams: brightness, contrast, saturation, hue
_ORDER = 14  # 4 streams, argsorted into the op order
_AREA = 18
_RATIO = _AREA + _ATTEMPTS
_STREAMS = _RATIO + _ATTEMPTS


@dataclass
class PatchParams:
    """Per-sample random parameters of a batch (CPU, float64 unless noted), in source-pixel units.

    ``base``: the initial crop (x, y, w, h); ``box``: the random-resized crop inside it; angles in
    degrees; ``order``: int64 permutation of the four jitter ops.
    """

    source: torch.Tensor
    base: torch.Tensor
    box: torch.Tensor
    angle: torch.Tensor
    shear: torch.Tensor
    hflip: torch.Tensor
    vflip: torch.Tensor
    jitter: torch.Tensor
    factors: torch.Tensor
    order: torch.Tensor
    # (B, 3, 3) maps from the output's normalised coordinates into the rendered patch's, composed into the one
    # resampling: a method's own crop and flip of the patch (DeepCluster's training views); None: identity.
    view: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.source.shape[0])


def resized_crop_boxes(
    base: torch.Tensor, u: torch.Tensor, scale: tuple[float, float], ratio: tuple[float, float]
) -> torch.Tensor:
    """torchvision's RandomResizedCrop inside each ``base`` box (x, y, w, h): ten tries of an area fraction in
    ``scale`` and a log-uniform aspect ``ratio``, the first that fits, else the last one clamped; ``u`` holds
    the draws in the streams of ``sample_params``."""
    n, bw, bh = base.shape[0], base[:, 2:3], base[:, 3:4]
    lo, hi = scale
    area = bw * bh * (lo + (hi - lo) * u[:, _AREA:_RATIO])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[:, _RATIO:_STREAMS])
    w_try, h_try = torch.sqrt(area * aspect), torch.sqrt(area / aspect)
    fits = (w_try <= bw) & (h_try <= bh)
    pick = torch.where(fits.any(1), fits.to(torch.int64).argmax(1), torch.full((n,), _ATTEMPTS - 1))
    w = torch.minimum(w_try.gather(1, pick[:, None]), bw).squeeze(1)
    h = torch.minimum(h_try.gather(1, pick[:, None]), bh).squeeze(1)
    return torch.stack(
        [base[:, 0] + u[:, _BOX_X] * (bw[:, 0] - w), base[:, 1] + u[:, _BOX_Y] * (bh[:, 0] - h), w, h], 1
    )


def training_views(seed: int, epoch: int, index: torch.Tensor, scale: tuple[float, float] = (0.08, 1.0),
                   ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)) -> torch.Tensor:
    """(B, 3, 3) views (see ``PatchParams.view``): a RandomResizedCrop of the patch (torchvision's defaults)
    then a horizontal flip with probability 1/2, one per draw ``index`` of ``epoch``, counter-based like the
    patches (a stream of their own: the seed is salted)."""
    u = uniforms(seed ^ 0x2545F491, epoch, index, _STREAMS)
    n = u.shape[0]
    unit = torch.tensor([[0.0, 0.0, 2.0, 2.0]], dtype=torch.float64).expand(n, 4)  # the patch, [-1, 1]^2 as x y w h
    x, y, w, h = resized_crop_boxes(unit, u, scale, ratio).unbind(1)
    sign = torch.where(u[:, _HFLIP] < 0.5, -1.0, 1.0).to(torch.float64)
    view = torch.zeros(n, 3, 3, dtype=torch.float64)
    view[:, 0, 0], view[:, 0, 2] = sign * w / 2, x + w / 2 - 1
    view[:, 1, 1], view[:, 1, 2] = h / 2, y + h / 2 - 1
    view[:, 2, 2] = 1.0
    return view


def centre_view(n: int, fraction: float) -> torch.Tensor:
    """(n, 3, 3) views of the patch's centre ``fraction`` of each side (DeepCluster clusters 224 of 256)."""
    return torch.diag(torch.tensor([fraction, fraction, 1.0], dtype=torch.float64)).expand(n, 3, 3).clone()


def sample_params(
    recipe: PatchRecipe, sizes: Sequence[tuple[int, int]], seed: int, epoch: int, index: torch.Tensor
) -> PatchParams:
    """Draw the parameters of patches ``index`` of ``epoch``; ``sizes`` are the sources' (H, W)."""
    u = uniforms(seed, epoch, index, _STREAMS)
    steps = recipe.steps
    n = u.shape[0]
    source = (u[:, _SOURCE] * len(sizes)).long().clamp_(max=len(sizes) - 1)
    hw = torch.tensor(sizes, dtype=torch.float64)[source]
    height, width = hw[:, 0], hw[:, 1]

    if "crop" in steps:
        side = torch.floor(recipe.init_crop * torch.minimum(height, width))
        base = torch.stack(
            [u[:, _CROP_X] * (width - side), u[:, _CROP_Y] * (height - side), side, side], dim=1
        )
    else:
        base = torch.stack([torch.zeros(n), torch.zeros(n), width, height], dim=1).double()

    if "scale" in steps:
        box = resized_crop_boxes(base, u, recipe.scale, recipe.ratio)
    else:
        box = base.clone()

    zeros = torch.zeros(n, dtype=torch.float64)
    angle = (2 * u[:, _ANGLE] - 1) * recipe.degrees if "rotate" in steps else zeros
    shear = (2 * u[:, _SHEAR] - 1) * recipe.shear if "shear" in steps else zeros
    hflip = (u[:, _HFLIP] < 0.5) & ("hflip" in steps)
    vflip = (u[:, _VFLIP] < 0.5) & ("vflip" in steps)
    jitter = (u[:, _JITTER] < recipe.jitter_p) & ("jitter" in steps)
    b, c, s, hue = recipe.jitter
    lo = torch.tensor([max(0.0, 1 - b), max(0.0, 1 - c), max(0.0, 1 - s), -hue], dtype=torch.float64)
    hi = torch.tensor([1 + b, 1 + c, 1 + s, hue], dtype=torch.float64)
    factors = lo + (hi - lo) * u[:, _FACTORS : _FACTORS + 4]
    order = u[:, _ORDER : _ORDER + 4].argsort(dim=1)
    return PatchParams(source, base, box, angle, shear, hflip, vflip, jitter, factors, order)
