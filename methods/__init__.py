"""monosweep's trial engine: pure PyTorch (no Ray, no MLflow).

One trial = build the single-image dataset -> train one method -> probe every conv layer. The tree:

- ``trunk/``      the AlexNet with its five probed taps, and the heads methods put on it
- ``patches/``    the single-image patch generator: the recipe's draws, the batched render, fused renders
- ``data/``       source photos, labelled sets (probe, supervised), the full-folder stream
- ``pretext/``    the self-supervised methods, one file each (RotNet, DeepCluster, BiGAN)
- ``baselines/``  supervised and random
- ``probe.py``    the all-layer linear probe
- ``trial/``      config, inputs check, context, ``run_trial``, its result and reporter, the command line
- ``method.py``   the contract a method implements; ``registry.py`` finds methods by name

The public names below are loaded on first use (Scientific Python's SPEC 1), so ``import methods`` (and
``monosweep --help``) costs no torch; everything inside the package imports what it uses at its top.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from methods._lazy import lazy
    from methods.errors import InputError
    from methods.method import Diverged, Method
    from methods.registry import METHODS, get_method, list_methods, register
    from methods.trial.config import MethodOptions, ResolvedConfig, TrainingDefaults, TrialConfig
    from methods.trial.reporter import Reporter
    from methods.trial.result import TrialResult
    from methods.trial.run import run_trial

_PUBLIC = {
    "InputError": "methods.errors", "lazy": "methods._lazy",
    "Diverged": "methods.method", "Method": "methods.method",
    "get_method": "methods.registry", "list_methods": "methods.registry", "register": "methods.registry",
    "MethodOptions": "methods.trial.config", "ResolvedConfig": "methods.trial.config",
    "TrainingDefaults": "methods.trial.config", "TrialConfig": "methods.trial.config",
    "Reporter": "methods.trial.reporter", "TrialResult": "methods.trial.result", "run_trial": "methods.trial.run",
}
__all__ = ["METHODS", "Diverged", "InputError", "Method", "MethodOptions", "Reporter", "ResolvedConfig",
           "TrainingDefaults", "TrialConfig", "TrialResult", "get_method", "lazy", "list_methods", "register",
           "run_trial"]


def __getattr__(name: str) -> Any:
    if name == "METHODS":  # the registry, with the built-in methods imported
        return importlib.import_module("methods.registry").methods()
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'methods' has no attribute {name!r}")
