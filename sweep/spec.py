"""The sweep spec: one YAML file that describes a grid of trials and where they run.

    name: single-image                # the sweep's name: storage folder, MLflow experiment
    grid:                             # axis -> values; the trials are the cartesian product
      method: [rotnet, deepcluster, bigan]
      num_images: [1, 10]
      seed: [0, 1, 2]
    fixed: {img_size: 64, epochs: 10} # every other trial-config field, the same for all trials
    per_method:                       # fixed values for one method only (over `fixed`)
      bigan: {epochs: 5}
    exclude:                          # drop the combinations that match every key of a rule
      - {method: bigan, num_images: [10]}
    resources: {cpu: 1, gpu: 0.25}   # per trial; fractions pack trials onto one GPU
    storage: s3://bucket/sweeps       # default: ./monosweep-results
    max_concurrent_trials: 8
    retries: 2                        # per trial, from its last checkpoint
    timeouts: {trial: 7200, stall: 1800}   # seconds per attempt, and without an epoch report (default: none)
    search:                           # optional: Optuna search around every grid point
      metric: probe.mean.top1         # any metric a trial reports; mode: max | min
      num_samples: 8                  # trials per grid point
      space: {lr: {low: 0.001, high: 0.1, log: true}}
      asha: {grace_period: 1}         # prune by ASHA on the metric, per epoch (probe metrics need probe_every)

A spec may build on another (``base: cpu-small.yaml``, relative to the including file): mappings are
merged key by key, anything else is replaced, ``null`` removes a key. ``--set KEY=VALUE`` on the command
line is one more layer on top (``--set fixed.epochs=4``, ``--set grid.seed=[0,1,2]``); the merged values are
the trials' values, so an override changes trial ids exactly as editing the file would.

Validated with pydantic; every problem is reported as one line naming the file (or the ``--set``) the
value came from, the field and what is wrong. Unknown keys are errors.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from methods.errors import InputError
from methods.trial.config import DEFAULT_METHOD, trial_fields
from sweep.storage import parse_uri

__all__ = ["DEFAULT_STORAGE", "Resources", "SweepSpec", "load_spec", "spec_data", "spec_text"]

DEFAULT_STORAGE = "monosweep-results"


def _check_fields(names: list[str]) -> None:
    known = trial_fields()  # the common fields and every registered method's options
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown trial-config field {unknown[0]!r} (see `monosweep trial --help`)")


class Resources(BaseModel):
    """What one trial reserves on a Ray node; Ray's resources are logical (they do not cap usage)."""

    model_config = ConfigDict(extra="forbid")
    cpu: float = Field(1.0, ge=0)
    gpu: float = Field(0.0, ge=0)


class Param(BaseModel):
    """One searched trial-config field: a range (``low``/``high``, ``log`` for a log scale, ``integer``
    for whole numbers) or a list of ``choices``."""

    model_config = ConfigDict(extra="forbid")
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _range(self) -> Param:
        if self.choices is not None:
            if not self.choices or self.low is not None or self.high is not None:
                raise ValueError("give either `choices: [...]` (non-empty) or `low` and `high`")
            return self
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError("needs `low` < `high` (or `choices: [...]`)")
        if self.log and self.low <= 0:
            raise ValueError("a log-scale range needs `low` > 0")
        return self

    def bounds(self) -> list[Any]:
        """The extreme values, to check against the trial config before anything runs."""
        if self.choices is not None:
            return list(self.choices)
        cast = int if self.integer else float
        return [cast(self.low), cast(self.high)]


class Timeouts(BaseModel):
    """Limits that end a hung trial (seconds; None: no limit): an attempt that runs longer than ``trial``, or
    goes ``stall`` seconds without an epoch report, ends ``failed`` and is retried from its checkpoint."""

    model_config = ConfigDict(extra="forbid")
    trial: float | None = Field(None, gt=0)
    stall: float | None = Field(None, gt=0)


class Asha(BaseModel):
    """Early stopping of search trials by ASHA on the search metric, measured in epochs."""

    model_config = ConfigDict(extra="forbid")
    grace_period: int = Field(1, ge=1)
    reduction_factor: float = Field(2.0, gt=1)


