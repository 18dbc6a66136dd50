"""What a sweep wants and what its ledger already holds: the trials to (re)run, the search budget left.

Every command starts here (``validate``, ``plan``, ``status``, ``report``, ``run``, ``sync``): the spec's grid
expanded and checked, the storage reached, the ledger read.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from sweep import search
from sweep.baselines import missing_baselines
from sweep.grid import Trial, config_warnings, expand, validate_inputs
from sweep.ledger.records import DONE, PENDING, TrialRecord
from sweep.ledger.store import Ledger
from sweep.spec import SweepSpec
from sweep.storage import Storage

__all__ = ["Plan", "peek_plan", "plan_sweep", "prepare", "read_plan"]


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
        return record.status if record is not None else PENDING

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for trial in self.trials:
            counts[self.status(trial)] = counts.get(self.status(trial), 0) + 1
        if sum(self.to_sample.values()):
            counts[PENDING] = counts.get(PENDING, 0) + sum(self.to_sample.values())
        return counts


def plan_sweep(spec: SweepSpec, where: str, storage: str | None = None, check_inputs: bool = True) -> Plan:
    """Expand the grid and read the ledger: what exists, what is left to run."""
    return read_plan(spec, *prepare(spec, where, storage, check_inputs))


def peek_plan(spec: SweepSpec, where: str, storage: str | None = None) -> tuple[Plan, str | None]:
    """The plan without touching the storage beyond reading it: nothing is created, and storage that cannot
    be reached (a placeholder bucket, no credentials here) gives a plan of nothing finished and the reason."""
    points = _points(spec, where)
    store = Storage(spec.storage_uri(storage))
    why = store.unreachable()
    return _plan(spec, points, store, Ledger(store).read_all() if why is None else {}), why


def _points(spec: SweepSpec, where: str) -> list[Trial]:
    points = expand(spec, where)
    if spec.search is not None:
        search.check_space(spec, points, where)
    return points


def prepare(spec: SweepSpec, where: str, storage: str | None, check_inputs: bool) -> tuple[list[Trial], Storage]:
    """The grid's points and the sweep's storage, every input checked; reads no ledger."""
    points = _points(spec, where)
    if check_inputs:
        validate_inputs(points, where)
        for line in [*config_warnings(points), *missing_baselines(points)]:
            print(f"[monosweep] warning: {where}: {line}", file=sys.stderr)
    store = Storage(spec.storage_uri(storage))
    store.check()
    return points, store


def read_plan(spec: SweepSpec, points: list[Trial], store: Storage) -> Plan:
    """The plan as the ledger says now."""
    return _plan(spec, points, store, Ledger(store).read_all())


def _plan(spec: SweepSpec, points: list[Trial], store: Storage, records: dict[str, TrialRecord]) -> Plan:
    if spec.search is None:
        return Plan(points, records, store, points)
    return Plan(search.sampled_trials(records, points), records, store, points,
                search.budget(spec.search, points, records))
