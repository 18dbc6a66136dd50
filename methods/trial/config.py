"""One trial's configuration: what a user asks for (:class:`TrialConfig`) and what the trial runs with
(:class:`ResolvedConfig`).

Flat on purpose: every field, a method's own options included, can be a sweep axis, a command-line flag
and an MLflow param without a naming scheme. The fields every trial has are declared here; each method
declares its own options (defaults and checks) in its file, as a :class:`MethodOptions` model, and its
training defaults as :class:`TrainingDefaults`. A TrialConfig accepts the options of every registered
method. Resolving it picks the trial's method and fills in every default, so a ResolvedConfig has no
field left to decide: it is what gets stored with a result, and a default changed later in code never
rewrites an old result. (The probe-set limits stay ``int | None``: None is a value there, "all of them".)

Both are pydantic models in strict mode (``1`` is not a bool, ``"64"`` not an int); every problem is an
:class:`~methods.errors.InputError` of one line that names the field and says what is wrong.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo

from methods import registry
from methods.errors import InputError
from methods.patches.augment import parse_augment
from methods.trunk.arch import ARCHS, MIN_INPUT_SIZE, TrunkStyle

__all__ = ["DEFAULT_METHOD", "LR_SCALINGS", "PROBE_CACHE_LIMIT_BYTES", "PROBE_CACHE_MODES", "MethodOptions",
           "ResolvedConfig",
           "TrainingDefaults", "TrialConfig", "check_field", "float_fields", "option_fields", "trial_fields"]

PROBE_CACHE_MODES = ("auto", "always", "never")
LR_SCALINGS = ("none", "linear")
# ``probe_cache: auto`` caches the pooled float16 features of the probe's training split when they take at most
# this much: a decision from the config alone, so which protocol a probe follows (centre views from the cache,
# or the streamed random crops) never depends on how much memory the machine had free at that moment.
PROBE_CACHE_LIMIT_BYTES = 8 * 2**30
DEFAULT_METHOD = "rotnet"
_STRICT = ConfigDict(strict=True, frozen=True, extra="forbid")


def _doc(text: str, default: Any) -> Any:
    return Field(default, description=text)


def check_field(*names: str, ok: Callable[[Any], bool], says: str) -> Any:
    """A validator for the fields ``names``: where ``ok(value)`` is false, the error ``says`` (formatted with
    ``name`` and ``value``). None passes: it means "the default". Methods check their options with it too."""

    def check(value: Any, info: Any) -> Any:
        if value is not None and not ok(value):
            raise ValueError(says.format(name=info.field_name, value=value))
        return value

    return field_validator(*names, check_fields=False)(check)


def one_line(err: ValidationError) -> str:
    """The first problem of a validation error as the line a user reads (a wrong type names the type)."""
    first = err.errors()[0]
    name = ".".join(str(p) for p in first["loc"])
    if first["type"].endswith("_type"):
        field = trial_fields().get(name)
        annotation = field.annotation if field is not None else None
        expected = getattr(annotation, "__name__", None) or str(annotation or first["type"].removesuffix("_type"))
        return f"{name}={first['input']!r} has the wrong type; expected {expected}"
    return str(first["msg"]).removeprefix("Value error, ")


class MethodOptions(BaseModel):
    """A method's own options: subclass it in the method's file, one field (with a default) per option, its
    ``description`` the ``--help`` line, checks as validators (``check_field``)."""

    model_config = _STRICT


@dataclass(frozen=True)
class TrainingDefaults:
    """What a method's original recipe uses where the trial config leaves a training field out."""

    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    sobel: bool = False


