"""The method registry: method name -> Method class. A leaf module: it imports no method, no torch.

Methods register themselves with ``@register`` when their module is imported. The built-in ones are the
public modules of ``methods/pretext`` and ``methods/baselines`` (one file per method; ``_name.py`` files are
helpers), imported the first time the registry is asked for a method: a new file there is a new method,
with no edit anywhere else. Plugins are the modules named in ``$MONOSWEEP_PLUGINS``; the entry points (the
command lines, the Ray worker) load them with :func:`load_plugins`, ``import methods`` never does. An
environment variable, so that Ray workers, which inherit the driver's environment, register the same
methods as the driver.

Loading by module name is the registry's job and nobody else's: everything else in the package imports
what it uses at the top of its module.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from typing import TYPE_CHECKING

from methods.errors import InputError, first_line

if TYPE_CHECKING:
    from methods.method import Method

__all__ = ["BUILT_IN", "METHODS", "PLUGINS_ENV", "get_method", "list_methods", "load_plugins", "methods", "register"]

BUILT_IN = ("methods.pretext", "methods.baselines")
PLUGINS_ENV = "MONOSWEEP_PLUGINS"
METHODS: dict[str, type[Method]] = {}
_built_in_loaded = False


def register(method: type[Method]) -> type[Method]:
    """Add a method to the registry (a class decorator); names must be unique."""
    if method.name in METHODS and METHODS[method.name] is not method:
        raise ValueError(f"a method named {method.name!r} is already registered")
    METHODS[method.name] = method
    return method


def methods() -> dict[str, type[Method]]:
    """Every registered method; the built-in ones are imported on the first call."""
    global _built_in_loaded
    if not _built_in_loaded:
        _built_in_loaded = True
        for package in BUILT_IN:
            for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
                if not info.name.startswith("_"):
                    importlib.import_module(f"{package}.{info.name}")
    return METHODS


def list_methods() -> list[str]:
    return sorted(methods())


def get_method(name: str) -> type[Method]:
    """The method registered as ``name``; a one-line InputError listing the known ones otherwise."""
    known = methods()
    if name not in known:
        raise InputError(f"unknown method {name!r}; known: {', '.join(sorted(known))}")
    return known[name]


def load_plugins(modules: str | None = None) -> None:
    """Import the plugin modules named in ``modules`` (comma-separated; default ``$MONOSWEEP_PLUGINS``)."""
    names = os.environ.get(PLUGINS_ENV, "") if modules is None else modules
    for name in filter(None, (m.strip() for m in names.split(","))):
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise InputError(f"cannot import the plugin module {name!r} named in ${PLUGINS_ENV}: "
                             f"{first_line(err)} (put its folder on PYTHONPATH)") from None
