"""What clusters do to a sweep, done for real: processes SIGKILLed, files torn, links cut or slowed by a
proxy, a lease taken away, nodes that cannot see the storage, trials that hang. Each test asserts that no
finished result is lost or re-run, that an interrupted trial resumes from its last good checkpoint, and
that every error is one line (no traceback)."""

import hashlib
import io
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from mlflow import MlflowClient

from methods.errors import InputError
from sweep.storage import Storage
from tests.support import REPO
from tests.support.proxy import FaultyProxy
from tests.support.ray_nodes import RayNodes
from tests.support.servers import MlflowServer
from tests.support.sweeps import cli, noop_spec, read_records, sweep_env

pytestmark = pytest.mark.slow
QUICK_LEASE = {"MONOSWEEP_LEASE_TIMEOUT_S": "2"}


def _no_traceback(*outputs: str) -> None:
    for output in outputs:
        assert "Traceback" not in output, output[-3000:]


def _start(spec: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "sweep.cli", "run", str(spec)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for(root: Path, ready: Any, timeout: float = 180) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = read_records(root) if (root / "trials").exists() else {}
        if ready(records):
            return records
        time.sleep(0.1)
    raise AssertionError(f"the sweep never reached the state waited for: {read_records(root)}")


def _kill(driver: subprocess.Popen[str], root: Path) -> None:
    """SIGKILL the driver's process group (the driver, its local Ray, the trials' workers), then wait until
    the ledger has stopped changing (a worker may outlive its driver by a moment)."""
    os.killpg(driver.pid, signal.SIGKILL)
    driver.communicate(timeout=60)
    stamp, still = None, time.monotonic()
    while time.monotonic() - still < 3.0:
        now = {k: r["updated"] for k, r in read_records(root).items()}
        if now != stamp:
            stamp, still = now, time.monotonic()
        time.sleep(0.2)


def test_an_empty_record_is_set_aside_in_one_line_and_its_trial_runs_again(tmp_path: Path) -> None:
    spec = noop_spec(tmp_path / "s.yaml", "torn", [0, 1], tmp_path / "results")
    assert cli("run", str(spec)).returncode == 0
    root = tmp_path / "results" / "torn"
    before = {p.name: p.read_bytes() for p in (root / "trials").iterdir()}
    torn, kept = sorted(before)
    (root / "trials" / torn).write_bytes(b"")
    status = cli("status", str(spec))
    assert status.returncode == 0
    _no_traceback(status.stderr)
    (warning,) = [line for line in status.stderr.splitlines() if "warning" in line]
    assert "unreadable" in warning and "moved to quarantine/" in warning
    assert sum(line.split()[1] == "pending" for line in status.stdout.splitlines()[1:]) == 1
    again = cli("run", str(spec))
    assert again.returncode == 0 and "ran 1, skipped 1" in again.stdout, again.stderr[-2000:]
    assert (root / "trials" / kept).read_bytes() == before[kept]  # the finished result, untouched
    assert json.loads((root / "trials" / torn).read_text())["status"] == "finished"


class _Payload:
    """What a pickle-based exploit looks like: loading it runs a command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_a_damaged_or_hostile_checkpoint_gives_way_to_the_one_before(tmp_path: Path) -> None:
    """Two trials killed (driver and all) once both have checkpointed twice; then one's last checkpoint is
    torn in half, and the other's replaced by a pickle that would run a command when loaded, its digest
    updated in the record too (whoever can write the bucket can do both). Both resume from the checkpoint
    before, and the command never runs."""
    # 6 epochs of 1 s: room for the two trials' starts to differ on a busy machine (with 4 one had finished)
    spec = noop_spec(tmp_path / "s.yaml", "damaged", [0, 1], tmp_path / "results", epochs=6)
    root = tmp_path / "results" / "damaged"
    driver = _start(spec, sweep_env(MONOSWEEP_NOOP_SLEEP="1.0"))
    _wait_for(root, lambda rs: len(rs) == 2 and all(r["epoch"] >= 2 for r in rs.values()))
    _kill(driver, root)
    torn, hostile = read_records(root).values()
    assert all(r["status"] == "running" and 2 <= r["epoch"] < 6 for r in (torn, hostile)), (torn, hostile)
    latest = root / torn["checkpoint"]
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])
    marker = tmp_path / "pwned"
    buffer = io.BytesIO()
    torch.save({"epoch": hostile["epoch"], "method": _Payload(marker)}, buffer, pickle_module=pickle)
    (root / hostile["checkpoint"]).write_bytes(buffer.getvalue())
    hostile["checkpoints"][-1]["sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    (root / "trials" / f"{hostile['id']}.json").write_text(json.dumps(hostile))

    resumed = cli("run", str(spec), env=sweep_env(**QUICK_LEASE))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _no_traceback(resumed.stderr)
    assert not marker.exists()  # never unpickled as code
    for before in (torn, hostile):
        done = read_records(root)[before["id"]]
        assert done["status"] == "finished" and done["resumed_from"] == [before["epoch"] - 1]  # the one before
        assert [h["epoch"] for h in done["result"]["history"]] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_a_20s_s3_outage_mid_sweep_is_waited_out(s3_server: dict[str, str], tmp_path: Path) -> None:
    from tests.support.servers import s3_client

    port = int(s3_server["AWS_ENDPOINT_URL_S3"].rsplit(":", 1)[1])
    with FaultyProxy("127.0.0.1", port) as proxy:
        spec = noop_spec(tmp_path / "s.yaml", "outage", [0, 1, 2], "s3://sweeps/team", epochs=3,
                         extra="max_concurrent_trials: 1")
        env = sweep_env(**{**s3_server, "AWS_ENDPOINT_URL_S3": proxy.url}, MONOSWEEP_NOOP_SLEEP="1.0")
        driver = _start(spec, env)
        s3 = s3_client(s3_server)

        def finished() -> int:
            found = s3.list_objects_v2(Bucket="sweeps", Prefix="team/outage/trials/").get("Contents", [])
            bodies = [json.loads(s3.get_object(Bucket="sweeps", Key=o["Key"])["Body"].read()) for o in found]
            return sum(b["status"] == "finished" for b in bodies)

        deadline = time.monotonic() + 180
        while finished() < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert finished() >= 1 and driver.poll() is None, "the sweep never reached its middle"
        proxy.cut()  # everything the driver and its trials say to S3 now fails, for 20 s
        time.sleep(20)
        proxy.heal()
        out, err = driver.communicate(timeout=600)
    assert driver.returncode == 0, err[-3000:]
    _no_traceback(out, err)
    assert "3 finished" in out
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="sweeps", Prefix="team/outage/trials/")["Contents"]]
    records = [json.loads(s3.get_object(Bucket="sweeps", Key=k)["Body"].read()) for k in keys]
    assert len(records) == 3 and all(r["status"] == "finished" for r in records)
    assert all(r["attempts"] == 1 for r in records)  # waited, not failed and retried


def test_an_s3_outage_past_the_retries_ends_the_driver_in_one_line_and_a_rerun_resumes(
    s3_server: dict[str, str], tmp_path: Path
) -> None:
    from tests.support.servers import s3_client

    s3 = s3_client(s3_server)

    def records() -> dict[str, bytes]:
        found = s3.list_objects_v2(Bucket="sweeps", Prefix="team/longout/trials/").get("Contents", [])
        return {o["Key"]: s3.get_object(Bucket="sweeps", Key=o["Key"])["Body"].read() for o in found}

    port = int(s3_server["AWS_ENDPOINT_URL_S3"].rsplit(":", 1)[1])
    with FaultyProxy("127.0.0.1", port) as proxy:
        spec = noop_spec(tmp_path / "s.yaml", "longout", [0, 1, 2], "s3://sweeps/team", epochs=3,
                         extra="max_concurrent_trials: 1")
        env = sweep_env(**{**s3_server, "AWS_ENDPOINT_URL_S3": proxy.url}, MONOSWEEP_NOOP_SLEEP="1.0",
                        MONOSWEEP_STORAGE_RETRY_S="6")
        driver = _start(spec, env)
        deadline = time.monotonic() + 180
        while not any(json.loads(b)["status"] == "finished" for b in records().values()):
            assert time.monotonic() < deadline and driver.poll() is None, "the sweep never reached its middle"
            time.sleep(0.2)
        before = {k: b for k, b in records().items() if json.loads(b)["status"] == "finished"}
        proxy.cut()  # and left cut: every storage call of the driver and its trials fails past its retries
        cut = time.monotonic()
        try:
            out, err = driver.communicate(timeout=120)
        finally:
            driver.kill()
        gave_up_after = time.monotonic() - cut
        proxy.heal()
    assert driver.returncode == 1, err[-3000:]
    _no_traceback(out, err)
    last = err.strip().splitlines()[-1]
    assert last.startswith("monosweep run: error: ") and "run again" in last, last
    print(f"the driver gave up {gave_up_after:.0f} s after the cut (storage retries: 6 s)")
    again = cli("run", str(spec), env=sweep_env(**s3_server), timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    _no_traceback(again.stderr)
    after = records()
    assert len(after) == 3 and all(json.loads(b)["status"] == "finished" for b in after.values())
    assert {k: after[k] for k in before} == before  # what had finished was neither lost nor run again


def test_mlflow_replies_delayed_past_the_timeout_make_no_second_run(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    with FaultyProxy("127.0.0.1", mlflow_server.port) as proxy:
        spec = noop_spec(tmp_path / "s.yaml", "slowmlflow", [0, 1], tmp_path / "results",
                         extra=f"tracking_uri: {proxy.url}")
        proxy.delay_replies(11.0, writes_only=True)  # the client gives up after 10 s; the server did the work
        first = cli("run", str(spec))
        assert first.returncode == 0, first.stderr[-3000:]
        _no_traceback(first.stderr)
        proxy.heal()
        again = cli("run", str(spec))  # back-fills what the slow server missed
        assert again.returncode == 0, again.stderr[-3000:]
    client = MlflowClient(mlflow_server.uri)
    experiments = [e for e in client.search_experiments() if e.name == "slowmlflow"]
    assert len(experiments) == 1
    runs = client.search_runs([experiments[0].experiment_id])
    # None made, not only none left: a create is never retried, and after a timeout the run is looked up first.
    assert not [r.info.run_name for r in runs if r.data.tags.get("monosweep.duplicate") == "true"]
    assert "second run" not in first.stderr + again.stderr
    live = runs
    parents = [r for r in live if r.data.tags.get("monosweep.role") == "sweep"]
    assert len(parents) == 1 and all(r.info.status != "RUNNING" for r in runs)
    assert sorted(r.data.tags["monosweep.trial_id"] for r in live if r.data.tags.get("monosweep.role") == "trial") \
        == sorted(p.stem for p in (tmp_path / "results" / "slowmlflow" / "trials").glob("*.json"))


@pytest.mark.parametrize(("limit", "reason"), [("trial: 2", "timed out"), ("stall: 2", "stalled")])
def test_a_trial_past_its_time_limit_fails_with_the_reason_after_its_retries(
    tmp_path: Path, limit: str, reason: str
) -> None:
    spec = noop_spec(tmp_path / "s.yaml", "hung", [0], tmp_path / "results", epochs=2,
                     extra=f"retries: 1\ntimeouts: {{{limit}}}")
    done = cli("run", str(spec), env=sweep_env(MONOSWEEP_NOOP_SLEEP="6"), timeout=240)
    assert done.returncode == 1  # some trials did not finish
    _no_traceback(done.stderr)
    (record,) = read_records(tmp_path / "results" / "hung").values()
    assert record["status"] == "failed" and reason in record["error"] and record["attempts"] == 2


@pytest.mark.parametrize("limit", ["trial: 15", "stall: 10"])
def test_a_hung_attempt_is_ended_and_the_retry_resumes_from_its_checkpoint(tmp_path: Path, limit: str) -> None:
    """The third of four epochs hangs once: the limit ends that attempt, and the retry goes on from the
    checkpoint after epoch 2 — the two epochs done are not run again, and the trial finishes. (The limits
    leave room for an attempt's start, ~4 s on 2 cores before the first epoch: a stall limit counts it.)"""
    log, marker = tmp_path / "epochs.log", tmp_path / "hung-once"
    spec = noop_spec(tmp_path / "s.yaml", "hungonce", [0], tmp_path / "results", epochs=4,
                     extra=f"retries: 1\ntimeouts: {{{limit}}}")
    env = sweep_env(MONOSWEEP_NOOP_SLEEP="0.5", MONOSWEEP_NOOP_LOG=str(log), MONOSWEEP_NOOP_HANG=f"2:{marker}")
    done = cli("run", str(spec), env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    _no_traceback(done.stderr)
    assert marker.exists()  # the attempt did hang
    (record,) = read_records(tmp_path / "results" / "hungonce").values()
    assert record["status"] == "finished" and record["attempts"] == 2 and record["resumed_from"] == [2]
    assert sorted(log.read_text().split("\n")[:-1]) == ["0 0", "0 1", "0 2", "0 3"]  # each epoch once


def test_a_driver_that_loses_its_lease_stops_scheduling_and_says_so(tmp_path: Path) -> None:
    spec = noop_spec(tmp_path / "s.yaml", "taken", [0, 1, 2, 3], tmp_path / "results", epochs=4,
                     extra="max_concurrent_trials: 1")
    root = tmp_path / "results" / "taken"
    driver = _start(spec, sweep_env(MONOSWEEP_NOOP_SLEEP="1.0", MONOSWEEP_LEASE_TIMEOUT_S="1.2"))
    _wait_for(root, lambda rs: any(r["status"] == "finished" for r in rs.values()))
    lease = json.loads((root / "lease.json").read_text())
    taken = {"id": "other", "host": "another-machine", "pid": 1, "generation": lease["generation"] + 1, "beats": 0}
    (root / "lease.json").write_text(json.dumps(taken))  # another driver takes the sweep over
    taken_at = time.time()
    out, err = driver.communicate(timeout=120)
    assert driver.returncode == 1
    _no_traceback(err)
    assert err.strip().splitlines()[-1].startswith("monosweep run: error: sweep 'taken': another driver "
                                                     "(pid 1 on another-machine) took over the lease")
    assert all(r["updated"] < taken_at + 1.0 for r in read_records(root).values())  # nothing written after it
    assert json.loads((root / "lease.json").read_text())["id"] == "other"


def test_credentials_in_a_tracking_uri_are_never_printed(tmp_path: Path) -> None:
    from tests.support.servers import free_port

    spec = noop_spec(tmp_path / "s.yaml", "secret", [0], tmp_path / "results",
                     extra=f"tracking_uri: http://alice:s3cr3t@127.0.0.1:{free_port()}")
    done = cli("run", str(spec))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "warning: MLflow at http://127.0.0.1:" in done.stderr
    assert "s3cr3t" not in done.stdout + done.stderr


def test_the_embedded_ray_listens_on_127_0_0_1_only_is_its_own_and_lets_in_no_client_without_its_token(
    tmp_path: Path,
) -> None:
    """The embedded runtime's servers (GCS, raylet, workers) listen on 127.0.0.1 only; Ray's token
    authentication, which monosweep leaves on, refuses a client without the token (another user: another
    home folder) all the same. And the runtime is a new one even where `ray start` left a cluster running
    (a bare ray.init() would join that)."""
    nodes = RayNodes(sweep_env())
    nodes.start_head()
    probe = f"""
import os, subprocess, sys, psutil
from sweep.execution.session import connect
connect(None)
import ray
ray.get(ray.remote(lambda: 1).remote())  # (a worker of its own started too)
address = ray.get_runtime_context().gcs_address
print("OWN", not address.endswith(":{nodes.port}"), address.split(":")[0])
ours = psutil.Process().children(recursive=True)
listening = sorted({{c.laddr.ip for p in ours for c in p.net_connections(kind="inet") if c.status == "LISTEN"}})
print("LISTEN", ",".join(listening), len(ours))
# (the client must also treat 127.0.0.1 as its own address, or Ray sends it to the machine's, where nothing listens)
env = {{k: v for k, v in os.environ.items() if not k.startswith("RAY_")}} | {{"HOME": {str(tmp_path)!r},
                                                                          "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}}
client = "import ray\\ntry:\\n    ray.init(address=%r)\\n    print('IN')\\nexcept Exception as e:\\n    print('OUT')"
out = subprocess.run([sys.executable, "-c", client % address], env=env, capture_output=True, text=True, timeout=120)
print(out.stdout.strip().splitlines()[-1], "InvalidAuthToken" in out.stderr + out.stdout)
"""
    try:
        done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "RAY_ADDRESS": nodes.address})
    finally:
        nodes.stop()
    assert done.returncode == 0, done.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.strip().splitlines() if line.startswith(("OWN", "LISTEN")))
    assert lines["OWN"] == "True 127.0.0.1"  # not the cluster that RAY_ADDRESS and `ray start` point at
    ips, processes = lines["LISTEN"].split()
    assert int(processes) >= 3 and set(ips.split(",")) <= {"127.0.0.1", "::ffff:127.0.0.1"}, ips  # never "0.0.0.0"
    verdict = done.stdout.strip().splitlines()[-1]
    assert verdict == "OUT True", verdict  # refused, for want of the token


