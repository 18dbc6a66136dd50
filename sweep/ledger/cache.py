"""A local copy of the records a reader fetched from S3, each kept with the ETag it had.

A listing of the bucket gives every record's ETag; a record whose ETag is the one kept here is read from
here instead of fetched again. Commands that read the whole ledger over and over (``status --watch``,
``plan`` of a large sweep, ``sweep.results`` in a notebook) then cost one listing and the records that
changed, not one request per record. Nothing is trusted that the bucket does not vouch for: an entry is
used only when the bucket lists the same ETag for that key now, and it is parsed and checked like a
fetched record. Best-effort: a cache that cannot be written is simply not used.

    $MONOSWEEP_CACHE_DIR   where it lives (default ~/.cache/monosweep); delete it at any time
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

__all__ = ["CACHE_ENV", "RecordCache", "local_folder"]

CACHE_ENV = "MONOSWEEP_CACHE_DIR"


def local_folder(kind: str, uri: str) -> Path:
    """This machine's folder of ``kind`` for the storage at ``uri``: what is kept here may go at any time."""
    base = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "monosweep")
    return base / kind / hashlib.sha256(uri.encode()).hexdigest()[:20]


class RecordCache:
    def __init__(self, uri: str) -> None:
        self.folder = local_folder("records", uri)

    def get(self, name: str, version: str) -> bytes | None:
        """The data of ``name`` if it was kept at ``version``."""
        try:
            kept = (self.folder / name).read_bytes()
        except OSError:
            return None
        stamp, _, data = kept.partition(b"\n")
        return data if stamp.decode(errors="replace") == version else None

    def put(self, name: str, version: str, data: bytes) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.folder, prefix=".", delete=False) as out:
                out.write(version.encode() + b"\n" + data)
            os.replace(out.name, self.folder / name)
        except OSError:
            pass
