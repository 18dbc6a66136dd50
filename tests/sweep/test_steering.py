"""Steering a sweep through the real command line, with real Ray, storage (local and a moto S3 server) and
an MLflow server: rerun by selection, status as JSON/CSV/Parquet, ``--set`` overrides and ``base:``
includes, the results DataFrame. (A clean stop from a second process: ``test_submit.py``, for a sweep
submitted as a Ray Job, resumed by a later ``run``.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow import MlflowClient

import sweep
from sweep.grid import expand
from sweep.spec import load_spec
from tests.support import REPO
from tests.support.servers import MlflowServer, s3_client
from tests.support.sweeps import PLUGINS, cli, noop_spec, read_records, sweep_env


def _status_json(spec: Path, *args: str, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    shown = cli("status", str(spec), "--json", *args, env=env)
    assert shown.returncode == 0, shown.stderr
    return [json.loads(line) for line in shown.stdout.splitlines()]


def test_a_rerun_of_two_of_six_finished_trials_runs_those_two_and_keeps_both_results(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    spec_path = noop_spec(tmp_path / "s.yaml", "steer", [0, 1, 2, 3, 4, 5], tmp_path / "results",
                          extra=f"tracking_uri: {mlflow_server.uri}")
    root = tmp_path / "results" / "steer"
    first = cli("run", str(spec_path))
    assert first.returncode == 0, first.stderr[-2000:]
    before = read_records(root)
    assert len(before) == 6 and all(r["status"] == "finished" for r in before.values())

    dry = cli("rerun", str(spec_path), "--where", "method=noop,seed=0|2", "--dry-run")
    assert dry.returncode == 0 and "would rerun 2 of 6 trials" in dry.stdout, dry.stdout + dry.stderr
    assert read_records(root) == before  # a dry run changes nothing

    rerun = cli("rerun", str(spec_path), "--where", "method=noop,seed=0|2")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "ran 2, skipped 4" in rerun.stdout
    after = read_records(root)
    chosen = {k for k, r in before.items() if r["values"]["seed"] in (0, 2)}
    for trial_id, record in after.items():
        if trial_id not in chosen:
            assert record == before[trial_id]  # nothing else ran again, not even its record was rewritten
            continue
        assert record["status"] == "finished" and record["attempts"] == 1
        assert record["updated"] > before[trial_id]["updated"]
        (earlier,) = record["history"]  # the first result is kept beside the new one
        assert earlier["status"] == "finished" and earlier["result"] == before[trial_id]["result"]
        assert record["result"]["history"][-1]["epoch_seconds"] != earlier["result"]["history"][-1]["epoch_seconds"]

    client = MlflowClient(mlflow_server.uri)
    experiment = client.get_experiment_by_name("steer")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    (parent,) = [r for r in runs if r.data.tags.get("monosweep.role") == "sweep"]
    superseded = [r for r in runs if r.data.tags.get("monosweep.role") == "superseded"]
    current = [r for r in runs if r.data.tags.get("monosweep.role") == "trial"]
    assert len(runs) == 1 + 2 + 6
    assert sorted(r.data.tags["monosweep.trial_id"] for r in superseded) == sorted(chosen)
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in superseded + current)
    new = [r for r in current if r.data.tags["monosweep.trial_id"] in chosen]
    assert len(new) == 2 and all(r.data.tags["monosweep.rerun"] == "1" and r.info.status == "FINISHED" for r in new)
    for run in new:  # the new run mirrors the new result, the superseded one the earlier
        record = after[run.data.tags["monosweep.trial_id"]]
        assert run.data.metrics["epoch_seconds"] == pytest.approx(record["result"]["history"][-1]["epoch_seconds"])
    for run in superseded:
        earlier = after[run.data.tags["monosweep.trial_id"]]["history"][0]
        assert run.data.metrics["epoch_seconds"] == pytest.approx(earlier["result"]["history"][-1]["epoch_seconds"])
        assert run.info.run_name.endswith("(superseded)") and run.info.status == "FINISHED"

    nothing = cli("rerun", str(spec_path), "--where", "seed=7")
    assert nothing.returncode == 2 and nothing.stderr.count("\n") == 1
    assert "no trial matches --where seed=7" in nothing.stderr
    unknown = cli("rerun", str(spec_path), "--where", "sed=1")
    assert unknown.returncode == 2 and "unknown key 'sed' (known: id, method, seed," in unknown.stderr
    assert read_records(root) == after
    watched = cli("status", str(spec_path), "--watch", "1")
    assert watched.returncode == 0 and "every trial has ended" in watched.stdout
    assert watched.stdout.count(" finished ") == 6  # one table, every trial in it


def test_status_json_csv_parquet_and_the_dataframe_match_the_ledger_on_s3(
    s3_server: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = noop_spec(tmp_path / "s.yaml", "tables", [0, 1, 2], "s3://sweeps/t", epochs=1)
    env = sweep_env(**s3_server)
    ran = cli("run", str(spec), env=env)
    assert ran.returncode == 0, ran.stderr[-2000:]
    s3 = s3_client(s3_server)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="sweeps", Prefix="t/tables/trials/")["Contents"]]
    ledger = {k.rsplit("/", 1)[1].removesuffix(".json"):
              json.loads(s3.get_object(Bucket="sweeps", Key=k)["Body"].read()) for k in keys}

    rows = _status_json(spec, env=env)
    assert sorted(r["id"] for r in rows) == sorted(ledger)
    for row in rows:
        record = ledger[row["id"]]
        assert (row["state"], row["attempts"], row["epoch"], row["error"]) == (
            record["status"], record["attempts"], record["epoch"], record["error"])
        assert row["values"] == record["values"] and row["metrics"]["epoch"] == record["result"]["epochs_done"]
    (one,) = _status_json(spec, "--where", "seed=1", "--state", "finished", env=env)
    assert one["values"]["seed"] == 1

    csv_out, parquet_out = tmp_path / "r.csv", tmp_path / "r.parquet"
    assert cli("status", str(spec), "--format", "csv", "--out", str(csv_out), env=env).returncode == 0
    assert cli("status", str(spec), "--format", "parquet", "--out", str(parquet_out), env=env).returncode == 0
    monkeypatch.syspath_prepend(str(PLUGINS))
    for key, value in {**s3_server, "MONOSWEEP_PLUGINS": "noop_method"}.items():
        monkeypatch.setenv(key, value)
    frame = sweep.results(spec)
    for table in (frame, pd.read_csv(csv_out), pd.read_parquet(parquet_out)):
        assert sorted(table["id"]) == sorted(ledger) and set(table["state"]) == {"finished"}
        by_id = table.set_index("id")
        for trial_id, record in ledger.items():
            assert by_id.loc[trial_id, "seed"] == record["values"]["seed"]
            assert by_id.loc[trial_id, "train.loss"] == pytest.approx(record["result"]["history"][-1]["train.loss"])
            assert by_id.loc[trial_id, "attempts"] == record["attempts"]
    no_file = cli("status", str(spec), "--format", "parquet", env=env)
    assert no_file.returncode == 2 and "--out FILE" in no_file.stderr


def test_set_overrides_and_base_includes_give_the_ids_of_the_equivalent_single_file(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("""
name: based
grid: {method: [rotnet], seed: [0]}
fixed: {arch: small, img_size: 64, epochs: 2, source: sample:astronaut}
per_method: {rotnet: {batch_size: 32}}
""")
    (tmp_path / "child.yaml").write_text("base: base.yaml\ngrid: {num_images: [1, 2]}\nfixed: {img_size: null}\n")
    (tmp_path / "single.yaml").write_text("""
