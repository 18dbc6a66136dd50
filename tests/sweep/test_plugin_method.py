"""A method added as one file (tests/plugins/mirror_method.py), with an option of its own, goes through
every command: validate (its option checked), plan (its cost), run (on Ray workers), MLflow (its option a
param) and report (its option an axis); `monosweep trial --help` lists its option."""

import csv
import json
from pathlib import Path

from mlflow import MlflowClient

from tests.support.sweeps import cli, sweep_env

ENV = sweep_env(MONOSWEEP_PLUGINS="mirror_method")
SPEC = """
name: plugin
grid:
  method: [mirror]
  share: [0.25, 0.75]
  seed: [0]
fixed: {{arch: small, img_size: 64, patches_per_epoch: 64, batch_size: 32, head_hidden: 32, probe_data: demo,
        probe_epochs: 1, probe_train_limit: 120, probe_val_limit: 60, workers: 0, device: cpu}}
storage: {storage}
"""


def test_a_plugin_method_and_its_own_option_go_through_every_command(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.format(storage=tmp_path / "results"))
    assert cli("validate", str(spec), env=ENV).returncode == 0

    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC.format(storage=tmp_path / "results").replace("share: [0.25, 0.75]", "share: [0.25, 2.0]"))
    refused = cli("validate", str(bad), env=ENV)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"monosweep validate: error: {bad}: grid.share[1] = 2.0: share=2.0 must lie strictly between 0 and 1"]

    plan = cli("plan", str(spec), env=ENV)
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert "2 trials - 0 finished, 0 diverged, 2 to run" in plan.stdout and "compute: ~" in plan.stdout
    assert any(line.split()[:3] == ["share", "0.25", "1"] for line in plan.stdout.splitlines())

    ran = cli("run", str(spec), env=ENV)
    assert ran.returncode == 0, ran.stderr[-3000:]
    root = tmp_path / "results" / "plugin"
    records = [json.loads(p.read_text()) for p in (root / "trials").glob("*.json")]
    assert sorted(r["config"]["share"] for r in records) == [0.25, 0.75]
    assert all(r["status"] == "finished" and len(r["result"]["probe"]) == 5 for r in records)

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("plugin")
    children = client.search_runs([experiment.experiment_id], "tags.`monosweep.role` = 'trial'")
    assert sorted(c.data.params["share"] for c in children) == ["0.25", "0.75"]
    assert all(c.data.tags["method"] == "mirror" and "probe.conv2.top1" in c.data.metrics for c in children)

    report = cli("report", str(spec), "--out", str(tmp_path / "report"), env=ENV)
    assert report.returncode == 0, report.stderr[-2000:]
    rows = list(csv.DictReader((tmp_path / "report" / "report.csv").open()))
    assert sorted(r["share"] for r in rows) == ["0.25", "0.75"] and {r["method"] for r in rows} == {"mirror"}
    assert (tmp_path / "report" / "layers_mirror_by_share.png").is_file()

    help_text = cli("trial", "--help", env=ENV).stdout
    assert "mirror options (with --method mirror)" in help_text and "--share SHARE" in help_text
