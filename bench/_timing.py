"""What every benchmark shares: its command line and its timing loop (imported by the ``bench_*.py``
scripts, which run from bench/)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

SMOKE = "a few seconds at tiny size (CI)"


def parser(doc: str | None, rounds: int | None = None, smoke: str = SMOKE) -> argparse.ArgumentParser:
    """A benchmark's argument parser: its docstring as help, ``--smoke`` (what CI runs), and ``--rounds`` (how
    many alternating rounds of the arms; medians are reported) when it has rounds."""
    made = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    made.add_argument("--smoke", action="store_true", help=smoke)
    if rounds is not None:
        made.add_argument("--rounds", type=int, default=rounds, help="alternating rounds; medians are reported")
    return made


def rate(step: Callable[[], int], seconds: float, sync: Callable[[], None] = lambda: None, warmup: int = 0) -> float:
    """Units per second of ``step`` (it returns how many units it did: patches, images, 1 per call) over at
    least ``seconds`` and at least one step, after ``warmup`` untimed steps; ``sync`` waits for the device."""
    for _ in range(warmup):
        step()
    sync()
    done, start = 0, time.perf_counter()
    while done == 0 or time.perf_counter() - start < seconds:
        done += step()
    sync()
    return done / (time.perf_counter() - start)
