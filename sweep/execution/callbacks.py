"""The driver's Tune callbacks: progress on stderr, and the MLflow mirror of each trial as it runs and ends."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ray import tune

from methods.errors import first_line
from sweep.execution import messages
from sweep.grid import Trial
from sweep.ledger.lease import Lease
from sweep.ledger.records import RUNNING
from sweep.ledger.store import Ledger
from sweep.tracking import Tracker

__all__ = ["Mirror", "Progress"]

Log = Callable[[str], None]


class Progress(tune.Callback):
    """done / running / pending / failed, elapsed and ETA on stderr, at most every few seconds."""

    def __init__(self, total: int, log: Log) -> None:
        self.total, self.log = total, log
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
        eta = f"ETA {elapsed / finished * (self.total - finished):.0f}s" if finished else "ETA -"
        pending = self.total - finished - len(self.running)
        self.log(f"[monosweep] {self.done}/{self.total} done, {len(self.running)} running, {pending} pending, "
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


class Mirror(tune.Callback):
    """Live epoch metrics to MLflow; at a trial's end, its ledger record (the source of truth). A trial
    that ends while its record still says "running" was stopped by the scheduler ("pruned") or lost
    its worker ("failed", retried by the next run).

    MLflow calls (tens of ms each, more against a remote server) run in one background thread, in
    order: in Tune's event loop they would hold up the scheduling of the next trials. ``drain`` waits
    for them; the ledger is written here, synchronously. Nothing here may end the wave: a ledger that
    stays unreachable is said once and reconciled when the driver reads the ledger again at its end. A
    driver that lost its lease, or whose storage stayed down through a renewal's retries, writes nothing
    more (each read would wait out the retries again; the next run resumes those trials)."""

    def __init__(self, tracker: Tracker, ledger: Ledger, lease: Lease | None, log: Log, pruning: bool) -> None:
        self.tracker, self.ledger, self.lease, self.log, self.pruning = tracker, ledger, lease, log, pruning
        self._known: dict[str, Trial] = {}
        self._pending: ThreadPoolExecutor | None = None
        self._warned = False

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles its callbacks with the experiment's state
        return {**self.__dict__, "_pending": None, "lease": None}

    @property
    def pending(self) -> ThreadPoolExecutor:
        if self._pending is None:
            self._pending = ThreadPoolExecutor(max_workers=1, thread_name_prefix="monosweep-mlflow")
        return self._pending

    def drain(self) -> None:
        if self._pending is not None:
            self._pending.shutdown(wait=True)
            self._pending = None

    def _trial(self, tune_trial: Any) -> Trial:
        tid, values, _ = messages.identity(tune_trial.config)
        if tid not in self._known:
            self._known[tid] = Trial.of(values)
        return self._known[tid]

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if not messages.is_end(result):  # the end is mirrored from the ledger, in _ended
            self.pending.submit(self._log_epoch, self._trial(trial), dict(result))

    def _log_epoch(self, trial: Trial, result: dict[str, Any]) -> None:
        """(In the MLflow thread.) A trial's first epoch makes its run, which starts when the trial started:
        the time its record holds."""
        started = 0.0
        if not self.tracker.has_run(trial.id):
            with contextlib.suppress(Exception):  # a ledger read failing costs only the start time (now)
                record = self.ledger.read(trial.id)
                started = record.started if record is not None else 0.0
        self.tracker.log_epoch(trial, result, started)

    def _ended(self, tune_trial: Any, completed: bool) -> None:
        if self.lease is None or self.lease.lost.is_set() or self.lease.unreachable is not None:
            return
        try:
            self._record_end(tune_trial, completed)
        except Exception as err:  # noqa: BLE001 - see the class docstring
            if not self._warned:
                self._warned = True
                self.log(f"[monosweep] warning: could not read or write the ledger at a trial's end "
                         f"({first_line(err)}); the sweep goes on, and its end reconciles the ledger")

    def _record_end(self, tune_trial: Any, completed: bool) -> None:
        trial = self._trial(tune_trial)
        record = self.ledger.read(trial.id)
        if record is None:
            return
        if record.status == RUNNING:  # the trial's process ended without recording how
            if self.lease.stopping.is_set():  # (_ended returns when there is no lease)
                record.interrupt()  # stopped on request (`monosweep stop`): the next run resumes it
            elif completed and self.pruning:
                record.prune()  # stopped by the scheduler at one of its epoch reports
            else:  # its worker died (out of memory, node lost) and the retries are spent
                lines = str(getattr(tune_trial, "error_msg", "") or "").strip().splitlines()
                record.fail((lines or ["the trial's worker ended without a result"])[-1][:500])
            self.ledger.write(record)
        self.pending.submit(self.tracker.sync, [trial], {trial.id: record})

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended(trial, completed=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended(trial, completed=False)
