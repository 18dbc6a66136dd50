"""The whole ledger as one object in the storage, so that a machine that never read a large sweep on S3
reads it in a few requests instead of one per record.

Why: S3 answers each GET in a round trip (a moto server on 2 cores: about 200 a second), so 10,000
records cost a new reader a minute, while the listing that says which records exist, with their ETags,
is ten pages. A reader that had to fetch many records one by one writes what it read as one gzipped
object; the next reader, on any machine, takes from it each record whose bytes are the ones the listing
vouches for: their MD5 is the listed ETag (S3's ETag of an object put in one part), so the snapshot adds
nothing the bucket does not say itself. Best-effort both ways: a missing, stale or damaged snapshot only
costs the requests it would have saved. (A bucket whose ETags are not MD5s, e.g. SSE-KMS encryption, gets
no snapshot: its readers fetch every record they do not hold, as before.)
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging

from sweep.storage import Storage

__all__ = ["MIN_FETCHES", "SNAPSHOT", "load", "save", "vouched"]

log = logging.getLogger("monosweep.ledger")
SNAPSHOT = "snapshot/records.json.gz"
MIN_FETCHES = 32  # records fetched one by one before a reader writes a snapshot (or reads one first)
_FORMAT = 1


def vouched(data: bytes, etag: str | None) -> bool:
    """Whether ``data`` is the object the listing gave ``etag`` (a single-part ETag: the MD5 of the bytes)."""
    tag = (etag or "").strip('"')
    return len(tag) == 32 and hashlib.md5(data, usedforsecurity=False).hexdigest() == tag


def load(storage: Storage) -> dict[str, bytes]:
    """The records of the last snapshot by trial id, as written (not yet vouched for); empty if none is usable."""
    try:
        found = storage.read_bytes(SNAPSHOT)
        if found is None:
            return {}
        content = json.loads(gzip.decompress(found))
        if content.get("format") != _FORMAT:
            return {}
        return {str(k): str(v).encode() for k, v in content["records"].items()}
    except Exception as err:  # noqa: BLE001 - a snapshot is never needed, only faster
        log.debug("ledger snapshot not used: %s", err)
        return {}


def save(storage: Storage, records: dict[str, bytes]) -> None:
    """Write ``records`` (trial id -> the record's bytes as stored) as the snapshot; a failure is only logged.
    Records are JSON text (UTF-8 round-trips byte for byte); one that is not text is left out."""
    texts = {}
    for trial_id, data in sorted(records.items()):
        try:
            texts[trial_id] = data.decode()
        except UnicodeDecodeError:
            continue
    content = {"format": _FORMAT, "records": texts}
    try:
        storage.write_bytes(SNAPSHOT, gzip.compress(json.dumps(content).encode(), compresslevel=5))
    except Exception as err:  # noqa: BLE001
        log.debug("ledger snapshot not written: %s", err)
