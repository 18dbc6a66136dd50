"""The ledger in storage: one small JSON file per trial (``trials/<id>.json``) and its checkpoints.

Written by the trial itself, atomically, so trials on many nodes never contend for one file and a record
survives the driver. A finished record is never rewritten. Trackers and reports mirror the ledger.

What cannot be read is never fatal: a record that is not JSON, or not a record, or whose id and paths do
not belong to it, is moved aside to ``quarantine/`` and said in one line, and its trial counts as not
started. A checkpoint is stored with its sha256 in the record and checked when it is fetched; one that is
missing or damaged gives way to the one before it (two are kept), or to a fresh start, said once.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from methods.trial.reporter import CHECKPOINT_FILE
from sweep.ledger import snapshot
from sweep.ledger.cache import RecordCache
from sweep.ledger.records import ID, TrialRecord, UnsafeRecord
from sweep.storage import Storage, Versioned

__all__ = ["Ledger"]

log = logging.getLogger("monosweep.ledger")
_READERS = 16  # records read at once (S3 answers each in a round trip)


class Ledger:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    @staticmethod
    def _record(trial_id: str) -> str:
        return f"trials/{trial_id}.json"

    @staticmethod
    def checkpoint_path(trial_id: str, filename: str = CHECKPOINT_FILE, epoch: int | None = None) -> str:
        return f"checkpoints/{trial_id}/{filename}" if epoch is None else f"checkpoints/{trial_id}/{epoch}/{filename}"

    def read(self, trial_id: str) -> TrialRecord | None:
        """The trial's record; None if there is none, or if it could not be read (then it is moved aside)."""
        found = self.storage.read(self._record(trial_id))
        return None if found is None else self._parse(trial_id, found)

    def _parse(self, trial_id: str, found: Versioned) -> TrialRecord | None:
        rel = self._record(trial_id)
        try:
            return TrialRecord.from_json(found.data.decode(), trial_id)
        except UnsafeRecord as err:
            self._quarantine(rel, found, str(err))
        except (ValueError, TypeError) as err:  # not JSON, not UTF-8, or not a record
            self._quarantine(rel, found, f"unreadable ({type(err).__name__}: {str(err)[:80]})")
        return None

    def _quarantine(self, rel: str, found: Versioned, why: str) -> None:
        """Move the unreadable ``found`` aside; only if it is still what was read (its trial may have
        rewritten it meanwhile: then the new one stays and is read next time)."""
        aside = f"quarantine/{Path(rel).name}.{int(time.time())}"
        self.storage.write_bytes(aside, found.data)
        if not self.storage.delete(rel, found.version):
            self.storage.delete(aside)
            return
        log.warning("[monosweep] warning: %s in %s: moved to %s; its trial counts as not started",
                    why, self.storage.path(rel), aside)

    def read_all(self) -> dict[str, TrialRecord]:
        """Every record. On S3, by the ETags of one listing: the ones unchanged since this machine last read
        them come from its local copy (``ledger/cache.py``), many unknown ones from the ledger's snapshot
        (``ledger/snapshot.py``), the rest are fetched concurrently (and, when that was many, snapshotted
        for the next reader)."""
        listing = {n.removesuffix(".json"): v for n, v in self.storage.listing("trials").items() if n.endswith(".json")}
        found: dict[str, Versioned] = {}
        if self.storage.is_s3:
            found = self._known(listing)
        missing = [trial_id for trial_id in sorted(listing) if trial_id not in found]
        with ThreadPoolExecutor(max_workers=_READERS, thread_name_prefix="monosweep-ledger") as pool:
            fetched = dict(zip(missing, pool.map(lambda trial_id: self.storage.read(self._record(trial_id)), missing),
                               strict=True))
        fresh = {trial_id: got for trial_id, got in fetched.items() if got is not None}
        found.update(fresh)
        if self.storage.is_s3:
            cache = RecordCache(self.storage.uri)
            for trial_id, got in fresh.items():
                if got.version and ID.match(trial_id):  # (a name is a path)
                    cache.put(trial_id, got.version, got.data)
            if len(fresh) >= snapshot.MIN_FETCHES and all(snapshot.vouched(g.data, g.version) for g in fresh.values()):
                snapshot.save(self.storage, {trial_id: got.data for trial_id, got in found.items()})
        records = [self._parse(trial_id, found[trial_id]) for trial_id in sorted(found)]
        return {r.id: r for r in records if r is not None}

    def _known(self, listing: dict[str, str | None]) -> dict[str, Versioned]:
        """The listed records that need no request: this machine's copies, then the snapshot's (when many
        are unknown here), each only at the version the listing gives now. What the snapshot gives is not
        copied here: writing 10,000 files cost more than reading the snapshot again next time."""
        cache = RecordCache(self.storage.uri)
        known: dict[str, Versioned] = {}
        for trial_id, version in listing.items():
            data = cache.get(trial_id, version) if version is not None and ID.match(trial_id) else None
            if data is not None and version is not None:
                known[trial_id] = Versioned(data, version)
        if len(listing) - len(known) >= snapshot.MIN_FETCHES:
            for trial_id, data in snapshot.load(self.storage).items():
                version = listing.get(trial_id)
                if trial_id not in known and version is not None and snapshot.vouched(data, version):
                    known[trial_id] = Versioned(data, version)
        return known

    def write(self, record: TrialRecord) -> None:
        record.updated = time.time()
        self.storage.write_text(self._record(record.id), record.to_json())

    def save(self, trial_id: str, local: Path, epoch: int | None = None) -> tuple[str, str]:
        """Store a file a trial reported (``checkpoint.pt`` of an epoch, ``trunk.pt``) beside its record;
        returns its storage path and sha256."""
        data = local.read_bytes()
        rel = self.checkpoint_path(trial_id, local.name, epoch)
        self.storage.write_bytes(rel, data)
        return rel, hashlib.sha256(data).hexdigest()

    def drop(self, paths: list[str]) -> None:
        """Delete checkpoints no longer kept (best-effort: a leftover file only takes space)."""
        for path in paths:
            try:
                self.storage.delete(path)
            except Exception as err:  # noqa: BLE001
                log.debug("could not delete %s: %s", path, err)

    def fetch_checkpoint(self, record: TrialRecord, directory: Path,
                         usable: Callable[[Path], bool] = lambda path: True) -> int | None:
        """Download the newest intact checkpoint of ``record`` into ``directory`` (its digest matches, and
        ``usable`` accepts the file); returns the epoch it follows, or None (no checkpoint, or none intact:
        the trial starts afresh)."""
        damaged: list[str] = []
        target = directory / CHECKPOINT_FILE
        for checkpoint in reversed(record.known_checkpoints()):
            data = self.storage.read_bytes(checkpoint.path)
            if data is not None and checkpoint.sha256 in (None, hashlib.sha256(data).hexdigest()):
                directory.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                if usable(target):
                    if damaged:
                        log.warning("[monosweep] warning: trial %s: the checkpoint after epoch %s is missing or "
                                    "damaged; resuming after epoch %d", record.id, " and ".join(damaged),
                                    checkpoint.epoch)
                    return checkpoint.epoch
            damaged.append(str(checkpoint.epoch))
        if damaged:
            log.warning("[monosweep] warning: trial %s: no intact checkpoint (after epoch %s); starting it afresh",
                        record.id, " nor ".join(damaged))
        target.unlink(missing_ok=True)
        return None
