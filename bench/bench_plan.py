"""What `monosweep plan` of a 10,000-record ledger spends on this machine's side, each piece against what it
did before, side by side in this process (the S3 listing is the server's and is timed by bench_scale.py):

- the spec (a grid of 10,000 seeds): PyYAML's pure-Python parser vs libyaml's (``sweep/spec.py``);
- the grid: every value first built alone as a config (to name a bad one) and then every trial, vs the trials
  only, a value checked alone once a trial fails (``sweep/grid.py``);
- the snapshot a new reader takes its records from: each record also copied into the local cache (10,000
  files), vs not; and what a later read on that machine pays for each: its 10,000 cached files vs the
  snapshot read again (here from local storage: on S3 add one GET of it).

    python bench/bench_plan.py            # 10,000 records, best of 3
    python bench/bench_plan.py --smoke    # 200 records, best of 1 (CI)
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml
from _timing import parser as bench_parser

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from methods.trial.config import TrialConfig  # noqa: E402
from sweep.grid import expand  # noqa: E402
from sweep.ledger import snapshot  # noqa: E402
from sweep.ledger.cache import CACHE_ENV, RecordCache  # noqa: E402
from sweep.ledger.records import TrialRecord  # noqa: E402
from sweep.spec import load_spec  # noqa: E402
from sweep.storage import Storage  # noqa: E402


def _best(rounds: int, *arms: Callable[[], object]) -> list[float]:
    """Best wall time of each arm over ``rounds`` rounds, the arms interleaved."""
    best = [float("inf")] * len(arms)
    for _ in range(rounds):
        for i, arm in enumerate(arms):
            start = time.perf_counter()
            arm()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def _checked_alone_first(spec_path: Path) -> None:
    """The grid as expanded before: each value built alone as a config first, then every trial."""
    spec = load_spec(spec_path)
    for axis, values in spec.grid.items():
        for value in values:
            TrialConfig.from_dict({**spec.fixed, axis: value})
    expand(spec)


def main() -> None:
    args = bench_parser(__doc__).parse_args()
    n, rounds = (200, 1) if args.smoke else (10_000, 3)
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {len(os.sched_getaffinity(0))} cores; "
          f"{n} records, best of {rounds}")
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "big.yaml"
        spec_path.write_text(f"name: big\ngrid:\n  method: [random]\n  seed: {list(range(n))}\n"
                             f"fixed: {{probe_data: demo, img_size: 64}}\nstorage: {tmp}/results\n")
        text = spec_path.read_text()
        python_s, c_s = _best(rounds, lambda: yaml.load(text, Loader=yaml.SafeLoader),  # noqa: S506
                              lambda: yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))  # noqa: S506
        print(f"spec of {n} seeds: PyYAML's Python parser {python_s:.3f} s, libyaml {c_s:.3f} s "
              f"({python_s / c_s:.1f}x)")
        trials = expand(load_spec(spec_path))
        before_s, now_s = _best(rounds, lambda: _checked_alone_first(spec_path), lambda: expand(load_spec(spec_path)))
        print(f"grid of {n} trials: values checked alone first {before_s:.3f} s, only trials {now_s:.3f} s "
              f"({before_s / now_s:.2f}x; spec parse included)")

        template = TrialRecord(trials[0].id, status="finished", values=trials[0].values,
                               config=trials[0].config.to_dict())
        records = {t.id: TrialRecord(t.id, status="finished", values=t.values, config=template.config).to_json()
                   .encode() for t in trials}
        storage = Storage(f"{tmp}/results/big")
        snapshot.save(storage, records)
        os.environ[CACHE_ENV] = f"{tmp}/cache"
        cache = RecordCache("s3://bench/big")
        versions = {trial_id: hashlib.md5(data, usedforsecurity=False).hexdigest()  # (the ETag S3 would list)
                    for trial_id, data in records.items()}

        def take(copy: bool) -> None:
            for trial_id, data in snapshot.load(storage).items():
                assert snapshot.vouched(data, versions[trial_id])
                if copy:
                    cache.put(trial_id, versions[trial_id], data)

        copied_s, taken_s = _best(rounds, lambda: take(True), lambda: take(False))
        cached_s, again_s = _best(rounds, lambda: [cache.get(t, versions[t]) for t in records], lambda: take(False))
        print(f"a new reader taking {n} records from the snapshot: copying each into the cache {copied_s:.3f} s, "
              f"not {taken_s:.3f} s ({copied_s / taken_s:.1f}x); the next read: from the cache {cached_s:.3f} s, "
              f"the snapshot again {again_s:.3f} s (+ one GET on S3)")


if __name__ == "__main__":
    main()
