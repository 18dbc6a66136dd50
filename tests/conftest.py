"""Fixtures: the offline CIFAR-10 export (read in place from its tar) and real servers on 127.0.0.1; the
science tests' trunks trained in the background from the session's start (``tests/support/science.py``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from methods import TrialResult
from tests.support import REPO, science
from tests.support.servers import MlflowServer, moto_s3

CIFAR_TAR_CANDIDATES = (
    os.environ.get("MONOSWEEP_CIFAR10_TAR", ""),
    str(REPO.parent / "shared" / "data" / "cifar10-jpeg.tar"),
)

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
SCIENCE = "tests/methods/trial/test_science.py"
_cache = pytest.StashKey[str]()
_science_run = pytest.StashKey[tuple[subprocess.Popen[bytes], Path]]()


def _find_cifar() -> Path | None:
    return next((Path(c) for c in CIFAR_TAR_CANDIDATES if c and Path(c).is_file()), None)


# Tests of the platform mostly wait (on Ray starting, on the outages, sleeps and time limits they inject): they
# run while the science trunks train on one core. The tests that compute (methods, benches, the GPU kit's
# smoke run) come after, when the trunks are done and both cores are free. (Measured on 2 cores: the platform
# tests keep a core busy about half of their time; the training and probing of the trunks, ~900 s of one core.)
WAITING_FIRST = "tests/sweep/"


@pytest.hookimpl(trylast=True)  # after -k / -m have deselected what they deselect
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The science tests go last, their trunks training meanwhile in a process of their own, beside the
    platform tests (which go first)."""
    chosen = [item for item in items if item.nodeid.startswith(SCIENCE)]
    cifar = _find_cifar()
    if not chosen or cifar is None or config.option.collectonly:
        return
    rest = [item for item in items if item not in chosen]
    items[:] = sorted(rest, key=lambda item: not item.nodeid.startswith(WAITING_FIRST)) + chosen  # (stable)
    out = Path(tempfile.mkdtemp(prefix="monosweep-science-")) / "trunks.json"
    threads = 2 if len(chosen) == len(items) else 1  # alone: both cores; beside the suite: one
    config.stash[_science_run] = (science.start(cifar, out, threads), out)


def pytest_configure(config: pytest.Config) -> None:
    """What the tests' commands keep on this machine (record copies, Ray Tune's folders) goes to a folder of
    the session's own, not the user's ~/.cache, and goes with the session."""
    config.stash[_cache] = os.environ["MONOSWEEP_CACHE_DIR"] = tempfile.mkdtemp(prefix="monosweep-cache-")


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.stash.get(_cache, None):
        shutil.rmtree(config.stash[_cache], ignore_errors=True)
    run = config.stash.get(_science_run, None)
    if run is not None and run[0].poll() is None:
        run[0].kill()


@pytest.fixture(scope="session")
def science_trunks(request: pytest.FixtureRequest, cifar_tar: Path) -> dict[str, list[TrialResult]]:
    """The results of ``science.TRUNKS`` from the background process (started at collection)."""
    run = request.config.stash.get(_science_run, None)
    assert run is not None, "the science trunks' process starts at collection whenever cifar_tar is found"
    return science.collect(*run)


@pytest.fixture
def s3_server() -> Iterator[dict[str, str]]:
    """moto's S3 server as a separate process on 127.0.0.1, with buckets 'sweeps' and 'mlflow'."""
    with moto_s3("sweeps", "mlflow") as env:
        yield env


@pytest.fixture
def mlflow_server(s3_server: dict[str, str], tmp_path: Path) -> Iterator[MlflowServer]:
    """``mlflow server`` on 127.0.0.1 (sqlite backend, artifacts proxied to the moto bucket 'mlflow')."""
    server = MlflowServer(tmp_path / "mlflow.db", s3_server)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def cifar_tar() -> Path:
    found = _find_cifar()
    if found is not None:
        return found
    pytest.skip("offline CIFAR-10 tar not found (set MONOSWEEP_CIFAR10_TAR or keep ../shared beside the repo)")
