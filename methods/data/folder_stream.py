"""The full-dataset arm: every image of a folder, with the methods' usual RandomResizedCrop + flip.

Used when ``num_images`` is 0: there are too many images to keep resident, so they are decoded in
DataLoader workers. Each sample's crop is seeded by (seed, epoch, index), like the patch generator's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from methods._lazy import lazy
from methods.data.sources import IMAGE_SUFFIXES
from methods.errors import InputError
from methods.patches.sampling import uniforms

torch, F = lazy("torch"), lazy("torch.nn.functional")

__all__ = ["FolderStream"]


class _Epoch:
    """A map-style data set (what a DataLoader reads: a length and items by index)."""

    def __init__(self, files: list[Path], order: torch.Tensor, keys: torch.Tensor, size: int) -> None:
        import torchvision.transforms as T  # (slow to import: only where a folder is streamed)

        self.files, self.order, self.keys = files, order, keys
        self.transform = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.PILToTensor()])

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> torch.Tensor:
        path = self.files[int(self.order[i])]
        try:
            with Image.open(path) as img:
                rgb = img.convert("RGB")
        except OSError as err:
            raise InputError(f"cannot read image {path}: {err}") from None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.keys[i]))
            return self.transform(rgb)


class FolderStream:
    """Batches of random-resized crops of all images under ``root`` (its ``train/`` if it has one)."""

    def __init__(self, root: str, size: int, seed: int, device: torch.device, workers: int = 2) -> None:
        base = Path(root).expanduser()
        if (base / "train").is_dir():
            base = base / "train"
        if not base.is_dir():
            raise InputError(f"num_images=0 streams a whole folder, but {root} is not a folder")
        self.files = sorted(p for p in base.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.files:
            raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {base}")
        self.size, self.seed, self.device, self.workers = size, seed, device, workers

    def epoch_batches(self, epoch: int, batch_size: int, total: int, *, reuse: bool = False
                      ) -> Iterator[torch.Tensor]:
        """``total`` crops of the files in a fresh order each epoch (cycling when total > files); every
        batch is new (decoded in workers), whatever ``reuse`` says."""
        n = len(self.files)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.cat([torch.randperm(n, generator=gen) for _ in range(-(-total // n))])[:total]
        yield from self._load(order, self._keys(epoch, torch.arange(total)), batch_size)

    def batches_at(self, epoch: int, indices: torch.Tensor, batch_size: int, *, reuse: bool = False,
                   views: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
        """Crops number ``indices`` (file ``i % files``), each seeded by (seed, epoch, i); ``views`` (one per
        index, ``PatchParams.view``: output to crop coordinates in [-1, 1]) resample each crop once more."""
        batches = self._load(indices % len(self.files), self._keys(epoch, indices), batch_size)
        if views is None:
            yield from batches
            return
        for x, view in zip(batches, views.split(batch_size), strict=True):
            theta = view[:, :2, :].to(x.device, torch.float32)
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            yield F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def _keys(self, epoch: int, indices: torch.Tensor) -> torch.Tensor:
        return (uniforms(self.seed, epoch, indices, 1)[:, 0] * 2**31).long()

    def _load(self, files: torch.Tensor, keys: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
        loader = torch.utils.data.DataLoader(
            _Epoch(self.files, files, keys, self.size), batch_size=batch_size, num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
        )
        for x in loader:
            yield x.to(self.device, non_blocking=True).float().div_(255.0)
