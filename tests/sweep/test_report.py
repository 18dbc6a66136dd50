"""`monosweep report` on a real (tiny) finished sweep: the table agrees with the ledger, the plots exist,
and the report is attached to the sweep's MLflow run (embedded sqlite tracking)."""

import csv
import json
import statistics
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.support.sweeps import cli

LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")


def test_report_table_matches_the_ledger_and_plots_are_written(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(f"""
name: reported
grid:
  probe_lr: [0.01, 0.1]
  probe_weight_decay: [0.0001, 0.001]  # paired with probe_lr by the exclusions: it splits the trials the same way
  seed: [0, 1]
exclude:
  - {{probe_lr: [0.01], probe_weight_decay: [0.001]}}
  - {{probe_lr: [0.1], probe_weight_decay: [0.0001]}}
fixed: {{method: random, arch: small, img_size: 64, probe_data: demo, probe_epochs: 1, probe_train_limit: 120,
        probe_val_limit: 60, workers: 0, device: cpu}}
storage: {tmp_path / "results"}
""")
    ran = cli("run", str(spec))
    assert ran.returncode == 0, ran.stderr[-2000:]
    out = tmp_path / "report"
    report = cli("report", str(spec), "--out", str(out))
    assert report.returncode == 0, report.stderr[-2000:]
    assert "| method | probe_lr | probe_weight_decay | seeds | conv1 |" in report.stdout  # the table, printed
    status = cli("status", str(spec))
    for shown in (report.stdout, status.stdout):  # what the demo set can show, said where its numbers are
        assert "probe 'demo' (crops of the built-in photos, labelled by photo) is a smoke test" in shown

    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "reported" / "trials").glob("*.json")]
    rows = list(csv.DictReader((out / "report.csv").open()))
    assert len(rows) == 2 and {r["probe_lr"] for r in rows} == {"0.01", "0.1"}
    for row in rows:
        mine = [r for r in records if str(r["values"]["probe_lr"]) == row["probe_lr"]]
        assert row["method"] == "random" and int(row["seeds"]) == len(mine) == 2
        for layer in LAYERS:
            values = [r["result"]["probe"][layer]["top1"] for r in mine]
            assert float(row[f"{layer}_mean"]) == pytest.approx(statistics.fmean(values), abs=1e-3)
            assert float(row[f"{layer}_std"]) == pytest.approx(statistics.stdev(values), abs=1e-3)
    for name in ("layers.png", "layers_random_by_probe_lr.png"):  # all groups; the probe_lr axis per method
        png = (out / name).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 20_000
    assert not (out / "layers_random_by_probe_weight_decay.png").exists()  # the same curves as by probe_lr
    filters = (out / "conv1_filters.png").read_bytes()  # one row per group: both probe_lr groups
    assert filters.startswith(b"\x89PNG") and len(filters) > 20_000

    client = MlflowClient(f"sqlite:///{tmp_path / 'results' / 'reported' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("reported")
    parent = client.search_runs([experiment.experiment_id], "tags.`monosweep.role` = 'sweep'")[0]
    attached = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.csv", "report/report.md", "report/layers.png", "report/conv1_filters.png",
            "report/layers_random_by_probe_lr.png"} <= attached


def test_each_method_is_paired_with_the_random_trunk_of_its_own_input() -> None:
    """A Sobel-input DeepCluster is compared with the Sobel random trunk, RotNet with the colour one; the gap is
    bold only beyond the larger seed spread."""
    from methods import TrialConfig
    from sweep.report import _versus_markdown, group_results, versus_random
    from sweep.spec import SweepSpec

    spec = SweepSpec.model_validate({"name": "pairs", "grid": {"method": ["rotnet", "deepcluster", "random"],
                                                               "sobel": [True, False], "seed": [0, 1]}})

    def row(method: str, sobel: bool, seed: int, conv2: float) -> dict[str, object]:
        config = TrialConfig(method=method, sobel=sobel, seed=seed).resolved().to_dict()
        metrics = {f"probe.{layer}.top1": conv2 for layer in LAYERS}
        values = {"method": method, "sobel": sobel, "seed": seed}
        return {"id": f"{method}-{sobel}-{seed}", "state": "finished", "metrics": metrics, "values": values,
                "config": config}

    rows = [row("random", True, 0, 40.0), row("random", True, 1, 41.0), row("random", False, 0, 50.0),
            row("random", False, 1, 50.5), row("deepcluster", True, 0, 45.0), row("deepcluster", True, 1, 45.5),
            row("rotnet", False, 0, 51.0), row("rotnet", False, 1, 50.0)]
    pairs = versus_random(group_results(spec, rows))
    assert [(dict(g.key)["method"], dict(g.key)["sobel"], dict(r.key)["sobel"]) for g, r in pairs] == [
        ("deepcluster", True, True), ("rotnet", False, False)]
    table = _versus_markdown(pairs)
    assert "| deepcluster sobel=True | random sobel=True (n=2) | **+4.8** |" in table  # 45.25 - 40.5 beyond 1.0
    assert "| rotnet sobel=False | random sobel=False (n=2) | +0.2 |" in table  # 50.5 - 50.25 within 1.0


