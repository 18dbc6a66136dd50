"""MLflow tracking against a real tracking server process (sqlite backend, artifacts proxied to a real
S3-compatible server): one parent run, one nested child run per trial, kept unique across kills and
reruns, and back-filled after the server was down."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from tests.support import REPO
from tests.support.servers import MlflowServer, moto_s3, s3_client
from tests.support.sweeps import cli, noop_spec, read_records, sweep_env

LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")


# One S3 server and one MLflow server for the module (each sweep its own experiment): starting them costs
# ~10 s a test on 2 cores. The outage test stops the server and starts it again on the same database.
@pytest.fixture(scope="module")
def s3_server() -> Iterator[dict[str, str]]:
    with moto_s3("sweeps", "mlflow") as env:
        yield env


@pytest.fixture(scope="module")
def mlflow_server(s3_server: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow") / "mlflow.db", s3_server)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _runs(uri: str, name: str) -> tuple[Any, list[Any]]:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("monosweep.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("monosweep.role") == "trial"]
    assert len(parents) == 1 and len(runs) == 1 + len(children), [r.info.run_name for r in runs]
    return parents[0], children


def test_a_sweep_has_one_parent_and_one_nested_child_run_per_trial_with_artifacts_in_s3(
    mlflow_server: MlflowServer, s3_server: dict[str, str], tmp_path: Path
) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(f"""
name: tracked
grid:
  method: [random]
  seed: [0, 1]
fixed: {{arch: small, img_size: 64, probe_data: demo, probe_epochs: 1, probe_train_limit: 120,
        probe_val_limit: 60, workers: 0, device: cpu}}