def _can_unshare() -> bool:
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not shutil.which("unshare") or not _can_unshare(),
                    reason="needs unshare --mount (root) to give a node a disk of its own")
def test_local_storage_that_a_node_cannot_see_is_refused_before_anything_runs(tmp_path: Path) -> None:
    """A two-node cluster whose worker node has its own /tmp-like folder over the results (a tmpfs in its
    own mount namespace): the local ledger would be split between machines."""
    results = tmp_path / "results"
    results.mkdir()
    nodes = RayNodes(sweep_env())
    try:
        nodes.start_head()
        wrapper = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                   f'mount -t tmpfs none {results} && exec "$@"', "sh"]
        nodes.add_worker(wrapper=wrapper)
        spec = noop_spec(tmp_path / "s.yaml", "split", [0, 1], results)
        done = cli("run", str(spec), "--address", nodes.address, env=sweep_env(RAY_AUTH_MODE="disabled"))
    finally:
        nodes.stop()
    assert done.returncode == 2, f"{done.stdout[-1500:]}\n{done.stderr[-3000:]}"
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("monosweep run: error: node ") and "does not see the sweep's storage" in last
    assert "use --storage s3://bucket/prefix" in last
    assert not (results / "split" / "trials").exists()  # nothing was submitted


def test_a_node_whose_storage_read_fails_is_named_in_one_line(tmp_path: Path) -> None:
    """The node check tells a node that answers with an error (here its workers' storage settings are
    wrong) from one that is gone: the error is said, not taken for a node that went away."""
    import ray

    from sweep.execution.session import check_nodes

    ray.init(address="local", num_cpus=1, include_dashboard=False,
             runtime_env={"env_vars": {"MONOSWEEP_STORAGE_RETRY_S": "soon"}})  # the workers' environment only
    try:
        with pytest.raises(InputError) as raised:
            check_nodes(Storage(str(tmp_path / "results")), timeout=60)
    finally:
        ray.shutdown()
    message = str(raised.value)
    assert message.startswith("node ") and "cannot read the sweep's storage" in message
    assert "$MONOSWEEP_STORAGE_RETRY_S='soon' is not a number of seconds" in message and "\n" not in message


