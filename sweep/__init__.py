"""monosweep's sweep platform. Data flows one way:

spec (``spec.py``) -> trials with stable ids (``grid.py``) -> what is left to run (``plan.py``) -> Ray Tune
(``execution/``: one worker per trial runs ``methods.run_trial``) -> the ledger (``ledger/``, in
``storage.py``: local or S3) -> MLflow (``tracking.py``) and reports (``report.py``). ``driver.py`` holds
one ``monosweep run`` together; ``cli.py`` parses, ``commands/`` has one module per command.

``sweep.results(SPEC)`` is a sweep's results as a pandas DataFrame (``table.py``), for notebooks.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sweep.table import results

__all__ = ["results"]

_PUBLIC = {"results": "sweep.table"}


def __getattr__(name: str) -> Any:
    """``sweep.results`` loaded on first use, so ``import sweep`` (and ``monosweep --help``) stays cheap."""
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'sweep' has no attribute {name!r}")
