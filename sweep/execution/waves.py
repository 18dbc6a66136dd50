"""Trials to Ray Tune, one experiment at a time: a wave of given trials (new, or to resume from their
checkpoints), or a search around one grid point. Each returns once its trials have ended and MLflow has
caught up."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from ray import tune

from sweep import search
from sweep.execution import messages
from sweep.execution.callbacks import Mirror, Progress
from sweep.execution.worker import trainable
from sweep.grid import Trial
from sweep.ledger.records import TrialRecord
from sweep.ledger.store import Ledger
from sweep.spec import SweepSpec
from sweep.storage import Storage
from sweep.tracking import Tracker

__all__ = ["run_search_wave", "run_wave"]

Log = Callable[[str], None]


def _trial_name(tune_trial: Any) -> str:
    return messages.identity(tune_trial.config)[0]


def _fit(spec: SweepSpec, storage: Storage, name: str, param_space: dict[str, Any], total: int, log: Log,
         tracker: Tracker, **tune_options: Any) -> None:
    mirror = Mirror(tracker, Ledger(storage), pruning=tune_options.get("scheduler") is not None)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}),
        param_space=param_space,
        tune_config=tune.TuneConfig(max_concurrent_trials=spec.max_concurrent_trials, reuse_actors=True,
                                    trial_name_creator=_trial_name, trial_dirname_creator=_trial_name,
                                    **tune_options),
        run_config=tune.RunConfig(
            name=name, storage_path=storage.path("waves"), storage_filesystem=storage.fs,
            failure_config=tune.FailureConfig(max_failures=spec.retries),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            verbose=0, callbacks=[Progress(total, log), mirror],
        ),
    )
    try:
        tuner.fit()
    finally:
        mirror.drain()


def run_wave(spec: SweepSpec, storage: Storage, todo: list[Trial], log: Log, tracker: Tracker) -> None:
    """The given trials (new, or to resume from their checkpoints) as one Tune experiment."""
    params = [messages.trial_space(t, storage.uri) for t in todo]
    _fit(spec, storage, time.strftime("wave-%Y%m%d-%H%M%S"), {"trial": tune.grid_search(params)}, len(todo), log,
         tracker)


def run_search_wave(spec: SweepSpec, storage: Storage, point: Trial, samples: int,
                    records: Mapping[str, TrialRecord], log: Log, tracker: Tracker) -> None:
    """``samples`` new trials around one grid point, sampled by Optuna (warm-started from ``records``) and
    pruned by ASHA when the spec asks for it."""
    assert spec.search is not None  # (only called for a spec with a search)
    log(f"[monosweep] search around {point.id} ({tracker.point_label(point)}): {samples} trial(s), "
        f"{spec.search.mode} {spec.search.metric}")
    _fit(spec, storage, time.strftime(f"search-{point.id}-%Y%m%d-%H%M%S"), messages.point_space(point, storage.uri),
         samples, log, tracker, search_alg=search.make_searcher(spec.search, point, records),
         scheduler=search.make_scheduler(spec.search, point), num_samples=samples)
