"""What goes through Ray Tune, written and read here only: a trial's place in the param space, and the
results a trial reports (once per epoch, once at its end).

The param space of a wave is ``{"trial": {"id", "values", and the run's settings}}`` per trial (the
storage, the lease generation the driver holds, the time limits); a search adds the fields Optuna samples
beside ``trial``, and the trial's identity is then computed from the grid point's values plus the sampled
ones. A trial reports each epoch's metrics (schedulers and searchers read them by name),
then its final metrics marked as its end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from methods.trial.result import TrialResult
from sweep.grid import Trial, canonical, trial_id

__all__ = ["END", "RunSettings", "end", "epoch", "identity", "is_end", "point_space", "run_settings", "trial_id_of",
           "trial_space"]

END = "monosweep.end"  # marks a trial's last result: it ran to its end (a scheduler stops trials at epochs)


@dataclass(frozen=True)
class RunSettings:
    """What every trial of a run gets from its driver besides its values."""

    storage: str
    fence: int = 0  # the lease generation the driver holds
    trial_timeout: float | None = None
    stall_timeout: float | None = None


def trial_space(trial: Trial, settings: RunSettings) -> dict[str, Any]:
    """One trial of a wave, as an entry of its grid search."""
    return {"id": trial.id, "values": trial.values, **asdict(settings)}


def point_space(point: Trial, settings: RunSettings) -> dict[str, Any]:
    """The param space of a search around a grid point (the searcher adds the sampled fields)."""
    return {"trial": trial_space(point, settings)}


def run_settings(tune_config: Mapping[str, Any]) -> RunSettings:
    params = tune_config["trial"]
    return RunSettings(**{f.name: params[f.name] for f in fields(RunSettings) if f.name in params})


def identity(tune_config: Mapping[str, Any]) -> tuple[str, dict[str, Any], str | None]:
    """(trial id, values, grid point id or None) of a Tune trial's config: the grid point's values, plus
    the sampled fields that a search merges in beside ``trial``."""
    params = tune_config["trial"]
    sampled = {k: v for k, v in tune_config.items() if k != "trial"}
    if not sampled:
        return params["id"], params["values"], None
    values = canonical({**params["values"], **sampled})
    return trial_id(values), values, params["id"]


def trial_id_of(point: Trial, sampled: Mapping[str, Any]) -> str:
    """The id of the trial ``sampled`` makes around ``point`` (what :func:`identity` computes in the trial)."""
    return identity({"trial": {"id": point.id, "values": point.values}, **sampled})[0]


def epoch(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()}


def end(result: TrialResult | None) -> dict[str, float]:
    """A trial's last report: its final metrics (none for a trial an earlier attempt already ended)."""
    return {**(result.metrics() if result is not None else {}), END: 1.0}


def is_end(message: Mapping[str, Any]) -> bool:
    return END in message