def test_a_sweep_survives_a_worker_node_killed_every_few_seconds(tmp_path: Path) -> None:
    """Chaos, in the manner of Ray's release tests: a two-node cluster of `ray start` processes whose worker
    node is SIGKILLed every 5 s and started again; every trial ends recorded once, finished."""
    nodes = RayNodes(sweep_env())
    spec = noop_spec(tmp_path / "s.yaml", "chaos", list(range(4)), tmp_path / "results", epochs=6,
                     extra="retries: 20")
    stop = threading.Event()
    kills = []

    def chaos() -> None:
        while not stop.wait(5.0):
            victim = nodes.workers[-1]
            nodes.kill(victim)
            kills.append(time.monotonic())
            nodes.add_worker(wait=False)  # (a node slow to join must not slow the monkey down)

    try:
        nodes.start_head()
        nodes.add_worker()
        monkey = threading.Thread(target=chaos, daemon=True)
        monkey.start()
        done = cli("run", str(spec), "--address", nodes.address,
                   env=sweep_env(RAY_AUTH_MODE="disabled", MONOSWEEP_NOOP_SLEEP="1.0"), timeout=600)
        stop.set()
        monkey.join(timeout=120)
    finally:
        nodes.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    records = read_records(tmp_path / "results" / "chaos")
    assert len(records) == 4 and all(r["status"] == "finished" for r in records.values())
    assert all(r["result"]["epochs_done"] == 6 for r in records.values())
    assert len(kills) >= 2  # the monkey did strike


