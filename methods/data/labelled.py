"""Labelled image sets for the linear probe and the supervised baseline.

Accepted forms (all local; nothing is downloaded):
  * ``demo`` — a built-in set made deterministically from the sample photos of the scikit-image
    wheel: crops labelled by the photo they came from, train and val from disjoint regions. It exists
    so a fresh machine can run a trial end to end; it is a demo, not a benchmark.
  * an ImageFolder directory: ``train/<class>/*`` and ``val/<class>/*`` (or ``test/``), the way
    ImageNet, Places and the offline CIFAR-10 export are kept;
  * the same layout inside a ``.tar`` file (read in place, only the files needed);
  * a torchvision root of CIFAR-10, CIFAR-100 or STL-10 (a folder holding ``cifar-10-batches-py``,
    ``cifar-100-python`` or ``stl10_binary``), as ``monosweep data NAME DIR`` writes it.

Small sets are decoded once into a uint8 tensor at the probe size; large image folders are streamed
through a DataLoader with the protocol's random-resized crop + flip. For in-memory sets the same crop
+ flip is one batched resampling pass on the device (``random_resized_crops``), asked for with ``crop``.
"""

from __future__ import annotations

import io
import math
import pickle
import random
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from methods._lazy import lazy
from methods.data.sources import IMAGE_SUFFIXES, SAMPLES, load_image_file, load_sample
from methods.errors import InputError
from methods.provenance import digest

torch, F = lazy("torch"), lazy("torch.nn.functional")

__all__ = ["DEMO", "DEMO_NOTE", "TORCHVISION_ROOTS", "LabelledData", "Split", "load_labelled", "locate_labelled",
           "random_resized_crops"]

# Decode into memory when the split's images at the probe size stay under this many bytes.
IN_MEMORY_BYTES = 4 << 30
_VAL_DIRS = ("val", "test")
# torchvision's RandomResizedCrop defaults, which the paper's probe code trains with (paper.md 3.1).
CROP_SCALE = (0.08, 1.0)
CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
_CROP_ATTEMPTS = 10