name: based
grid: {method: [rotnet], seed: [0, 1, 2], num_images: [1, 2]}
fixed: {arch: small, epochs: 4, source: sample:astronaut}
per_method: {rotnet: {batch_size: 32}}
""")
    overrides = ["fixed.epochs=4", "grid.seed=[0,1,2]"]
    merged = [t.id for t in expand(load_spec(tmp_path / "child.yaml", overrides))]
    assert merged == [t.id for t in expand(load_spec(tmp_path / "single.yaml"))] and len(merged) == 6

    planned = cli("plan", str(tmp_path / "child.yaml"), "--set", "fixed.epochs=4", "--set", "grid.seed=[0,1,2]",
                  "--storage", str(tmp_path / "r"))
    assert planned.returncode == 0 and "6 trials" in planned.stdout, planned.stderr
    bad = cli("validate", str(tmp_path / "child.yaml"), "--set", "fixed.epoch=4")
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "monosweep validate: error: --set fixed.epoch=4: fixed: unknown trial-config field 'epoch' "
        "(see `monosweep trial --help`)")
    (tmp_path / "wrong.yaml").write_text("base: base.yaml\nresources: {cpus: 2}\n")
    wrong = cli("validate", str(tmp_path / "wrong.yaml"))
    assert wrong.returncode == 2 and f"{tmp_path / 'wrong.yaml'}: resources.cpus: unknown key" in wrong.stderr


def test_the_cpu_small_sobel_example_is_cpu_small_with_sobel_input() -> None:
    small = load_spec(REPO / "examples" / "cpu-small.yaml")
    sobel = load_spec(REPO / "examples" / "cpu-small-sobel.yaml")
    assert "base:" in (REPO / "examples" / "cpu-small-sobel.yaml").read_text()
    assert sobel.fixed == {**small.fixed, "source": "sample:astronaut", "num_images": 1, "augment": "full",
                           "clusters": 100}
    assert sobel.resources == small.resources and sorted(sobel.grid) == ["method", "seed", "sobel"]


def test_shell_completion_completes_commands_and_options() -> None:
    code = cli("completion", "bash")
    assert code.returncode == 0 and "monosweep" in code.stdout and "complete" in code.stdout
    env = {**sweep_env(), "_ARGCOMPLETE": "1", "COMP_LINE": "monosweep st", "COMP_POINT": "12",
           "_ARGCOMPLETE_IFS": "\n", "_ARGCOMPLETE_STDOUT_FILENAME": "/dev/stdout"}
    words = subprocess.run([sys.executable, "-m", "sweep.cli"], cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=60).stdout.split()
    assert sorted(words) == ["status", "stop"], words
