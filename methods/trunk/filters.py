"""conv1's filters as a picture: the paper's claim that filters learnt from one image look like those learnt
with labels is judged by eye, so every trained trunk gets one (and the report puts them side by side).

Each filter is scaled to its own range, as in the paper's figures; a trunk fed Sobel gradients has two
input channels, drawn as two grey tiles side by side.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["CONV1_WEIGHT", "filter_grid", "labelled_rows"]

CONV1_WEIGHT = "convs.0.0.weight"  # in an AlexNet trunk's state dict (methods/trunk/alexnet.py)


def filter_grid(weight: torch.Tensor, columns: int = 16, zoom: int = 4, gap: int = 1) -> np.ndarray:
    """conv1's weight (out, in, k, k) as an RGB uint8 image: one tile per filter, ``columns`` a row (half as
    many for two-channel tiles, so both kinds of trunk make pictures of one width)."""
    import numpy as np

    w = weight.detach().float().cpu()
    out, channels, k, _ = w.shape
    columns = columns if channels == 3 else max(1, columns // channels)  # (tiles of a Sobel trunk are wider)
    low = w.amin(dim=(1, 2, 3), keepdim=True)
    high = w.amax(dim=(1, 2, 3), keepdim=True)
    w = (w - low) / (high - low).clamp_min(1e-12)
    if channels == 3:
        tiles = w.permute(0, 2, 3, 1)  # (out, k, k, 3)
    else:  # grey tiles, one per input channel, side by side
        tiles = w.permute(0, 2, 1, 3).reshape(out, k, channels * k, 1).expand(-1, -1, -1, 3)
    tiles = tiles.repeat_interleave(zoom, 1).repeat_interleave(zoom, 2).numpy()
    th, tw = tiles.shape[1:3]
    rows = -(-out // columns)
    image = np.ones((rows * (th + gap) + gap, min(out, columns) * (tw + gap) + gap, 3), dtype=np.float32)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        image[gap + r * (th + gap):gap + r * (th + gap) + th, gap + c * (tw + gap):gap + c * (tw + gap) + tw] = tile
    return (image * 255).round().astype(np.uint8)


def labelled_rows(grids: Mapping[str, np.ndarray], label_width: int = 220) -> np.ndarray:
    """Filter grids one above the other, each with its label on the left: the report's side-by-side view."""
    import numpy as np
    from PIL import Image, ImageDraw

    width = label_width + max(g.shape[1] for g in grids.values())
    parts = []
    for label, grid in grids.items():
        row = Image.new("RGB", (width, grid.shape[0] + 8), "white")
        row.paste(Image.fromarray(grid), (label_width, 4))
        ImageDraw.Draw(row).text((6, 4 + grid.shape[0] // 2 - 6), label, fill="black")
        parts.append(np.asarray(row))
    return np.concatenate(parts, axis=0)
