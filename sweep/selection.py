"""Which trials a command acts on: ``--where method=deepcluster,seed=1`` and ``--state finished,failed``.

A ``--where`` is comma-separated ``KEY=VALUE`` pairs (``KEY=A|B`` for either value), every pair must hold;
several ``--where`` flags are alternatives. A key is ``id``, a grid axis or any trial-config field; a value
matches as written (``seed=1``, ``lr=0.05``, ``augment=none``). A key no trial has, or a state that does
not exist, is a one-line error naming the known ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from methods.errors import InputError
from methods.trial.config import trial_fields
from sweep.grid import Trial
from sweep.ledger.records import STATES
from sweep.plan import Plan

__all__ = ["Selection", "check_selected", "select"]


def _same(value: Any, text: str) -> bool:
    """Whether a trial's value is the one written on the command line (``1`` = 1 = 1.0, ``none`` = 'none')."""
    if str(value) == text:
        return True
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(text) == value  # 5e-2 = 0.05 (YAML 1.1 reads `5e-2` as a string)
        except ValueError:
            return False
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    return bool(parsed == value) and not (isinstance(parsed, bool) ^ isinstance(value, bool))


@dataclass
class Selection:
    """Trials kept when any ``where`` alternative holds (all when there is none) and the state is one of
    ``states`` (any when empty)."""

    where: list[dict[str, list[str]]] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    text: str = ""  # as the user wrote it, for messages

    def __bool__(self) -> bool:
        return bool(self.where or self.states)

    def matches(self, trial: Trial, state: str) -> bool:
        if self.states and state not in self.states:
            return False
        if not self.where:
            return True
        def holds(key: str, values: list[str]) -> bool:
            value = trial.id if key == "id" else trial.value(key)
            return any(_same(value, v) for v in values)

        return any(all(holds(key, values) for key, values in rule.items()) for rule in self.where)

    def apply(self, plan: Plan) -> list[Trial]:
        return [t for t in plan.trials if self.matches(t, plan.status(t))]


def _rule(text: str, known: Sequence[str]) -> dict[str, list[str]]:
    rule: dict[str, list[str]] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key or not value.strip():
            raise InputError(f"--where {text}: expected KEY=VALUE pairs separated by commas, e.g. "
                             "--where method=deepcluster,seed=1 (KEY=A|B for either value)")
        if key not in known:
            raise InputError(f"--where {text}: unknown key {key!r} (known: {', '.join(known)})")
        rule.setdefault(key, []).extend(v.strip() for v in value.split("|"))
    if not rule:
        raise InputError("--where: empty; give KEY=VALUE pairs, e.g. --where method=deepcluster,seed=1")
    return rule


def select(where: Iterable[str] | None, states: Iterable[str] | None, axes: Sequence[str] = ()) -> Selection:
    """The selection that ``--where`` and ``--state`` flags describe; ``axes`` (the spec's grid axes) come
    first in the list of known keys an error shows."""
    known = ["id", *axes, *(f for f in sorted(trial_fields()) if f not in axes)]
    rules = [_rule(text, known) for text in where or []]
    wanted = [s.strip() for text in states or [] for s in text.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in STATES]
    if unknown:
        raise InputError(f"--state {unknown[0]}: unknown state (known: {', '.join(STATES)})")
    parts = [f"--where {w}" for w in where or []] + [f"--state {s}" for s in states or []]
    return Selection(rules, wanted, " ".join(parts))


def check_selected(selected: Sequence[Trial], selection: Selection, total: int) -> None:
    """A selection that matches nothing is said, before anything runs."""
    if selection and not selected:
        raise InputError(f"no trial matches {selection.text} (of {total} trials): nothing selected; "
                         "see `monosweep status SPEC` for the trials and their states")
