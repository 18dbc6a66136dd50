"""``monosweep run``: the wanted trials minus the finished ones, as one Ray Tune experiment (a wave).

Idempotent by trial identity: finished (and diverged) trials are skipped, interrupted ones continue
from the checkpoint in the ledger, the rest start fresh. Resume = run again; extend = add values to
the spec and run again. Inside a wave, Tune's ``FailureConfig`` retries a failed trial from the
checkpoint it last reported (``tune.report(..., checkpoint=...)``).
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from methods.errors import InputError
from sweep.grid import Trial, expand, validate_inputs
from sweep.ledger import DONE, Lease, Ledger, TrialRecord
from sweep.spec import SweepSpec
from sweep.storage import Storage
from sweep.tracking import Tracker, tracking_uri

__all__ = ["RunSummary", "connect", "plan_sweep", "run_sweep", "sync_sweep"]

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Plan:
    trials: list[Trial]
    records: dict[str, TrialRecord]
    storage: Storage

    @property
    def todo(self) -> list[Trial]:
        return [t for t in self.trials if self.status(t) not in DONE]

    def status(self, trial: Trial) -> str:
        record = self.records.get(trial.id)
        return record.status if record is not None else "pending"


def plan_sweep(spec: SweepSpec, where: str, storage: str | None = None, check_inputs: bool = True) -> Plan:
    """Expand the grid and read the ledger: what exists, what is left to run."""
    trials = expand(spec, where)
    if check_inputs:
        validate_inputs(trials, where)
    store = Storage(spec.storage_uri(storage))
    store.check()
    return Plan(trials, Ledger(store).read_all(), store)


# ---------------------------------------------------------------------------------------- in the trial
def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def _trainable(tune_config: dict[str, Any]) -> None:
    """One trial inside a Ray worker: resume from Tune's or the ledger's checkpoint, run, record."""
    import ray
    from ray import tune

    from methods import TrialConfig, run_trial
    from methods.trial import CHECKPOINT_FILE, TRUNK_FILE

    params = tune_config["trial"]
    ledger = Ledger(Storage(params["storage"]))
    trial_id, values = params["id"], params["values"]
    config = TrialConfig.from_dict(values)
    record = ledger.read(trial_id) or TrialRecord(trial_id, values=values)
    if record.status in DONE:  # finished in an earlier attempt of this wave: nothing to redo
        tune.report({"final": 1.0})
        return
    record.config = config.resolved().to_dict()
    record.attempts += 1
    record.node = ray.get_runtime_context().get_node_id()
    record.status, record.error = "running", None

    with tempfile.TemporaryDirectory(prefix="monosweep-") as tmp:
        resume: Path | None = None
        tune_checkpoint = tune.get_checkpoint()
        if tune_checkpoint is not None:
            resume = Path(tune_checkpoint.to_directory(os.path.join(tmp, "tune")))
        elif ledger.fetch_checkpoint(record, Path(tmp) / "ledger", CHECKPOINT_FILE):
            resume = Path(tmp) / "ledger"
        if resume is not None:
            record.resumed_from.append(record.epoch)
        ledger.write(record)

        def report(metrics: Mapping[str, Any], checkpoint_dir: str | None) -> None:
            checkpoint = None
            if checkpoint_dir is not None and "final" in metrics:
                record.trunk = ledger.save_checkpoint(trial_id, Path(checkpoint_dir) / TRUNK_FILE)
            elif checkpoint_dir is not None:
                record.checkpoint = ledger.save_checkpoint(trial_id, Path(checkpoint_dir) / CHECKPOINT_FILE)
                record.epoch = int(metrics["epoch"])
                ledger.write(record)
                checkpoint = tune.Checkpoint.from_directory(checkpoint_dir)
            tune.report({k: float(v) for k, v in metrics.items()}, checkpoint=checkpoint)

        try:
            result = run_trial(config, report=report, resume_from=resume)
        except Exception as err:  # (Tune stopping the trial raises SystemExit: the record stays "running")
            record.status, record.error = "failed", _one_line(err)
            ledger.write(record)
            raise
    record.status, record.result = result.status, result.to_dict()
    ledger.write(record)


# ---------------------------------------------------------------------------------------- the driver
def connect(address: str | None) -> None:
    """Start local Ray (no address) or join a cluster; an unreachable address is a one-line error."""
    import ray

    if ray.is_initialized():
        return
    if address and address != "auto":
        if address.startswith(("http://", "https://")):
            raise InputError(f"--address {address} is a job-server URL: use `monosweep submit` for it, or give "
                             "the cluster's GCS address HOST:6379 to `monosweep run`")
        host, _, port = address.removeprefix("ray://").rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=3).close()
        except (OSError, ValueError) as err:
            raise InputError(f"cannot reach the Ray cluster at {address}: {err}; start it with `ray start --head` "
                             "or leave out --address to run on this machine") from None
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    # MONOSWEEP_* settings (e.g. MONOSWEEP_PLUGINS) travel to the workers of a remote cluster too.
    ours = {k: v for k, v in os.environ.items() if k.startswith("MONOSWEEP_")}
    # Inside a Ray Job (`monosweep submit`) the job's runtime_env already carries them to every worker,
    # and Ray refuses a driver runtime_env that repeats the job's variables.
    if ours and "RAY_JOB_CONFIG_JSON_ENV_VAR" not in os.environ:
        kwargs["runtime_env"] = {"env_vars": ours}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(include_dashboard=False, **kwargs)


def _progress_callback(total: int, log: Log) -> Any:
    from ray import tune

    class Progress(tune.Callback):
        """done / running / pending / failed, elapsed and ETA on stderr, at most every few seconds."""

        def __init__(self) -> None:
            self.start, self.last = time.time(), 0.0
            self.running: set[str] = set()
            self.done = self.failed = 0

        def _print(self, force: bool = False) -> None:
            now = time.time()
            if not force and now - self.last < 5.0:
                return
            self.last = now
            elapsed = now - self.start
            finished = self.done + self.failed
            eta = f"ETA {elapsed / finished * (total - finished):.0f}s" if finished else "ETA -"
            pending = total - finished - len(self.running)
            log(f"[monosweep] {self.done}/{total} done, {len(self.running)} running, {pending} pending, "
                f"{self.failed} failed - {elapsed:.0f}s elapsed, {eta}")

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.running.add(trial.trial_id)
            self._print()

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            self._print()

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.running.discard(trial.trial_id)
            self.done += 1
            self._print(force=True)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.running.discard(trial.trial_id)
            self.failed += 1
            self._print(force=True)

    return Progress()


@dataclass
class RunSummary:
    total: int
    skipped: int
    ran: int
    counts: dict[str, int]
    storage: str

    @property
    def ok(self) -> bool:
        return self.counts.get("failed", 0) == 0 and self.counts.get("pending", 0) == 0 \
            and self.counts.get("running", 0) == 0


def run_sweep(spec: SweepSpec, where: str, address: str | None = None, storage: str | None = None,
              tracking: str | None = None, log: Log = _stderr, spec_text: str | None = None) -> RunSummary:
    """Run every trial of ``spec`` that is not finished yet and mirror the ledger to MLflow; see the
    module docstring. ``tracking`` overrides the spec's tracking URI."""
    plan = plan_sweep(spec, where, storage)
    todo = plan.todo
    log(f"[monosweep] sweep {spec.name!r}: {len(plan.trials)} trials, {len(plan.trials) - len(todo)} already "
        f"done, {len(todo)} to run; storage {plan.storage.uri}")
    with _leased(plan.storage, spec.name, log):
        tracker = Tracker(spec, plan.storage, tracking_uri(spec, plan.storage, tracking), log)
        if tracker.open(spec_text):
            tracker.sync(plan.trials, plan.records)  # back-fill what an earlier run could not mirror
        if todo:
            connect(address)
            _run_wave(spec, plan.storage, todo, log, tracker)
        records = Ledger(plan.storage).read_all()
        counts = _counts(plan.trials, records)
        tracker.sync(plan.trials, records)
        tracker.close(counts)
    if not tracker.down:
        log(f"[monosweep] {tracker.ui_hint()}")
    return RunSummary(len(plan.trials), len(plan.trials) - len(todo), len(todo), counts, plan.storage.uri)


