"""Where source photos come from: files, folders, or photos that installed packages ship.

A source entry is one of
  * a path to an image file,
  * a path to a folder (its image files, sorted by name),
  * ``sample:NAME`` — a photo inside the scikit-image wheel (no download), see :data:`SAMPLES`,
  * ``samples`` — all of those photos, as if they were one folder.
Picking N images out of more candidates is deterministic in the seed, so "10 images, seed 3" is
the same 10 images on every machine and every restart.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from methods._lazy import lazy
from methods.errors import InputError

torch = lazy("torch")

__all__ = ["IMAGE_SUFFIXES", "SAMPLES", "SourceImage", "load_image_file", "resolve_sources"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm")

# Photos stored inside the scikit-image wheel (skimage.data), i.e. available with no network.
SAMPLES: tuple[str, ...] = (
    "astronaut",
    "brick",
    "camera",
    "chelsea",
    "coffee",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "rocket",
    "stereo_motorcycle",
)


@dataclass(frozen=True)
class SourceImage:
    """A named source photo; ``load()`` returns it as a uint8 tensor of shape (3, H, W)."""

    name: str
    load: Callable[[], torch.Tensor]
    path: Path | None = None

    def check(self) -> None:
        """Cheap readability check (the header only), so bad files fail before any work starts."""
        if self.path is None:
            return
        try:
            with Image.open(self.path) as img:
                img.size  # noqa: B018
        except (UnidentifiedImageError, OSError) as err:
            raise InputError(f"cannot read image {self.path}: {err}") from None


def _to_chw(array: np.ndarray) -> torch.Tensor:
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    return torch.from_numpy(np.array(array[..., :3], copy=True)).permute(2, 0, 1).contiguous()


def load_image_file(path: Path) -> torch.Tensor:
    """Decode an image file to a uint8 RGB tensor (3, H, W); a one-line InputError if it can't."""
    if not path.is_file():
        raise InputError(f"source image not found: {path}")
    try:
        with Image.open(path) as img:
            return _to_chw(np.asarray(img.convert("RGB")))
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise InputError(f"cannot read image {path}: {err}") from None


def load_sample(name: str) -> torch.Tensor:
    import skimage.data

    image = getattr(skimage.data, name)()
    if isinstance(image, tuple):  # stereo_motorcycle returns (left, right, disparity)
        image = image[0]
    return _to_chw(np.asarray(image))


def _sample(name: str) -> SourceImage:
    if name not in SAMPLES:
        raise InputError(f"unknown sample photo {name!r}; known: {', '.join(SAMPLES)}")
    return SourceImage(f"sample:{name}", lambda: load_sample(name))


def _file(path: Path) -> SourceImage:
    return SourceImage(str(path), lambda: load_image_file(path), path)


def _candidates(entry: str) -> list[SourceImage]:
    if entry == "samples":
        return [_sample(name) for name in SAMPLES]
    if entry.startswith("sample:"):
        return [_sample(entry.removeprefix("sample:"))]
    path = Path(entry).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise InputError(f"source folder has no images ({', '.join(IMAGE_SUFFIXES)}): {path}")
        return [_file(p) for p in files]
    if not path.exists():
        raise InputError(
            f"source not found: {entry} (give an image file, a folder, 'samples' or 'sample:NAME')"
        )
    return [_file(path)]


def resolve_sources(source: str | Sequence[str], num_images: int, seed: int) -> list[SourceImage]:
    """The ``num_images`` source photos a trial trains on, chosen deterministically by ``seed``."""
    entries = [source] if isinstance(source, str) else list(source)
    candidates = [c for entry in entries for c in _candidates(entry)]
    if num_images < 1:
        raise InputError(f"num_images must be >= 1, got {num_images}")
    if num_images > len(candidates):
        raise InputError(
            f"num_images={num_images} but source {entries} holds only {len(candidates)} image(s)"
        )
    if num_images == len(candidates):
        return candidates
    picked = sorted(random.Random(seed).sample(range(len(candidates)), num_images))
    return [candidates[i] for i in picked]
