"""monosweep's trial engine: pure PyTorch (no Ray, no MLflow).

One trial = build the single-image dataset -> train one method -> probe every conv layer. Entry point:
:func:`run_trial`. Methods live one per file and are listed in :data:`METHODS`.
"""

from __future__ import annotations

from methods.base import Diverged, Method
from methods.bigan import BiGAN
from methods.deepcluster import DeepCluster
from methods.random_init import RandomInit
from methods.rotnet import RotNet
from methods.supervised import Supervised

METHODS: dict[str, type[Method]] = {m.name: m for m in (RotNet, DeepCluster, BiGAN, Supervised, RandomInit)}


def register(method: type[Method]) -> type[Method]:
    """Add a method to the registry (usable as a class decorator); names must be unique."""
    if method.name in METHODS and METHODS[method.name] is not method:
        raise ValueError(f"a method named {method.name!r} is already registered")
    METHODS[method.name] = method
    return method


def _load_plugins() -> None:
    """Import the modules named in $MONOSWEEP_PLUGINS (comma-separated): they register extra methods.

    An environment variable rather than an argument so that Ray workers, which inherit the driver's
    environment, register the same methods as the driver.
    """
    import importlib
    import os

    for module in filter(None, (m.strip() for m in os.environ.get("MONOSWEEP_PLUGINS", "").split(","))):
        importlib.import_module(module)

from methods.config import TrialConfig  # noqa: E402  (needs METHODS at validation time only)
from methods.errors import InputError  # noqa: E402
from methods.trial import TrialResult, run_trial  # noqa: E402

__all__ = ["METHODS", "Diverged", "InputError", "Method", "TrialConfig", "TrialResult", "get_method",
           "list_methods", "register", "run_trial"]

_load_plugins()


def list_methods() -> list[str]:
    return sorted(METHODS)


def get_method(name: str) -> type[Method]:
    """The method class registered as ``name``; a one-line InputError listing the known ones otherwise."""
    if name not in METHODS:
        raise InputError(f"unknown method {name!r}; known: {', '.join(list_methods())}")
    return METHODS[name]
