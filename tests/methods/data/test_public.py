"""``monosweep data``: torchvision's own downloader against a real HTTP server on 127.0.0.1 serving a small
archive in CIFAR-10's format (nothing reaches the internet); the root it writes is read by the probe."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from torchvision.datasets import CIFAR10

from methods.data.labelled import load_labelled
from sweep.cli import main
from tests.support.servers import file_server

_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def tiny_cifar10(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding ``cifar-10-python.tar.gz`` with 12 images per batch; torchvision's checksums for
    CIFAR-10 are pointed at this archive's (the real ones describe the 163 MB original)."""
    rng = np.random.default_rng(0)
    members = {name: pickle.dumps({"data": rng.integers(0, 255, (12, 3072), dtype=np.uint8),
                                   "labels": [i % 10 for i in range(12)]}) for name in _BATCHES}
    members["batches.meta"] = pickle.dumps({"label_names": [f"k{i}" for i in range(10)]})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    site = tmp_path / "site"
    site.mkdir()
    (site / CIFAR10.filename).write_bytes(buffer.getvalue())
    monkeypatch.setattr(CIFAR10, "tgz_md5", _md5(buffer.getvalue()))
    monkeypatch.setattr(CIFAR10, "train_list", [[n, _md5(members[n])] for n in _BATCHES[:5]])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", _md5(members["test_batch"])]])
    return site


def test_download_verifies_unpacks_and_the_probe_reads_the_root(tiny_cifar10: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "data" / "cifar10"
    with file_server(tiny_cifar10, tmp_path / "http.log") as server:
        assert main(["data", "cifar10", str(root), "--mirror", server.url]) == 0
        assert [r for r in server.requests() if "cifar-10-python.tar.gz" in r] != []
        assert not (root / CIFAR10.filename).exists()  # the archive is removed once unpacked
        data = load_labelled(str(root), 32)
        assert data.classes == [f"k{i}" for i in range(10)] and len(data.train) == 60 and len(data.val) == 12
        asked = len(server.requests())
        assert main(["data", "cifar10", str(root), "--mirror", server.url]) == 0  # a verified root: no download
        assert len(server.requests()) == asked
    out = capsys.readouterr().out
    assert f"probe_data: {root}" in out and "nothing downloaded" in out


def test_a_corrupted_archive_is_one_line_that_says_to_delete_it(tiny_cifar10: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    archive = tiny_cifar10 / CIFAR10.filename
    archive.write_bytes(archive.read_bytes()[:-40])  # cut short in transit
    root = tmp_path / "cifar10"
    with file_server(tiny_cifar10, tmp_path / "http.log") as server:
        assert main(["data", "cifar10", str(root), "--mirror", server.url]) == 2
    err = capsys.readouterr().err  # (above the error: the downloader's progress bar)
    assert "Traceback" not in err and [line for line in err.splitlines() if "error" in line] == [err.splitlines()[-1]]
    assert f"delete {root / CIFAR10.filename} and run again" in err
    assert not (root / "cifar-10-batches-py").exists()  # nothing unpacked from a bad archive


def test_an_unreachable_site_and_a_missing_folder_are_one_line_each(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with file_server(tmp_path, tmp_path / "http.log") as server:
        assert main(["data", "cifar100", str(tmp_path / "c100"), "--mirror", server.url + "/nowhere"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "failed (HTTP 404)" in err and "--mirror" in err and "Traceback" not in err
    assert main(["data", "stl10"]) == 2
    assert "monosweep data stl10 data/stl10" in capsys.readouterr().err


def test_imagenet_is_described_not_downloaded(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "imagenet"]) == 0
    out = capsys.readouterr().out
    assert "not downloaded" in out and "train/<class>" in out and "probe_data" in out
