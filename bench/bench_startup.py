"""Start-up time of the command line: ``monosweep --help``, ``validate`` and ``plan`` vs a bare ``python -c pass``.

Each command runs as a fresh process, as a user runs it; best of 5 wall-clock times per arm, the arms
interleaved. ``import torch`` is timed too: what validate and plan cost when the methods' declarations
imported it (they bind it lazily now: ``methods/_lazy.py``). Targets: ``--help`` <= 0.5 s, ``validate
examples/quickstart.yaml`` <= 2 s, ``plan`` of it (a fresh storage) <= 5 s.

    python bench/bench_startup.py            # best of 5
    python bench/bench_startup.py --smoke    # best of 2 (CI)
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _timing import parser as bench_parser

REPO = Path(__file__).resolve().parents[1]
TARGETS = {"monosweep --help": 0.5, "monosweep validate": 2.0, "monosweep plan": 5.0}


def _monosweep() -> list[str]:
    script = Path(sys.executable).parent / "monosweep"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "sweep.cli"]


def _seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = bench_parser(__doc__, smoke="two runs per arm (CI)")
    parser.add_argument("--runs", type=int, default=5, help="runs per arm; the best is reported")
    args = parser.parse_args()
    runs = 2 if args.smoke else args.runs
    with tempfile.TemporaryDirectory() as storage:
        arms = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import torch'": [sys.executable, "-c", "import torch"],
            "monosweep --help": [*_monosweep(), "--help"],
            "monosweep validate": [*_monosweep(), "validate", "examples/quickstart.yaml", "--storage", storage],
            "monosweep plan": [*_monosweep(), "plan", "examples/quickstart.yaml", "--storage", storage],
        }
        best = dict.fromkeys(arms, float("inf"))
        for _ in range(runs):  # interleaved, so a slow moment of the machine hits every arm
            for name, command in arms.items():
                best[name] = min(best[name], _seconds(command))
    cores = len(os.sched_getaffinity(0))
    print(f"machine: {platform.machine()}, {cores} cores, Python {platform.python_version()}; best of {runs}")
    bare = best["python -c pass"]
    for name, seconds in best.items():
        target = TARGETS.get(name)
        verdict = "" if target is None else f"  (target <= {target:g} s: {'met' if seconds <= target else 'MISSED'})"
        print(f"{name:<26} {seconds:6.3f} s = {seconds / bare:5.1f}x python -c pass{verdict}")


if __name__ == "__main__":
    main()
