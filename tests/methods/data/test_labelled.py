import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from methods.data.labelled import Split, load_labelled, random_resized_crops
from methods.data.sources import SAMPLES
from methods.errors import InputError


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
    import methods.data.labelled as labelled

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


def test_torchvision_cifar100_format_reads_the_fine_labels(tmp_path: Path) -> None:
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    rng = np.random.default_rng(1)
    for name, count in (("train", 40), ("test", 30)):
        batch = {"data": rng.integers(0, 255, (count, 3072), dtype=np.uint8),
                 "fine_labels": [i % 100 for i in range(count)], "coarse_labels": [i % 20 for i in range(count)]}
        (root / name).write_bytes(pickle.dumps(batch))
    (root / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"f{i}" for i in range(100)],
                                              "coarse_label_names": [f"g{i}" for i in range(20)]}))
    data = load_labelled(str(root), 32)  # the inner folder names the root too
    assert data.name == f"cifar100:{tmp_path}" and len(data.classes) == 100 and data.classes[7] == "f7"
    assert len(data.train) == 40 and data.val.labels.tolist() == list(range(30))


def test_torchvision_stl10_format_is_column_major_with_labels_from_one(tmp_path: Path) -> None:
    root = tmp_path / "stl10_binary"
    root.mkdir()
    rng = np.random.default_rng(2)
    images = rng.integers(0, 255, (6, 3, 96, 96), dtype=np.uint8)  # (N, C, H, W)
    for name in ("train", "test"):
        # STL-10 stores each channel column by column: (N, C, W, H) in memory.
        images.transpose(0, 1, 3, 2).tofile(root / f"{name}_X.bin")
        np.array([1, 2, 3, 10, 10, 5], dtype=np.uint8).tofile(root / f"{name}_y.bin")
    (root / "class_names.txt").write_text("\n".join(f"s{i}" for i in range(10)) + "\n")
    data = load_labelled(str(tmp_path), 96)
    assert data.classes == [f"s{i}" for i in range(10)]
    assert data.val.labels.tolist() == [0, 1, 2, 9, 9, 4]
    assert torch.equal(data.val.images, torch.from_numpy(images))


def test_a_torchvision_root_missing_a_file_names_it_and_the_fetch_command(tmp_path: Path) -> None:
    (tmp_path / "stl10_binary").mkdir()
    (tmp_path / "stl10_binary" / "class_names.txt").write_text("a b\n")
    with pytest.raises(InputError, match=r"lacks train_X\.bin, train_y\.bin, test_X\.bin, test_y\.bin: .*`monosweep data stl10 "):
        load_labelled(str(tmp_path), 32)


def test_bad_labelled_data_gives_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_labelled(str(tmp_path / "nope"), 64)
    (tmp_path / "train" / "a").mkdir(parents=True)
    with pytest.raises(InputError, match="ImageFolder layout"):
        load_labelled(str(tmp_path), 64)


def _stacked(split: Split, seed: int, **flags: bool) -> torch.Tensor:
    return torch.cat([x for x, _ in split.batches(16, torch.device("cpu"), shuffle_seed=seed, **flags)])


def test_probe_training_crops_in_memory_images_and_evaluation_sees_the_centre_view() -> None:
    """The streamed probe's training batches of an in-memory set get random-resized crop + flip (the
    protocol), seeded; flips alone are what the supervised baseline keeps; without augment: stored views."""
    split = load_labelled("demo", 64, train_limit=64, val_limit=16).train
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(3))
    plain = split.images[order].float() / 255.0
    cropped = _stacked(split, 3, augment=True, crop=True)
    assert cropped.shape == plain.shape and float(cropped.min()) >= 0.0 and float(cropped.max()) <= 1.0
    nearest = torch.minimum((cropped - plain).abs().mean((1, 2, 3)), (cropped - plain.flip(-1)).abs().mean((1, 2, 3)))
    assert float((nearest > 0.01).float().mean()) > 0.9  # more than a flip: a different view of the image
    assert torch.equal(cropped, _stacked(split, 3, augment=True, crop=True))  # deterministic for a seed
    other_order = torch.randperm(len(split), generator=torch.Generator().manual_seed(4))
    other = _stacked(split, 4, augment=True, crop=True)[torch.argsort(other_order)]
    assert not torch.allclose(cropped[torch.argsort(order)], other, atol=1e-3)  # another seed, other crops
    flipped = _stacked(split, 3, augment=True)
    assert all(torch.equal(a, p) or torch.equal(a, p.flip(-1)) for a, p in zip(flipped, plain, strict=True))
    assert torch.equal(torch.cat([x for x, _ in split.batches(16, torch.device("cpu"))]), split.images / 255.0)


def test_random_resized_crops_geometry() -> None:
    """Full-size square crops are the images (flipped where asked); quarter-area crops span half the image."""
    x = torch.rand(6, 3, 32, 32)
    flip = torch.tensor([True, False] * 3)
    same = random_resized_crops(x, flip, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert torch.allclose(same, torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x), atol=1e-5)
    ramp = ((torch.arange(32) + 0.5) / 32).expand(6, 3, 32, 32)  # value = column centre / width
    half = random_resized_crops(ramp, flip, torch.Generator().manual_seed(1), scale=(0.25, 0.25), ratio=(1.0, 1.0))
    rows = half[:, 0, 0]
    span = (rows[:, -1] - rows[:, 0]).abs()
    assert torch.allclose(span, torch.full((6,), 0.5 * 31 / 32), atol=1e-5)  # a 16 px wide crop, enlarged to 32
    assert bool(((rows[:, -1] < rows[:, 0]) == flip).all())
    assert float(half.min()) >= 0.5 / 32 - 1e-6 and float(half.max()) <= 31.5 / 32 + 1e-6
