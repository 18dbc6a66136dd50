"""The timing loop every benchmark shares (imported by the ``bench_*.py`` scripts, run from bench/)."""

from __future__ import annotations

import time
from collections.abc import Callable


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
