"""The released recipe as per-image PIL/torchvision calls: the reference the batched generator is held to.

Two uses: the equivalence test renders the generator's own parameters through PIL and compares the
patches; the benchmark runs :func:`released_transform` in DataLoader workers as the obvious alternative.
Written against the current torchvision API (the released script's ``fillcolor``/``resample`` keywords no
longer exist).
"""

from __future__ import annotations

import math

import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image

from methods.patches import PatchParams, PatchRecipe

__all__ = ["released_transform", "render_reference"]

_JITTER_OPS = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)


def released_transform(recipe: PatchRecipe, source_size: tuple[int, int]) -> T.Compose:
    """The released script's transform chain for a source of (H, W), at the recipe's patch size."""
    h, w = source_size
    steps = recipe.steps
    chain: list[object] = []
    if "crop" in steps:
        chain.append(T.RandomCrop(int(recipe.init_crop * min(h, w))))
    if "scale" in steps:
        chain.append(T.RandomResizedCrop(recipe.resized, scale=recipe.scale, ratio=recipe.ratio,
                                         interpolation=T.InterpolationMode.BICUBIC))
    else:
        chain.append(T.Resize((recipe.resized, recipe.resized), interpolation=T.InterpolationMode.BICUBIC))
    degrees = recipe.degrees if "rotate" in steps else 0.0
    shear = recipe.shear if "shear" in steps else 0.0
    if degrees or shear:
        chain.append(T.RandomAffine(degrees, shear=shear, interpolation=T.InterpolationMode.BILINEAR, fill=0))
    if "vflip" in steps:
        chain.append(T.RandomVerticalFlip())
    chain.append(T.CenterCrop(recipe.size))
    if "hflip" in steps:
        chain.append(T.RandomHorizontalFlip())
    if "jitter" in steps:
        chain.append(T.RandomApply([T.ColorJitter(*recipe.jitter)], p=recipe.jitter_p))
    chain.append(T.ToTensor())
    return T.Compose(chain)


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
