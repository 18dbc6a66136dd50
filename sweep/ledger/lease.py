"""The lease (``lease.json``): the one driver that runs a sweep, held by conditional writes.

It is taken by creating the file only if it is absent (or by replacing a stale one only if it is still the
version that was judged stale), renewed by a heartbeat that replaces it only if it is still the version
this driver wrote, and released by deleting it only if so. Two drivers can never both hold it, however
their writes and reads interleave.

A lease is stale when it has not changed for ``timeout`` seconds (``$MONOSWEEP_LEASE_TIMEOUT_S``, default
60) of the *observer's own* monotonic clock, or at once when its driver ran on this host and that process
is gone. No two machines' clocks are ever compared: a clock that is behind or ahead changes nothing.

``monosweep stop`` asks the holder to stop through the storage (``stop.json``, naming the driver it means
by the id in its lease), so it works from any machine: the heartbeat reads it at every beat and sets
``stopping``; a request meant for another (earlier) driver is ignored.

Every taking raises the lease's ``generation``: the fencing token. A driver passes it to its trials, which
write it into their records and check it before they do; a driver whose renewal finds the lease changed
under it has lost it (``lost`` is set): it stops scheduling at once and says so. A renewal that finds the
storage unreachable through all its retries (``unreachable``) halts the driver the same way: its trials
could not record anything either, and the next run resumes them.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from methods.errors import InputError, ServiceError, first_line
from sweep.storage import Storage, StorageUnavailable, Versioned, env_seconds

__all__ = ["PATH", "STOP_PATH", "TIMEOUT_ENV", "Lease", "LeaseLost", "generation_of", "holder_of", "request_stop"]

PATH = "lease.json"
STOP_PATH = "stop.json"  # a request that the lease's holder stop (``monosweep stop``)
TIMEOUT_ENV = "MONOSWEEP_LEASE_TIMEOUT_S"
_DEFAULT_TIMEOUT_S = 60.0


class LeaseLost(ServiceError):
    """Another driver took the sweep's lease (this one's heartbeat had stopped for too long)."""


def _parse(data: bytes) -> dict[str, Any]:
    try:
        lease = json.loads(data)
    except ValueError:
        return {}
    return lease if isinstance(lease, dict) else {}


def generation_of(storage: Storage) -> int | None:
    """The generation of the lease in ``storage`` now, None if there is none."""
    holder = holder_of(storage)
    return None if holder is None else int(holder.get("generation", 0))


def holder_of(storage: Storage) -> dict[str, Any] | None:
    """The lease in ``storage`` now (id, host, pid, generation), None if no driver holds it."""
    current = storage.read(PATH)
    return None if current is None else _parse(current.data)


def request_stop(storage: Storage) -> dict[str, Any] | None:
    """Ask the driver that holds the lease now to stop; returns that lease, None if there is none."""
    holder = holder_of(storage)
    if holder is not None:
        request = {"driver": holder.get("id"), "host": socket.gethostname(), "pid": os.getpid(),
                   "written": time.time()}
        storage.write_bytes(STOP_PATH, json.dumps(request).encode())
    return holder


class Lease:
    """Exclusive right to drive a sweep, kept alive by a heartbeat thread (see the module docstring)."""

    def __init__(self, storage: Storage, sweep: str, timeout: float | None = None) -> None:
        self.storage, self.sweep = storage, sweep
        self.timeout = timeout if timeout is not None else env_seconds(TIMEOUT_ENV, _DEFAULT_TIMEOUT_S)
        self.beat = max(0.1, self.timeout / 12)  # renewals per timeout: an observer sees one well within it
        self.owner = {"id": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid()}
        self.generation = 0
        self.version: str | None = None
        self.lost = threading.Event()
        self.taker = ""  # who took it over, once lost
        self.stopping = threading.Event()  # `monosweep stop` asked this driver to stop
        self.stopper = ""  # who asked
        self.unreachable: StorageUnavailable | None = None  # a renewal's storage stayed down through its retries
        self._beats = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        # "written" is for people reading the file; nothing compares it with a clock.
        return json.dumps({**self.owner, "generation": self.generation, "beats": self._beats,
                           "written": time.time()}).encode()

    def _mine(self, current: Versioned | None) -> bool:
        """Whether the lease in storage is the one this driver last wrote (a write whose answer was lost
        and whose retry then failed its condition did land)."""
        if current is None:
            return False
        lease = _parse(current.data)
        return lease.get("id") == self.owner["id"] and lease.get("beats") == self._beats

    def _gone(self, lease: dict[str, Any]) -> bool:
        """Its driver ran on this host and that process no longer exists."""
        if lease.get("host") != self.owner["host"]:
            return False
        try:
            os.kill(int(lease.get("pid", -1)), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, ValueError, OverflowError):
            return False
        return False

    def _write(self, write: Callable[[bytes], str | None]) -> bool:
        version = write(self._body())
        if version is None:
            current = self.storage.read(PATH)
            if not self._mine(current):
                return False
            version = current.version  # type: ignore[union-attr]
        self.version = version
        return True

    def acquire(self, log: Callable[[str], None] = lambda message: None) -> bool:
        """Take the lease; returns True if a stale one was taken over. InputError if it is held."""
        told = False
        try:
            while True:
                current = self.storage.read(PATH)
                if current is None:
                    self.generation = 1
                    if self._write(lambda body: self.storage.create(PATH, body)):
                        break
                    continue  # another driver created it just now: look again
                lease = _parse(current.data)
                if not self._gone(lease):
                    if not told:
                        log(f"[monosweep] the lease is held by pid {lease.get('pid')} on {lease.get('host')}; "
                            f"checking for up to {self.timeout:.0f} s whether that driver is alive")
                        told = True
                    self._watch(current, lease)
                self.generation = int(lease.get("generation", 0)) + 1
                if self._write(lambda body, seen=current: self.storage.replace(PATH, body, seen.version)):
                    self._start()
                    return True
        except (InputError, ServiceError):
            raise
        except Exception as err:  # noqa: BLE001 - e.g. read-only credentials: say so before anything runs
            raise InputError(f"cannot write the lease {self.storage.path(PATH)}: {first_line(err)}") from None
        self._start()
        return False

    def _watch(self, seen: Versioned, lease: dict[str, Any]) -> None:
        """Return once the lease has not changed for ``timeout`` seconds (or is gone); InputError as soon as
        it changes: its driver is alive."""
        deadline = time.monotonic() + self.timeout
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(self.beat, left))
            now = self.storage.read(PATH)
            if now is None:
                return
            if now.version != seen.version:
                holder = _parse(now.data)
                raise InputError(
                    f"sweep {self.sweep!r} is already running (driver pid {holder.get('pid')} on "
                    f"{holder.get('host')}, its lease renewed while this driver watched); wait for it, or "
                    "rerun after it stops")

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._heartbeat, daemon=True, name="monosweep-lease")
        self._thread.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.beat):
            self._beats += 1
            try:
                renewed = self._write(lambda body: self.storage.replace(PATH, body, self.version or ""))
            except StorageUnavailable as err:  # down through every retry: the driver gives up (``check``)
                self._beats -= 1
                self.unreachable = err
                return
            except Exception:  # noqa: BLE001 - any other fault of one renewal: try again next beat
                self._beats -= 1
                continue
            if not renewed:
                current = self.storage.read(PATH) if not self._stop.is_set() else None
                holder = _parse(current.data) if current is not None else {}
                self.taker = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"
                self.lost.set()
                return
            if not self.stopping.is_set():  # (asked once is enough)
                self._read_stop_request()

    def _read_stop_request(self) -> None:
        try:
            request = self.storage.read(STOP_PATH)
        except Exception:  # noqa: BLE001 - storage down: read it next beat
            return
        asked = _parse(request.data) if request is not None else {}
        if asked.get("driver") == self.owner["id"]:
            self.stopper = f"pid {asked.get('pid', '?')} on {asked.get('host', '?')}"
            self.stopping.set()

    @property
    def halted(self) -> bool:
        """Whether the driver must stop scheduling: lease lost, stop asked, or storage unreachable."""
        return self.lost.is_set() or self.stopping.is_set() or self.unreachable is not None

    def check(self) -> None:
        """StorageUnavailable if a renewal found the storage down for good; LeaseLost if another driver has
        taken the lease."""
        if self.unreachable is not None:
            raise self.unreachable
        if self.lost.is_set():
            raise LeaseLost(f"sweep {self.sweep!r}: another driver ({self.taker}) took over the lease while this "
                            "one could not renew it; this driver stopped scheduling, the other one runs the sweep")

    def release(self) -> None:
        """Stop the heartbeat and delete the lease if it is still this driver's (best-effort: a lease left
        behind only goes stale)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.version is None or self.lost.is_set():
            return
        try:
            self.storage.delete(PATH, self.version)
            request = self.storage.read(STOP_PATH)
            if request is not None and _parse(request.data).get("driver") == self.owner["id"]:
                self.storage.delete(STOP_PATH, request.version)  # answered (or came as this driver ended)
        except Exception:  # noqa: BLE001
            pass
