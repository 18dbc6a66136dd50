"""The ledger: the record of every trial id's state, result and latest checkpoint, in the sweep's storage.

One small JSON file per trial (``trials/<id>.json``), written atomically by the trial itself, so trials
on many nodes never contend for one file and the record survives the driver. A finished record is
never rewritten. The ledger is the source of truth; trackers and reports mirror it.

The lease (``lease.json``) says which driver is running the sweep; it carries a heartbeat so that a
second ``run`` refuses while the first is alive and takes over once it is dead.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from methods.errors import InputError, first_line
from sweep.storage import Storage

__all__ = ["DONE", "STATES", "Lease", "Ledger", "TrialRecord"]

STATES = ("pending", "running", "finished", "failed", "diverged", "pruned")
DONE = ("finished", "diverged", "pruned")  # states a rerun never touches again (pruned: stopped early by a search)


@dataclass
class TrialRecord:
    id: str
    status: str = "pending"
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
    result: dict[str, Any] | None = None
    updated: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrialRecord:
        """Read a record; keys this version does not know (written by a newer one) are left out."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})


class Ledger:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    @staticmethod
    def _record(trial_id: str) -> str:
        return f"trials/{trial_id}.json"

    @staticmethod
    def checkpoint_path(trial_id: str, filename: str = "checkpoint.pt") -> str:
        return f"checkpoints/{trial_id}/{filename}"

    def read(self, trial_id: str) -> TrialRecord | None:
        text = self.storage.read_text(self._record(trial_id))
        return None if text is None else TrialRecord.from_json(text)

    def read_all(self) -> dict[str, TrialRecord]:
        names = [n for n in self.storage.list("trials") if n.endswith(".json")]
        records = {}
        for name in names:
            record = self.read(name.removesuffix(".json"))
            if record is not None:
                records[record.id] = record
        return records

    def write(self, record: TrialRecord) -> None:
        record.updated = time.time()
        self.storage.write_text(self._record(record.id), record.to_json())

    def save_checkpoint(self, trial_id: str, local: Path) -> str:
        """Store a file a trial reported (``checkpoint.pt``, ``trunk.pt``) beside its record."""
        rel = self.checkpoint_path(trial_id, local.name)
        self.storage.upload(local, rel)
        return rel

    def fetch_checkpoint(self, record: TrialRecord, directory: Path, filename: str) -> bool:
        return record.checkpoint is not None and self.storage.download(record.checkpoint, directory / filename)


class Lease:
    """Exclusive right to drive a sweep, kept alive by a heartbeat thread.

    A lease is stale when its heartbeat is older than ``stale_after`` seconds, or at once when its
    driver ran on this host and that process no longer exists.
    """

    PATH = "lease.json"

    def __init__(self, storage: Storage, sweep: str, stale_after: float = 60.0, beat: float = 10.0) -> None:
        self.storage, self.sweep = storage, sweep
        self.stale_after, self.beat = stale_after, beat
        self.owner = {"id": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid()}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> dict[str, Any] | None:
        text = self.storage.read_text(self.PATH)
        return None if text is None else json.loads(text)

    def _write(self) -> None:
        self.storage.write_text(self.PATH, json.dumps({**self.owner, "heartbeat": time.time()}))

    def _alive(self, lease: dict[str, Any]) -> bool:
        age = time.time() - float(lease.get("heartbeat", 0))
        if age > self.stale_after:
            return False
        if lease.get("host") == self.owner["host"]:
            try:
                os.kill(int(lease["pid"]), 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
        return True

    def acquire(self) -> bool:
        """Take the lease; returns True if a stale one was taken over. InputError if it is held."""
        current = self._read()
        took_over = current is not None
        if current is not None and self._alive(current):
            age = time.time() - float(current["heartbeat"])
            raise InputError(
                f"sweep {self.sweep!r} is already running (driver pid {current['pid']} on {current['host']}, "
                f"heartbeat {age:.0f}s ago); wait for it, or rerun after it stops"
            )
        try:
            self._write()
        except OSError as err:  # e.g. read-only credentials: say so before anything runs
            raise InputError(f"cannot write the lease {self.storage.path(self.PATH)}: {first_line(err)}") from None
        time.sleep(0.2)
        mine = self._read()
        if mine is None or mine.get("id") != self.owner["id"]:
            raise InputError(f"sweep {self.sweep!r} was just started by another driver; not running it twice")
        self._thread = threading.Thread(target=self._heartbeat, daemon=True, name="monosweep-lease")
        self._thread.start()
        return took_over

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.beat):
            try:
                self._write()
            except OSError:
                pass  # a missed beat is tolerated; the lease only goes stale after many

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        current = self._read()
        if current is not None and current.get("id") == self.owner["id"]:
            self.storage.delete(self.PATH)
