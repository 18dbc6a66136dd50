"""A trial's record: its state, resolved config, last checkpoints (with their digests) and typed result,
and the transitions between states (the only place a record's state changes).

    pending -> running -> finished | diverged     (the trial ran to its end)
                       -> failed                  (an error, a time limit, or its worker was lost; a rerun retries it)
                       -> interrupted             (`monosweep stop`: the next run resumes it from its checkpoint)
                       -> pruned                  (stopped early by a search's scheduler)
    any    -> pending                             (`monosweep rerun`: the attempt so far kept in ``history``)

A record read from storage is checked before it is trusted: its id has the id format and names its own
file, and every path in it lies under its own ``checkpoints/<id>/`` folder (a record is data anyone who
can write the bucket can write; it must not point a trial at another trial's files, or anywhere else).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from methods.trial.result import TrialResult

__all__ = ["DONE", "STATES", "Attempt", "Checkpoint", "TrialRecord", "UnsafeRecord"]

PENDING, RUNNING, FAILED, PRUNED, INTERRUPTED = "pending", "running", "failed", "pruned", "interrupted"
STATES = (PENDING, RUNNING, "finished", FAILED, "diverged", INTERRUPTED, PRUNED)
DONE = ("finished", "diverged", PRUNED)  # states a rerun never touches again (pruned: stopped early by a search)
KEPT = 2  # checkpoints kept per trial: the last one, and the one before it to fall back on
ID = re.compile(r"^[0-9a-f]{12}$")


class UnsafeRecord(ValueError):
    """A record whose id or paths do not belong to it."""


def _known(cls: type, data: Any) -> dict[str, Any]:
    """The entries of ``data`` that ``cls`` has fields for (a newer version may write more); TypeError if
    ``data`` is not a JSON object."""
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__} is not a JSON object")
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass
class Checkpoint:
    epoch: int
    path: str  # in the storage, under checkpoints/<id>/
    sha256: str | None  # None for a checkpoint an older version recorded without a digest


@dataclass
class Attempt:
    """A run of the trial that ``monosweep rerun`` set aside: how it ended, kept for the record."""

    status: str
    attempts: int
    error: str | None
    result: TrialResult | None
    config: dict[str, Any]
    node: str
    updated: float
    superseded: float  # when the rerun set it aside

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attempt:
        values = _known(cls, data)
        if values.get("result") is not None:
            values["result"] = TrialResult.from_dict(values["result"])
        return cls(**values)


@dataclass
class TrialRecord:
    id: str
    status: str = PENDING
    values: dict[str, Any] = field(default_factory=dict)  # the explicit config (what the id hashes)
    search: str | None = None  # for a search trial: the id of the grid point it was sampled around
    config: dict[str, Any] = field(default_factory=dict)  # the resolved config actually run
    epoch: int = 0  # last epoch with a checkpoint
    checkpoint: str | None = None  # storage path of that checkpoint
    checkpoints: list[Checkpoint] = field(default_factory=list)  # the last KEPT, oldest first, with digests
    trunk: str | None = None  # storage path of the final trunk weights (as probed)
    resumed_from: list[int] = field(default_factory=list)  # epochs this trial restarted after
    attempts: int = 0
    node: str = ""
    error: str | None = None
    result: TrialResult | None = None
    fence: int = 0  # the generation of the lease under which the driver ran this attempt
    updated: float = 0.0
    started: float = 0.0  # wall clock (s) when the trial first started (resumes keep it; a rerun resets it)
    ended: float = 0.0  # wall clock (s) when its latest attempt ended
    history: list[Attempt] = field(default_factory=list)  # earlier runs set aside by `monosweep rerun`, oldest first

    @property
    def done(self) -> bool:
        return self.status in DONE

    # ------------------------------------------------------------------ transitions
    def start(self, config: dict[str, Any], node: str, fence: int, resumed_after: int | None) -> None:
        """An attempt begins on ``node``, under lease generation ``fence``; from the checkpoint after epoch
        ``resumed_after``, or from scratch (None)."""
        self.config, self.node, self.fence = config, node, fence
        self.started = self.started or time.time()
        self.attempts += 1
        self.status, self.error = RUNNING, None
        if resumed_after is not None:
            self.resumed_from.append(resumed_after)

    def checkpointed(self, epoch: int, path: str, sha256: str) -> list[str]:
        """A new checkpoint is stored; returns the paths of the ones no longer kept (to delete)."""
        self.epoch, self.checkpoint = epoch, path
        kept = [c for c in self.known_checkpoints() if c.path != path]  # (a rerun may write an epoch again)
        self.checkpoints = [*kept, Checkpoint(epoch, path, sha256)]
        dropped, self.checkpoints = self.checkpoints[:-KEPT], self.checkpoints[-KEPT:]
        return [c.path for c in dropped if c.path != path]

    def known_checkpoints(self) -> list[Checkpoint]:
        """The checkpoints to resume from, oldest first (a record from an older version lists only its last)."""
        if self.checkpoints or self.checkpoint is None:
            return list(self.checkpoints)
        return [Checkpoint(self.epoch, self.checkpoint, None)]

    def finish(self, result: TrialResult, trunk: str | None) -> None:
        """The trial ran to its end (finished, or diverged with its last good state probed)."""
        self.status, self.result, self.trunk, self.ended = result.status, result, trunk, time.time()

    def fail(self, error: str) -> None:
        self.status, self.error, self.ended = FAILED, error, time.time()

    def prune(self) -> None:
        self.status, self.ended = PRUNED, time.time()

    def interrupt(self) -> None:
        """Stopped on request (``monosweep stop``) while running: resumed from its checkpoint next time."""
        self.status, self.ended = INTERRUPTED, time.time()

    def supersede(self, now: float) -> list[str]:
        """Set the run so far aside for a fresh one (``monosweep rerun``): its outcome goes to ``history``,
        its checkpoints are forgotten; returns their paths (and the trunk's), to delete."""
        self.history.append(Attempt(self.status, self.attempts, self.error, self.result, self.config, self.node,
                                    self.updated, now))
        stale = [c.path for c in self.known_checkpoints()] + ([self.trunk] if self.trunk else [])
        self.status, self.attempts, self.error, self.result, self.trunk = PENDING, 0, None, None, None
        self.epoch, self.checkpoint, self.checkpoints, self.resumed_from = 0, None, [], []
        self.started = self.ended = 0.0
        return stale

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, name: str | None = None) -> TrialRecord:
        """Read a record (the id its file ``name`` gives, when known); keys this version does not know
        (written by a newer one) are left out. ValueError if it is not a record, UnsafeRecord if it does
        not belong where it is."""
        values = _known(cls, json.loads(text))
        if values.get("result") is not None:
            values["result"] = TrialResult.from_dict(values["result"])
        values["checkpoints"] = [Checkpoint(**_known(Checkpoint, c)) for c in values.get("checkpoints") or []]
        values["history"] = [Attempt.from_dict(a) for a in values.get("history") or []]
        record = cls(**values)
        record._check(name)
        return record

    def _check(self, name: str | None) -> None:
        if not isinstance(self.id, str) or not ID.match(self.id) or (name is not None and name != self.id):
            raise UnsafeRecord(f"record id {self.id!r} is not the id of its file {name or '?'}.json")
        own = f"checkpoints/{self.id}/"
        paths = [self.checkpoint, self.trunk, *(c.path for c in self.checkpoints)]
        for path in filter(None, paths):
            if not isinstance(path, str) or not path.startswith(own) or ".." in path.split("/"):
                raise UnsafeRecord(f"record {self.id} points outside its own folder {own}: {path!r}")
