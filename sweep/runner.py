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
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from methods.errors import InputError, first_line
from sweep import search
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
    """What the spec wants and what the ledger holds. For a plain grid, ``trials`` are the grid's trials;
    for a search, the sampled trials recorded so far, and ``to_sample`` says how many each grid point
    still lacks."""

    trials: list[Trial]
    records: dict[str, TrialRecord]
    storage: Storage
    points: list[Trial]  # the grid's points (the trials themselves for a plain grid)
    to_sample: dict[str, int] = field(default_factory=dict)  # search: grid point id -> trials to sample

    @property
    def todo(self) -> list[Trial]:
        """Trials to (re)run: never started, interrupted or failed."""
        return [t for t in self.trials if self.status(t) not in DONE]

    @property
    def total(self) -> int:
        return len(self.trials) + sum(self.to_sample.values())

    def status(self, trial: Trial) -> str:
        record = self.records.get(trial.id)
        return record.status if record is not None else "pending"

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for trial in self.trials:
            counts[self.status(trial)] = counts.get(self.status(trial), 0) + 1
        if sum(self.to_sample.values()):
            counts["pending"] = counts.get("pending", 0) + sum(self.to_sample.values())
        return counts


def plan_sweep(spec: SweepSpec, where: str, storage: str | None = None, check_inputs: bool = True) -> Plan:
    """Expand the grid and read the ledger: what exists, what is left to run."""
    return _plan(spec, *_prepare(spec, where, storage, check_inputs))


def _prepare(spec: SweepSpec, where: str, storage: str | None, check_inputs: bool) -> tuple[list[Trial], Storage]:
    """The grid's points and the sweep's storage, every input checked; reads no ledger."""
    points = expand(spec, where)
    if spec.search is not None:
        search.check_space(spec, points, where)
    if check_inputs:
        validate_inputs(points, where)
    store = Storage(spec.storage_uri(storage))
    store.check()
    return points, store


def _plan(spec: SweepSpec, points: list[Trial], store: Storage) -> Plan:
    """The plan as the ledger says now."""
    records = Ledger(store).read_all()
    if spec.search is None:
        return Plan(points, records, store, points)
    return Plan(search.sampled_trials(records, points), records, store, points,
                search.budget(spec.search, points, records))


# ---------------------------------------------------------------------------------------- in the trial
def _one_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {first_line(err)}"


def _trainable(tune_config: dict[str, Any]) -> None:
    """One trial inside a Ray worker: resume from Tune's or the ledger's checkpoint, run, record."""
    import ray
    from ray import tune

    from methods import TrialConfig, run_trial
    from methods.trial import CHECKPOINT_FILE, TRUNK_FILE

    ledger = Ledger(Storage(tune_config["trial"]["storage"]))
    trial_id, values, point = search.identity(tune_config)
    config = TrialConfig.from_dict(values)
    record = ledger.read(trial_id) or TrialRecord(trial_id, values=values, search=point)
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

        final: dict[str, float] = {}

        def report(metrics: Mapping[str, Any], checkpoint_dir: str | None) -> None:
            checkpoint = None
            if "final" in metrics:  # reported to Tune once the record says finished (a scheduler may stop
                final.update({k: float(v) for k, v in metrics.items()})  # the trial at its last report)
                if checkpoint_dir is not None:
                    record.trunk = ledger.save_checkpoint(trial_id, Path(checkpoint_dir) / TRUNK_FILE)
                return
            if checkpoint_dir is not None:
                record.checkpoint = ledger.save_checkpoint(trial_id, Path(checkpoint_dir) / CHECKPOINT_FILE)
                record.epoch = int(metrics["epoch"])
                ledger.write(record)
                checkpoint = tune.Checkpoint.from_directory(checkpoint_dir)
            tune.report({k: float(v) for k, v in metrics.items()}, checkpoint=checkpoint)

        try:
            result = run_trial(config, report=report, resume_from=resume)
        except Exception as err:  # (Tune stopping a trial ends it otherwise: see _Mirror._ended)
            record.status, record.error = "failed", _one_line(err)
            ledger.write(record)
            raise
    record.status, record.result = result.status, result.to_dict()
    ledger.write(record)
    tune.report(final)


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
    # Probe metrics come only at probe epochs: a search or ASHA must accept results without them.
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    # Trials run where the driver runs, so relative paths in a spec (source: ./photo.jpg) mean what they
    # mean to `validate`; Tune would otherwise move each trial into its own folder.
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    # Ctrl-C stops `run` (the records say "running": the next run resumes them) instead of Tune's handler
    # swallowing it and the sweep moving on to its next wave.
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    # MONOSWEEP_* settings (e.g. MONOSWEEP_PLUGINS) travel to the workers of a remote cluster too.
    ours = {k: v for k, v in os.environ.items() if k.startswith("MONOSWEEP_")}
    # Inside a Ray Job (`monosweep submit`) the job's runtime_env already carries them to every worker,
    # and Ray refuses a driver runtime_env that repeats the job's variables.
    if ours and "RAY_JOB_CONFIG_JSON_ENV_VAR" not in os.environ:
        kwargs["runtime_env"] = {"env_vars": ours}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(include_dashboard=False, **kwargs)
    except (ConnectionError, RuntimeError) as err:  # e.g. --address auto with no cluster on this machine
        raise InputError(f"cannot connect to Ray at {address or 'a new local runtime'}: {_one_line(err)}") from None


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
        return not any(self.counts.get(state, 0) for state in ("failed", "pending", "running"))


