"""A trial's record: its state, resolved config, latest checkpoint and typed result, and the transitions
between states (the only place a record's state changes).

    pending -> running -> finished | diverged     (the trial ran to its end)
                       -> failed                  (an error, or its worker was lost; a rerun retries it)
                       -> pruned                  (stopped early by a search's scheduler)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from methods.trial.result import TrialResult

__all__ = ["DONE", "STATES", "TrialRecord"]

PENDING, RUNNING, FAILED, PRUNED = "pending", "running", "failed", "pruned"
STATES = (PENDING, RUNNING, "finished", FAILED, "diverged", PRUNED)
DONE = ("finished", "diverged", PRUNED)  # states a rerun never touches again (pruned: stopped early by a search)


@dataclass
class TrialRecord:
    id: str
    status: str = PENDING
    values: dict[str, Any] = field(default_factory=dict)  # the explicit config (what the id hashes)
    search: str | None = None  # for a search trial: the id of the grid point it was sampled around
    config: dict[str, Any] = field(default_factory=dict)  # the resolved config actually run
    epoch: int = 0  # last epoch with a checkpoint
    checkpoint: str | None = None  # storage path of that checkpoint
    trunk: str | None = None  # storage path of the final trunk weights (as probed)
    resumed_from: list[int] = field(default_factory=list)  # epochs this trial restarted after
    attempts: int = 0
    node: str = ""
    error: str | None = None
    result: TrialResult | None = None
    updated: float = 0.0

    @property
    def done(self) -> bool:
        return self.status in DONE

    # ------------------------------------------------------------------ transitions
    def start(self, config: dict[str, Any], node: str, resuming: bool) -> None:
        """An attempt begins on ``node`` (``resuming``: from the checkpoint after ``epoch``)."""
        self.config, self.node = config, node
        self.attempts += 1
        self.status, self.error = RUNNING, None
        if resuming:
            self.resumed_from.append(self.epoch)

    def checkpointed(self, epoch: int, checkpoint: str) -> None:
        self.epoch, self.checkpoint = epoch, checkpoint

    def finish(self, result: TrialResult, trunk: str | None) -> None:
        """The trial ran to its end (finished, or diverged with its last good state probed)."""
        self.status, self.result, self.trunk = result.status, result, trunk

    def fail(self, error: str) -> None:
        self.status, self.error = FAILED, error

    def prune(self) -> None:
        self.status = PRUNED

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrialRecord:
        """Read a record; keys this version does not know (written by a newer one) are left out."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in json.loads(text).items() if k in known}
        if values.get("result") is not None:
            values["result"] = TrialResult.from_dict(values["result"])
        return cls(**values)
