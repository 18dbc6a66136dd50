"""The science test's trunks, trained in a process of their own from the start of the test session.

Training one-image RotNet (768 steps: at 384 its conv2 lead over the random trunks' mean was 1.4 points
against their spread of 1.1; at 768, 2.2 and 3.4 for two seeds), one-image DeepCluster (1,280 steps) and a
supervised trunk and probing nine trunks on CIFAR-10 takes ~30 minutes of one core, all compute; the platform
tests around it mostly wait (on Ray starting, on outages and time limits they inject). So the conftest
starts this module as a background process when the science tests are selected (with one thread, leaving a
core to the rest), moves those tests to the end of the session, and their fixture collects what this
process wrote.
Run alone it uses both cores.

    python -m tests.support.science CIFAR_TAR OUT.json THREADS
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from methods import TrialConfig, TrialResult, run_trial

SEEDS = (0, 1, 2)
COMMON = {"arch": "small", "img_size": 64, "probe_train_limit": 10000, "probe_val_limit": 5000, "probe_epochs": 20,
          "workers": 0, "device": "cpu"}
TRUNKS: dict[str, list[dict[str, object]]] = {
    "random": [{"method": "random", "seed": s} for s in SEEDS],
    "rotnet": [{"method": "rotnet", "source": "sample:astronaut", "num_images": 1, "augment": "full", "epochs": 48,
                "patches_per_epoch": 1024, "batch_size": 64, "head_hidden": 0}],
    "supervised": [{"method": "supervised", "epochs": 3, "batch_size": 64, "head_hidden": 512}],
    # DeepCluster sees Sobel input, as in its original: its baseline is a random trunk with the same input.
    # Its settings are examples/cpu-aligned.yaml's (the original's 128 patches per cluster, 320 steps between
    # clusterings, fc7 whitened to 32 dims), where it led that baseline on conv2 by 2.5-3.1 points.
    "random_sobel": [{"method": "random", "sobel": True, "seed": s} for s in SEEDS],
    "deepcluster": [{"method": "deepcluster", "source": "sample:astronaut", "num_images": 1, "augment": "full",
                     "epochs": 80, "reassign": 20, "clusters": 160, "pca_dim": 32, "patches_per_epoch": 1024,
                     "batch_size": 64, "head_hidden": 512, "lr_scaling": "linear"}],
}
WAIT_S = 2400.0  # the most the science tests wait for it (~20 min on one core beside the rest of CI)


def train(cifar: Path) -> dict[str, list[TrialResult]]:
    """Every trunk of ``TRUNKS``, trained and probed in this process, through ``run_trial``."""
    return {name: [run_trial(TrialConfig(**{**COMMON, "probe_data": str(cifar), **values}))  # type: ignore[arg-type]
                   for values in runs] for name, runs in TRUNKS.items()}


def start(cifar: Path, out: Path, threads: int) -> subprocess.Popen[bytes]:
    """This module as a background process writing ``out`` (its log beside it)."""
    log = out.with_suffix(".log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "tests.support.science", str(cifar), str(out), str(threads)],
                            cwd=Path(__file__).resolve().parents[2], stdout=log, stderr=subprocess.STDOUT)


def collect(process: subprocess.Popen[bytes], out: Path) -> dict[str, list[TrialResult]]:
    """Wait for the background process and read its trunks' results; its log's tail if it failed."""
    started = time.monotonic()
    try:
        process.wait(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        process.kill()
    if process.returncode != 0 or not out.is_file():
        tail = out.with_suffix(".log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"the science trunks' process ended {process.returncode} after "
                           f"{time.monotonic() - started:.0f} s of waiting:\n{tail}")
    data = json.loads(out.read_text())
    return {name: [TrialResult.from_dict(r) for r in results] for name, results in data.items()}


if __name__ == "__main__":
    tar, target, threads = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    trunks = train(tar)
    partial = target.with_suffix(".tmp")
    partial.write_text(json.dumps({name: [r.to_dict() for r in results] for name, results in trunks.items()}))
    partial.replace(target)