storage: {tmp_path / "results"}
tracking_uri: {mlflow_server.uri}
""")
    env = sweep_env(**s3_server)
    first = cli("run", str(spec), env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    assert f"browse the runs: {mlflow_server.uri}" in first.stderr
    parent, children = _runs(mlflow_server.uri, "tracked")
    records = read_records(tmp_path / "results" / "tracked")
    assert sorted(c.data.tags["monosweep.trial_id"] for c in children) == sorted(records)
    s3 = s3_client(s3_server)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="mlflow").get("Contents", [])}
    for child in children:
        record = records[child.data.tags["monosweep.trial_id"]]
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id  # nested in the UI
        assert child.info.status == "FINISHED" and child.data.tags["status"] == "finished"
        assert child.data.tags["method"] == "random" and child.data.tags["seed"] == str(record["values"]["seed"])
        assert child.data.params["seed"] == str(record["values"]["seed"]) and child.data.params["arch"] == "small"
        for layer in LAYERS:  # the ledger's numbers, mirrored
            assert child.data.metrics[f"probe.{layer}.top1"] == pytest.approx(record["result"]["probe"][layer]["top1"])
            assert f"probe.{layer}.top5" in child.data.metrics
        for name in ("trunk.pt", "config.json", "result.json"):  # proxied by the server into the bucket
            assert any(k.endswith(f"{child.info.run_id}/artifacts/{name}") for k in keys), (name, sorted(keys)[:5])

    again = cli("run", str(spec), env=env)
    assert again.returncode == 0 and "ran 0, skipped 2" in again.stdout
    parent_again, children_again = _runs(mlflow_server.uri, "tracked")
    assert parent_again.info.run_id == parent.info.run_id  # the sweep's run is reused, not duplicated
    assert sorted(c.info.run_id for c in children_again) == sorted(c.info.run_id for c in children)


def test_a_killed_and_rerun_sweep_keeps_one_child_run_per_trial_and_each_epoch_once(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    spec = noop_spec(tmp_path / "s.yaml", "killed", [0, 1], tmp_path / "results", epochs=4,
                     extra=f"max_concurrent_trials: 1\ntracking_uri: {mlflow_server.uri}")
    root = tmp_path / "results" / "killed"
    env = sweep_env(MONOSWEEP_NOOP_SLEEP="1.0")
    driver = subprocess.Popen([sys.executable, "-m", "sweep.cli", "run", str(spec)], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        records = list(read_records(root).values()) if (root / "trials").exists() else []
        if any(r["status"] == "finished" for r in records) and any(
                r["status"] == "running" and r["epoch"] >= 2 for r in records):
            break
        time.sleep(0.1)
    else:
        pytest.fail("the sweep never reached one finished + one checkpointed trial")
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait(timeout=30)

    resumed = cli("run", str(spec), env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "ran 1, skipped 1" in resumed.stdout
    _, children = _runs(mlflow_server.uri, "killed")
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    client = MlflowClient(mlflow_server.uri)
    for child in children:  # logged live before the kill and after the resume, or back-filled; none twice
        assert sorted(m.step for m in client.get_metric_history(child.info.run_id, "epoch")) == [1, 2, 3, 4]


def test_with_the_server_down_the_sweep_finishes_and_sync_back_fills_mlflow(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    spec = noop_spec(tmp_path / "s.yaml", "outage", [0, 1, 2], tmp_path / "results", epochs=2,
                     extra=f"max_concurrent_trials: 1\ntracking_uri: {mlflow_server.uri}")
    root = tmp_path / "results" / "outage"
    driver = subprocess.Popen([sys.executable, "-m", "sweep.cli", "run", str(spec)], cwd=REPO,
                              env=sweep_env(MONOSWEEP_NOOP_SLEEP="1.0"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if (root / "trials").exists() and any(r["status"] == "finished" for r in read_records(root).values()):
            break
        time.sleep(0.1)
    mlflow_server.stop()  # mid-sweep: one trial finished and mirrored, the others still to come
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 0, err[-2000:]
    assert "3 finished" in out
    warnings = [line for line in err.splitlines() if "warning: MLflow" in line]
    assert len(warnings) == 1 and "monosweep sync" in warnings[0]  # said once, with the way out
    assert all(r["status"] == "finished" for r in read_records(root).values())

    mlflow_server.start()  # the same database on the same port: the runs made before the outage are there
    _, before = _runs(mlflow_server.uri, "outage")
    assert len(before) < 3
    synced = cli("sync", str(spec))
    assert synced.returncode == 0, synced.stderr[-2000:]
    _, after = _runs(mlflow_server.uri, "outage")
    assert len(after) == 3 and all(c.info.status == "FINISHED" and c.data.tags["status"] == "finished" for c in after)
    client = MlflowClient(mlflow_server.uri)
    for child in after:
        assert [m.step for m in client.get_metric_history(child.info.run_id, "epoch")] == [1, 2]
    assert cli("sync", str(spec)).stdout.startswith("sweep 'outage': mirrored 0 trial run(s)")  # idempotent


def test_mlflow_telemetry_is_off_unless_the_user_turns_it_on() -> None:
    """A sweep runs offline: MLflow 3's usage telemetry (on by default) must not phone home."""
    probe = ("import sweep.tracking, mlflow.telemetry.utils as u; import mlflow.environment_variables as e; "
             "print(e.MLFLOW_DISABLE_TELEMETRY.get())")
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK")}
    off = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True)
    assert off.returncode == 0, off.stderr[-2000:]
    assert off.stdout.strip() == "True"
    on = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env={**env, "MLFLOW_DISABLE_TELEMETRY": "false"},
                        capture_output=True, text=True)
    assert on.stdout.strip() == "False", on.stderr[-2000:]


