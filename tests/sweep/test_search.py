"""An Optuna search over a learning-rate range on a tiny RotNet problem: it runs its budget, ASHA prunes,
the best trial is printed and tagged in MLflow, and a larger budget later samples only the difference."""

import json
import re
from pathlib import Path

from mlflow import MlflowClient

from methods import TrialConfig
from sweep.execution.messages import trial_id_of
from sweep.grid import Trial, trial_id
from sweep.ledger.records import TrialRecord
from sweep.search import make_scheduler, make_searcher, objective
from sweep.spec import Search
from tests.support.sweeps import cli

SPEC = """
name: lrsearch
grid:
  method: [rotnet]
  seed: [0]
fixed: {{arch: small, img_size: 64, epochs: 4, patches_per_epoch: 128, batch_size: 32, head_hidden: 64,
        probe_data: demo, probe_epochs: 2, probe_every: 1, probe_train_limit: 120, probe_val_limit: 60,
        workers: 0, device: cpu}}
storage: {storage}
search:
  metric: probe.mean.top1
  num_samples: {samples}
  space: {{lr: {{low: 0.0001, high: 0.5, log: true}}}}
  asha: {{grace_period: 1, reduction_factor: 2}}
"""


def _records(root: Path) -> dict[str, TrialRecord]:
    return {p.stem: TrialRecord.from_json(p.read_text()) for p in (root / "trials").glob("*.json")}


def test_a_search_runs_its_budget_prunes_and_reports_the_best_then_extends(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.format(storage=tmp_path / "results", samples=6))
    root = tmp_path / "results" / "lrsearch"
    first = cli("run", str(spec))
    assert first.returncode == 0, first.stderr[-3000:]
    records = _records(root)
    assert len(records) == 6 and len({r.search for r in records.values()}) == 1
    assert len({r.values["lr"] for r in records.values()}) == 6
    assert all(1e-4 <= r.values["lr"] <= 0.5 for r in records.values())
    pruned = [r for r in records.values() if r.status == "pruned"]
    assert pruned and all(r.epoch < 4 and r.result is None for r in pruned)  # stopped before its last epoch
    assert {r.status for r in records.values()} <= {"finished", "pruned"}

    search = Search(metric="probe.mean.top1", num_samples=6, space={"lr": {"low": 1e-4, "high": 0.5, "log": True}})
    scored = {r.id: objective(r, search.metric) for r in records.values()}
    top = max(v for v in scored.values() if v is not None)
    line = re.search(r"best around rotnet: lr=(\S+) -> probe.mean.top1 (\S+) \(trial (\w+)\)", first.stderr)
    assert line is not None, first.stderr[-2000:]
    best_id = line.group(3)
    assert scored[best_id] == top and abs(float(line.group(2)) - top) < 0.01  # (ties: any of the best)
    assert float(line.group(1)) == float(f"{records[best_id].values['lr']:.4g}")

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("lrsearch")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("monosweep.role") == "sweep")
    children = {r.data.tags["monosweep.trial_id"]: r for r in runs if r.data.tags.get("monosweep.role") == "trial"}
    assert sorted(children) == sorted(records)
    assert children[best_id].data.tags.get("monosweep.best") == "true"
    assert all(children[r.id].info.status == "KILLED" for r in pruned)
    (best_tag,) = [v for k, v in parent.data.tags.items() if k.startswith("best.")]
    assert json.loads(best_tag)["trial"] == best_id

    spec.write_text(SPEC.format(storage=tmp_path / "results", samples=8))  # a bigger budget: two more trials
    more = cli("run", str(spec))
    assert more.returncode == 0, more.stderr[-3000:]
    assert "ran 2, skipped 6" in more.stdout
    after = _records(root)
    assert len(after) == 8 and {k: after[k] for k in records} == records  # the first six untouched
    assert len({r.values["lr"] for r in after.values()}) == 8  # fresh samples, not the first ones again
    runs = client.search_runs([experiment.experiment_id], "tags.`monosweep.best` = 'true'")
    assert len(runs) == 1  # one best run per grid point, whichever trial it is now


def _point() -> Trial:
    values = {"method": "rotnet", "img_size": 64, "epochs": 4, "seed": 0}
    return Trial(trial_id(values), values, TrialConfig.from_dict(values).resolved())


def test_the_searcher_never_proposes_a_trial_twice_and_ends_when_the_space_is_used_up() -> None:
    from ray.tune.search import Searcher as Base

    search = Search(num_samples=3, space={"probe_lr": {"choices": [0.01, 0.02, 0.03]}}, seed=1)
    point = _point()
    done = {"x": TrialRecord(trial_id_of(point, {"probe_lr": 0.02}), search=point.id)}  # one is in the ledger
    searcher = make_searcher(search, point, done)
    proposals = [searcher.suggest(f"t{i}") for i in range(3)]
    assert sorted(p["probe_lr"] for p in proposals[:2]) == [0.01, 0.03]  # never the one the ledger holds
    assert proposals[2] == Base.FINISHED


def test_asha_lets_a_trial_that_reaches_its_last_epoch_finish() -> None:
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler

    search = Search(metric="train.loss", mode="min", num_samples=2, space={"lr": {"low": 0.001, "high": 0.1}},
                    asha={"grace_period": 1})
    scheduler = make_scheduler(search, _point())
    trial = SimpleNamespace(trial_id="a")
    scheduler.on_trial_add(None, trial)
    decisions = [scheduler.on_trial_result(None, trial, {"epoch": e, "train.loss": 1.0 / e}) for e in (1, 2, 3, 4)]
    assert decisions == [TrialScheduler.CONTINUE] * 4  # stopped at epoch 4 it would never record its result
