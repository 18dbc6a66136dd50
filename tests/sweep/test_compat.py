"""Users are not broken by a new version: every example spec keeps its trial ids, and a ledger written by an
older version resumes without re-running a finished trial (fixtures in tests/fixtures, see its README)."""

import gzip
import json
import shutil
from pathlib import Path

import pytest

from methods.registry import get_method
from methods.trial.config import option_fields
from sweep.grid import expand
from sweep.spec import load_spec
from tests.support import REPO
from tests.support.sweeps import cli, sweep_env

FIXTURES = REPO / "tests" / "fixtures"
GOLDEN = json.loads((FIXTURES / "golden-ids.json").read_text())
# Options added since the fixtures were written, with the default that does what the code did before.
ADDED_SINCE = {"reassign": 1, "lr_scaling": "none"}  # DeepCluster re-clustered every epoch; lr was never scaled


@pytest.mark.parametrize("example", sorted(GOLDEN))
def test_every_example_spec_keeps_its_trial_ids_values_and_defaults(example: str) -> None:
    trials = expand(load_spec(REPO / "examples" / example))
    golden = GOLDEN[example]
    assert [t.id for t in trials] == [g["id"] for g in golden]
    for trial, old in zip(trials, golden, strict=True):
        assert trial.values == old["values"]
        resolved = trial.config.to_dict()
        # What the trial runs with is what it ran with. The old code kept every method's options in every
        # trial's config (None where unset); what is left out now are options of other methods only.
        added = {k: resolved.pop(k) for k in set(resolved) - set(old["resolved"])}
        before = {**ADDED_SINCE, "trunk_of": trial.config.method}  # every trunk was its own method's
        assert added == {k: v for k, v in before.items() if k in added}
        assert {k: old["resolved"][k] for k in resolved} == resolved
        others = set(option_fields()) - set(get_method(trial.config.method).Options.model_fields)
        assert set(old["resolved"]) - set(resolved) <= others


def test_a_ledger_from_the_previous_version_resumes_without_rerunning_finished_trials(tmp_path: Path) -> None:
    spec = tmp_path / "legacy.yaml"
    shutil.copyfile(FIXTURES / "legacy-ledger" / "legacy.yaml", spec)
    root = tmp_path / "results" / "legacy"
    shutil.copytree(FIXTURES / "legacy-ledger", root, ignore=shutil.ignore_patterns("legacy.yaml", "*.gz"))
    packed = FIXTURES / "legacy-ledger" / "checkpoints" / "d74ca7d31590" / "checkpoint.pt.gz"
    (root / "checkpoints" / "d74ca7d31590" / "checkpoint.pt").write_bytes(gzip.decompress(packed.read_bytes()))
    before = {p.stem: p.read_bytes() for p in (root / "trials").glob("*.json")}
    finished = [k for k, v in before.items() if json.loads(v)["status"] == "finished"]
    assert len(finished) == 3 and json.loads(before["d74ca7d31590"])["status"] == "running"

    env = sweep_env(MONOSWEEP_LEASE_TIMEOUT_S="3")  # the dead driver's lease names another machine, maybe
    plan = cli("plan", str(spec), "--storage", str(tmp_path / "results"), env=env)
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert "4 trials - 3 finished, 0 diverged, 1 to run" in plan.stdout
    resumed = cli("run", str(spec), "--storage", str(tmp_path / "results"), env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "ran 1, skipped 3" in resumed.stdout
    after = {p.stem: p.read_bytes() for p in (root / "trials").glob("*.json")}
    assert {k: after[k] for k in finished} == {k: before[k] for k in finished}  # byte-identical
    record = json.loads(after["d74ca7d31590"])
    assert record["status"] == "finished" and record["attempts"] == 2 and record["resumed_from"] == [1]
    assert [h["epoch"] for h in record["result"]["history"]] == [1.0, 2.0, 3.0]  # continued after epoch 1
    status = cli("status", str(spec), "--storage", str(tmp_path / "results"), env=env)
    assert status.stdout.count("finished") == 4
