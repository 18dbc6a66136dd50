"""``run_trial``: one trial end to end, standalone or under a scheduler.

build the data -> train the method epoch by epoch -> probe conv1..conv5 -> result.

``report(metrics, directory)`` is called after every epoch with that epoch's metrics and a directory
holding ``checkpoint.pt`` (everything needed to resume), and once at the end with the per-layer
results and a directory holding ``trunk.pt`` (the trunk's weights as probed). A directory is only
valid during the call (copy what you keep; Ray Tune's ``tune.report`` does). A trial started
with ``resume_from`` = a directory it reported continues after that epoch with identical state: data
are a pure function of (seed, epoch, index) and the torch RNG is re-seeded every epoch.
"""

from __future__ import annotations

import io
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from methods.alexnet import AlexNet
from methods.base import Diverged
from methods.config import TrialConfig
from methods.context import TrialContext, check_inputs, pick_device
from methods.errors import InputError
from methods.probe import ProbeSettings, run_probe

__all__ = ["CHECKPOINT_FILE", "TRUNK_FILE", "Report", "TrialResult", "probe_metrics", "run_trial"]

log = logging.getLogger("monosweep.trial")

CHECKPOINT_FILE = "checkpoint.pt"
TRUNK_FILE = "trunk.pt"
Report = Callable[[Mapping[str, Any], "str | None"], None]


@dataclass
class TrialResult:
    """What a trial produced; ``to_dict()`` is JSON-ready."""

    config: dict[str, Any]
    status: str  # finished | diverged
    epochs_done: int
    history: list[dict[str, float]] = field(default_factory=list)
    probe: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    message: str = ""

    def metrics(self) -> dict[str, float]:
        """Flat final metrics: ``probe.conv1.top1`` ... ``probe.conv5.top5`` and ``probe.mean.top1``."""
        return probe_metrics(self.probe)

    def table(self) -> str:
        lines = ["layer   top1 %   top5 %", "-----   ------   ------"]
        lines += [f"{layer:<7} {vals['top1']:6.2f}   {vals['top5']:6.2f}" for layer, vals in self.probe.items()]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe_metrics(probe: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """A probe table as flat metrics, plus ``probe.mean.top1`` (the mean over layers, a search objective)."""
    flat = {f"probe.{layer}.{k}": float(v) for layer, vals in probe.items() for k, v in vals.items()}
    if probe:
        flat["probe.mean.top1"] = sum(float(vals["top1"]) for vals in probe.values()) / len(probe)
    return flat


def _seed_epoch(seed: int, epoch: int) -> None:
    torch.manual_seed(seed * 1_000_003 + epoch + 1)


def _serialise(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _load(blob: bytes | Path) -> dict[str, Any]:
    source = io.BytesIO(blob) if isinstance(blob, bytes) else blob
    return torch.load(source, map_location="cpu", weights_only=False)


def _report_with(report: Report | None, metrics: Mapping[str, Any], blob: bytes | None,
                 filename: str = CHECKPOINT_FILE) -> None:
    if report is None:
        return
    if blob is None:
        report(metrics, None)
        return
    tmp = tempfile.mkdtemp(prefix="monosweep-ckpt-")
    try:
        (Path(tmp) / filename).write_bytes(blob)
        report(metrics, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_trial(config: TrialConfig, report: Report | None = None,
              resume_from: str | Path | None = None) -> TrialResult:
    """Run one trial; see the module docstring for ``report`` and ``resume_from``."""
    cfg = config.resolved()
    assert cfg.epochs is not None and cfg.probe_img_size is not None
    check_inputs(cfg)
    device = pick_device(cfg.device)
    ctx = TrialContext(cfg, device)
    from methods import METHODS

    torch.manual_seed(cfg.seed)
    trunk = AlexNet(cfg.arch, sobel=bool(cfg.sobel)).to(device)
    if ctx.cuda:
        trunk = trunk.to(memory_format=torch.channels_last)
    method = METHODS[cfg.method](trunk, ctx)

    start, history = 0, []
    if resume_from is not None:
        path = Path(resume_from) / CHECKPOINT_FILE
        if not path.is_file():
            raise InputError(f"no {CHECKPOINT_FILE} to resume from in {resume_from}")
        state = _load(path)
        if state["config"] != cfg.to_dict():
            raise InputError(f"checkpoint in {resume_from} belongs to a different trial config")
        method.load_state_dict(state["method"])
        start, history = int(state["epoch"]), list(state["history"])
        log.info("resuming %s after epoch %d", cfg.method, start)

    settings = ProbeSettings(epochs=cfg.probe_epochs, lr=cfg.probe_lr, batch_size=cfg.probe_batch_size,
                             weight_decay=cfg.probe_weight_decay, cache=cfg.probe_cache, seed=cfg.seed,
                             workers=cfg.workers)

    def probe_trunk() -> dict[str, dict[str, float]]:
        return run_probe(trunk, ctx.labelled(cfg.probe_data, cfg.probe_img_size), settings, device)

    status, message = "finished", ""
    last_good = _serialise({"epoch": start, "config": cfg.to_dict(), "method": method.state_dict(),
                            "history": history}) if cfg.epochs > start else None
    t_train = time.perf_counter()
    for epoch in range(start, cfg.epochs):
        _seed_epoch(cfg.seed, epoch)
        try:
            metrics = method.train_epoch(epoch)
        except Diverged as err:
            status, message = "diverged", str(err)
            log.warning("epoch %d diverged (%s); keeping the state after epoch %d", epoch + 1, err, epoch)
            assert last_good is not None
            method.load_state_dict(_load(last_good)["method"])
            break
        if cfg.probe_every and cfg.probe_epochs and (epoch + 1) % cfg.probe_every == 0 and epoch + 1 < cfg.epochs:
            metrics.update(probe_metrics(probe_trunk()))  # (the next epoch re-seeds: training is unaffected)
        history.append(metrics)
        last_good = _serialise({"epoch": epoch + 1, "config": cfg.to_dict(), "method": method.state_dict(),
                                "history": history})
        log.info("epoch %d/%d  %s", epoch + 1, cfg.epochs,
                 "  ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k.startswith("train.") or k == "lr"))
        _report_with(report, metrics, last_good)
    train_seconds = time.perf_counter() - t_train

    t_probe = time.perf_counter()
    probe = probe_trunk() if cfg.probe_epochs > 0 else {}
    result = TrialResult(
        config=cfg.to_dict(), status=status, epochs_done=len(history), history=history, probe=probe,
        seconds={"train": train_seconds, "probe": time.perf_counter() - t_probe}, message=message,
    )
    # The last epoch's metrics too, so that the final result holds every metric a search may rank on.
    final = {**(history[-1] if history else {}), "final": 1.0, "diverged": float(status == "diverged"),
             "epoch": float(len(history)), **result.metrics()}
    if report is not None:
        _report_with(report, final, _serialise(trunk.state_dict()), TRUNK_FILE)
    return result

