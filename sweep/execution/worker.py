"""One trial inside a Ray worker: resume from Tune's or the ledger's checkpoint, run it, record it.

The trial writes its own ledger record (running, each checkpoint, its end or its failure), so the record
survives the driver; it reports every epoch and its end to Tune through :mod:`sweep.execution.messages`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ray
from ray import tune

from methods import registry
from methods.metrics import EPOCH
from methods.trial.config import TrialConfig
from methods.trial.reporter import CHECKPOINT_FILE, TRUNK_FILE
from methods.trial.result import TrialResult
from methods.trial.run import run_trial
from sweep.execution import messages
from sweep.execution.session import one_line
from sweep.ledger.records import TrialRecord
from sweep.ledger.store import Ledger
from sweep.storage import Storage

__all__ = ["trainable"]


class _Recorder:
    """The trial's reporter: each checkpoint into the ledger and to Tune; the final trunk into the ledger."""

    def __init__(self, ledger: Ledger, record: TrialRecord) -> None:
        self.ledger, self.record = ledger, record
        self.trunk: str | None = None

    def epoch(self, metrics: Mapping[str, float], checkpoint: Path) -> None:
        stored = self.ledger.save_checkpoint(self.record.id, checkpoint / CHECKPOINT_FILE)
        self.record.checkpointed(int(metrics[EPOCH]), stored)
        self.ledger.write(self.record)
        tune.report(messages.epoch(metrics), checkpoint=tune.Checkpoint.from_directory(str(checkpoint)))

    def end(self, result: TrialResult, trunk: Path) -> None:
        # Reported to Tune once the record says how the trial ended: a scheduler may stop a trial at a report.
        self.trunk = self.ledger.save_checkpoint(self.record.id, trunk / TRUNK_FILE)


def trainable(tune_config: dict[str, Any]) -> None:
    """The function Tune runs for every trial of a wave (see the module docstring)."""
    registry.load_plugins()  # a worker registers the driver's plugin methods (they travel in its environment)
    ledger = Ledger(Storage(messages.storage_of(tune_config)))
    trial_id, values, point = messages.identity(tune_config)
    record = ledger.read(trial_id) or TrialRecord(trial_id, values=values, search=point)
    if record.done:  # ended in an earlier attempt of this wave: nothing to redo
        tune.report(messages.end(record.result))
        return
    config = TrialConfig.from_dict(values).resolved()

    with tempfile.TemporaryDirectory(prefix="monosweep-") as tmp:
        resume: Path | None = None
        tune_checkpoint = tune.get_checkpoint()
        if tune_checkpoint is not None:
            resume = Path(tune_checkpoint.to_directory(os.path.join(tmp, "tune")))
        elif ledger.fetch_checkpoint(record, Path(tmp) / "ledger"):
            resume = Path(tmp) / "ledger"
        record.start(config.to_dict(), ray.get_runtime_context().get_node_id(), resuming=resume is not None)
        ledger.write(record)
        recorder = _Recorder(ledger, record)
        try:
            result = run_trial(config, report=recorder, resume_from=resume)
        except Exception as err:  # (Tune stopping a trial ends it otherwise: see callbacks.Mirror)
            record.fail(one_line(err))
            ledger.write(record)
            raise
    record.finish(result, recorder.trunk)
    ledger.write(record)
    tune.report(messages.end(result))