def _png(client: MlflowClient, run_id: str, path: str, tmp: Path) -> Any:
    import numpy as np
    from PIL import Image

    local = client.download_artifacts(run_id, path, str(tmp))
    with Image.open(local) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def test_the_mlflow_view_each_trial_s_times_pictures_and_provenance(
    mlflow_server: MlflowServer, s3_server: dict[str, str], tmp_path: Path
) -> None:
    """What a user opens: the model-training view; each trial's run spans the trial's own start and end, shows
    its per-layer curve (chart metric + plot) and conv1's filters, and names its code, torch, device and data;
    the report adds a per-layer curve per group and the filters side by side on the sweep's run."""
    import torch

    spec = tmp_path / "s.yaml"
    spec.write_text(f"""
name: viewed
grid:
  method: [rotnet, random]
  seed: [0]
fixed: {{arch: small, img_size: 64, epochs: 1, patches_per_epoch: 256, batch_size: 64, probe_data: demo,
        probe_epochs: 1, probe_train_limit: 120, probe_val_limit: 60, workers: 0, device: cpu}}
storage: {tmp_path / "results"}
tracking_uri: {mlflow_server.uri}
""")
    env = sweep_env(**s3_server)
    ran = cli("run", str(spec), env=env)
    assert ran.returncode == 0, ran.stderr[-2000:]
    client = MlflowClient(mlflow_server.uri)
    experiment = client.get_experiment_by_name("viewed")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    # MLflow 3.17 opens the GenAI view unless the link asks for the model-training one (docs/mlflow.md shows both)
    link = f"{mlflow_server.uri}/#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning"
    assert f"browse the runs: {link}" in ran.stderr
    parent, children = _runs(mlflow_server.uri, "viewed")
    records = read_records(tmp_path / "results" / "viewed")
    by_method = {c.data.tags["method"]: c for c in children}
    for method, child in by_method.items():
        record = records[child.data.tags["monosweep.trial_id"]]
        result = record["result"]
        # The run's times are the trial's, not the mirror's: Duration shows how long the trial took.
        assert child.info.start_time == int(record["started"] * 1000)
        assert child.info.end_time == int(record["ended"] * 1000)
        assert (child.info.end_time - child.info.start_time) / 1000 >= sum(result["seconds"].values())
        curve = client.get_metric_history(child.info.run_id, "layers/top1")
        assert [m.step for m in sorted(curve, key=lambda m: m.step)] == [1, 2, 3, 4, 5]
        assert [m.value for m in sorted(curve, key=lambda m: m.step)] == pytest.approx(
            [result["probe"][layer]["top1"] for layer in LAYERS])
        tags = child.data.tags
        assert tags["monosweep.torch"] == torch.__version__ and tags["monosweep.device"].startswith("cpu: ")
        assert tags["monosweep.cuda"] == (torch.version.cuda or "none") and "+g" in tags["monosweep.version"]
        datasets = {[t.value for t in d.tags if t.key == "mlflow.data.context"][0]: d.dataset
                    for d in client.get_run(child.info.run_id).inputs.dataset_inputs}
        assert set(datasets) == ({"training", "probe"} if method == "rotnet" else {"probe"})
        for role, dataset in datasets.items():
            assert (dataset.name, dataset.digest) == (result["inputs"][role]["name"], result["inputs"][role]["digest"])
        plot = _png(client, child.info.run_id, "layers.png", tmp_path / method)
        assert plot.shape[1] > 600 and plot.std() > 20  # a drawn figure, not a blank
    probes = {c.data.tags["method"]: client.get_run(c.info.run_id).inputs.dataset_inputs for c in children}
    assert len({d.dataset.digest for ds in probes.values() for d in ds if d.dataset.name == "demo"}) == 1

    filters = {m: _png(client, c.info.run_id, "conv1_filters.png", tmp_path / m) for m, c in by_method.items()}
    assert filters["rotnet"].shape == filters["random"].shape and filters["random"].std() > 20
    # The same seed starts both trunks from the same weights: the trained one's picture has moved.
    assert (filters["rotnet"] != filters["random"]).any(axis=-1).mean() > 0.05

    reported = cli("report", str(spec), env=env)
    assert reported.returncode == 0, reported.stderr[-2000:]
    for method, child in by_method.items():
        curve = sorted(client.get_metric_history(parent.info.run_id, f"layers/{method}"), key=lambda m: m.step)
        assert [m.value for m in curve] == pytest.approx(
            [records[child.data.tags["monosweep.trial_id"]]["result"]["probe"][layer]["top1"] for layer in LAYERS])
    side_by_side = _png(client, parent.info.run_id, "report/conv1_filters.png", tmp_path / "report")
    assert side_by_side.shape[0] > 2 * filters["rotnet"].shape[0] and side_by_side.shape[1] > filters["rotnet"].shape[1]
