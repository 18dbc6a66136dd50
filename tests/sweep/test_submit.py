"""`monosweep submit`: the quickstart sent as a Ray Job to a local head with its job server fills the
ledger and MLflow; `monosweep stop` ends a submitted sweep cleanly. The head is Ray's own test cluster
(only its processes, never `ray stop`), on free ports.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from methods.errors import InputError
from sweep.cli import build_parser
from sweep.spec import load_spec
from sweep.submit import job_request
from tests.support import REPO
from tests.support.servers import free_port, wait_for_port
from tests.support.sweeps import PLUGINS, cli, noop_spec, sweep_env

JOB_TIMEOUT_S = 400


def submit(spec: Path, address: str, *extra: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess, from ``cwd``: relative storage is relative to where you submit from."""
    return subprocess.run([sys.executable, "-m", "sweep.cli", "submit", str(spec), "--address", address, *extra],
                          cwd=cwd, env=sweep_env(RAY_AUTH_MODE="disabled", **env), capture_output=True, text=True,
                          timeout=120)


def _wait_for(job_server: str, job_id: str) -> tuple[Any, str]:
    """The job's end status and logs (stopped, and said by the status, if it runs past the time limit)."""
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(job_server)
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not (status := client.get_job_status(job_id)).is_terminal() and time.monotonic() < deadline:
        time.sleep(1.0)
    logs = client.get_job_logs(job_id)
    if not status.is_terminal():
        client.stop_job(job_id)
    return status, logs


