"""Every benchmark under bench/ runs end to end at tiny size (``--smoke``) and prints its ratio line.

The benches are found by glob, so a new ``bench/bench_*.py`` is covered without touching this file (it
must take ``--smoke``). They run as subprocesses, started together by a module fixture and run a few
at a time (smoke runs use one thread each), so the file takes about as long as the slowest benches
rather than the sum of all; the ones that start Ray (the slowest) are started first. Two at a time, with
minutes of room each: beside the science tests' background process, a third Ray bench on a slow 2-core
machine once took bench_packing's smoke run past a 240 s limit (alone it takes ~20 s).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support import REPO

BENCHES = sorted((REPO / "bench").glob("bench_*.py"))
RATIO = re.compile(r"\b\d+(?:\.\d+)?x\b")  # "4.9x", "0.98x" (not the "512x512" of a size)
PARALLEL = 2
TIMEOUT_S = 540  # (under pytest's 600 s per test: a hung bench fails here, with its output)


def _run(bench: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, str(bench), "--smoke"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT_S)


def _starts_ray(bench: Path) -> bool:
    return any(word in bench.read_text() for word in ("run_sweep", "RayNodes"))


@pytest.fixture(scope="module")
def smoke_runs(request: pytest.FixtureRequest) -> Iterator[dict[str, Future[subprocess.CompletedProcess[str]]]]:
    """The selected benches' smoke runs, all submitted at once (Ray benches first)."""
    selected = {item.callspec.params["bench"] for item in request.session.items
                if item.module is request.module and hasattr(item, "callspec")}
    order = sorted(selected, key=lambda name: (not _starts_ray(REPO / "bench" / name), name))
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        yield {name: pool.submit(_run, REPO / "bench" / name) for name in order}


def test_benches_found() -> None:
    assert {"bench_generator.py", "bench_platform.py"} <= {b.name for b in BENCHES}


@pytest.mark.parametrize("bench", [b.name for b in BENCHES])
def test_bench_smoke(bench: str, smoke_runs: dict[str, Future[subprocess.CompletedProcess[str]]]) -> None:
    done = smoke_runs[bench].result()
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{bench} --smoke exited {done.returncode}:\n{output[-3000:]}"
    assert RATIO.search(done.stdout), f"{bench} --smoke printed no ratio (a number followed by 'x'):\n{done.stdout}"
