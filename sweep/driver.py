"""``monosweep run`` and ``monosweep sync``: one driver, holding the sweep's lease, runs what is not done.

Idempotent by trial identity: finished (and diverged) trials are skipped, interrupted ones continue
from the checkpoint in the ledger, the rest start fresh. Resume = run again; extend = add values to
the spec and run again. Inside a wave, Tune's ``FailureConfig`` retries a failed trial from the
checkpoint it last reported. The ledger is mirrored to MLflow before (back-fill), during and after.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from methods.errors import InputError
from sweep import search
from sweep.execution.session import check_nodes, connect
from sweep.execution.waves import run_search_wave, run_wave
from sweep.grid import Trial
from sweep.ledger.lease import Lease
from sweep.ledger.records import FAILED, INTERRUPTED, PENDING, RUNNING
from sweep.ledger.store import Ledger
from sweep.plan import Plan, prepare, read_plan
from sweep.selection import Selection, check_selected
from sweep.spec import SweepSpec
from sweep.storage import Storage
from sweep.tracking import Tracker, tracking_uri

__all__ = ["RunSummary", "run_sweep", "sync_sweep"]

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class RunSummary:
    total: int
    skipped: int
    ran: int
    counts: dict[str, int]
    storage: str
    stopped_by: str = ""  # who asked this driver to stop (`monosweep stop`), if anyone did

    @property
    def ok(self) -> bool:
        return not any(self.counts.get(state, 0) for state in (FAILED, PENDING, RUNNING, INTERRUPTED))


def run_sweep(spec: SweepSpec, where: str, address: str | None = None, storage: str | None = None,
              tracking: str | None = None, log: Log = _stderr, spec_text: str | None = None,
              rerun: Selection | None = None) -> RunSummary:
    """Run every trial of ``spec`` that is not finished yet and mirror the ledger to MLflow; see the
    module docstring. ``tracking`` overrides the spec's tracking URI. With ``rerun``, only the trials it
    selects run, from scratch, whatever their state (their earlier outcome kept in their records)."""
    points, store = prepare(spec, where, storage, check_inputs=True)  # bad input fails before the lease
    with _leased(store, spec.name, log) as lease:
        plan = read_plan(spec, points, store)  # the ledger as the lease holder sees it
        if rerun is None:
            todo, to_sample = plan.todo, sum(plan.to_sample.values())
            skipped = len(plan.trials) - len(todo)
            log(f"[monosweep] sweep {spec.name!r}: {plan.total} trials, {skipped} already done, "
                f"{len(todo) + to_sample} to run; storage {plan.storage.uri}")
        else:
            todo, to_sample = _set_aside(plan, rerun, log), 0  # (its records are updated in place)
            skipped = len(plan.trials) - len(todo)
        tracker = Tracker(spec, plan.storage, tracking_uri(spec, plan.storage, tracking), log)
        if tracker.open(spec_text):
            tracker.sync(plan.trials, plan.records)  # back-fill what an earlier run could not mirror
        if (todo or to_sample) and not lease.stopping.is_set():  # (a stop may come before the first wave)
            connect(address)
            if address:  # a cluster: every node must see the ledger the driver reads
                check_nodes(plan.storage)
        if todo and not lease.stopping.is_set():
            run_wave(spec, plan.storage, todo, log, tracker, lease)
            lease.check()
        if to_sample:
            records = Ledger(plan.storage).read_all()
            for point in plan.points:
                if plan.to_sample.get(point.id) and not lease.stopping.is_set():
                    run_search_wave(spec, plan.storage, point, plan.to_sample[point.id], records, log, tracker, lease)
                    lease.check()
        final = read_plan(spec, points, store)
        if lease.stopping.is_set():
            _interrupt_running(Ledger(final.storage), final, log, lease)
        tracker.sync(final.trials, final.records)
        if spec.search is not None:
            _announce_best(spec, final, log, tracker)
        tracker.close(final.counts())
    if not tracker.down:
        log(f"[monosweep] {tracker.ui_hint()}")
    return RunSummary(final.total, skipped, len(todo) + to_sample, final.counts(), plan.storage.uri,
                      lease.stopper)


def _set_aside(plan: Plan, rerun: Selection, log: Log) -> list[Trial]:
    """The trials ``rerun`` selects, their records set aside for a fresh start (see ``TrialRecord.supersede``);
    InputError when it selects nothing."""
    chosen = rerun.apply(plan)
    check_selected(chosen, rerun, len(plan.trials))
    ledger = Ledger(plan.storage)
    now = time.time()
    for trial in chosen:
        record = plan.records.get(trial.id)
        if record is not None and (record.attempts or record.status != PENDING):  # (not one set aside already)
            stale = record.supersede(now)
            ledger.write(record)
            ledger.drop(stale)
    log(f"[monosweep] rerunning {len(chosen)} of {len(plan.trials)} trials "
        f"({rerun.text}); their earlier results stay in their records and MLflow runs")
    return chosen


def _interrupt_running(ledger: Ledger, plan: Plan, log: Log, lease: Lease) -> None:
    """After ``monosweep stop``: the trials whose records still say running (their workers are gone) end
    ``interrupted`` at their last checkpoint, for the next run to resume."""
    stopped = 0
    for trial in plan.trials:
        record = plan.records.get(trial.id)
        if record is not None and record.status == RUNNING:
            record.interrupt()
            ledger.write(record)
            stopped += 1
    log(f"[monosweep] stopped on request ({lease.stopper}): {stopped} running trial(s) interrupted at their last "
        "checkpoint; `monosweep run` resumes them")


def sync_sweep(spec: SweepSpec, where: str, storage: str | None = None, tracking: str | None = None,
               log: Log = _stderr, spec_text: str | None = None) -> tuple[int, Tracker]:
    """Back-fill MLflow from the ledger without running anything; returns (runs changed, tracker)."""
    points, store = prepare(spec, where, storage, check_inputs=False)
    with _leased(store, spec.name, log):
        plan = read_plan(spec, points, store)
        tracker = Tracker(spec, plan.storage, tracking_uri(spec, plan.storage, tracking), log)
        changed = tracker.sync(plan.trials, plan.records) if tracker.open(spec_text) else 0
        tracker.close(plan.counts())
    if tracker.down:
        raise InputError(f"MLflow at {tracker.shown} is unreachable; nothing was mirrored (the ledger is intact)")
    return changed, tracker


@contextmanager
def _leased(storage: Storage, sweep: str, log: Log) -> Iterator[Lease]:
    """Hold the sweep's lease: one driver at a time runs trials and writes MLflow runs."""
    lease = Lease(storage, sweep)
    if lease.acquire(log):
        log("[monosweep] took over the lease of a driver that is gone")
    try:
        yield lease
    finally:
        lease.release()


def _announce_best(spec: SweepSpec, plan: Plan, log: Log, tracker: Tracker) -> None:
    """Print (and tag in MLflow) the best trial found around every grid point."""
    assert spec.search is not None  # (only called for a spec with a search)
    for point in plan.points:
        found = search.best(spec.search, point.id, plan.records)
        if found is None:
            continue
        record, value = found
        sampled = search.describe(record.values, spec.search.space)
        log(f"[monosweep] best around {tracker.point_label(point)}: {sampled} -> {spec.search.metric} "
            f"{value:.4g} (trial {record.id})")
        tracker.mark_best(point, record, value)