@pytest.fixture
def job_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A 2-CPU head with the dashboard (the job server); the address of its job API."""
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.delenv("MONOSWEEP_PLUGINS", raising=False)
    # The job runs `monosweep` with the head's environment: our venv's scripts and the plugin's folder.
    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(PLUGINS), os.environ.get("PYTHONPATH")])))
    port = free_port()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "include_dashboard": True, "dashboard_port": port,
        "dashboard_agent_listen_port": free_port()})
    try:
        wait_for_port(port, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        cluster.shutdown()


def test_the_quickstart_submitted_as_a_job_fills_the_ledger_and_mlflow_where_submit_was_run(
    job_server: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient
    from ray.job_submission import JobStatus

    # The quickstart has no storage: the default ./monosweep-results (and the MLflow sqlite file beside the
    # results) must land here, where submit ran, not in the job's temporary working dir.
    # Smaller by --set (which also checks that overrides travel: the job gets the merged spec).
    small = ["--set", "fixed.epochs=1", "--set", "fixed.patches_per_epoch=256", "--set", "fixed.probe_epochs=2",
             "--set", "grid.seed=[0]"]
    done = submit(REPO / "examples" / "quickstart.yaml", job_server, *small, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("submitted monosweep-quickstart-") and "note:" not in done.stderr
    job_id = done.stdout.split()[1].rstrip(":")

    status, logs = _wait_for(job_server, job_id)
    assert status == JobStatus.SUCCEEDED, logs[-3000:]
    root = tmp_path / "monosweep-results" / "quickstart"
    assert f"--storage {root.parent}" in logs

    records = {p.stem: json.loads(p.read_text()) for p in (root / "trials").glob("*.json")}
    assert sorted(r["values"]["method"] for r in records.values()) == ["random", "rotnet"]
    assert {(r["values"]["epochs"], r["values"]["patches_per_epoch"]) for r in records.values()} == {(1, 256)}
    assert all(r["status"] == "finished" for r in records.values()), [r["status"] for r in records.values()]

    mlflow = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = mlflow.get_experiment_by_name("quickstart")
    runs = mlflow.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("monosweep.role") == "sweep"]
    children = {r.data.tags["monosweep.trial_id"]: r for r in runs if r.data.tags.get("monosweep.role") == "trial"}
    assert sorted(children) == sorted(records) and len(runs) == 1 + len(records)
    for trial_id, run in children.items():
        assert run.info.status == "FINISHED" and run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.metrics["probe.conv5.top1"] == records[trial_id]["result"]["probe"]["conv5"]["top1"]


def test_stop_from_a_second_process_ends_a_submitted_sweep_and_the_next_run_resumes_it(
    job_server: str, tmp_path: Path
) -> None:
    """`monosweep stop` asks through the storage: the job's driver ends its running trial `interrupted` at its
    checkpoint, releases the lease and exits 0 within 30 s; a later `run` resumes the trial from there."""
    from ray.job_submission import JobStatus

    spec = noop_spec(tmp_path / "s.yaml", "jobstop", [0, 1], tmp_path / "results", epochs=40,
                     extra="max_concurrent_trials: 1")
    root = tmp_path / "results" / "jobstop"
    done = submit(spec, job_server, cwd=tmp_path, MONOSWEEP_NOOP_SLEEP="0.5")
    assert done.returncode == 0, done.stderr[-2000:]
    job_id = done.stdout.split()[1].rstrip(":")
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        records = [json.loads(p.read_text()) for p in (root / "trials").glob("*.json")] if root.exists() else []
        if any(r["status"] == "running" and r["epoch"] >= 2 for r in records):
            break
        time.sleep(0.5)
    else:
        pytest.fail("the submitted sweep never checkpointed a trial")
    asked = time.monotonic()
    stop = cli("stop", str(spec), env=sweep_env(RAY_AUTH_MODE="disabled"), timeout=120)  # a second process
    took = time.monotonic() - asked
    assert stop.returncode == 0 and "has stopped and released its lease" in stop.stdout, stop.stdout + stop.stderr
    assert took < 30, took
    status, logs = _wait_for(job_server, job_id)
    assert status == JobStatus.SUCCEEDED and "stopped on request" in logs and "Traceback" not in logs, logs[-3000:]
    assert not (root / "lease.json").exists() and not (root / "stop.json").exists()
    records = {p.stem: json.loads(p.read_text()) for p in (root / "trials").glob("*.json")}
    (stopped,) = [r for r in records.values() if r["status"] == "interrupted"]
    assert stopped["epoch"] >= 2 and stopped["checkpoints"] and "running" not in {r["status"] for r in records.values()}

    resumed = cli("run", str(spec), env=sweep_env(RAY_AUTH_MODE="disabled"))  # here, on this machine's own Ray
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    record = json.loads((root / "trials" / f"{stopped['id']}.json").read_text())
    assert record["status"] == "finished" and record["resumed_from"] == [stopped["epoch"]]
    assert record["result"]["epochs_done"] == 40


def test_submit_to_an_unreachable_job_server_is_one_error_line_and_exit_code_2(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("name: nowhere\ngrid: {seed: [0]}\n")
    address = f"http://127.0.0.1:{free_port()}"
    done = submit(spec, address, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()], done.stderr
    assert done.stderr.startswith(f"monosweep submit: error: cannot reach the Ray job server at {address}")


# ---------------------------------------------------------------------------- what is sent (no Ray needed)
def _spec(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(f"name: paths\n{body}\n")
    return path


def test_relative_local_storage_is_made_absolute_where_submit_runs(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = _spec(tmp_path, "grid: {seed: [0]}\nstorage: results/here")
    request = job_request(Path("spec.yaml"), load_spec(spec), "http://127.0.0.1:8265", environ={})
    argv = shlex.split(request.entrypoint)
    args = build_parser().parse_args(argv[1:])
    assert argv[0] == "monosweep" and args.command == "run" and args.address == "auto"
    assert str(args.spec) == "spec.yaml" and args.storage == str(tmp_path / "results" / "here")
    assert request.notes == [] and request.runtime_env == {}
    # the same local storage sent to a remote cluster comes with a note that it needs a shared filesystem
    remote = job_request(spec, load_spec(spec), "http://10.1.2.3:8265", "other", environ={})
    assert remote.storage == str(tmp_path / "other") and "s3://" in remote.notes[0]


def test_s3_storage_is_sent_as_it_is_and_needs_no_note(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "grid: {seed: [0]}")
    request = job_request(spec, load_spec(spec), "http://10.1.2.3:8265", "s3://bucket/sweeps", environ={})
    assert request.storage == "s3://bucket/sweeps" and request.entrypoint.endswith("--storage s3://bucket/sweeps")
    assert request.notes == []


@pytest.mark.parametrize("body, bad", [
    ("grid: {source: [sample:astronaut, ./photo.jpg]}", "'./photo.jpg'"),
    ("grid: {seed: [0]}\nfixed: {source: 'samples,photos/b.jpg'}", "'photos/b.jpg'"),
    ("grid: {seed: [0]}\nfixed: {probe_data: cifar10-jpeg.tar}", "probe_data 'cifar10-jpeg.tar'"),
    ("grid: {seed: [0]}\nfixed: {probe_data: ~/data/cifar}", "probe_data '~/data/cifar'"),
    ("grid: {seed: [0]}\ntracking_uri: sqlite:///mlflow.db", "tracking_uri 'sqlite:///mlflow.db'"),
])
def test_relative_image_and_data_paths_are_refused(tmp_path: Path, body: str, bad: str) -> None:
    spec = _spec(tmp_path, body)
    with pytest.raises(InputError, match="relative path") as caught:
        job_request(spec, load_spec(spec), "http://127.0.0.1:8265", environ={})
    assert bad in str(caught.value) and "\n" not in str(caught.value)


def test_built_in_and_absolute_paths_pass(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "grid: {source: [samples, 'sample:astronaut', /data/photo.jpg]}\n"
                           "fixed: {probe_data: demo, train_data: /data/imagenet}\n"
                           "tracking_uri: http://mlflow.monosweep.svc.cluster.local:5000")
    assert job_request(spec, load_spec(spec), "http://127.0.0.1:8265", environ={}).notes == []


def test_monosweep_variables_travel_with_the_job_and_nothing_else(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "grid: {seed: [0]}")
    environ = {"MONOSWEEP_PLUGINS": "my_methods", "AWS_SECRET_ACCESS_KEY": "x", "PATH": "/bin"}
    request = job_request(spec, load_spec(spec), "http://127.0.0.1:8265", environ=environ)
    assert request.runtime_env == {"env_vars": {"MONOSWEEP_PLUGINS": "my_methods"}}