class _Common(BaseModel):
    """The fields every trial has, with their defaults (the paper's protocol) and checks."""

    model_config = _STRICT

    method: str = _doc("training method (see `monosweep trial --list-methods`)", DEFAULT_METHOD)
    source: str = _doc("source photos: image file, folder, 'samples' or 'sample:NAME' (comma-separate several)",
                       "sample:astronaut")
    num_images: int = _doc("N, how many source photos (picked by seed from the source); 0 = the whole folder as "
                           "an ImageFolder stream (full-dataset arm)", 1)
    augment: str = _doc("augmentation preset (full, none, no-X, only-X) or steps joined by '+'", "full")
    img_size: int = _doc("patch / training image side in px (>= 63)", 224)
    arch: str = _doc("AlexNet width: big (96-256-384-384-256) or small (64-192-384-256-256)", "big")
    patches_per_epoch: int = _doc("patches per epoch (the paper: 1,281,167)", 1_281_167)
    head_hidden: int = _doc("width of the methods' two hidden FC layers (0: a linear head)", 4096)
    probe_data: str = _doc("labelled probe data: 'demo', an ImageFolder dir or .tar (train/ + val/ or test/), "
                           "or a torchvision CIFAR-10 root", "demo")
    probe_epochs: int = _doc("linear-probe epochs (the paper: 36; 0: train only, no probe)", 36)
    probe_every: int = _doc("also probe every K training epochs, reported with that epoch's metrics (0: only at "
                            "the end); what lets a search prune on probe accuracy", 0)
    probe_lr: float = _doc("probe learning rate, /10 at 10/36, 20/36, 30/36 of the epochs", 0.01)
    probe_batch_size: int = _doc("probe batch size", 192)
    probe_weight_decay: float = _doc("probe weight decay", 1e-5)
    probe_train_limit: int | None = _doc("use at most this many probe training images (by seed; default all)",
                                         None)
    probe_val_limit: int | None = _doc("use at most this many held-out images (by seed; default all)", None)
    probe_cache: str = _doc("cache pooled features once and train on centre views (auto: when they take <= 8 GiB), "
                           "always, or never (stream the protocol's random crops every epoch)", "auto")
    lr_scaling: str = _doc("where lr is not given: none (the method's original lr) or linear (that lr x batch_size / "
                           "the original's batch, Goyal et al. 2017: the lr per sample kept; Adam methods such as "
                           "BiGAN keep theirs)", "none")
    workers: int = _doc("DataLoader workers for image-folder streams", 2)
    seed: int = _doc("seed of patches, init, data order and subsets", 0)
    device: str = _doc("auto (CUDA when present), cpu, cuda, cuda:N", "auto")

    _counts = check_field("patches_per_epoch", "probe_batch_size", "batch_size", ok=lambda v: v >= 1,
                          says="{name}={value} must be >= 1")
    _rates = check_field("lr", "momentum", "weight_decay", "probe_lr", "probe_weight_decay", "workers", "probe_every",
                         "head_hidden", "epochs", ok=lambda v: v >= 0, says="{name}={value} must be >= 0")
    _probe_epochs = check_field("probe_epochs", ok=lambda v: v >= 0, says="{name}={value} must be >= 0 (0: no probe)")
    _num_images = check_field("num_images", ok=lambda v: v >= 0,
                              says="{name}={value} must be >= 1 (or 0 for the whole folder)")
    _sizes = check_field("img_size", "probe_img_size", ok=lambda v: v >= MIN_INPUT_SIZE,
                         says=f"{{name}}={{value}} is below the {MIN_INPUT_SIZE} px AlexNet needs; use 64 or more")
    _arch = check_field("arch", ok=lambda v: v in ARCHS, says=f"unknown arch {{value!r}}; known: {', '.join(ARCHS)}")
    _cache = check_field("probe_cache", ok=lambda v: v in PROBE_CACHE_MODES,
                         says=f"probe_cache={{value!r}}; choose one of {', '.join(PROBE_CACHE_MODES)}")
    _lr_scaling = check_field("lr_scaling", ok=lambda v: v in LR_SCALINGS,
                              says=f"lr_scaling={{value!r}}; choose one of {', '.join(LR_SCALINGS)}")

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        registry.get_method(value)  # (an unknown name: a one-line error listing the known ones)
        return value

    @field_validator("augment")
    @classmethod
    def _augment(cls, value: str) -> str:
        parse_augment(value)
        return value

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as err:
            raise InputError(one_line(err)) from None


