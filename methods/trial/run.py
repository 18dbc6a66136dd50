"""``run_trial``: one trial end to end, standalone or under a scheduler.

build the data -> train the method epoch by epoch -> probe conv1..conv5 -> result.

The trial tells its caller what happens through a :class:`~methods.trial.reporter.Reporter`: every epoch
with its metrics and checkpoint, the end with the result and the trunk. A trial started with
``resume_from`` = a folder holding a checkpoint it reported continues after that epoch with identical
state: data are a pure function of (seed, epoch, index) and the torch RNG is re-seeded every epoch.
"""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path
from typing import Any

import torch

from methods import registry
from methods.errors import InputError
from methods.method import Diverged
from methods.metrics import LR, TRAIN, flat_probe
from methods.probe import ProbeSettings, run_probe
from methods.provenance import environment
from methods.trial.config import ResolvedConfig, TrialConfig
from methods.trial.context import TrialContext
from methods.trial.inputs import check_inputs, pick_device
from methods.trial.reporter import CHECKPOINT_FILE, TRUNK_FILE, Reporter, holding
from methods.trial.result import DIVERGED, FINISHED, TrialResult
from methods.trunk.alexnet import AlexNet

__all__ = ["run_trial"]

log = logging.getLogger("monosweep.trial")


def _seed_epoch(seed: int, epoch: int) -> None:
    torch.manual_seed(seed * 1_000_003 + epoch + 1)


def _serialise(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _load(blob: bytes | Path) -> dict[str, Any]:
    source = io.BytesIO(blob) if isinstance(blob, bytes) else blob
    return torch.load(source, map_location="cpu", weights_only=True)  # tensors and plain data only: no code


def run_trial(config: TrialConfig | ResolvedConfig, report: Reporter | None = None,
              resume_from: str | Path | None = None) -> TrialResult:
    """Run one trial; see the module docstring for ``report`` and ``resume_from``."""
    cfg = config if isinstance(config, ResolvedConfig) else config.resolved()
    check_inputs(cfg)
    device = pick_device(cfg.device)
    ctx = TrialContext(cfg, device)

    torch.manual_seed(cfg.seed)
    method_class = registry.get_method(cfg.method)
    trunk = AlexNet(cfg.arch, sobel=cfg.sobel, style=cfg.trunk_style).to(device)
    if ctx.cuda:
        trunk = trunk.to(memory_format=torch.channels_last)
    method = method_class(trunk, ctx)

    start, history = 0, []
    if resume_from is not None:
        path = Path(resume_from) / CHECKPOINT_FILE
        if not path.is_file():
            raise InputError(f"no {CHECKPOINT_FILE} to resume from in {resume_from}")
        state = _load(path)
        differing = cfg.differs_from(state["config"])
        if differing:
            raise InputError(f"checkpoint in {resume_from} belongs to a different trial config ({differing[0]})")
        method.load_state_dict(state["method"])
        start, history = int(state["epoch"]), list(state["history"])
        log.info("resuming %s after epoch %d", cfg.method, start)

    settings = ProbeSettings(epochs=cfg.probe_epochs, lr=cfg.probe_lr, batch_size=cfg.probe_batch_size,
                             weight_decay=cfg.probe_weight_decay, cache=cfg.probe_cache, seed=cfg.seed,
                             workers=cfg.workers)

    def probe_trunk() -> dict[str, dict[str, float]]:
        return run_probe(trunk, ctx.labelled(cfg.probe_data, cfg.probe_img_size), settings, device)

    def checkpoint(epoch: int) -> bytes:
        return _serialise({"epoch": epoch, "config": cfg.to_dict(), "method": method.state_dict(),
                           "history": history})

    status, message = FINISHED, ""
    last_good = checkpoint(start) if cfg.epochs > start else None
    t_train = time.perf_counter()
    for epoch in range(start, cfg.epochs):
        _seed_epoch(cfg.seed, epoch)
        try:
            metrics = method.train_epoch(epoch)
        except Diverged as err:
            status, message = DIVERGED, str(err)
            log.warning("epoch %d diverged (%s); keeping the state after epoch %d", epoch + 1, err, epoch)
            assert last_good is not None  # (set before the first epoch)
            method.load_state_dict(_load(last_good)["method"])
            break
        if cfg.probe_every and cfg.probe_epochs and (epoch + 1) % cfg.probe_every == 0 and epoch + 1 < cfg.epochs:
            metrics.update(flat_probe(probe_trunk()))  # (the next epoch re-seeds: training is unaffected)
        history.append(metrics)
        last_good = checkpoint(epoch + 1)
        log.info("epoch %d/%d  %s", epoch + 1, cfg.epochs,
                 "  ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k.startswith(TRAIN) or k == LR))
        if report is not None:
            with holding(CHECKPOINT_FILE, last_good) as folder:
                report.epoch(metrics, folder)
    train_seconds = time.perf_counter() - t_train

    t_probe = time.perf_counter()
    probe = probe_trunk() if cfg.probe_epochs > 0 else {}
    result = TrialResult(
        config=cfg.to_dict(), status=status, epochs_done=len(history), history=history, probe=probe,
        seconds={"train": train_seconds, "probe": time.perf_counter() - t_probe}, message=message,
        environment=environment(device), inputs=dict(ctx.inputs),
    )
    if report is not None:
        with holding(TRUNK_FILE, _serialise(trunk.state_dict())) as folder:
            report.end(result, folder)
    return result