def sync_sweep(spec: SweepSpec, where: str, storage: str | None = None, tracking: str | None = None,
               log: Log = _stderr, spec_text: str | None = None) -> tuple[int, Tracker]:
    """Back-fill MLflow from the ledger without running anything; returns (runs changed, tracker)."""
    plan = plan_sweep(spec, where, storage, check_inputs=False)
    with _leased(plan.storage, spec.name, log):
        tracker = Tracker(spec, plan.storage, tracking_uri(spec, plan.storage, tracking), log)
        changed = tracker.sync(plan.trials, plan.records) if tracker.open(spec_text) else 0
        tracker.close(_counts(plan.trials, plan.records))
    if tracker.down:
        raise InputError(f"MLflow at {tracker.uri} is unreachable; nothing was mirrored (the ledger is intact)")
    return changed, tracker


@contextmanager
def _leased(storage: Storage, sweep: str, log: Log) -> Iterator[None]:
    """Hold the sweep's lease: one driver at a time runs trials and writes MLflow runs."""
    lease = Lease(storage, sweep)
    if lease.acquire():
        log("[monosweep] took over the lease of a driver that is gone")
    try:
        yield
    finally:
        lease.release()


def _counts(trials: list[Trial], records: Mapping[str, TrialRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in trials:
        state = records[trial.id].status if trial.id in records else "pending"
        counts[state] = counts.get(state, 0) + 1
    return counts


def _tracking_callback(tracker: Tracker, todo: list[Trial], ledger: Ledger) -> Any:
    from ray import tune

    by_id = {t.id: t for t in todo}

    class Tracking(tune.Callback):
        """Live epoch metrics to MLflow; at a trial's end, its ledger record (the source of truth)."""

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            tracker.log_epoch(by_id[trial.config["trial"]["id"]], result)

        def _ended(self, trial: Any) -> None:
            tid = trial.config["trial"]["id"]
            record = ledger.read(tid)
            if record is not None:
                tracker.sync([by_id[tid]], {tid: record})

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._ended(trial)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._ended(trial)

    return Tracking()


def _run_wave(spec: SweepSpec, storage: Storage, todo: list[Trial], log: Log, tracker: Tracker) -> None:
    from ray import tune

    wave = time.strftime("wave-%Y%m%d-%H%M%S")
    resources = {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}
    params = [{"id": t.id, "values": t.values, "storage": storage.uri} for t in todo]
    tuner = tune.Tuner(
        tune.with_resources(_trainable, resources),
        param_space={"trial": tune.grid_search(params)},
        tune_config=tune.TuneConfig(max_concurrent_trials=spec.max_concurrent_trials, reuse_actors=True,
                                    trial_name_creator=lambda t: t.config["trial"]["id"],
                                    trial_dirname_creator=lambda t: t.config["trial"]["id"]),
        run_config=tune.RunConfig(
            name=wave, storage_path=storage.path("waves"), storage_filesystem=storage.fs,
            failure_config=tune.FailureConfig(max_failures=spec.retries),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            verbose=0, callbacks=[_progress_callback(len(todo), log),
                                  _tracking_callback(tracker, todo, Ledger(storage))],
        ),
    )
    tuner.fit()
