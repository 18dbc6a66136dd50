import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from methods.errors import InputError
from methods.labelled import load_labelled
from methods.sources import SAMPLES


def test_demo_set_is_deterministic_balanced_and_split_by_region() -> None:
    a = load_labelled("demo", 64)
    b = load_labelled("demo", 64)
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.val.labels, b.val.labels)
    assert a.classes == list(SAMPLES)
    assert torch.bincount(a.train.labels).tolist() == [120] * len(SAMPLES)
    assert tuple(a.train.images.shape[1:]) == (3, 64, 64)
    # Disjoint regions: no held-out crop equals a training crop.
    flat_train = a.train.images.flatten(1).float()
    nearest = torch.cdist(a.val.images.flatten(1).float()[:50], flat_train).min(dim=1).values
    assert float(nearest.min()) > 0


def test_limits_pick_a_seeded_subset() -> None:
    small = load_labelled("demo", 64, train_limit=100, val_limit=30, seed=1)
    again = load_labelled("demo", 64, train_limit=100, val_limit=30, seed=1)
    other = load_labelled("demo", 64, train_limit=100, val_limit=30, seed=2)
    assert len(small.train) == 100 and len(small.val) == 30
    assert torch.equal(small.train.labels, again.train.labels)
    assert not torch.equal(small.train.images, other.train.images)


def test_cifar10_tar_is_read_in_place(cifar_tar: Path) -> None:
    data = load_labelled(str(cifar_tar), 64, train_limit=500, val_limit=200, seed=0)
    assert data.num_classes == 10 and "airplane" in data.classes
    assert tuple(data.train.images.shape) == (500, 3, 64, 64)
    assert len(data.val) == 200 and len(torch.unique(data.train.labels)) == 10


def _write_imagefolder(root: Path, split: str, classes: int = 3, per_class: int = 4) -> None:
    rng = np.random.default_rng(0)
    for c in range(classes):
        folder = root / split / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def test_imagefolder_directory_and_batches(tmp_path: Path) -> None:
    _write_imagefolder(tmp_path, "train")
    _write_imagefolder(tmp_path, "val", per_class=2)
    data = load_labelled(str(tmp_path), 64)
    assert data.classes == ["class0", "class1", "class2"] and len(data.train) == 12 and len(data.val) == 6
    x, y = next(data.train.batches(8, torch.device("cpu"), shuffle_seed=0, augment=True))
    assert x.shape == (8, 3, 64, 64) and float(x.max()) <= 1.0 and y.dtype == torch.int64


def test_streamed_imagefolder_gives_the_same_shapes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import methods.labelled as labelled

    _write_imagefolder(tmp_path, "train")
    _write_imagefolder(tmp_path, "test", per_class=2)
    monkeypatch.setattr(labelled, "IN_MEMORY_BYTES", 0)
    data = load_labelled(str(tmp_path), 64)
    assert data.train.images is None and data.train.files is not None
    batches = list(data.val.batches(4, torch.device("cpu")))
    assert [tuple(x.shape) for x, _ in batches] == [(4, 3, 64, 64), (2, 3, 64, 64)]
    assert torch.cat([y for _, y in batches]).tolist() == [0, 0, 1, 1, 2, 2]


def test_torchvision_cifar10_format(tmp_path: Path) -> None:
    """A root in torchvision's own CIFAR-10 layout (pickled batches) is read without a download."""
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 255, (20, 3072), dtype=np.uint8), "labels": list(range(10)) * 2}
        (root / name).write_bytes(pickle.dumps(batch))
    (root / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
    data = load_labelled(str(tmp_path), 64, train_limit=30)
    assert data.classes == [f"c{i}" for i in range(10)]
    assert len(data.train) == 30 and len(data.val) == 20
    assert tuple(data.val.images.shape) == (20, 3, 64, 64)
    assert data.val.labels.tolist() == list(range(10)) * 2
    # Pixel layout: CIFAR stores each image as 1024 R, then G, then B values.
    first = torch.from_numpy(pickle.loads((root / "test_batch").read_bytes())["data"][0].reshape(3, 32, 32))
    upsampled = torch.nn.functional.interpolate(first[None].float(), (64, 64), mode="bilinear", antialias=True)
    assert float((upsampled[0] - data.val.images[0].float()).abs().mean()) < 1.0


def test_bad_labelled_data_gives_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_labelled(str(tmp_path / "nope"), 64)
    (tmp_path / "train" / "a").mkdir(parents=True)
    with pytest.raises(InputError, match="ImageFolder layout"):
        load_labelled(str(tmp_path), 64)