def test_a_real_sweep_pairs_each_trained_trunk_with_the_random_trunk_of_its_input(tmp_path: Path) -> None:
    """Through `monosweep run` and `report`: the gaps in versus_random.csv are the ledger's means' differences,
    and the Sobel DeepCluster is measured against the Sobel random trunks, not the colour ones beside them."""
    spec = tmp_path / "s.yaml"
    spec.write_text(f"""
name: paired
grid:
  method: [deepcluster, random]
  sobel: [false, true]
  seed: [0, 1]
exclude:
  - {{method: [deepcluster], sobel: [false]}}
fixed: {{source: "sample:astronaut", arch: small, img_size: 64, epochs: 1, patches_per_epoch: 64, batch_size: 32,
        probe_data: demo, probe_epochs: 1, probe_train_limit: 120, probe_val_limit: 60, workers: 0, device: cpu}}
per_method:
  deepcluster: {{clusters: 4, pca_dim: 8}}
storage: {tmp_path / "results"}
""")
    ran = cli("run", str(spec))
    assert ran.returncode == 0, ran.stderr[-2000:]
    out = tmp_path / "report"
    assert cli("report", str(spec), "--out", str(out)).returncode == 0
    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "paired" / "trials").glob("*.json")]

    def mean(method: str, sobel: bool, layer: str) -> float:
        return statistics.fmean(r["result"]["probe"][layer]["top1"] for r in records
                                if r["values"]["method"] == method and r["values"]["sobel"] == sobel)

    (row,) = csv.DictReader((out / "versus_random.csv").open())  # the grid's colour random trunks stand apart
    assert row["group"].startswith("deepcluster") and "sobel=True" in row["random"], row
    for layer in LAYERS:
        gap = mean("deepcluster", True, layer) - mean("random", True, layer)
        assert float(row[f"{layer}_gap"]) == pytest.approx(gap, abs=1e-3)
        assert abs(gap - (mean("deepcluster", True, layer) - mean("random", False, layer))) > 1e-3  # pairing matters


def test_bigan_is_paired_with_the_random_trunk_built_as_its_encoder() -> None:
    """BiGAN's LeakyReLU encoder is judged against ``random`` with ``trunk_of: bigan``, RotNet against the plain
    random trunk; a record from before ``trunk_of`` existed pairs by its method's own trunk."""
    from methods import TrialConfig
    from sweep.report import group_results, versus_random
    from sweep.spec import SweepSpec

    spec = SweepSpec.model_validate({"name": "trunks", "grid": {"method": ["rotnet", "bigan", "random"],
                                                                "trunk_of": ["rotnet", "bigan"]}})

    def row(method: str, trunk_of: str, conv2: float, old: bool = False) -> dict[str, object]:
        config = TrialConfig(method=method, trunk_of=trunk_of).resolved().to_dict()
        if old:
            del config["trunk_of"]
        values = {"method": method, "trunk_of": trunk_of}
        return {"id": f"{method}-{trunk_of}", "state": "finished", "values": values, "config": config,
                "metrics": {f"probe.{layer}.top1": conv2 for layer in LAYERS}}

    rows = [row("random", "rotnet", 50.0), row("random", "bigan", 45.0), row("rotnet", "rotnet", 52.0),
            row("bigan", "bigan", 47.0, old=True)]
    pairs = versus_random(group_results(spec, rows))
    assert sorted((dict(g.key)["method"], dict(r.key)["trunk_of"]) for g, r in pairs) == [
        ("bigan", "bigan"), ("rotnet", "rotnet")]