class Search(BaseModel):
    """Optuna search around every grid point: ``num_samples`` trials per point, sampled from ``space``."""

    model_config = ConfigDict(extra="forbid")
    metric: str = "probe.mean.top1"
    mode: Literal["max", "min"] = "max"
    num_samples: int = Field(ge=1)
    space: dict[str, Param]
    asha: Asha | None = None
    seed: int = 0

    @field_validator("space")
    @classmethod
    def _space(cls, space: dict[str, Param]) -> dict[str, Param]:
        if not space:
            raise ValueError("needs at least one field to search, e.g. `lr: {low: 0.001, high: 0.1, log: true}`")
        _check_fields(list(space))
        return space


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    grid: dict[str, list[Any]]
    fixed: dict[str, Any] = Field(default_factory=dict)
    per_method: dict[str, dict[str, Any]] = Field(default_factory=dict)
    exclude: list[dict[str, Any]] = Field(default_factory=list)
    resources: Resources = Field(default_factory=Resources)
    storage: str | None = None
    tracking_uri: str | None = None
    max_concurrent_trials: int | None = Field(None, ge=1)
    retries: int = Field(2, ge=0)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    search: Search | None = None

    @field_validator("grid")
    @classmethod
    def _grid(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        if not grid:
            raise ValueError("needs at least one axis, e.g. `seed: [0]`")
        _check_fields(list(grid))
        for axis, values in grid.items():
            if not values:
                raise ValueError(f"axis {axis!r} is empty: give at least one value")
            if len({repr(v) for v in values}) != len(values):
                raise ValueError(f"axis {axis!r} repeats a value")
        return grid

    @field_validator("storage")
    @classmethod
    def _storage(cls, storage: str | None) -> str | None:
        if storage is not None:
            try:
                parse_uri(storage)
            except InputError as err:
                raise ValueError(str(err)) from None
        return storage

    @field_validator("fixed")
    @classmethod
    def _fixed(cls, fixed: dict[str, Any]) -> dict[str, Any]:
        _check_fields(list(fixed))
        return fixed

    @field_validator("per_method")
    @classmethod
    def _per_method(cls, per_method: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for values in per_method.values():
            _check_fields(list(values))
            if "method" in values:
                raise ValueError("cannot set `method` per method")
        return per_method

    @model_validator(mode="after")
    def _consistent(self) -> SweepSpec:
        both = sorted(set(self.grid) & set(self.fixed))
        if both:
            raise ValueError(f"{both[0]!r} is both a grid axis and a fixed value")
        methods = self.grid.get("method", [self.fixed.get("method", DEFAULT_METHOD)])
        for method, values in self.per_method.items():
            if method not in methods:
                raise ValueError(f"per_method.{method}: not a method of this sweep ({', '.join(methods)})")
            axes = sorted(set(values) & set(self.grid))
            if axes:
                raise ValueError(f"per_method.{method}.{axes[0]} is a grid axis: a per-method value would merge trials")
        if self.search is not None:
            per_method = {k for values in self.per_method.values() for k in values}
            searched = sorted(set(self.search.space) & (set(self.grid) | set(self.fixed) | per_method))
            if searched:
                raise ValueError(f"search.space.{searched[0]} is also a grid axis or a fixed value: set it once")
        for rule in self.exclude:
            if not rule:
                raise ValueError("an exclude rule is empty (it would drop every trial)")
            unknown = sorted(set(rule) - set(self.grid) - set(self.fixed))
            if unknown:
                raise ValueError(f"exclude rule {rule} names {unknown[0]!r}, which is not a grid axis or fixed value")
        return self

    def varying_axes(self) -> list[str]:
        """The grid axes with more than one value: what tells trials apart in tables and run names."""
        return sorted(a for a, values in self.grid.items() if len(values) > 1)

    def storage_uri(self, override: str | None = None) -> str:
        """Where this sweep keeps its ledger and checkpoints: ``<storage>/<name>``."""
        base = override or self.storage or DEFAULT_STORAGE
        try:
            parse_uri(base)  # (a malformed --storage is said as given)
        except InputError as err:
            raise InputError(f"storage {err}") from None
        return f"{base.rstrip('/')}/{self.name}"


Origin = Callable[[tuple[Any, ...], str], str]  # (key path, error message) -> the file or --set it came from


def _format(err: ValidationError, origin: Origin) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "spec"
    where = origin(tuple(first["loc"]), first["msg"])
    if first["type"] == "extra_forbidden":
        parents = {"resources": Resources, "search": Search, "timeouts": Timeouts}
        parent: type[BaseModel] = SweepSpec if len(first["loc"]) == 1 else parents.get(str(first["loc"][0]), SweepSpec)
        if len(first["loc"]) > 2 and first["loc"][0] == "search":
            parent = {"space": Param, "asha": Asha}.get(str(first["loc"][1]), parent)
        known = ", ".join([*parent.model_fields, *(["base"] if parent is SweepSpec else [])])
        return f"{where}: {loc}: unknown key (known: {known})"
    if first["type"] == "missing":
        return f"{where}: {loc}: required key is missing"
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}: {loc}: {message}"


# libyaml's parser where PyYAML has it (its wheels do): a spec of 10,000 seeds parses in 0.1 s, not 1 s; the
# same safe constructors either way.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"spec file not found: {path}")
    try:
        data = yaml.load(path.read_text(), Loader=_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise InputError(f"{path}: {line}malformed YAML: {problem}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping with at least `name` and `grid`")
    return data


def _files(path: Path, seen: tuple[Path, ...] = ()) -> list[tuple[str, dict[str, Any]]]:
    """``path`` and the specs it is based on, the deepest base first: (where, data) each."""
    if path.resolve() in seen:
        raise InputError(f"{path}: base: includes itself through {' -> '.join(str(p) for p in seen)}")
    data = _read(path)
    base = data.pop("base", None)
    if base is None:
        return [(str(path), data)]
    if not isinstance(base, str) or not base:
        raise InputError(f"{path}: base: expected the path of another spec file, e.g. `base: cpu-small.yaml`")
    return [*_files(path.parent / base, (*seen, path.resolve())), (str(path), data)]


def _override(text: str) -> tuple[str, dict[str, Any]]:
    """``--set fixed.epochs=4`` as a layer ``{"fixed": {"epochs": 4}}`` (the value read as YAML)."""
    where = f"--set {text}"
    key, sep, value = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise InputError(f"{where}: expected KEY=VALUE with a dotted key, e.g. --set fixed.epochs=4 or "
                         "--set grid.seed=[0,1,2]")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise InputError(f"{where}: the value is not valid YAML ({getattr(err, 'problem', None) or err})") from None
    layer: dict[str, Any] = {parts[-1]: parsed}
    for part in reversed(parts[:-1]):
        layer = {part: layer}
    return where, layer


def _merge(into: dict[str, Any], layer: dict[str, Any], where: str, origins: dict[tuple[Any, ...], str],
           prefix: tuple[Any, ...] = ()) -> None:
    """Mappings merged key by key, anything else replaced; ``null`` removes the key."""
    for key, value in layer.items():
        path = (*prefix, key)
        merged = isinstance(value, dict) and isinstance(into.get(key), dict)
        if not merged:
            for below in [p for p in origins if p[:len(path)] == path]:
                del origins[below]
        if value is None:
            into.pop(key, None)
        elif isinstance(value, dict) and value:
            if not merged:
                into[key] = {}
            _merge(into[key], value, where, origins, path)
        else:
            into[key] = copy.deepcopy(value)
            origins[path] = where


def spec_data(path: str | Path, overrides: Sequence[str] = ()) -> tuple[dict[str, Any], Origin]:
    """The spec's document once its ``base:`` files and ``--set`` overrides are merged in, and a function
    that names where the value at a key path came from (a file, or the ``--set`` that gave it)."""
    layers = [*_files(Path(path)), *(_override(text) for text in overrides)]
    data: dict[str, Any] = {}
    origins: dict[tuple[Any, ...], str] = {}
    for where, layer in layers:
        _merge(data, layer, where, origins)
    top = str(path)

    def origin(loc: tuple[Any, ...], message: str = "") -> str:
        named = re.search(r"'([^']+)'", message)  # a validator's message names the key at fault
        if named and (*loc, named.group(1)) in origins:
            return origins[(*loc, named.group(1))]
        for end in range(len(loc), 0, -1):
            if loc[:end] in origins:
                return origins[loc[:end]]
        below = {w for p, w in origins.items() if loc and p[:len(loc)] == loc}
        return below.pop() if len(below) == 1 else top

    return data, origin


def load_spec(path: str | Path, overrides: Sequence[str] = ()) -> SweepSpec:
    """Read and validate a spec file, merged with the files it is based on (``base:``) and the command
    line's ``--set KEY=VALUE`` overrides; every failure is an InputError of one line that names the file
    (or the ``--set``) the wrong value came from."""
    data, origin = spec_data(path, overrides)
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as err:
        raise InputError(_format(err, origin)) from None


def spec_text(path: str | Path, overrides: Sequence[str] = ()) -> str:
    """The spec as the sweep runs it, to keep beside its results: the file itself when it stands alone,
    else the merged document."""
    if not overrides and "base" not in _read(Path(path)):
        return Path(path).read_text()
    data, _ = spec_data(path, overrides)
    sources = ", ".join([str(path), *(f"--set {o}" for o in overrides)])
    return f"# merged from {sources}\n" + yaml.safe_dump(data, sort_keys=False)
