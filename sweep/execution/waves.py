"""Trials to Ray Tune, one experiment at a time: a wave of given trials (new, or to resume from their
checkpoints), or a search around one grid point. Each returns once its trials have ended and MLflow has
caught up."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ray
from ray import tune

from sweep import search
from sweep.execution import messages
from sweep.execution.callbacks import Mirror, Progress
from sweep.execution.worker import trainable
from sweep.grid import Trial
from sweep.ledger.cache import local_folder
from sweep.ledger.lease import Lease
from sweep.ledger.records import TrialRecord
from sweep.ledger.store import Ledger
from sweep.spec import SweepSpec
from sweep.storage import Storage
from sweep.tracking import Tracker

__all__ = ["run_search_wave", "run_wave", "shortfall", "tune_folder"]

Log = Callable[[str], None]


def _trial_name(tune_trial: Any) -> str:
    return messages.identity(tune_trial.config)[0]


class _Halt(tune.Stopper):
    """Stops every trial at once when the driver has lost the sweep's lease, was asked to stop, or found the
    storage unreachable (see ``ledger/lease.py``)."""

    def __init__(self, lease: Lease | None) -> None:
        self.lease = lease

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles its stopper with the experiment's state
        return {"lease": None}

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.lease is not None and self.lease.halted


def settings(spec: SweepSpec, storage: Storage, lease: Lease) -> messages.RunSettings:
    return messages.RunSettings(storage.uri, lease.generation, spec.timeouts.trial, spec.timeouts.stall)


def tune_folder(storage: Storage) -> str:
    """Where Ray Tune keeps its experiment folders: on the driver's own disk, always. monosweep never reads
    them (the ledger is the truth, trials report no checkpoint to Tune), so they need no shared storage, and
    an S3 outage cannot hold up a wave's end in Tune's uploads and listings. Each wave's folder is deleted
    at its end."""
    return str(local_folder("tune", storage.uri))


def shortfall(wanted: Mapping[str, float], nodes: list[dict[str, Any]]) -> list[str]:
    """The resources a trial asks for that no live node has as much of (``nodes`` as ``ray.nodes()`` gives
    them): such trials wait, silently, until a node that has them joins."""
    most = {kind: max((n["Resources"].get(kind, 0.0) for n in nodes if n.get("Alive")), default=0.0) for kind in wanted}
    return [f"{wanted[kind]:g} {kind} (the most any node has: {most[kind]:g})" for kind in sorted(wanted)
            if wanted[kind] > most[kind]]


def _fit(spec: SweepSpec, storage: Storage, name: str, param_space: dict[str, Any], total: int, log: Log,
         tracker: Tracker, lease: Lease, **tune_options: Any) -> None:
    short = shortfall({"CPU": spec.resources.cpu, "GPU": spec.resources.gpu}, ray.nodes())
    if short:
        log(f"[monosweep] warning: each trial asks for {' and '.join(short)}: its trials wait until a node that "
            "has them joins (an autoscaler may add one); lower `resources` in the spec to run here")
    mirror = Mirror(tracker, Ledger(storage), lease, log, pruning=tune_options.get("scheduler") is not None)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}),
        param_space=param_space,
        tune_config=tune.TuneConfig(max_concurrent_trials=spec.max_concurrent_trials, reuse_actors=True,
                                    trial_name_creator=_trial_name, trial_dirname_creator=_trial_name,
                                    **tune_options),
        run_config=tune.RunConfig(
            name=name, storage_path=tune_folder(storage),
            failure_config=tune.FailureConfig(max_failures=spec.retries),
            verbose=0, callbacks=[Progress(total, log), mirror], stop=_Halt(lease),
        ),
    )
    try:
        tuner.fit()
    finally:
        mirror.drain()
        shutil.rmtree(Path(tune_folder(storage)) / name, ignore_errors=True)


def run_wave(spec: SweepSpec, storage: Storage, todo: list[Trial], log: Log, tracker: Tracker, lease: Lease) -> None:
    """The given trials (new, or to resume from their checkpoints) as one Tune experiment."""
    params = [messages.trial_space(t, settings(spec, storage, lease)) for t in todo]
    _fit(spec, storage, time.strftime("wave-%Y%m%d-%H%M%S"), {"trial": tune.grid_search(params)}, len(todo), log,
         tracker, lease)


def run_search_wave(spec: SweepSpec, storage: Storage, point: Trial, samples: int,
                    records: Mapping[str, TrialRecord], log: Log, tracker: Tracker, lease: Lease) -> None:
    """``samples`` new trials around one grid point, sampled by Optuna (warm-started from ``records``) and
    pruned by ASHA when the spec asks for it."""
    assert spec.search is not None  # (only called for a spec with a search)
    log(f"[monosweep] search around {point.id} ({tracker.point_label(point)}): {samples} trial(s), "
        f"{spec.search.mode} {spec.search.metric}")
    _fit(spec, storage, time.strftime(f"search-{point.id}-%Y%m%d-%H%M%S"),
         messages.point_space(point, settings(spec, storage, lease)), samples, log, tracker, lease,
         search_alg=search.make_searcher(spec.search, point, records),
         scheduler=search.make_scheduler(spec.search, point), num_samples=samples)