class TrialConfig(_Common):
    """What one trial asks for: the common fields, the training fields a method may default (None: the
    method's), and any registered method's options by name (``clusters=100``)."""

    sobel: bool | None = _doc("frozen Sobel front end (default: the method's)", None)
    epochs: int | None = _doc("training epochs (default: the method's)", None)
    batch_size: int | None = _doc("training batch size (default: the method's)", None)
    lr: float | None = _doc("base learning rate (default: the method's)", None)
    momentum: float | None = _doc("SGD momentum (Adam beta1 for BiGAN; default: the method's)", None)
    weight_decay: float | None = _doc("weight decay (default: the method's)", None)
    train_data: str | None = _doc("labelled data a method trains on, e.g. the supervised baseline (default: "
                                  "probe_data)", None)
    probe_img_size: int | None = _doc("probe input side in px (default: img_size)", None)
    trunk_of: str | None = _doc("build the AlexNet as this method's original does (its activations, conv1's "
                                "BatchNorm); default: the trial's method. On random trials: trunk_of: bigan is "
                                "BiGAN's like-for-like baseline", None)
    options: dict[str, Any] = Field(default_factory=dict, description="methods' own options, by name")

    @field_validator("trunk_of")
    @classmethod
    def _trunk_of(cls, value: str | None) -> str | None:
        if value is not None:
            registry.get_method(value)  # (an unknown name: a one-line error listing the known ones)
        return value

    @model_validator(mode="before")
    @classmethod
    def _gather_options(cls, values: Any) -> Any:
        """Fields that are not common ones are method options: each is checked by the method declaring it."""
        if not isinstance(values, dict):
            return values
        options = {k: v for k, v in values.items() if k not in cls.model_fields}
        if not options:
            return values
        owners = option_fields()
        unknown = sorted(set(options) - set(owners))
        if unknown:
            raise ValueError(f"unknown trial config field(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(trial_fields()))}")
        checked = {name: _check_option(owners[name][0], name, value) for name, value in options.items()}
        common = {k: v for k, v in values.items() if k in cls.model_fields}
        return {**common, "options": {**common.get("options", {}), **checked}}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrialConfig:
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The fields as one flat mapping (None: left to the method)."""
        return {**self.model_dump(exclude={"options"}), **self.options}

    def replace(self, **changes: Any) -> TrialConfig:
        return TrialConfig(**{**self.to_dict(), **changes})

    def resolved(self) -> ResolvedConfig:
        """Every default filled in: the method's training defaults, its options' defaults, and the probe's
        (probe_img_size = img_size, train_data = probe_data). Options of other methods are left out."""
        method = registry.get_method(self.method)
        given = self.model_dump(exclude={"options"})
        training = {name: value for name, value in vars(method.defaults).items() if given[name] is None}
        if not method.trains():  # nothing to train: epochs given for a whole grid do not apply
            training["epochs"] = 0
        if "lr" in training and self.lr_scaling == "linear" and method.lr_scales_with_batch:
            batch = given["batch_size"] or method.defaults.batch_size
            training["lr"] = method.defaults.lr * batch / method.defaults.batch_size
        own = {k: v for k, v in self.options.items() if k in method.Options.model_fields}
        config = ResolvedConfig(**{**given, **training, "probe_img_size": self.probe_img_size or self.img_size,
                                   "train_data": self.train_data or self.probe_data,
                                   "trunk_of": self.trunk_of or self.method,
                                   "options": method.Options(**own)})
        method.check_config(config)
        return config


class ResolvedConfig(_Common):
    """What a trial runs with: every field decided (built by :meth:`TrialConfig.resolved`)."""

    sobel: bool
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    train_data: str
    probe_img_size: int
    trunk_of: str
    options: MethodOptions

    @property
    def trunk_style(self) -> TrunkStyle:
        """How the trunk is built: as the original of ``trunk_of`` builds it."""
        return registry.get_method(self.trunk_of).trunk_style

    @property
    def sources(self) -> list[str]:
        return [s.strip() for s in self.source.split(",") if s.strip()]

    def to_dict(self) -> dict[str, Any]:
        """One flat mapping of every field and the method's options: what a result stores."""
        return {**self.model_dump(exclude={"options"}), **self.options.model_dump()}

    def differs_from(self, stored: dict[str, Any]) -> list[str]:
        """The fields on which a stored config (a checkpoint's) disagrees with this one. A field it holds
        that this one lacks is an option this trial's method does not read (older versions kept every
        method's options, None where unused), so it does not count. A field this one has that it lacks is
        newer than the checkpoint: it counts only when set away from what the code did before the field
        existed: its default (``lr_scaling: none``, ``reassign: 1``), or for ``trunk_of`` the trial's method."""
        fields = {**type(self).model_fields, **type(self.options).model_fields}
        before = {k: f.default for k, f in fields.items()} | {"trunk_of": self.method}
        return sorted(k for k, v in self.to_dict().items() if stored.get(k, before[k]) != v)


def _check_option(method: type, name: str, value: Any) -> Any:
    """``value`` as the method declaring option ``name`` accepts it."""
    try:
        return getattr(method.Options(**{name: value}), name)
    except ValidationError as err:
        raise ValueError(one_line(err)) from None


def option_fields() -> dict[str, tuple[type, FieldInfo]]:
    """Every registered method's options: name -> (the first method declaring it, its field)."""
    return _option_fields(tuple(registry.methods().items()))


@cache
def _option_fields(methods: tuple[tuple[str, type], ...]) -> dict[str, tuple[type, FieldInfo]]:
    # (cached per set of registered methods: a plugin registering one makes a new entry)
    found: dict[str, tuple[type, FieldInfo]] = {}
    for _, method in sorted(methods):
        for name, info in method.Options.model_fields.items():
            if name in TrialConfig.model_fields:
                raise ValueError(f"method {method.name!r} declares option {name!r}, a field every trial has")
            found.setdefault(name, (method, info))
    return found


def trial_fields() -> dict[str, FieldInfo]:
    """Every field a trial config accepts, the common ones first, then the methods' options."""
    common = {k: v for k, v in TrialConfig.model_fields.items() if k != "options"}
    return {**common, **{name: info for name, (_, info) in option_fields().items()}}


def float_fields() -> frozenset[str]:
    """The fields that hold floats (``lr: 1`` means ``lr: 1.0``)."""
    return _float_fields(tuple(registry.methods().items()))


@cache
def _float_fields(methods: tuple[tuple[str, type], ...]) -> frozenset[str]:
    def holds_float(annotation: Any) -> bool:
        return float in (annotation.__args__ if isinstance(annotation, types.UnionType) else (annotation,))

    return frozenset(name for name, info in trial_fields().items() if holds_float(info.annotation))

