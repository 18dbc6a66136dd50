"""`monosweep run` on a real local Ray runtime: run, rerun, extend, scale, lease, driver killed."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sweep.execution.waves import shortfall
from sweep.ledger.lease import Lease
from sweep.storage import Storage
from tests.support import REPO
from tests.support.sweeps import cli, noop_spec, sweep_env


def _records(root: Path) -> dict[str, bytes]:
    return {p.stem: p.read_bytes() for p in sorted((root / "trials").glob("*.json"))}


def test_run_rerun_and_extend_run_each_trial_once(tmp_path: Path) -> None:
    spec = noop_spec(tmp_path / "s.yaml", "extend", [0, 1], tmp_path / "results")
    first = cli("run", str(spec))
    assert first.returncode == 0, first.stderr
    assert "ran 2, skipped 0" in first.stdout and "2 finished" in first.stdout
    root = tmp_path / "results" / "extend"
    before = _records(root)
    assert len(before) == 2 and all(json.loads(b)["status"] == "finished" for b in before.values())
    assert "[monosweep] 2/2 done" in first.stderr  # progress on stderr
    # ...and nothing else: a clean run shows no warning of Ray's or Tune's (each would be a "[ray]" line)
    assert [line for line in first.stderr.splitlines() if not line.startswith("[monosweep] ")] == []

    again = cli("run", str(spec))
    assert again.returncode == 0 and "ran 0, skipped 2" in again.stdout, again.stderr[-3000:]
    assert _records(root) == before  # byte-identical: nothing was rerun

    noop_spec(spec, "extend", [0, 1, 2], tmp_path / "results")
    plan = cli("plan", str(spec))
    assert "3 trials - 2 finished, 0 diverged, 1 to run" in plan.stdout
    extended = cli("run", str(spec))
    assert extended.returncode == 0 and "ran 1, skipped 2" in extended.stdout, extended.stderr[-3000:]
    after = _records(root)
    assert len(after) == 3 and {k: after[k] for k in before} == before
    status = cli("status", str(spec))
    assert status.stdout.count("finished") == 3


def test_a_second_driver_is_refused_and_a_dead_ones_lease_is_taken_over(tmp_path: Path) -> None:
    spec = noop_spec(tmp_path / "s.yaml", "lease", [0], tmp_path / "results")
    storage = Storage(str(tmp_path / "results" / "lease"))
    storage.check()
    live = Lease(storage, "lease")
    live.acquire()  # this test process plays the running driver
    try:
        refused = cli("run", str(spec))
    finally:
        live.release()
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith("monosweep run: error: sweep 'lease' is already running")
    assert not (tmp_path / "results" / "lease" / "trials").exists()

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    storage.write_text("lease.json", json.dumps({"id": "x", "host": os.uname().nodename,
                                                 "pid": int(dead.stdout), "heartbeat": time.time()}))
    taken = cli("run", str(spec))
    assert taken.returncode == 0, taken.stderr
    assert "took over the lease" in taken.stderr
    assert storage.read_text("lease.json") is None  # released at the end


def test_a_killed_driver_resumes_from_checkpoints_without_rerunning_finished_trials(tmp_path: Path) -> None:
    spec = noop_spec(tmp_path / "s.yaml", "killed", [0, 1], tmp_path / "results", epochs=4,
                     extra="max_concurrent_trials: 1")
    root = tmp_path / "results" / "killed"
    env = sweep_env(MONOSWEEP_NOOP_SLEEP="1.0")
    driver = subprocess.Popen([sys.executable, "-m", "sweep.cli", "run", str(spec)], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 180
    interrupted = None
    while time.monotonic() < deadline and interrupted is None:
        records = [json.loads(b) for b in _records(root).values()] if (root / "trials").exists() else []
        finished = [r for r in records if r["status"] == "finished"]
        running = [r for r in records if r["status"] == "running" and r["epoch"] >= 2]
        if finished and running:
            interrupted = running[0]
        time.sleep(0.1)
    assert interrupted is not None, "the sweep never reached one finished + one checkpointed trial"
    os.killpg(driver.pid, signal.SIGKILL)  # the driver, its local Ray and the trial's worker die at once
    driver.wait(timeout=30)
    before = _records(root)
    finished_id = next(k for k, v in before.items() if json.loads(v)["status"] == "finished")

    resumed = cli("run", str(spec), env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "ran 1, skipped 1" in resumed.stdout
    after = _records(root)
    assert after[finished_id] == before[finished_id]  # the finished result is byte-identical
    record = json.loads(after[interrupted["id"]])
    assert record["status"] == "finished" and record["attempts"] == 2
    assert record["resumed_from"] == [record["resumed_from"][0]] and record["resumed_from"][0] >= 2
    assert record["result"]["epochs_done"] == 4  # continued, not restarted: 4 epochs in all


def test_relative_paths_in_a_spec_mean_the_same_to_the_trials_as_to_validate(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (96, 96), (200, 120, 40)).save(tmp_path / "photo.png")
    spec = noop_spec(tmp_path / "s.yaml", "relative", [0], "results", extra="")
    spec.write_text(spec.read_text().replace("device: cpu", "device: cpu\n  source: ./photo.png"))
    assert cli("validate", "s.yaml", cwd=tmp_path).returncode == 0
    done = cli("run", "s.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    (record,) = [json.loads(b) for b in _records(tmp_path / "results" / "relative").values()]
    assert record["status"] == "finished" and record["config"]["source"] == "./photo.png"


def test_a_trial_asking_for_more_than_any_node_has_is_said_before_it_waits() -> None:
    nodes = [{"Alive": True, "Resources": {"CPU": 2.0}}, {"Alive": True, "Resources": {"CPU": 16.0, "GPU": 0.0}},
             {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}}]  # (a dead node counts for nothing)
    assert shortfall({"CPU": 1.0, "GPU": 0.0}, nodes) == []
    assert shortfall({"CPU": 1.0, "GPU": 0.5}, nodes) == ["0.5 GPU (the most any node has: 0)"]
    assert shortfall({"CPU": 32.0, "GPU": 0.0}, nodes) == ["32 CPU (the most any node has: 16)"]
    assert shortfall({"CPU": 1.0}, []) == ["1 CPU (the most any node has: 0)"]
