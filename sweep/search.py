"""Optuna search around every grid point (a spec's ``search:`` block), on the same ledger as the grid.

Each grid point gets ``num_samples`` trials whose searched fields are sampled by Optuna (Ray Tune's
``OptunaSearch``), optionally pruned by ASHA on the search metric epoch by epoch. A sampled trial is an
ordinary trial: its id hashes its values (the grid point's plus the sampled ones), it has a ledger record
(``search`` = the grid point's id), checkpoints and an MLflow run. Rerunning a search resumes its
interrupted trials from their checkpoints and samples only what the budget still lacks, with Optuna
warm-started from the results already in the ledger.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from methods.errors import InputError
from methods.trial.config import TrialConfig
from methods.trial.result import DIVERGED, FINISHED
from sweep.execution.messages import trial_id_of
from sweep.grid import Trial
from sweep.ledger.records import TrialRecord
from sweep.spec import Param, Search, SweepSpec

__all__ = ["best", "budget", "check_space", "describe", "make_scheduler", "make_searcher", "objective",
           "sampled_trials", "scored", "short"]

_REDRAWS = 50  # proposals asked for before a finite space counts as used up


def check_space(spec: SweepSpec, points: Sequence[Trial], where: str) -> None:
    """Every bound of the search space must make a valid trial config (checked before anything runs,
    like the grid's own values)."""
    assert spec.search is not None
    for name, param in spec.search.space.items():
        for bound in param.bounds():
            try:
                TrialConfig.from_dict({**points[0].values, name: bound})
            except InputError as err:
                raise InputError(f"{where}: search.space.{name} = {bound!r}: {err}") from None


def sampled_trials(records: Mapping[str, TrialRecord], points: Sequence[Trial]) -> list[Trial]:
    """The search trials the ledger holds around the spec's grid points, as trials (their values are in
    their records). Trials around points the spec no longer has (a fixed value changed) are left out."""
    wanted = {p.id for p in points}
    out = []
    for record in sorted(records.values(), key=lambda r: (r.search or "", r.id)):
        if record.search in wanted:
            out.append(Trial(record.id, record.values, TrialConfig.from_dict(record.values).resolved()))
    return out


def short(value: Any) -> str:
    """A value as tables and logs show it: floats to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def describe(values: Mapping[str, Any], names: Iterable[str]) -> str:
    """``lr=0.0123 epochs=8``: the named values (how a sampled trial is shown)."""
    return " ".join(f"{k}={short(values.get(k))}" for k in names)


def space_size(search: Search) -> float:
    """How many distinct trials the space holds (infinite unless every field is a choice or an integer
    range): a budget beyond it would sample duplicates, which are the same trials."""
    size = 1.0
    for param in search.space.values():
        if param.choices is not None:
            size *= len(param.choices)
        elif param.integer:
            size *= int(param.high) - int(param.low) + 1  # type: ignore[arg-type]
        else:
            return math.inf
    return size


def _held(records: Mapping[str, TrialRecord], point_id: str) -> int:
    return sum(r.search == point_id for r in records.values())


def budget(search: Search, points: Sequence[Trial], records: Mapping[str, TrialRecord]) -> dict[str, int]:
    """Grid point id -> how many new trials to sample (the budget, capped by the size of the space, minus
    what the ledger already holds)."""
    wanted = min(search.num_samples, space_size(search))
    return {p.id: int(max(0, wanted - _held(records, p.id))) for p in points}


def objective(record: TrialRecord, metric: str) -> float | None:
    """The search metric of a finished trial: its final probe metrics, else its last epoch's metric."""
    if record.status not in (FINISHED, DIVERGED) or record.result is None:
        return None
    value = record.result.metrics().get(metric)
    return float(value) if value is not None else None


def scored(search: Search, point_id: str, records: Mapping[str, TrialRecord]) -> list[tuple[TrialRecord, float]]:
    """The finished trials sampled around a grid point, with their metric values."""
    return [(r, v) for r in records.values() if r.search == point_id and (v := objective(r, search.metric)) is not None]


def best(search: Search, point_id: str, records: Mapping[str, TrialRecord]) -> tuple[TrialRecord, float] | None:
    """The best finished trial sampled around a grid point, with its metric value."""
    found = scored(search, point_id, records)
    if not found:
        return None
    sign = 1.0 if search.mode == "max" else -1.0
    return max(found, key=lambda rv: (sign * rv[1], rv[0].id))  # ties: the same pick every time


def _distribution(param: Param) -> Any:
    import optuna

    if param.choices is not None:
        return optuna.distributions.CategoricalDistribution(param.choices)
    if param.integer:
        return optuna.distributions.IntDistribution(int(param.low), int(param.high), log=param.log)  # type: ignore[arg-type]
    return optuna.distributions.FloatDistribution(param.low, param.high, log=param.log)  # type: ignore[arg-type]


def make_searcher(search: Search, point: Trial, records: Mapping[str, TrialRecord]) -> Any:
    """An OptunaSearch for one grid point, warm-started from the ledger's finished trials around it, that
    never suggests a trial the ledger (or this wave) already has."""
    import optuna
    from ray.tune.search import Searcher as Base
    from ray.tune.search.optuna import OptunaSearch

    space = {k: _distribution(p) for k, p in search.space.items()}
    taken = {r.id for r in records.values()}

    class Searcher(OptunaSearch):
        def suggest(self, trial_id: str) -> dict | str | None:
            """Optuna may propose the same values twice (a small categorical or integer space); those are
            the same trial, so such a proposal is told back as pruned and another one is asked for."""
            for _ in range(_REDRAWS):
                suggestion = super().suggest(trial_id)
                if suggestion is None or suggestion == Base.FINISHED:
                    return suggestion
                tid = trial_id_of(point, suggestion)
                if tid not in taken:
                    taken.add(tid)
                    return suggestion
                self._ot_study.tell(self._ot_trials.pop(trial_id), state=optuna.trial.TrialState.PRUNED)
            return Base.FINISHED  # the space seems used up; a later run may still find new points

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            if self.metric in result:  # epochs between probes carry no probe metric: nothing to report
                super().on_trial_result(trial_id, result)

    def usable(values: Mapping[str, Any]) -> bool:  # a space changed since: only points it still holds
        return all(k in values and space[k]._contains(space[k].to_internal_repr(values[k])) for k in space)

    prior = [({k: r.values[k] for k in space}, v) for r, v in scored(search, point.id, records) if usable(r.values)]
    # A fresh stream for every continuation: the same seed would draw the first samples again.
    seed = int(hashlib.sha256(f"{search.seed}:{point.id}:{_held(records, point.id)}".encode()).hexdigest()[:8], 16)
    return Searcher(space=space, metric=search.metric, mode=search.mode, seed=seed,
                    points_to_evaluate=[p for p, _ in prior] or None, evaluated_rewards=[v for _, v in prior] or None)


def make_scheduler(search: Search, point: Trial) -> Any:
    """ASHA over epochs on the search metric, or None (no pruning, or a point with too few epochs)."""
    epochs = int(point.config.epochs or 0)
    if search.asha is None or epochs <= search.asha.grace_period:
        return None
    from ray.tune.schedulers import ASHAScheduler

    # stop_last_trials=False: a trial that reaches the last epoch finishes (its final probe and record)
    # instead of being stopped at its last report.
    return ASHAScheduler(time_attr="epoch", metric=search.metric, mode=search.mode, max_t=epochs,
                         grace_period=search.asha.grace_period, reduction_factor=search.asha.reduction_factor,
                         stop_last_trials=False)
