"""K seeds of a tiny RotNet trial packed onto one device vs the same K trials one after another.

Both arms go through the real platform (``sweep.driver.run_sweep``: spec, ledger, Ray Tune, MLflow mirror)
with a spec built in code whose grid is ``seed: [0 .. K-1]``; each run has its own temporary storage. The
local Ray runtime is started once, and one MLflow database (each run its own experiment in it) is
created once, before anything is timed: both are per-session costs that packing does not change.

* GPU: packed = ``resources: {gpu: 1/K}`` with ``max_concurrent_trials: K`` (fractional GPUs: the K trials
  time-slice one GPU); sequential = ``{gpu: 1}`` with ``max_concurrent_trials: 1``
  (performance-notes §7 row 22: MPS co-location gives at most ~+30 %, time-slicing less; packing pays
  where one small trial leaves the GPU idle, at 64-128 px).
* CPU: Ray's CPU resources are logical and a trial's worker gets one thread per reserved CPU, so both arms
  reserve ``cpu: 1`` and differ only in ``max_concurrent_trials`` (K vs 1). Packing then measures how well
  K one-thread trials share the machine's cores: at most ~min(K, cores)x (2x on 2 cores), less what the
  trials' start-up and the platform cost.

Printed: wall time and aggregate patches/s of each arm (patches of all K trials / wall time of
``run_sweep``), the ratio packed / sequential, and the same ratio over the training span only (from the
first trial's training start to the last trial's record, from the ledger: the per-sweep cost of Tune and
the MLflow mirror left out, the per-trial cost between trials kept). The arms alternate over the rounds
(ABBA order) and medians are reported.

    python bench/bench_packing.py                 # CPU: K = cores, 256 patches; GPU: K = 4, 200,000 patches
    python bench/bench_packing.py --k 8 --patches 20000
    python bench/bench_packing.py --smoke         # tiny trials (CI); still starts Ray (~10 s)
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from typing import Any

import torch
from _timing import parser as bench_parser

from sweep.driver import run_sweep
from sweep.execution.session import connect
from sweep.ledger.store import Ledger
from sweep.spec import SweepSpec
from sweep.storage import Storage


def run_arm(fixed: dict[str, Any], k: int, packed: bool, cuda: bool, name: str,
            tracking: str) -> tuple[float, float, float]:
    """One sweep of K seeds; returns (wall seconds, training-span seconds, mean in-trial training seconds)."""
    if cuda:
        resources = {"cpu": 1.0, "gpu": 1.0 / k if packed else 1.0}
    else:
        resources = {"cpu": 1.0, "gpu": 0.0}
    with tempfile.TemporaryDirectory(prefix="bench-packing-") as tmp:
        spec = SweepSpec(name=name, grid={"seed": list(range(k))}, fixed=fixed, resources=resources,
                         max_concurrent_trials=k if packed else 1, retries=0, storage=tmp, tracking_uri=tracking)
        start = time.perf_counter()
        summary = run_sweep(spec, "bench", log=lambda message: None)
        wall = time.perf_counter() - start
        assert summary.counts == {"finished": k}, summary.counts
        records = Ledger(Storage(spec.storage_uri())).read_all().values()
        ends = [r.updated for r in records]
        trains = [float(r.result.seconds["train"]) for r in records if r.result]
    starts = [end - train for end, train in zip(ends, trains, strict=True)]
    return wall, max(ends) - min(starts), statistics.mean(trains)


def main() -> None:
    parser = bench_parser(__doc__, rounds=2, smoke="tiny trials, one round (CI)")
    parser.add_argument("--k", type=int, default=None, help="trials (seeds) per arm (default: CUDA 4, CPU cores)")
    parser.add_argument("--patches", type=int, default=None, help="patches per trial (default: CUDA 200000, CPU 256)")
    parser.add_argument("--size", type=int, default=64, help="patch px")
    parser.add_argument("--batch", type=int, default=None, help="RotNet batch (default: CUDA 192, CPU 32)")
    parser.add_argument("--head-hidden", type=int, default=256, help="RotNet head width (small: tiny trials)")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    cuda = torch.cuda.is_available()
    if args.smoke:
        args.k, args.patches, args.batch, args.head_hidden, args.rounds = 2, 16, 8, 16, 1
    k = args.k or (4 if cuda else cores)
    patches = args.patches or (200_000 if cuda else 256)
    batch = args.batch or (192 if cuda else 32)
    fixed = {"method": "rotnet", "img_size": args.size, "epochs": 1, "patches_per_epoch": patches,
             "batch_size": batch, "head_hidden": args.head_hidden, "probe_epochs": 0, "workers": 0, "device": "auto"}
    gpu = torch.cuda.get_device_name() if cuda else "none"
    cpu = platform.processor() or platform.machine()
    print(f"machine: {cpu}, {cores} cores, GPU: {gpu}; torch {torch.__version__}")
    how = f"gpu: 1/{k} each" if cuda else "cpu: 1 each (one thread per trial)"
    print(f"{k} RotNet trials (seeds) per arm: {args.size} px, {patches} patches, batch {batch}, head "
          f"{args.head_hidden}, 1 epoch, no probe; packed: {k} at a time, {how}; sequential: 1 at a time")

    # Before anything is timed: the local Ray runtime, and one MLflow database for every run (each run its
    # own experiment), so that no arm pays for creating a database (~6 s on 2 cores, once per new sweep).
    connect(None)
    with tempfile.TemporaryDirectory(prefix="bench-packing-mlflow-") as tracking_dir:
        tracking = f"sqlite:///{tracking_dir}/mlflow.db"
        from mlflow import MlflowClient

        MlflowClient(tracking_uri=tracking).search_experiments()
        results: dict[bool, list[tuple[float, float, float]]] = {True: [], False: []}
        for r in range(args.rounds):
            for packed in ((False, True) if r % 2 == 0 else (True, False)):
                name = f"packing-{'packed' if packed else 'sequential'}-{r}"
                results[packed].append(run_arm(fixed, k, packed, cuda, name, tracking))

    total = k * patches
    med = {packed: [statistics.median(v[i] for v in runs) for i in range(3)] for packed, runs in results.items()}
    print(f"{'arm':<22}{'wall s':>8}{'span s':>8}{'patches/s (wall)':>18}{'patches/s (span)':>18}"
          f"{'train s/trial':>15}")
    for packed, label in ((False, "sequential (1 at a time)"), (True, f"packed ({k} at a time)")):
        wall, span, train = med[packed]
        print(f"{label:<22}{wall:>8.1f}{span:>8.1f}{total / wall:>18.1f}{total / span:>18.1f}{train:>15.2f}")
    (seq_wall, seq_span, _), (pack_wall, pack_span, _) = med[False], med[True]
    print(f"packed / sequential, aggregate patches/s over the sweep's wall time: {seq_wall / pack_wall:.2f}x")
    print(f"packed / sequential, over the training span only: {seq_span / pack_span:.2f}x")

    import ray

    ray.shutdown()


if __name__ == "__main__":
    main()
