"""The full-dataset arm (num_images=0): a whole image folder streamed with RandomResizedCrop + flip."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from methods import InputError, run_trial
from methods.data.folder_stream import FolderStream
from tests.support.configs import tiny


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "train" / c).mkdir(parents=True)
        for i in range(5):
            pixels = rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "train" / c / f"{i}.jpg")
    return tmp_path


def test_stream_batches_are_seeded_by_epoch(folder: Path) -> None:
    stream = FolderStream(str(folder), 64, seed=1, device=torch.device("cpu"), workers=0)
    assert len(stream.files) == 10
    first = torch.cat(list(stream.epoch_batches(0, 4, 12)))
    again = torch.cat(list(FolderStream(str(folder), 64, 1, torch.device("cpu"), 0).epoch_batches(0, 4, 12)))
    other = torch.cat(list(stream.epoch_batches(1, 4, 12)))
    assert first.shape == (12, 3, 64, 64) and float(first.max()) <= 1.0
    assert torch.equal(first, again) and not torch.equal(first, other)


@pytest.mark.parametrize("method", ["rotnet", "deepcluster"])  # DeepCluster draws views of the crops
def test_a_trial_on_the_whole_folder(folder: Path, method: str) -> None:
    result = run_trial(tiny(method=method, source=str(folder), num_images=0, epochs=1, probe_epochs=1))
    assert result.status == "finished" and result.history[0]["steps"] == 4  # 128 patches / 32


def test_views_of_streamed_crops_are_the_crops_resampled(folder: Path) -> None:
    stream = FolderStream(str(folder), 64, seed=1, device=torch.device("cpu"), workers=0)
    crops = torch.cat(list(stream.batches_at(0, torch.arange(4), 4)))
    mirror = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)).expand(4, 3, 3)
    identity = torch.eye(3, dtype=torch.float64).expand(4, 3, 3)
    assert torch.allclose(torch.cat(list(stream.batches_at(0, torch.arange(4), 4, views=identity))), crops, atol=1e-5)
    mirrored = torch.cat(list(stream.batches_at(0, torch.arange(4), 4, views=mirror)))
    assert torch.allclose(mirrored, crops.flip(-1), atol=1e-5)


def test_an_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no images"):
        run_trial(tiny(source=str(tmp_path), num_images=0))
