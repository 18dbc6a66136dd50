"""Tiny trial configs, a reporter that records what a trial tells it, and failures injected into real methods."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from methods import Method, TrialConfig, TrialResult
from methods.pretext.bigan import BiGAN
from methods.registry import get_method
from methods.trial.context import TrialContext
from methods.trunk.alexnet import AlexNet

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


# BiGAN's generator and discriminator (the original's, at 64 px) cost about 30 steps of the small trunk's RotNet
# on a CPU: its tiny trials (and those of methods made from it) see a quarter of the patches unless told.
_BIGAN_PATCHES = 32


def tiny(**changes: object) -> TrialConfig:
    """A trial config small enough to run in seconds on a laptop CPU."""
    config = TINY.replace(**changes)
    if "patches_per_epoch" not in changes and issubclass(get_method(config.method), BiGAN):
        config = config.replace(patches_per_epoch=_BIGAN_PATCHES)
    return config


class Recorder:
    """A reporter that keeps what a trial reports: per epoch its metrics and the files of its folder (loaded
    with torch), and at the end the result and the final trunk."""

    def __init__(self, on_epoch: Callable[[Mapping[str, float], Path], None] | None = None) -> None:
        self.epochs: list[dict[str, float]] = []
        self.checkpoints: list[dict[str, Any]] = []
        self.files: list[list[str]] = []
        self.results: list[TrialResult] = []
        self.trunks: list[dict[str, torch.Tensor]] = []
        self.on_epoch = on_epoch

    def epoch(self, metrics: Mapping[str, float], checkpoint: Path) -> None:
        self.epochs.append(dict(metrics))
        self.files.append(sorted(p.name for p in checkpoint.iterdir()))
        self.checkpoints.append(torch.load(checkpoint / "checkpoint.pt", weights_only=False))
        if self.on_epoch is not None:
            self.on_epoch(metrics, checkpoint)

    def end(self, result: TrialResult, trunk: Path) -> None:
        self.results.append(result)
        self.files.append(sorted(p.name for p in trunk.iterdir()))
        self.trunks.append(torch.load(trunk / "trunk.pt", weights_only=False))


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
    cfg = config.resolved()
    torch.manual_seed(cfg.seed)
    method = get_method(cfg.method)
    trunk = AlexNet(cfg.arch, sobel=cfg.sobel, style=cfg.trunk_style)
    return method(trunk, TrialContext(cfg, torch.device("cpu")))
