"""Grid -> trials: the cartesian product minus exclusions, each with a stable id.

A trial's id is a short hash of its *explicit* values (grid + fixed + per-method, canonicalised): reordering keys or
axis values changes no id, changing a value does, and a default added to the code later does not
change old ids (the resolved config, defaults included, is stored with each result instead).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from methods.errors import InputError
from methods.registry import get_method
from methods.trial.config import DEFAULT_METHOD, ResolvedConfig, TrialConfig, float_fields
from methods.trial.inputs import check_inputs
from sweep.spec import SweepSpec

__all__ = ["Trial", "canonical", "config_warnings", "expand", "tally", "trial_id", "validate_inputs"]


@dataclass(frozen=True)
class Trial:
    id: str
    values: dict[str, Any]  # the explicit values the id hashes
    config: ResolvedConfig  # every default filled in

    def value(self, name: str) -> Any:
        """A field's value for this trial: as given (a grid axis, say), else as resolved."""
        return self.values[name] if name in self.values else self.config.to_dict().get(name)

    @classmethod
    def of(cls, values: dict[str, Any]) -> Trial:
        """The trial these explicit values make (a record's, a search's sample)."""
        return cls(trial_id(values), values, TrialConfig.from_dict(values).resolved())


def canonical(values: dict[str, Any]) -> dict[str, Any]:
    """Values with float fields as floats (``lr: 1`` and ``lr: 1.0`` are the same trial)."""
    floats = float_fields()
    return {k: float(v) if k in floats and isinstance(v, int) and not isinstance(v, bool) else v
            for k, v in sorted(values.items())}


def trial_id(values: dict[str, Any]) -> str:
    blob = json.dumps(canonical(values), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _matches(rule: dict[str, Any], values: dict[str, Any]) -> bool:
    return all(values.get(k) in (v if isinstance(v, list) else [v]) for k, v in rule.items())


def expand(spec: SweepSpec, where: str = "spec") -> list[Trial]:
    """All trials of the spec, in a stable order; a bad value is a one-line InputError naming it."""
    axes = sorted(spec.grid)
    trials, seen = [], set()
    for combo in itertools.product(*(spec.grid[a] for a in axes)):
        values = {**spec.fixed, **dict(zip(axes, combo, strict=True))}
        values = canonical({**values, **spec.per_method.get(values.get("method", DEFAULT_METHOD), {})})
        if any(_matches(rule, values) for rule in spec.exclude):
            continue
        try:
            config = TrialConfig.from_dict(values).resolved()
        except InputError as err:
            raise _named(spec, axes, combo, where, err) from None
        tid = trial_id(values)
        if tid not in seen:
            seen.add(tid)
            trials.append(Trial(tid, values, config))
    if not trials:
        raise InputError(f"{where}: the exclude rules drop every trial of the grid")
    return trials


def _named(spec: SweepSpec, axes: list[str], combo: tuple[Any, ...], where: str, err: InputError) -> InputError:
    """The error of a trial that cannot be made, naming the grid value that is wrong alone if one is (checked
    only once a trial fails: a grid of 10,000 seeds is not validated twice)."""
    for axis, value in zip(axes, combo, strict=True):
        try:
            TrialConfig.from_dict({**spec.fixed, axis: value})
        except InputError as alone:
            return InputError(f"{where}: grid.{axis}[{spec.grid[axis].index(value)}] = {value!r}: {alone}")
    assignment = ", ".join(f"{a}={v!r}" for a, v in zip(axes, combo, strict=True))
    return InputError(f"{where}: trial ({assignment}): {err}")


def tally(lines: Iterable[str]) -> list[str]:
    """Each distinct line once, in first-seen order, with how many trials said it: a grid of 80 trials
    gives one warning line, not 80."""
    return [f"{line} ({n} trial{'s' if n > 1 else ''})" for line, n in Counter(lines).items()]


def config_warnings(trials: list[Trial]) -> list[str]:
    """Each distinct warning the trials' methods give about their configs, with how many trials it concerns."""
    return tally(f"{t.config.method}: {line}" for t in trials for line in get_method(t.config.method).warnings(t.config))


def validate_inputs(trials: list[Trial], where: str = "spec") -> None:
    """Check every distinct source / data set / device the trials use, before anything is submitted."""
    keys = ("method", "source", "num_images", "seed", "probe_data", "train_data", "device", "img_size")
    checked: set[tuple[Any, ...]] = set()
    for trial in trials:
        key = tuple(getattr(trial.config, k) for k in keys)
        if key in checked:
            continue
        checked.add(key)
        try:
            check_inputs(trial.config)
        except InputError as err:
            raise InputError(f"{where}: {err}") from None
