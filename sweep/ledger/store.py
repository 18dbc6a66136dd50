"""The ledger in storage: one small JSON file per trial (``trials/<id>.json``) and its checkpoints.

Written by the trial itself, atomically, so trials on many nodes never contend for one file and a record
survives the driver. A finished record is never rewritten. Trackers and reports mirror the ledger.
"""

from __future__ import annotations

import time
from pathlib import Path

from methods.trial.reporter import CHECKPOINT_FILE
from sweep.ledger.records import TrialRecord
from sweep.storage import Storage

__all__ = ["Ledger"]


class Ledger:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    @staticmethod
    def _record(trial_id: str) -> str:
        return f"trials/{trial_id}.json"

    @staticmethod
    def checkpoint_path(trial_id: str, filename: str = CHECKPOINT_FILE) -> str:
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

    def fetch_checkpoint(self, record: TrialRecord, directory: Path) -> bool:
        """Download the record's latest checkpoint into ``directory``; False if it has none."""
        return record.checkpoint is not None and self.storage.download(record.checkpoint, directory / CHECKPOINT_FILE)
