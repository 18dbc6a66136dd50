"""Modules bound at a module's top but loaded on their first use.

Declaring a method (its options, defaults, cost, what it trains on) and checking a trial's inputs must not
cost the ~2 s of importing torch: ``monosweep validate`` and ``plan`` read only the declarations. So the
modules they reach bind torch as ``torch = lazy("torch")`` at their top, and the first attribute read
imports it (optuna's ``_LazyImport`` is the model). What cannot be lazy: a class that subclasses a torch
class is created when its module runs, so such classes live in modules that the declarations reach only
through ``lazy`` too (``lazy("methods.pretext._bigan_nets")``); ``tests/test_architecture.py`` checks that
``validate`` loads no torch.
"""

from __future__ import annotations

import importlib
import types
from typing import Any

__all__ = ["lazy"]


class _LazyModule(types.ModuleType):
    """A stand-in for the module ``__name__`` that imports it on the first attribute read, then takes over
    its namespace (later reads are plain attribute reads)."""

    def __getattr__(self, attr: str) -> Any:
        module = importlib.import_module(self.__name__)
        self.__dict__.update(module.__dict__)
        return getattr(module, attr)


def lazy(name: str) -> Any:
    """The module ``name``, imported when first used (typed ``Any``: the module's own names are used as is)."""
    return _LazyModule(name)
