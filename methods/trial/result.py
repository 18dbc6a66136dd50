"""What a trial produced: its resolved config, status, per-epoch history and per-layer probe table.

Plain data (no torch), so the ledger can hold it typed and every reader asks it for the same flat metrics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from methods.metrics import EPOCH, flat_probe

__all__ = ["FINISHED", "DIVERGED", "TrialResult"]

FINISHED, DIVERGED = "finished", "diverged"  # how a trial that ran to its end ended


@dataclass
class TrialResult:
    """``to_dict()`` is JSON-ready and ``from_dict`` reads it back."""

    config: dict[str, Any]
    status: str  # FINISHED | DIVERGED (training failed; the last good state was probed)
    epochs_done: int
    history: list[dict[str, float]] = field(default_factory=list)  # one entry per epoch, its metrics
    probe: dict[str, dict[str, float]] = field(default_factory=dict)  # layer -> top1, top5, loss
    seconds: dict[str, float] = field(default_factory=dict)
    message: str = ""
    environment: dict[str, str] = field(default_factory=dict)  # code, torch, CUDA, device (methods/provenance.py)
    inputs: dict[str, dict[str, str]] = field(default_factory=dict)  # what the data was for -> name, digest, source

    def probe_metrics(self) -> dict[str, float]:
        """The probe table as flat metrics: ``probe.conv1.top1`` ... ``probe.conv5.loss``, ``probe.mean.top1``."""
        return flat_probe(self.probe)

    def metrics(self) -> dict[str, float]:
        """The trial's final flat metrics: its last epoch's, the probe's, the epoch count and ``diverged``
        (1.0 or 0.0), which is what a search ranks on and a scheduler sees last."""
        last = self.history[-1] if self.history else {}
        return {**last, "diverged": float(self.status == DIVERGED), EPOCH: float(self.epochs_done),
                **self.probe_metrics()}

    def table(self) -> str:
        lines = ["layer   top1 %   top5 %", "-----   ------   ------"]
        lines += [f"{layer:<7} {vals['top1']:6.2f}   {vals['top5']:6.2f}" for layer, vals in self.probe.items()]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrialResult:
        """Fields a newer version added are left out, fields an older one lacked take their defaults."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})
