"""The lease, with real processes racing for it on a local folder and on moto's S3 server: never held twice,
stale only by the observer's own clock, lost leases noticed."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from methods.errors import InputError
from sweep.ledger.lease import PATH, Lease, LeaseLost
from sweep.storage import Storage
from tests.support import REPO

# One driver process: takes the lease (or is refused), holds it for a while, logs what it saw with the
# times of its own monotonic clock (the same clock for every process of this machine).
_RACER = """
import json, sys, time
from methods.errors import InputError
from sweep.ledger.lease import Lease
from sweep.storage import Storage
lease = Lease(Storage(sys.argv[1]), "race", timeout=float(sys.argv[3]))
try:
    lease.acquire()
except InputError as err:
    print(json.dumps({"refused": str(err)}))
    sys.exit(0)
start = time.monotonic()
time.sleep(float(sys.argv[2]))
end = time.monotonic()
lease.release()
print(json.dumps({"held": [start, end], "generation": lease.generation}))
"""


def _race(root: str, env: dict[str, str], drivers: int, hold: float, gap: float, timeout: float = 4.0) -> list[dict]:
    procs = []
    for _ in range(drivers):
        procs.append(subprocess.Popen([sys.executable, "-c", _RACER, root, str(hold), str(timeout)], cwd=REPO,
                                      env={**os.environ, **env}, stdout=subprocess.PIPE, text=True))
        time.sleep(gap)
    return [json.loads(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in procs]


def _overlaps(spans: list[list[float]]) -> bool:
    spans = sorted(spans)
    return any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))


def test_drivers_racing_for_a_local_lease_never_hold_it_at_once(tmp_path: Path) -> None:
    outcomes = _race(str(tmp_path), {}, drivers=4, hold=2.0, gap=0.0)
    held = [o["held"] for o in outcomes if "held" in o]
    assert len(held) >= 1 and not _overlaps(held)
    assert all("is already running" in o["refused"] for o in outcomes if "refused" in o)


def test_two_drivers_on_s3_with_slow_writes_never_both_hold_the_lease(s3_server: dict[str, str]) -> None:
    """The issue's scenario: writes slower than reads (a proxy delays every PUT), drivers ~1 s apart, 3 rounds."""
    from tests.support.proxy import FaultyProxy

    port = int(s3_server["AWS_ENDPOINT_URL_S3"].rsplit(":", 1)[1])
    with FaultyProxy("127.0.0.1", port) as proxy:
        proxy.delay_writes(0.8)
        env = {**s3_server, "AWS_ENDPOINT_URL_S3": proxy.url}
        for round_ in range(3):
            outcomes = _race(f"s3://sweeps/race{round_}", env, drivers=2, hold=3.0, gap=1.0)
            held = [o["held"] for o in outcomes if "held" in o]
            assert len(held) == 1 and len(outcomes) == 2, outcomes  # the second saw the first alive
            assert "is already running" in next(o["refused"] for o in outcomes if "refused" in o)


def _dead_lease(storage: Storage, host: str, written: float, generation: int = 3) -> None:
    storage.write_text(PATH, json.dumps({"id": "x", "host": host, "pid": 1, "generation": generation, "beats": 9,
                                         "written": written}))


def test_a_dead_driver_whose_clock_ran_ahead_does_not_block_and_the_taker_fences_it(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))
    _dead_lease(storage, "another-machine", written=time.time() + 600)  # its clock was 10 min ahead
    lease = Lease(storage, "skew", timeout=2.0)
    start = time.monotonic()
    assert lease.acquire() is True  # took it over ...
    took = time.monotonic() - start
    lease.release()
    assert 2.0 <= took < 10.0  # ... once it had not changed for the timeout of this machine's own clock
    assert lease.generation == 4  # the fencing token moved on


def test_a_live_driver_whose_clock_is_behind_keeps_its_lease(tmp_path: Path) -> None:
    """The holder runs in a process whose wall clock is 90 s behind (time.time shifted in that process);
    a second driver must see it alive and be refused, however old its "written" stamp looks."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; real = time.time; time.time = lambda: real() - 90\n" + _RACER,
         str(tmp_path), "6", "3"], cwd=REPO, stdout=subprocess.PIPE, text=True)
    time.sleep(2.0)
    lease = Lease(Storage(str(tmp_path)), "race", timeout=3.0)
    with pytest.raises(InputError, match="is already running"):
        lease.acquire()
    assert "held" in json.loads(holder.communicate(timeout=60)[0].strip().splitlines()[-1])


def test_the_lease_of_a_dead_process_on_this_machine_is_taken_at_once(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    storage.write_text(PATH, json.dumps({"id": "x", "host": socket.gethostname(), "pid": int(dead.stdout),
                                         "generation": 1, "beats": 0}))
    lease = Lease(storage, "gone", timeout=60.0)
    start = time.monotonic()
    assert lease.acquire() is True and time.monotonic() - start < 2.0
    lease.release()
    assert storage.read_bytes(PATH) is None  # released


def test_a_driver_whose_lease_was_taken_notices_and_says_so(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))
    lease = Lease(storage, "lost", timeout=1.2)
    lease.acquire()
    _dead_lease(storage, "another-machine", written=time.time(), generation=lease.generation + 1)  # a new holder
    deadline = time.monotonic() + 5
    while not lease.lost.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(LeaseLost) as lost:
        lease.check()
    assert "another driver (pid 1 on another-machine) took over the lease" in str(lost.value)
    lease.release()
    assert json.loads(storage.read_text(PATH))["host"] == "another-machine"  # not deleted by the loser