def random_resized_crops(
    x: torch.Tensor,
    flip: torch.Tensor,
    generator: torch.Generator,
    scale: tuple[float, float] = CROP_SCALE,
    ratio: tuple[float, float] = CROP_RATIO,
) -> torch.Tensor:
    """torchvision's RandomResizedCrop (+ the given horizontal flips) for a whole batch in one pass.

    Per sample: area in ``scale`` of the image and log-uniform aspect in ``ratio``, the first of 10
    tries that fits, else the whole image; position uniform. Draws come from ``generator`` on the CPU
    (the same crops on every device); the crop, resize back to the input size and flip are a single
    bilinear ``grid_sample`` on ``x``'s device. Crops are never larger than the image, so the resize
    only enlarges and needs no antialiasing.
    """
    n, _, height, width = x.shape
    u = torch.rand(2, n, _CROP_ATTEMPTS, generator=generator, dtype=torch.float64)
    area = height * width * (scale[0] + (scale[1] - scale[0]) * u[0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[1])
    w_try, h_try = torch.sqrt(area * aspect), torch.sqrt(area / aspect)
    fits = (w_try <= width) & (h_try <= height)
    first = fits.to(torch.int64).argmax(1, keepdim=True)
    found = fits.any(1)
    w = torch.where(found, w_try.gather(1, first).squeeze(1), float(width))
    h = torch.where(found, h_try.gather(1, first).squeeze(1), float(height))
    corner = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    left, top = corner[:, 0] * (width - w), corner[:, 1] * (height - h)
    # Output [-1, 1] -> the crop's span in input coordinates (align_corners=False); a flip negates x.
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = torch.where(flip.cpu(), -w / width, w / width)
    theta[:, 0, 2] = (2 * left + w) / width - 1
    theta[:, 1, 1] = h / height
    theta[:, 1, 2] = (2 * top + h) / height - 1
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


@dataclass
class Split:
    """One split: either ``images`` (uint8, N x 3 x S x S, in memory) or ``files`` streamed from disk."""

    labels: torch.Tensor
    size: int
    images: torch.Tensor | None = None
    files: list[Path] | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def content(self) -> list[torch.Tensor | str]:
        """What the split's digest covers: labels and images in memory, or labels and file names on disk."""
        return [self.labels, self.images] if self.images is not None else [self.labels, *map(str, self.files or [])]

    def batches(
        self,
        batch_size: int,
        device: torch.device,
        *,
        shuffle_seed: int | None = None,
        augment: bool = False,
        crop: bool = False,
        workers: int = 0,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(images in [0, 1] on ``device``, labels) batches.

        ``augment`` adds random flips; with ``crop`` too, in-memory images also get the protocol's
        random-resized crop (what the probe trains with). Files streamed from disk always get crop +
        flip when augmented. Without ``augment`` the images are the stored centre views.
        """
        order = torch.arange(len(self))
        if shuffle_seed is not None:
            order = torch.randperm(len(self), generator=torch.Generator().manual_seed(shuffle_seed))
        if self.images is None:
            yield from self._stream(order, batch_size, device, augment, workers)
            return
        for start in range(0, len(self), batch_size):
            idx = order[start : start + batch_size]
            x = self.images[idx].to(device, non_blocking=True).float().div_(255.0)
            if augment:
                generator = torch.Generator().manual_seed(int(idx[0]))
                flip = torch.rand(len(idx), generator=generator) < 0.5
                if crop:
                    x = random_resized_crops(x, flip, generator)
                else:
                    x = torch.where(flip.to(device).view(-1, 1, 1, 1), x.flip(-1), x)
            yield x, self.labels[idx].to(device)

    def _stream(
        self, order: torch.Tensor, batch_size: int, device: torch.device, augment: bool, workers: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        import torchvision.transforms as T

        assert self.files is not None
        if augment:
            transform = T.Compose([T.RandomResizedCrop(self.size), T.RandomHorizontalFlip(), T.PILToTensor()])
        else:
            transform = T.Compose([T.Resize(self.size * 8 // 7), T.CenterCrop(self.size), T.PILToTensor()])
        dataset = _FileDataset([self.files[i] for i in order], self.labels[order], transform)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, num_workers=workers, pin_memory=device.type == "cuda"
        )
        for x, y in loader:
            yield x.to(device, non_blocking=True).float().div_(255.0), y.to(device)


class _FileDataset:
    """A map-style data set (what a DataLoader reads: a length and items by index)."""

    def __init__(self, files: list[Path], labels: torch.Tensor, transform: object) -> None:
        self.files, self.labels, self.transform = files, labels, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        with Image.open(self.files[i]) as img:
            return self.transform(img.convert("RGB")), self.labels[i]  # type: ignore[operator]


@dataclass
class LabelledData:
    name: str
    classes: list[str]
    train: Split
    val: Split

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def digest(self) -> str:
        """A content digest of the set as the probe sees it (classes, labels, images at their probe size)."""
        return digest([*self.classes, *self.train.content(), "val", *self.val.content()])


# ---------------------------------------------------------------------------------------- helpers
def _fit(images: Sequence[torch.Tensor], size: int) -> torch.Tensor:
    """Resize the short side to ``size`` (antialiased) and centre-crop: uint8 (N, 3, size, size)."""
    out = torch.empty(len(images), 3, size, size, dtype=torch.uint8)
    same = len({tuple(im.shape) for im in images}) == 1
    groups = [(0, torch.stack(list(images)))] if same and images else [(i, im[None]) for i, im in enumerate(images)]
    for start, batch in groups:
        for lo in range(0, batch.shape[0], 4096):
            part = batch[lo : lo + 4096].float()
            h, w = part.shape[-2:]
            scale = size / min(h, w)
            th, tw = max(size, round(h * scale)), max(size, round(w * scale))
            if (th, tw) != (h, w):
                part = F.interpolate(part, (th, tw), mode="bilinear", antialias=True, align_corners=False)
            top, left = (th - size) // 2, (tw - size) // 2
            part = part[..., top : top + size, left : left + size]
            out[start + lo : start + lo + part.shape[0]] = part.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _limit(n: int, limit: int | None, seed: int) -> list[int]:
    """Indices of a seeded subset of at most ``limit`` items (all of them, in order, without a limit)."""
    if limit is None or limit >= n:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), limit))


def _decode(data: bytes, where: str) -> torch.Tensor:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return torch.from_numpy(np.asarray(img.convert("RGB")).copy()).permute(2, 0, 1)
    except OSError as err:
        raise InputError(f"cannot read image {where}: {err}") from None


# ---------------------------------------------------------------------------------------- formats
def _imagefolder_selection(
    names: Sequence[str], where: str, limits: tuple[int | None, int | None], seed: int
) -> tuple[list[str], list[tuple[list[str], torch.Tensor]]]:
    """Classes, and per split (train, held-out) the chosen file names and their labels.

    ``names`` are relative paths like ``train/cat/1.jpg`` (one top folder above is allowed); the
    held-out split is ``val/`` or else ``test/``; ``limits`` pick seeded subsets.
    """
    splits: dict[str, list[tuple[str, str]]] = {}
    for name in names:
        parts = Path(name).parts
        if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
            continue
        for depth in (0, 1):
            if len(parts) == depth + 3 and parts[depth] in ("train", *_VAL_DIRS):
                splits.setdefault(parts[depth], []).append((parts[depth + 1], name))
    val_name = next((v for v in _VAL_DIRS if v in splits), None)
    if "train" not in splits or val_name is None:
        raise InputError(f"{where} is not an ImageFolder layout: expected train/<class>/*.jpg and val/ or test/")
    classes = sorted({c for c, _ in splits["train"]})
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({c for c, _ in splits[val_name]} - set(classes))
    if unknown:
        raise InputError(f"{where}: held-out classes {unknown} do not appear in train/")
    chosen = []
    for offset, (split, limit) in enumerate((("train", limits[0]), (val_name, limits[1]))):
        items = splits[split]
        keep = _limit(len(items), limit, seed + offset)
        chosen.append(([items[i][1] for i in keep], torch.tensor([index[items[i][0]] for i in keep])))
    return classes, chosen


def _load_tar(path: Path, size: int, limits: tuple[int | None, int | None], seed: int) -> LabelledData:
    with tarfile.open(path) as archive:
        members = {m.name: m for m in archive.getmembers() if m.isfile()}
        classes, chosen = _imagefolder_selection(sorted(members), str(path), limits, seed)
        made = []
        for names, labels in chosen:
            images = []
            for name in names:
                handle = archive.extractfile(members[name])
                assert handle is not None
                images.append(_decode(handle.read(), f"{path}:{name}"))
            made.append(Split(labels, size, images=_fit(images, size)))
    return LabelledData(str(path), classes, made[0], made[1])


def _load_folder(path: Path, size: int, limits: tuple[int | None, int | None], seed: int) -> LabelledData:
    names = [str(p.relative_to(path)) for p in sorted(path.rglob("*")) if p.is_file()]
    classes, chosen = _imagefolder_selection(names, str(path), limits, seed)
    made = []
    for names, labels in chosen:
        files = [path / name for name in names]
        if len(files) * 3 * size * size <= IN_MEMORY_BYTES:
            made.append(Split(labels, size, images=_fit([load_image_file(f) for f in files], size)))
        else:
            made.append(Split(labels, size, files=files))
    return LabelledData(str(path), classes, made[0], made[1])


@dataclass(frozen=True)
class _TorchvisionRoot:
    """Where torchvision keeps one data set under its root, and how its files hold images and labels."""

    folder: str  # what torchvision's archive extracts to
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str  # the file naming the classes
    names_key: str = ""  # pickled sets: the meta key of the class names, the batch key of the labels
    labels_key: str = ""

    def files(self) -> list[str]:
        """The files the probe reads (STL-10 keeps images and labels apart; its unlabelled part is unused)."""
        splits = [*self.train, *self.test]
        return [self.meta, *(splits if self.names_key else [f"{n}_{part}.bin" for n in splits for part in "Xy"])]


TORCHVISION_ROOTS = {
    "cifar10": _TorchvisionRoot("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)),
                                ("test_batch",), "batches.meta", "label_names", "labels"),
    "cifar100": _TorchvisionRoot("cifar-100-python", ("train",), ("test",), "meta", "fine_label_names",
                                 "fine_labels"),
    "stl10": _TorchvisionRoot("stl10_binary", ("train",), ("test",), "class_names.txt"),
}


def _read_pickled(layout: _TorchvisionRoot, folder: Path, names: Sequence[str]) -> tuple[np.ndarray, list[int]]:
    """Images (N, 32, 32, 3) and labels from CIFAR's pickled batches (each row: 1024 R, 1024 G, 1024 B)."""
    images, labels = [], []
    for name in names:
        with (folder / name).open("rb") as handle:
            batch = pickle.load(handle, encoding="latin1")
        images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.extend(batch[layout.labels_key])
    return np.concatenate(images), labels


def _read_stl10(folder: Path, names: Sequence[str]) -> tuple[np.ndarray, list[int]]:
    """Images (N, 96, 96, 3) and labels from STL-10's binary files (column-major images, labels 1..10)."""
    images, labels = [], []
    for name in names:
        raw = np.fromfile(folder / f"{name}_X.bin", dtype=np.uint8)
        images.append(raw.reshape(-1, 3, 96, 96).transpose(0, 3, 2, 1))
        labels.extend(int(v) - 1 for v in np.fromfile(folder / f"{name}_y.bin", dtype=np.uint8))
    return np.concatenate(images), labels


def _load_torchvision_root(
    name: str, root: Path, size: int, limits: tuple[int | None, int | None], seed: int
) -> LabelledData:
    layout = TORCHVISION_ROOTS[name]
    folder = root / layout.folder
    missing = [f for f in layout.files() if not (folder / f).is_file()]
    if missing:
        raise InputError(f"{folder} lacks {', '.join(missing)}: fetch the set again with "
                         f"`monosweep data {name} {root}`")
    if layout.names_key:
        with (folder / layout.meta).open("rb") as handle:
            classes = list(pickle.load(handle, encoding="latin1")[layout.names_key])
    else:
        classes = (folder / layout.meta).read_text().split()
    made = []
    for names, limit, offset in ((layout.train, limits[0], 0), (layout.test, limits[1], 1)):
        array, labels = (_read_pickled(layout, folder, names) if layout.names_key else _read_stl10(folder, names))
        keep = _limit(len(labels), limit, seed + offset)
        images = torch.from_numpy(np.ascontiguousarray(array[keep])).permute(0, 3, 1, 2)
        made.append(Split(torch.tensor([labels[i] for i in keep]), size, images=_fit(list(images), size)))
    return LabelledData(f"{name}:{root}", classes, made[0], made[1])


DEMO = "demo"
# What the demo set can and cannot show, said wherever its numbers appear (status, report, plots).
DEMO_NOTE = ("probe 'demo' (crops of the built-in photos, labelled by photo) is a smoke test: it shows that every "
             "step runs, not what a trunk learnt (a random trunk scores as high on it); for that, probe a real "
             "set: `monosweep data cifar10 DIR` (README, 'Next: real probe data')")


def _load_demo(size: int, limits: tuple[int | None, int | None], seed: int) -> LabelledData:
    """Crops of each sample photo, labelled by photo: train from the left 60 %, val from the rest."""
    per_class = (120, 40)
    rng = random.Random(0)  # the demo set is fixed; the trial seed only picks subsets of it
    crops: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
    labels: tuple[list[int], list[int]] = ([], [])
    for label, name in enumerate(SAMPLES):
        photo = load_sample(name)
        h, w = photo.shape[-2:]
        side = round(0.3 * min(h, w))
        cut = round(0.6 * w)
        regions = ((0, cut - side), (cut, w - side))
        for split, (x_lo, x_hi) in enumerate(regions):
            for _ in range(per_class[split]):
                x, y = rng.randint(x_lo, x_hi), rng.randint(0, h - side)
                crops[split].append(photo[:, y : y + side, x : x + side])
                labels[split].append(label)
    made = []
    for split in (0, 1):
        keep = _limit(len(labels[split]), limits[split], seed + split)
        made.append(Split(torch.tensor([labels[split][i] for i in keep]), size,
                          images=_fit([crops[split][i] for i in keep], size)))
    return LabelledData(DEMO, list(SAMPLES), made[0], made[1])


def locate_labelled(spec: str) -> tuple[str, Path | None]:
    """The form of labelled data ``spec`` names and its path: 'demo', 'tar', 'folder', or a torchvision root's
    set name ('cifar10', 'cifar100', 'stl10')."""
    if spec == DEMO:
        return DEMO, None
    path = Path(spec).expanduser()
    if not path.exists():
        raise InputError(f"labelled data not found: {spec} (give 'demo', an ImageFolder dir, a .tar, or a "
                         "CIFAR-10/100 or STL-10 root; `monosweep data cifar10 DIR` fetches one)")
    if path.is_file() and tarfile.is_tarfile(path):
        return "tar", path
    for name, layout in TORCHVISION_ROOTS.items():
        if path.is_dir() and (path / layout.folder).is_dir():
            return name, path
        if path.is_dir() and path.name == layout.folder:
            return name, path.parent
    if path.is_dir():
        return "folder", path
    raise InputError(f"cannot use {spec} as labelled data: not a folder, a .tar or a torchvision root")


def load_labelled(
    spec: str, size: int, train_limit: int | None = None, val_limit: int | None = None, seed: int = 0
) -> LabelledData:
    """Load labelled data named by ``spec`` at ``size`` px (see the module docstring for the forms)."""
    limits = (train_limit, val_limit)
    kind, path = locate_labelled(spec)
    if path is None:
        return _load_demo(size, limits, seed)
    if kind in TORCHVISION_ROOTS:
        return _load_torchvision_root(kind, path, size, limits, seed)
    loader = {"tar": _load_tar, "folder": _load_folder}[kind]
    return loader(path, size, limits, seed)

