"""Platform overhead per trial: no-op trials through `monosweep run` vs the same trials in a plain loop.

Both arms run the same trials (the test suite's no-op method: build the trunk, one empty epoch, no
probe) on the same machine. The sweep arm pays for everything the platform adds: spec expansion, the
ledger, Ray start-up, Tune scheduling, one actor per concurrent trial, records and checkpoints in
storage. Target: <= 0.5 s of overhead per trial.

    python bench/bench_platform.py              # 100 trials
    python bench/bench_platform.py --trials 400
    python bench/bench_platform.py --smoke      # 4 trials (CI); still starts Ray (~10 s)
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from _timing import parser as bench_parser

from methods import TrialConfig, registry, run_trial
from sweep.driver import run_sweep
from sweep.spec import SweepSpec

REPO = Path(__file__).resolve().parents[1]

FIXED = {"method": "noop", "arch": "small", "epochs": 1, "probe_epochs": 0, "device": "cpu"}


def main() -> None:
    parser = bench_parser(__doc__, smoke="4 trials (CI)")
    parser.add_argument("--trials", type=int, default=100)
    args = parser.parse_args()
    if args.smoke:
        args.trials = 4
    # The no-op method of the tests, here and in the Ray workers (they inherit this environment).
    os.environ["MONOSWEEP_PLUGINS"] = "noop_method"
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "tests" / "plugins"),
                                                             os.environ.get("PYTHONPATH", "")]))
    sys.path.insert(0, str(REPO / "tests" / "plugins"))
    registry.load_plugins()
    cores = len(os.sched_getaffinity(0))
    print(f"machine: {platform.machine()}, {cores} cores; {args.trials} no-op trials (1 epoch, checkpointed)")

    start = time.perf_counter()
    for seed in range(args.trials):
        run_trial(TrialConfig(**FIXED, seed=seed))
    loop = (time.perf_counter() - start) / args.trials

    with tempfile.TemporaryDirectory() as tmp:
        spec = SweepSpec(name="overhead", grid={"seed": list(range(args.trials))}, fixed=FIXED,
                         resources={"cpu": 1}, storage=tmp)
        start = time.perf_counter()
        summary = run_sweep(spec, "bench", log=lambda message: None)
        sweep = (time.perf_counter() - start) / args.trials
    assert summary.counts == {"finished": args.trials}, summary.counts
    # The sweep runs `cores` trials at once; the loop one at a time.
    print(f"plain loop:      {loop:.3f} s/trial (one at a time)")
    print(f"monosweep run:   {sweep:.3f} s/trial wall ({cores} at a time, Ray start-up included)")
    print(f"platform overhead: {sweep * cores - loop:+.3f} s of slot time per trial; "
          f"wall-time ratio sweep/loop {sweep / loop:.2f}x")


if __name__ == "__main__":
    main()
