"""A trial killed after epoch k and restarted from its checkpoint continues at k+1 with identical state."""

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

from methods import run_trial
from methods.trial.reporter import CHECKPOINT_FILE
from tests.support import REPO
from tests.support.configs import Recorder, tiny

CONFIG = dict(epochs=3, probe_epochs=1)
PATCHES = {"rotnet": 96, "deepcluster": 96}  # (BiGAN: tiny's own, fewer)
# DeepCluster re-clusters every 2 epochs: killed after epoch 1 it resumes inside a round (its labels, top layer
# and that layer's optimiser come from the checkpoint) and re-clusters at epoch 3.
OPTIONS = {"deepcluster": {"reassign": 2}}


class Killed(Exception):
    pass


def _assert_same_state(a: Any, b: Any) -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same_state(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same_state(x, y)
    else:
        assert a == b


def _run(tmp: Path, method: str, kill_after: int | None = None,
         resume: Path | None = None) -> tuple[list[float], dict[str, Any]]:
    epochs_seen: list[float] = []
    keep = tmp / "ckpt"

    def keep_checkpoint(metrics: Mapping[str, float], checkpoint: Path) -> None:
        epochs_seen.append(metrics["epoch"])
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(checkpoint / CHECKPOINT_FILE, keep / CHECKPOINT_FILE)
        if kill_after is not None and metrics["epoch"] == kill_after:
            raise Killed

    try:
        sized = {"patches_per_epoch": PATCHES[method]} if method in PATCHES else {}
        config = tiny(method=method, **CONFIG, **sized, **OPTIONS.get(method, {}))
        run_trial(config, report=Recorder(on_epoch=keep_checkpoint), resume_from=resume)
    except Killed:
        pass
    return epochs_seen, torch.load(keep / CHECKPOINT_FILE, weights_only=False)


@pytest.mark.parametrize("method", ["rotnet", "deepcluster", "bigan"])
def test_killed_and_resumed_trial_ends_bit_identical(tmp_path: Path, method: str) -> None:
    epochs, straight = _run(tmp_path / "a", method)
    assert epochs == [1.0, 2.0, 3.0]
    epochs, partial = _run(tmp_path / "b", method, kill_after=1)
    assert epochs == [1.0] and partial["epoch"] == 1
    assert ("round" in partial["method"]) == (method == "deepcluster")  # (mid-round: the round is saved)
    epochs, resumed = _run(tmp_path / "b", method, resume=tmp_path / "b" / "ckpt")
    assert epochs == [2.0, 3.0]  # continues at k + 1
    assert resumed["epoch"] == 3
    _assert_same_state(straight["method"], resumed["method"])
    assert [h["train.loss"] for h in straight["history"]] == [h["train.loss"] for h in resumed["history"]]


def test_cli_trial_killed_mid_run_resumes_from_its_checkpoint_dir(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    args = [sys.executable, "-m", "methods", "--method", "rotnet", "--img-size", "64", "--epochs", "3",
            "--patches-per-epoch", "96", "--batch-size", "32", "--head-hidden", "64", "--probe-epochs", "1",
            "--probe-train-limit", "240", "--probe-val-limit", "120", "--workers", "0", "--device", "cpu",
            "--checkpoint-dir", str(ckpt), "--output", str(tmp_path / "result.json")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "epoch 1/3" in line:
            break
    deadline = time.monotonic() + 60
    while not (ckpt / CHECKPOINT_FILE).is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert torch.load(ckpt / CHECKPOINT_FILE, weights_only=False)["epoch"] >= 1
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert "resuming rotnet after epoch" in done.stderr
    assert "conv5" in done.stdout
    assert torch.load(ckpt / CHECKPOINT_FILE, weights_only=False)["epoch"] == 3
