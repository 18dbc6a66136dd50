"""How a running trial tells its caller what happened: a :class:`Reporter` with two calls.

``epoch`` after every epoch, with that epoch's metrics and a folder holding ``checkpoint.pt`` (everything
needed to resume); ``end`` once, with the :class:`~methods.trial.result.TrialResult` and a folder holding
``trunk.pt`` (the trunk's weights as probed). A folder is only valid during the call: copy what you keep.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from methods.trial.result import TrialResult

__all__ = ["CHECKPOINT_FILE", "TRUNK_FILE", "Reporter", "holding"]

CHECKPOINT_FILE = "checkpoint.pt"
TRUNK_FILE = "trunk.pt"


class Reporter(Protocol):
    def epoch(self, metrics: Mapping[str, float], checkpoint: Path) -> None:
        """After an epoch: its metrics, and a folder holding ``checkpoint.pt``."""

    def end(self, result: TrialResult, trunk: Path) -> None:
        """Once, when the trial is over: its result, and a folder holding ``trunk.pt``."""


@contextmanager
def holding(filename: str, blob: bytes) -> Iterator[Path]:
    """A temporary folder holding one file, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="monosweep-report-"))
    try:
        (folder / filename).write_bytes(blob)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