def test_a_worker_node_killed_after_a_checkpoint_resumes_its_trial_there_and_touches_nothing_finished(
    tmp_path: Path,
) -> None:
    """The deterministic half of the chaos test: the head has no CPU, so every trial runs on the one worker
    node; it is SIGKILLed just after trial 2 recorded its second checkpoint (inside the 3 s of its third
    epoch) and a fresh worker joins. Trial 2 resumes after epoch 2, every epoch of every trial completes
    exactly once across both nodes, and the finished trial's record is byte-identical afterwards."""
    nodes = RayNodes(sweep_env())
    spec = noop_spec(tmp_path / "s.yaml", "killed", [0, 1, 2], tmp_path / "results", epochs=4,
                     extra="retries: 3\nmax_concurrent_trials: 1")
    root, log = tmp_path / "results" / "killed", tmp_path / "epochs.log"
    seen: dict[str, Any] = {}

    def kill_after_second_checkpoint() -> None:
        records = _wait_for(root, lambda rs: any(r["config"]["seed"] == 1 and r["status"] == "running"
                                                 and r["epoch"] >= 2 for r in rs.values()), timeout=300)
        victim = nodes.workers[-1]
        nodes.kill(victim)
        seen["finished"] = {k: (root / "trials" / f"{k}.json").read_bytes()
                            for k, r in records.items() if r["status"] == "finished"}
        seen["victim"] = next(k for k, r in records.items() if r["config"]["seed"] == 1)
        nodes.add_worker(wait=False)

    try:
        nodes.start_head(cpus=0)
        nodes.add_worker()
        killer = threading.Thread(target=kill_after_second_checkpoint, daemon=True)
        killer.start()
        done = cli("run", str(spec), "--address", nodes.address, timeout=600,
                   env=sweep_env(RAY_AUTH_MODE="disabled", MONOSWEEP_NOOP_SLEEP="3", MONOSWEEP_NOOP_LOG=str(log)))
        killer.join(timeout=60)
    finally:
        nodes.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    _no_traceback(done.stderr)
    assert seen.get("finished"), "the worker was never killed after a finished trial"
    records = read_records(root)
    assert all(r["status"] == "finished" and r["result"]["epochs_done"] == 4 for r in records.values())
    for key, before in seen["finished"].items():
        assert (root / "trials" / f"{key}.json").read_bytes() == before, f"finished record {key} was rewritten"
    assert records[seen["victim"]]["resumed_from"] == [2]
    runs = log.read_text().split("\n")[:-1]
    assert sorted(runs) == sorted(f"{seed} {epoch}" for seed in range(3) for epoch in range(4)), runs
