"""Thousands of trials: a sweep of the test suite's no-op method on a two-node cluster of `ray start`
processes with S3 storage (a moto server), then `monosweep status` of it and `monosweep plan` of a ledger
ten times larger, each as a fresh process.

The alternative for the ledger read is the obvious one: the records read one after another (what
`Ledger.read_all` did before it read them concurrently), timed side by side in this process.
Targets: every trial recorded once; `status` of the 1,000-trial sweep <= 3 s; `plan` of 10,000 records <= 5 s.

    python bench/bench_scale.py              # 1,000 trials, a 10,000-record ledger
    python bench/bench_scale.py --smoke      # 20 trials, 200 records (CI)
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _timing import parser as bench_parser

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "plugins")]

from methods import registry  # noqa: E402
from sweep.grid import expand  # noqa: E402
from sweep.ledger.records import TrialRecord  # noqa: E402
from sweep.ledger.store import Ledger  # noqa: E402
from sweep.spec import load_spec  # noqa: E402
from sweep.storage import Storage  # noqa: E402
from tests.support.ray_nodes import RayNodes  # noqa: E402
from tests.support.servers import moto_s3, s3_client  # noqa: E402
from tests.support.sweeps import noop_spec, sweep_env  # noqa: E402


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    return time.perf_counter() - start, done


def main() -> None:
    parser = bench_parser(__doc__, smoke="20 trials, 200 records (CI)")
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--records", type=int, default=10_000)
    args = parser.parse_args()
    if args.smoke:
        args.trials, args.records = 20, 200
    cores = len(os.sched_getaffinity(0))
    print(f"machine: {platform.machine()}, {cores} cores; {args.trials} no-op trials on 2 nodes, S3 (moto)")
    monosweep = [sys.executable, "-m", "sweep.cli"]
    with tempfile.TemporaryDirectory() as tmp, moto_s3("sweeps") as s3_env:
        env = sweep_env(**s3_env, RAY_AUTH_MODE="disabled")
        for key in s3_env:
            os.environ[key] = s3_env[key]
        nodes = RayNodes(env)
        spec = noop_spec(Path(tmp) / "s.yaml", "scale", list(range(args.trials)), "s3://sweeps/bench", epochs=0)
        try:
            nodes.start_head()
            nodes.add_worker()
            seconds, ran = _timed([*monosweep, "run", str(spec), "--address", nodes.address], env)
        finally:
            nodes.stop()
        assert ran.returncode == 0, ran.stderr[-3000:]
        s3 = s3_client(s3_env)
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="sweeps",
                                                                                  Prefix="bench/scale/trials/")
                for o in page.get("Contents", [])]
        records = [json.loads(s3.get_object(Bucket="sweeps", Key=k)["Body"].read()) for k in keys]
        once = len(records) == args.trials and all(r["status"] == "finished" and r["attempts"] == 1 for r in records)
        print(f"sweep: {seconds:.0f} s for {args.trials} trials ({seconds / args.trials:.2f} s each on {cores} cores); "
              f"each trial recorded once and finished: {once}")
        status_s, status = _timed([*monosweep, "status", str(spec)], env)
        assert status.returncode == 0, status.stderr[-2000:]
        print(f"status of the {args.trials}-trial sweep: {status_s:.2f} s (target <= 3 s)")

        big = noop_spec(Path(tmp) / "big.yaml", "big", list(range(args.records)), "s3://sweeps/bench", epochs=0)
        storage = Storage("s3://sweeps/bench/big")
        template = TrialRecord.from_json(json.dumps(records[0]))
        registry.load_plugins("noop_method")
        ledger = Ledger(storage)
        for trial in expand(load_spec(big)):
            ledger.write(TrialRecord(trial.id, status="finished", values=trial.values, config=template.config,
                                     result=template.result))
        plan_s, plan = _timed([*monosweep, "plan", str(big)], env)
        assert plan.returncode == 0 and f"{args.records} trials - {args.records} finished" in plan.stdout, plan.stderr
        print(f"plan of a {args.records}-record ledger: {plan_s:.2f} s (target <= 5 s)")

        start = time.perf_counter()
        concurrent = ledger.read_all()
        concurrent_s = time.perf_counter() - start
        start = time.perf_counter()
        sequential = {name: ledger.read(name) for name in (n.removesuffix(".json") for n in storage.list("trials"))}
        sequential_s = time.perf_counter() - start
        assert len(concurrent) == len(sequential) == args.records
        print(f"reading {args.records} records: concurrent {concurrent_s:.2f} s, one after another "
              f"{sequential_s:.2f} s: {sequential_s / concurrent_s:.1f}x")


if __name__ == "__main__":
    main()
