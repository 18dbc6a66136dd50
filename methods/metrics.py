"""The names of what a trial measures, defined once: the trunk's probed layers and the metric keys.

A trial reports flat metrics (``train.loss``, ``probe.conv3.top1``, ...); the ledger stores them, Ray Tune
schedules on them, MLflow shows them and reports read them. Every one of those reads the names from here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["EPOCH", "EPOCH_SECONDS", "LAYERS", "LR", "MEAN_TOP1", "PROBE", "STEPS", "TRAIN", "flat_probe",
           "probe_metric", "trial_metrics"]

# The conv layers whose outputs (after their ReLU, before pooling) the probe reads.
LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")

TRAIN = "train."  # a method's own step metrics, averaged over the epoch: train.loss, train.acc, train.nmi, ...
PROBE = "probe."  # linear-probe results: probe.<layer>.<top1 | top5 | loss>, and probe.mean.top1
EPOCH, LR, EPOCH_SECONDS, STEPS = "epoch", "lr", "epoch_seconds", "steps"
MEAN_TOP1 = "probe.mean.top1"  # the mean top-1 over the layers: one number for a search to rank on


def probe_metric(layer: str, stat: str) -> str:
    return f"{PROBE}{layer}.{stat}"


def flat_probe(probe: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """A probe table ({layer: {stat: value}}) as flat metrics, plus the mean top-1 over its layers."""
    flat = {probe_metric(layer, stat): float(v) for layer, stats in probe.items() for stat, v in stats.items()}
    if probe:
        flat[MEAN_TOP1] = sum(float(stats["top1"]) for stats in probe.values()) / len(probe)
    return flat


def trial_metrics(values: Mapping[str, Any]) -> dict[str, float]:
    """The finite metrics a trial reports itself, out of ``values`` (a scheduler's bookkeeping such as Tune's
    ``time_total_s``, non-numbers and NaN left out): what MLflow shows."""
    return {k: float(v) for k, v in values.items() if (k.startswith((TRAIN, PROBE)) or k in (EPOCH, LR, EPOCH_SECONDS))
            and isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}
