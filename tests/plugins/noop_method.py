"""A test-only method that trains nothing but goes through every step of the trial protocol.

Loaded through $MONOSWEEP_PLUGINS, so Ray workers register it too. Its "training" sleeps
``MONOSWEEP_NOOP_SLEEP`` seconds per step (0 by default), which lets tests catch a sweep mid-run; with
``MONOSWEEP_NOOP_LOG`` set to a file, each step that completes appends "<seed> <epoch>" to it (one step an
epoch), so a test can count how often each epoch ran, on whichever node; with ``MONOSWEEP_NOOP_HANG`` set
to "<epoch>:<marker file>", the step of that epoch hangs the first time (while the marker does not exist
yet: it is made before the hang), so a test can see a hung attempt ended and the next one go on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

from methods import Method, MethodOptions, TrainingDefaults, lazy, register

torch = lazy("torch")  # (as the built-in methods do: declaring the method costs no torch)


@register
class NoOp(Method[MethodOptions]):
    """No-op: one cheap step per batch, for platform tests and overhead benchmarks."""

    name = "noop"
    defaults = TrainingDefaults(epochs=1, batch_size=1, lr=0.0, momentum=0.0, weight_decay=0.0)

    def steps_per_epoch(self) -> int:
        return 1

    def batches(self, epoch: int) -> Iterable[Any]:
        return [epoch]

    def training_step(self, batch: Any) -> dict[str, torch.Tensor]:
        time.sleep(float(os.environ.get("MONOSWEEP_NOOP_SLEEP", "0")))
        hang = os.environ.get("MONOSWEEP_NOOP_HANG")
        if hang:
            epoch, marker = hang.split(":", 1)
            if int(epoch) == batch and not os.path.exists(marker):
                open(marker, "w").close()
                time.sleep(3600)  # hung: only a time limit ends this attempt
        log = os.environ.get("MONOSWEEP_NOOP_LOG")
        if log:
            with open(log, "a") as handle:  # (one short append: whole lines even from two processes)
                handle.write(f"{self.cfg.seed} {batch}\n")
        return {"loss": torch.tensor(0.0)}
