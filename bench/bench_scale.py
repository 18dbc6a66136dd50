"""Thousands of trials: a sweep of the test suite's no-op method on a two-node cluster of `ray start`
processes with S3 storage (a moto server), then `monosweep status` of it and `monosweep plan` of a ledger
ten times larger, each as a fresh process.

The alternatives for the ledger read are the obvious ones: the records read one after another (what
`Ledger.read_all` did before it read them concurrently), and every record fetched again (before the local
copy of unchanged S3 records), timed side by side in this process. `status` and `plan` are timed from a
machine that never read the sweep (an empty cache) and again after it has.
Targets: every trial recorded once; `status` of the 1,000-trial sweep <= 3 s; `plan` of 10,000 records <= 5 s.

    python bench/bench_scale.py              # 1,000 trials, a 10,000-record ledger
    python bench/bench_scale.py --smoke      # 8 trials, 64 records (CI; 64 >= the 32 a snapshot needs)
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _timing import parser as bench_parser

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "plugins")]

from methods import registry  # noqa: E402
from sweep.grid import expand  # noqa: E402
from sweep.ledger import snapshot  # noqa: E402
from sweep.ledger.cache import CACHE_ENV  # noqa: E402
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
    parser = bench_parser(__doc__, smoke="8 trials, 64 records (CI)")
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--records", type=int, default=10_000)
    args = parser.parse_args()
    if args.smoke:
        args.trials, args.records = 8, 64
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
        assert once, sorted((r["status"], r["attempts"]) for r in records)
        cold_env = {**env, CACHE_ENV: str(Path(tmp) / "cold-cache")}  # what another machine sees first
        status_cold, status = _timed([*monosweep, "status", str(spec)], cold_env)
        assert status.returncode == 0, status.stderr[-2000:]
        status_warm, _ = _timed([*monosweep, "status", str(spec)], cold_env)
        print(f"status of the {args.trials}-trial sweep: {status_cold:.2f} s from a machine that never read it, "
              f"{status_warm:.2f} s once it has (records unchanged since: from its local copy) (target <= 3 s)")

        template = TrialRecord.from_json(json.dumps(records[0]))
        registry.load_plugins("noop_method")
        for where in (f"{tmp}/local", "s3://sweeps/bench"):
            big = noop_spec(Path(tmp) / "big.yaml", "big", list(range(args.records)), where, epochs=0)
            ledger = Ledger(Storage(f"{where}/big"))
            trials = expand(load_spec(big))
            finished = [TrialRecord(t.id, status="finished", values=t.values, config=template.config,
                                    result=template.result) for t in trials]
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(ledger.write, finished))
            seconds = []
            machines = ("big-a", "big-a", "big-b")  # a reader, the same again, another that never read it
            for machine in machines if where.startswith("s3://") else machines[:2]:
                plan_s, plan = _timed([*monosweep, "plan", str(big)], {**env, CACHE_ENV: str(Path(tmp) / machine)})
                assert plan.returncode == 0 and f"{args.records} trials - {args.records} finished" in plan.stdout, \
                    plan.stderr[-2000:]
                seconds.append(plan_s)
            if where.startswith("s3://"):
                print(f"plan of a {args.records}-record ledger on S3 (moto) storage: {seconds[0]:.2f} s by the first "
                      f"reader ever, {seconds[1]:.2f} s by it again (its local copy), {seconds[2]:.2f} s by another "
                      f"machine (the snapshot the first one left) (target <= 5 s)")
            else:
                print(f"plan of a {args.records}-record ledger on local storage: {seconds[0]:.2f} s, "
                      f"again {seconds[1]:.2f} s (target <= 5 s)")

        sample = Ledger(Storage("s3://sweeps/bench/scale"))  # the sweep's own records
        sample.storage.delete(snapshot.SNAPSHOT)  # (status left one: first the reads without it)
        os.environ[CACHE_ENV] = str(Path(tmp) / "no-cache")
        start = time.perf_counter()
        concurrent = sample.read_all()  # (it leaves a snapshot again)
        concurrent_s = time.perf_counter() - start
        names = [n.removesuffix(".json") for n in sample.storage.list("trials")]
        start = time.perf_counter()
        sequential = {name: sample.read(name) for name in names}
        sequential_s = time.perf_counter() - start
        assert len(concurrent) == len(sequential) == args.trials
        shutil.rmtree(Path(tmp) / "no-cache")
        left = "from the snapshot" if sample.storage.read(snapshot.SNAPSHOT) else "(none left: too few to be worth one)"
        start = time.perf_counter()
        shared = sample.read_all()
        shared_s = time.perf_counter() - start
        start = time.perf_counter()
        copied = sample.read_all()
        copied_s = time.perf_counter() - start
        assert shared == copied == concurrent
        print(f"reading {args.trials} records from S3 (moto): one after another {sequential_s:.2f} s, concurrently "
              f"{concurrent_s:.2f} s ({sequential_s / concurrent_s:.1f}x); by a new reader {left} "
              f"{shared_s:.2f} s ({concurrent_s / shared_s:.1f}x vs concurrently); unchanged since this machine's "
              f"last read {copied_s:.2f} s ({concurrent_s / copied_s:.1f}x)")


if __name__ == "__main__":
    main()
