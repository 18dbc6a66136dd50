"""Shared fixtures: tiny trial configs and the offline CIFAR-10 export (read in place from its tar)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from methods import Method, TrialConfig

REPO = Path(__file__).resolve().parents[1]
CIFAR_TAR_CANDIDATES = (
    os.environ.get("MONOSWEEP_CIFAR10_TAR", ""),
    str(REPO.parent / "shared" / "data" / "cifar10-jpeg.tar"),
)

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def s3_server() -> Iterator[dict[str, str]]:
    """moto's S3 server as a separate process on 127.0.0.1, with buckets 'sweeps' and 'mlflow'."""
    from sweeps import moto_s3

    with moto_s3("sweeps", "mlflow") as env:
        yield env


@pytest.fixture(scope="session")
def cifar_tar() -> Path:
    for candidate in CIFAR_TAR_CANDIDATES:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    pytest.skip("offline CIFAR-10 tar not found (set MONOSWEEP_CIFAR10_TAR or keep ../shared beside the repo)")


TINY = TrialConfig(
    img_size=64,
    epochs=2,
    patches_per_epoch=128,
    batch_size=32,
    head_hidden=64,
    clusters=8,
    probe_epochs=2,
    probe_batch_size=64,
    probe_train_limit=240,
    probe_val_limit=120,
    workers=0,
    device="cpu",
)


def tiny(**changes: object) -> TrialConfig:
    """A trial config small enough to run in seconds on a laptop CPU."""
    return dataclasses.replace(TINY, **changes)  # type: ignore[arg-type]


def after_steps(base: type[Method], name: str, from_epoch: int,
                after: Callable[[Method, dict[str, torch.Tensor]], None]) -> type[Method]:
    """A subclass of ``base`` named ``name`` that calls ``after(method, step_metrics)`` after each training
    step from epoch ``from_epoch`` on: failures injected into a real method, to test how a trial ends."""

    class AfterSteps(base):  # type: ignore[valid-type, misc]
        def start_epoch(self, epoch: int) -> None:
            super().start_epoch(epoch)
            self.epoch_now = epoch

        def training_step(self, batch: object) -> dict[str, torch.Tensor]:
            out = super().training_step(batch)
            if self.epoch_now >= from_epoch:
                after(self, out)
            return out

    AfterSteps.name = name
    return AfterSteps


def failing(base: type[Method], name: str, from_epoch: int, **overrides: float) -> type[Method]:
    """``base`` whose step metrics take ``overrides`` from epoch ``from_epoch`` on (e.g. ``loss=nan``)."""

    def inject(_: Method, out: dict[str, torch.Tensor]) -> None:
        out.update({k: torch.tensor(v) for k, v in overrides.items()})

    return after_steps(base, name, from_epoch, inject)


def poisoning(base: type[Method], name: str, from_epoch: int) -> type[Method]:
    """``base`` that really breaks its trunk from epoch ``from_epoch`` on: after each step it fills the first
    trainable conv weight with NaN, so the next forward's loss is non-finite (a real divergence, not an
    injected metric)."""

    def poison(method: Method, _: dict[str, torch.Tensor]) -> None:
        conv = next(m for m in method.trunk.modules() if isinstance(m, nn.Conv2d) and m.weight.requires_grad)
        with torch.no_grad():
            conv.weight.fill_(float("nan"))

    return after_steps(base, name, from_epoch, poison)


def build_method(config: TrialConfig) -> Method:
    """The method of ``config`` on the CPU with its trunk, as ``run_trial`` builds it (no training yet)."""
    from methods import METHODS
    from methods.alexnet import AlexNet
    from methods.context import TrialContext

    cfg = config.resolved()
    torch.manual_seed(cfg.seed)
    trunk = AlexNet(cfg.arch, sobel=bool(cfg.sobel))
    return METHODS[cfg.method](trunk, TrialContext(cfg, torch.device("cpu")))