def run_sweep(spec: SweepSpec, where: str, address: str | None = None, storage: str | None = None,
              tracking: str | None = None, log: Log = _stderr, spec_text: str | None = None) -> RunSummary:
    """Run every trial of ``spec`` that is not finished yet and mirror the ledger to MLflow; see the
    module docstring. ``tracking`` overrides the spec's tracking URI."""
    points, store = _prepare(spec, where, storage, check_inputs=True)  # bad input fails before the lease
    with _leased(store, spec.name, log):
        plan = _plan(spec, points, store)  # the ledger as the lease holder sees it
        todo, to_sample = plan.todo, sum(plan.to_sample.values())
        skipped = len(plan.trials) - len(todo)
        log(f"[monosweep] sweep {spec.name!r}: {plan.total} trials, {skipped} already done, "
            f"{len(todo) + to_sample} to run; storage {plan.storage.uri}")
        tracker = Tracker(spec, plan.storage, tracking_uri(spec, plan.storage, tracking), log)
        if tracker.open(spec_text):
            tracker.sync(plan.trials, plan.records)  # back-fill what an earlier run could not mirror
        if todo or to_sample:
            connect(address)
        if todo:
            _run_wave(spec, plan.storage, todo, log, tracker)
        if to_sample:
            records = Ledger(plan.storage).read_all()
            for point in plan.points:
                if plan.to_sample.get(point.id):
                    _run_search_wave(spec, plan.storage, point, plan.to_sample[point.id], records, log, tracker)
        final = _plan(spec, points, store)
        tracker.sync(final.trials, final.records)
        if spec.search is not None:
            _announce_best(spec, final, log, tracker)
        tracker.close(final.counts())
    if not tracker.down:
        log(f"[monosweep] {tracker.ui_hint()}")
    return RunSummary(final.total, skipped, len(todo) + to_sample, final.counts(), plan.storage.uri)


def sync_sweep(spec: SweepSpec, where: str, storage: str | None = None, tracking: str | None = None,
               log: Log = _stderr, spec_text: str | None = None) -> tuple[int, Tracker]:
    """Back-fill MLflow from the ledger without running anything; returns (runs changed, tracker)."""
    points, store = _prepare(spec, where, storage, check_inputs=False)
    with _leased(store, spec.name, log):
        plan = _plan(spec, points, store)
        tracker = Tracker(spec, plan.storage, tracking_uri(spec, plan.storage, tracking), log)
        changed = tracker.sync(plan.trials, plan.records) if tracker.open(spec_text) else 0
        tracker.close(plan.counts())
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


