"""Batched colour jitter with torchvision's semantics, for a whole batch of patches at once.

torchvision's ColorJitter draws brightness/contrast/saturation/hue factors and a random order of the
four ops per image. Here every sample carries its own factors and order, and each (position, op) pair
runs once over the samples that need it, so the work is four full-batch passes whatever the batch.
"""

from __future__ import annotations

import torch

__all__ = [
    "adjust_brightness", "adjust_contrast", "adjust_hue", "adjust_saturation", "colour_jitter",
]

GREY = (0.2989, 0.587, 0.114)  # ITU-R 601 luma weights, as torchvision (and the fused renders)


def _grey(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    return (GREY[0] * r + GREY[1] * g + GREY[2] * b).unsqueeze(1)


def _per_sample(f: torch.Tensor) -> torch.Tensor:
    return f.view(-1, 1, 1, 1).to(torch.float32)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (x * _per_sample(factor)).clamp_(0.0, 1.0)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = _per_sample(factor)
    mean = _grey(x).mean(dim=(1, 2, 3), keepdim=True)
    return (f * x + (1.0 - f) * mean).clamp_(0.0, 1.0)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = _per_sample(factor)
    return (f * x + (1.0 - f) * _grey(x)).clamp_(0.0, 1.0)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate hue by ``shift`` (a fraction of a turn) through HSV and back, as torchvision does."""
    maxc, argmax = x.max(dim=1)
    delta = maxc - x.amin(dim=1)
    r, g, b = x.unbind(1)
    # Hue in sixths of a turn: the max channel picks the sector, the other two place it within.
    num = torch.where(argmax == 0, g - b, torch.where(argmax == 1, b - r, r - g))
    sector = argmax.to(x.dtype).mul_(2.0).add_(6.0 * shift.view(-1, 1, 1).to(x.dtype))
    h6 = num.div_(delta.clamp(min=1e-12)).add_(sector).remainder_(6.0)
    # HSV -> RGB: channel n in (5, 3, 1) is v - (v - min) * clamp(min(k, 4 - k), 0, 1), k = (n + h6) mod 6.
    out = torch.empty_like(x)
    for channel, n in enumerate((5.0, 3.0, 1.0)):
        k = (h6 + n).remainder_(6.0)
        weight = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
        torch.sub(maxc, weight.mul_(delta), out=out[:, channel])
    return out


_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def colour_jitter(
    x: torch.Tensor, apply: torch.Tensor, factors: torch.Tensor, order: torch.Tensor
) -> torch.Tensor:
    """Jitter the samples where ``apply`` is true, each with its own factors and op order.

    Args:
        x: (B, 3, H, W) images in [0, 1]; modified in place and returned.
        apply: (B,) bool, which samples are jittered.
        factors: (B, 4) brightness, contrast, saturation factors and hue shift.
        order: (B, 4) a permutation of 0..3 per sample: the op applied at each position.

    Brightness, contrast and saturation are all ``clamp(a*x + c*grey(x) + b*mean(grey(x)))`` with
    per-sample (a, b, c), so at each position one fused pass serves every sample whatever its op
    (identity coefficients for the others); hue runs only on the samples whose op it is.
    """
    ones, zeros = torch.ones_like(factors[:, 0]), torch.zeros_like(factors[:, 0])
    for pos in range(4):
        op = torch.where(apply, order[:, pos], -1)
        a = torch.where(op == 0, factors[:, 0], torch.where(op == 1, factors[:, 1],
                        torch.where(op == 2, factors[:, 2], ones)))
        b = torch.where(op == 1, 1.0 - factors[:, 1], zeros)
        c = torch.where(op == 2, 1.0 - factors[:, 2], zeros)
        if bool(((op >= 0) & (op <= 2)).any()):
            grey = _grey(x)
            shift = c.view(-1, 1, 1, 1) * grey + (b * grey.mean(dim=(1, 2, 3))).view(-1, 1, 1, 1)
            x.mul_(a.view(-1, 1, 1, 1)).add_(shift).clamp_(0.0, 1.0)
        rows = torch.nonzero(op == 3).squeeze(1)
        if rows.numel():
            x.index_copy_(0, rows, adjust_hue(x.index_select(0, rows), factors[rows, 3]))
    return x
