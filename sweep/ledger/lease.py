"""The lease (``lease.json``): which driver is running the sweep. It carries a heartbeat so that a second
``run`` refuses while the first is alive and takes over once it is dead.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from typing import Any

from methods.errors import InputError, first_line
from sweep.storage import Storage

__all__ = ["Lease"]


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