def _mirror_callback(tracker: Tracker, ledger: Ledger, pruning: bool) -> Any:
    from ray import tune

    from methods.config import TrialConfig

    known: dict[str, Trial] = {}

    def trial_of(tune_trial: Any) -> Trial:
        tid, values, _ = search.identity(tune_trial.config)
        if tid not in known:
            known[tid] = Trial(tid, values, TrialConfig.from_dict(values).resolved())
        return known[tid]

    class Mirror(tune.Callback):
        """Live epoch metrics to MLflow; at a trial's end, its ledger record (the source of truth). A trial
        that ends while its record still says "running" was stopped by the scheduler ("pruned") or lost
        its worker ("failed", retried by the next run).

        MLflow calls (tens of ms each, more against a remote server) run in one background thread, in
        order: in Tune's event loop they would hold up the scheduling of the next trials. ``drain`` waits
        for them; the ledger is written here, synchronously."""

        def __init__(self) -> None:
            self._pending: ThreadPoolExecutor | None = None

        def __getstate__(self) -> dict[str, Any]:  # Tune pickles its callbacks with the experiment's state
            return {**self.__dict__, "_pending": None}

        @property
        def pending(self) -> ThreadPoolExecutor:
            if self._pending is None:
                self._pending = ThreadPoolExecutor(max_workers=1, thread_name_prefix="monosweep-mlflow")
            return self._pending

        def drain(self) -> None:
            if self._pending is not None:
                self._pending.shutdown(wait=True)
                self._pending = None

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            self.pending.submit(tracker.log_epoch, trial_of(trial), dict(result))

        def _ended(self, tune_trial: Any, completed: bool) -> None:
            trial = trial_of(tune_trial)
            record = ledger.read(trial.id)
            if record is None:
                return
            if record.status == "running":  # the trial's process ended without recording how
                if completed and pruning and "final" not in (tune_trial.last_result or {}):
                    record.status = "pruned"  # stopped by the scheduler at one of its reports
                else:  # its worker died (out of memory, node lost) and the retries are spent
                    lines = str(getattr(tune_trial, "error_msg", "") or "").strip().splitlines()
                    record.status = "failed"
                    record.error = (lines or ["the trial's worker ended without a result"])[-1][:500]
                ledger.write(record)
            self.pending.submit(tracker.sync, [trial], {trial.id: record})

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._ended(trial, completed=True)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._ended(trial, completed=False)

    return Mirror()


def _trial_name(tune_trial: Any) -> str:
    return search.identity(tune_trial.config)[0]


def _fit(spec: SweepSpec, storage: Storage, name: str, param_space: dict[str, Any], total: int, log: Log,
         tracker: Tracker, **tune_options: Any) -> None:
    """One Tune experiment; returns once its trials have ended and MLflow has caught up."""
    from ray import tune

    mirror = _mirror_callback(tracker, Ledger(storage), pruning=tune_options.get("scheduler") is not None)
    tuner = tune.Tuner(
        tune.with_resources(_trainable, {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}),
        param_space=param_space,
        tune_config=tune.TuneConfig(max_concurrent_trials=spec.max_concurrent_trials, reuse_actors=True,
                                    trial_name_creator=_trial_name, trial_dirname_creator=_trial_name,
                                    **tune_options),
        run_config=tune.RunConfig(
            name=name, storage_path=storage.path("waves"), storage_filesystem=storage.fs,
            failure_config=tune.FailureConfig(max_failures=spec.retries),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            verbose=0, callbacks=[_progress_callback(total, log), mirror],
        ),
    )
    try:
        tuner.fit()
    finally:
        mirror.drain()


def _run_wave(spec: SweepSpec, storage: Storage, todo: list[Trial], log: Log, tracker: Tracker) -> None:
    """The given trials (new, or to resume from their checkpoints) as one Tune experiment."""
    from ray import tune

    params = [{"id": t.id, "values": t.values, "storage": storage.uri} for t in todo]
    _fit(spec, storage, time.strftime("wave-%Y%m%d-%H%M%S"), {"trial": tune.grid_search(params)}, len(todo), log,
         tracker)


def _run_search_wave(spec: SweepSpec, storage: Storage, point: Trial, samples: int,
                     records: Mapping[str, TrialRecord], log: Log, tracker: Tracker) -> None:
    """``samples`` new trials around one grid point, sampled by Optuna (warm-started from ``records``) and
    pruned by ASHA when the spec asks for it."""
    assert spec.search is not None
    log(f"[monosweep] search around {point.id} ({tracker.point_label(point)}): {samples} trial(s), "
        f"{spec.search.mode} {spec.search.metric}")
    param_space = {"trial": {"id": point.id, "values": point.values, "storage": storage.uri}}
    _fit(spec, storage, time.strftime(f"search-{point.id}-%Y%m%d-%H%M%S"), param_space, samples, log, tracker,
         search_alg=search.make_searcher(spec.search, point, records),
         scheduler=search.make_scheduler(spec.search, point), num_samples=samples)


def _announce_best(spec: SweepSpec, plan: Plan, log: Log, tracker: Tracker) -> None:
    """Print (and tag in MLflow) the best trial found around every grid point."""
    assert spec.search is not None
    for point in plan.points:
        found = search.best(spec.search, point.id, plan.records)
        if found is None:
            continue
        record, value = found
        sampled = search.describe(record.values, spec.search.space)
        log(f"[monosweep] best around {tracker.point_label(point)}: {sampled} -> {spec.search.metric} "
            f"{value:.4g} (trial {record.id})")
        tracker.mark_best(point, record, value)
