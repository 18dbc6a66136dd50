"""Fixtures: the offline CIFAR-10 export (read in place from its tar) and real servers on 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.support import REPO
from tests.support.servers import MlflowServer, moto_s3

CIFAR_TAR_CANDIDATES = (
    os.environ.get("MONOSWEEP_CIFAR10_TAR", ""),
    str(REPO.parent / "shared" / "data" / "cifar10-jpeg.tar"),
)

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


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
    for candidate in CIFAR_TAR_CANDIDATES:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    pytest.skip("offline CIFAR-10 tar not found (set MONOSWEEP_CIFAR10_TAR or keep ../shared beside the repo)")
