"""A sweep's results as a table: one row per trial, read from the ledger (the truth) on local or S3 storage.

``results(SPEC)`` is the notebook's entry point (a pandas DataFrame); ``monosweep status --json / --format
csv / parquet`` and ``monosweep report`` read the same rows, so a number never differs between them.

    import sweep
    df = sweep.results("examples/quickstart.yaml")
    df[df.state == "finished"].groupby("method")[["probe.conv1.top1", "probe.conv5.top1"]].mean()
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from methods import registry
from sweep.plan import Plan, plan_sweep
from sweep.selection import Selection, select
from sweep.spec import SweepSpec, load_spec

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FIRST", "frame", "results", "rows", "trial_row"]

FIRST = ("id", "state", "attempts", "epoch", "error")  # the columns before the config values and metrics


def trial_row(plan: Plan, trial: Any) -> dict[str, Any]:
    """One trial as a JSON-ready object: id, state, attempts, epoch, error, its explicit values, the
    resolved config it ran and its final metrics (``probe.conv1.top1`` ...; empty until it ends)."""
    record = plan.records.get(trial.id)
    result = record.result if record is not None else None
    return {"id": trial.id, "state": plan.status(trial), "attempts": record.attempts if record else 0,
            "epoch": record.epoch if record else 0, "error": record.error if record else None,
            "values": dict(trial.values), "config": trial.config.to_dict(),
            "search_point": record.search if record else None,
            "metrics": result.metrics() if result is not None else {},
            "earlier": [{"status": a.status, "metrics": a.result.metrics() if a.result else {}}
                        for a in (record.history if record else [])]}


def rows(plan: Plan, selection: Selection | None = None) -> list[dict[str, Any]]:
    """The selected trials (all by default) as :func:`trial_row` objects, in the grid's order."""
    trials = selection.apply(plan) if selection else plan.trials
    return [trial_row(plan, t) for t in trials]


def flat(row: dict[str, Any], axes: Sequence[str]) -> dict[str, Any]:
    """A row as flat columns: the fixed ones, the spec's axes, the metrics, then the rest of the config."""
    config = row["config"]
    out = {k: row[k] for k in FIRST}
    out.update({a: row["values"].get(a, config.get(a)) for a in axes})
    out.update({k: v for k, v in row["metrics"].items() if k not in out})  # (its epoch is the record's)
    out["reruns"] = len(row["earlier"])
    out.update({k: v for k, v in config.items() if k not in out})
    return out


def frame(plan: Plan, spec: SweepSpec, selection: Selection | None = None) -> pd.DataFrame:
    import pandas as pd

    axes = sorted(spec.grid)
    table = pd.DataFrame([flat(r, axes) for r in rows(plan, selection)])
    return table if len(table) else pd.DataFrame(columns=list(FIRST))


def results(spec: str | Path, storage: str | None = None, where: Sequence[str] = (), state: Sequence[str] = (),
            overrides: Sequence[str] = ()) -> pd.DataFrame:
    """Every trial of the sweep ``spec`` (a path to its YAML file) as a row: id, state, attempts, epoch,
    error, the grid axes, the final metrics (``probe.<layer>.top1`` ...), ``reruns`` and the resolved
    config. ``where``/``state`` select as ``monosweep status --where/--state`` does; ``storage`` and
    ``overrides`` (``["fixed.epochs=4"]``) as ``--storage``/``--set``."""
    registry.load_plugins()  # an entry point, like the CLI: $MONOSWEEP_PLUGINS' methods are known
    sweep = load_spec(spec, overrides)
    plan = plan_sweep(sweep, str(spec), storage, check_inputs=False)
    return frame(plan, sweep, select(where, state, sorted(sweep.grid)))
