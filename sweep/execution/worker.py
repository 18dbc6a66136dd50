"""One trial inside a Ray worker: resume from the ledger's last intact checkpoint, run it, record it.

The trial writes its own ledger record (running, each checkpoint with its digest, its end or its failure),
so the record survives the driver; it reports every epoch and its end to Tune through
:mod:`sweep.execution.messages`. Before each record write it checks the lease's generation against the one
its driver gave it: a trial whose driver lost the sweep stops instead of writing over the new driver's
trials. A watchdog ends an attempt that exceeds the spec's time limits: the record says ``failed`` and
why, and the worker process ends, so Tune retries the trial, which resumes from its checkpoint (``retries``).
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ray
from ray import tune

from methods import lazy, registry
from methods.metrics import EPOCH
from methods.trial.config import TrialConfig
from methods.trial.reporter import CHECKPOINT_FILE, TRUNK_FILE
from methods.trial.result import TrialResult
from sweep.execution import messages
from sweep.execution.session import one_line
from sweep.ledger.lease import LeaseLost, generation_of
from sweep.ledger.records import TrialRecord
from sweep.ledger.store import Ledger, log
from sweep.storage import Storage

# The trial engine (torch, the patch generator's numba and Triton kernels) is loaded where a trial runs, not
# in the driver, which imports this module only to hand `trainable` to Tune.
torch, trial = lazy("torch"), lazy("methods.trial.run")

__all__ = ["trainable"]


class _Fenced:
    """The ledger writes of one attempt, each after checking that the driver still holds the lease."""

    def __init__(self, ledger: Ledger, record: TrialRecord, fence: int) -> None:
        self.ledger, self.record, self.fence = ledger, record, fence
        self.lock = threading.Lock()  # the watchdog may write while the trial does

    def write(self) -> None:
        with self.lock:
            now = generation_of(self.ledger.storage)
            if now != self.fence:  # passed to another driver, or released (None): this driver has gone
                whose = "was released" if now is None else f"passed to generation {now}"
                raise LeaseLost(f"trial {self.record.id}: its driver's lease (generation {self.fence}) {whose}; "
                                "stopping here, the next driver runs this trial")
            self.ledger.write(self.record)


class _Recorder:
    """The trial's reporter: each checkpoint into the ledger, each epoch's metrics to Tune, the final trunk into
    the ledger. Tune gets no checkpoint: a retried attempt resumes from the ledger's, so Tune's folders hold
    only its own bookkeeping, on the driver's disk, and nothing of a trial goes to the storage twice."""

    def __init__(self, fenced: _Fenced, watchdog: _Watchdog) -> None:
        self.fenced, self.watchdog = fenced, watchdog
        self.trunk: str | None = None

    def epoch(self, metrics: Mapping[str, float], checkpoint: Path) -> None:
        ledger, record = self.fenced.ledger, self.fenced.record
        epoch = int(metrics[EPOCH])
        path, digest = ledger.save(record.id, checkpoint / CHECKPOINT_FILE, epoch)
        dropped = record.checkpointed(epoch, path, digest)
        self.fenced.write()
        ledger.drop(dropped)
        self.watchdog.reported()
        tune.report(messages.epoch(metrics))

    def end(self, result: TrialResult, trunk: Path) -> None:
        # Reported to Tune once the record says how the trial ended: a scheduler may stop a trial at a report.
        self.trunk, _ = self.fenced.ledger.save(self.fenced.record.id, trunk / TRUNK_FILE)


class _Watchdog(threading.Thread):
    """Ends the attempt (record failed with the reason, then this worker process) past the time limits:
    ``trial`` seconds in all, or ``stall`` seconds without an epoch report."""

    def __init__(self, fenced: _Fenced, trial: float | None, stall: float | None) -> None:
        super().__init__(daemon=True, name="monosweep-watchdog")
        self.fenced, self.limits = fenced, {"trial": trial, "stall": stall}
        self.start_time = self.last = time.monotonic()
        self.done = threading.Event()

    def reported(self) -> None:
        self.last = time.monotonic()

    def _breach(self) -> str | None:
        now, trial, stall = time.monotonic(), self.limits["trial"], self.limits["stall"]
        if trial is not None and now - self.start_time > trial:
            return f"timed out: the attempt ran longer than timeouts.trial = {trial:g} s"
        if stall is not None and now - self.last > stall:
            return f"stalled: no epoch report for longer than timeouts.stall = {stall:g} s"
        return None

    def run(self) -> None:
        if self.limits == {"trial": None, "stall": None}:
            return
        while not self.done.wait(1.0):
            reason = self._breach()
            if reason is not None:
                self.fenced.record.fail(reason)
                try:
                    self.fenced.write()
                finally:
                    os.kill(os.getpid(), signal.SIGKILL)  # Tune sees the worker lost and retries the trial


def _loads(path: Path) -> bool:
    """Whether a checkpoint loads as tensors and plain data (never as code: whoever can write the storage
    must not run anything on the workers)."""
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure to load: not usable
        log.warning("[monosweep] warning: %s does not load (%s)", path.name, one_line(err))
        return False
    return True


def trainable(tune_config: dict[str, Any]) -> None:
    """The function Tune runs for every trial of a wave (see the module docstring)."""
    registry.load_plugins()  # a worker registers the driver's plugin methods (they travel in its environment)
    run = messages.run_settings(tune_config)
    ledger = Ledger(Storage(run.storage))
    trial_id, values, point = messages.identity(tune_config)
    record = ledger.read(trial_id) or TrialRecord(trial_id, values=values, search=point)
    if record.done:  # ended in an earlier attempt of this wave: nothing to redo
        tune.report(messages.end(record.result))
        return
    config = TrialConfig.from_dict(values).resolved()

    with tempfile.TemporaryDirectory(prefix="monosweep-") as tmp:
        folder = Path(tmp) / "resume"
        resumed_after = ledger.fetch_checkpoint(record, folder, _loads)
        record.start(config.to_dict(), ray.get_runtime_context().get_node_id(), run.fence, resumed_after)
        fenced = _Fenced(ledger, record, run.fence)
        fenced.write()
        watchdog = _Watchdog(fenced, run.trial_timeout, run.stall_timeout)
        watchdog.start()
        recorder = _Recorder(fenced, watchdog)
        try:
            result = trial.run_trial(config, report=recorder, resume_from=folder if resumed_after is not None else None)
        except LeaseLost:
            raise
        except Exception as err:  # (Tune stopping a trial ends it otherwise: see callbacks.Mirror)
            record.fail(one_line(err))
            fenced.write()
            raise
        finally:
            watchdog.done.set()
    record.finish(result, recorder.trunk)
    fenced.write()
    tune.report(messages.end(result))
