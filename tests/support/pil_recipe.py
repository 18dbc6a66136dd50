"""The released recipe as per-image PIL/torchvision calls: the reference the batched generator is held to.

Two uses: the equivalence test renders the generator's own parameters through PIL and compares the
patches; the benchmark runs :func:`released_transform` in DataLoader workers as the obvious alternative.
Written against the current torchvision API (the released script's ``fillcolor``/``resample`` keywords no
longer exist).
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image

from methods.patches.sampling import PatchParams, PatchRecipe

__all__ = ["released_steps", "released_transform", "render_reference"]

_JITTER_OPS = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)


def released_steps(recipe: PatchRecipe, source_size: tuple[int, int], tv: ModuleType = T) -> list[Any]:
    """The released script's transform chain for a source of (H, W), at the recipe's patch size, built
    from ``tv``: ``torchvision.transforms`` (PIL images) or ``torchvision.transforms.v2`` (tensors), whose
    classes take the same arguments. ``antialias`` is what PIL does anyway, and what tensors need to match."""
    h, w = source_size
    steps = recipe.steps
    bicubic, bilinear = tv.InterpolationMode.BICUBIC, tv.InterpolationMode.BILINEAR
    chain: list[Any] = []
    if "crop" in steps:
        chain.append(tv.RandomCrop(int(recipe.init_crop * min(h, w))))
    if "scale" in steps:
        chain.append(tv.RandomResizedCrop(recipe.resized, scale=recipe.scale, ratio=recipe.ratio,
                                          interpolation=bicubic, antialias=True))
    else:
        chain.append(tv.Resize((recipe.resized, recipe.resized), interpolation=bicubic, antialias=True))
    degrees = recipe.degrees if "rotate" in steps else 0.0
    shear = recipe.shear if "shear" in steps else 0.0
    if degrees or shear:
        chain.append(tv.RandomAffine(degrees, shear=shear, interpolation=bilinear, fill=0))
    if "vflip" in steps:
        chain.append(tv.RandomVerticalFlip())
    chain.append(tv.CenterCrop(recipe.size))
    if "hflip" in steps:
        chain.append(tv.RandomHorizontalFlip())
    if "jitter" in steps:
        chain.append(tv.RandomApply([tv.ColorJitter(*recipe.jitter)], p=recipe.jitter_p))
    return chain


def released_transform(recipe: PatchRecipe, source_size: tuple[int, int]) -> T.Compose:
    """The released chain on a PIL image, ending in a (3, S, S) tensor in [0, 1]."""
    return T.Compose([*released_steps(recipe, source_size), T.ToTensor()])


def render_reference(image: Image.Image, params: PatchParams, i: int, recipe: PatchRecipe) -> torch.Tensor:
    """Patch ``i`` of ``params`` made the released way, one PIL call per step; (3, S, S) in [0, 1]."""
    x, y, w, h = (float(v) for v in params.box[i])
    r = recipe.resized
    img = image.resize((r, r), Image.Resampling.BICUBIC, box=(x, y, x + w, y + h))
    angle, shear = float(params.angle[i]), float(params.shear[i])
    if angle or shear:
        img = TF.affine(img, angle=angle, translate=[0, 0], scale=1.0, shear=[shear, 0.0],
                        interpolation=T.InterpolationMode.BILINEAR, fill=0)
    if bool(params.vflip[i]):
        img = TF.vflip(img)
    img = TF.center_crop(img, [recipe.size, recipe.size])
    if bool(params.hflip[i]):
        img = TF.hflip(img)
    if bool(params.jitter[i]):
        for op_index in params.order[i].tolist():
            img = _JITTER_OPS[op_index](img, float(params.factors[i, op_index]))
    out = TF.to_tensor(img)
    assert not math.isnan(float(out.sum()))
    return out
