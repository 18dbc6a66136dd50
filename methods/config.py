"""One trial's configuration: a frozen, flat, typed record that ``run_trial`` takes whole.

Flat on purpose: every field can be a sweep axis and an MLflow param without a naming scheme. Fields
left ``None`` take the method's defaults in :meth:`TrialConfig.resolved`; the resolved config is what
gets stored with a result, so a default changed later in code never rewrites an old result.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from typing import Any

from methods.alexnet import ARCHS, MIN_INPUT_SIZE
from methods.augment import parse_augment
from methods.errors import InputError

__all__ = ["PROBE_CACHE_MODES", "TrialConfig"]

PROBE_CACHE_MODES = ("auto", "always", "never")


def _doc(text: str, **kwargs: Any) -> Any:
    return field(metadata={"help": text}, **kwargs)


_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def _check_type(name: str, annotation: Any, value: Any) -> None:
    """Reject a value of the wrong type with a one-line error (bool is not accepted as an int)."""
    options = [a.strip() for a in str(annotation).split("|")]
    if value is None and "None" in options:
        return
    for option in options:
        allowed = _TYPES.get(option, ())
        if isinstance(value, allowed) and not (option != "bool" and isinstance(value, bool)):
            return
    raise InputError(f"{name}={value!r} has the wrong type; expected {annotation}")


@dataclass(frozen=True)
class TrialConfig:
    """Everything one trial needs: data, method, probe, seed, device."""

    method: str = _doc("training method (see `monosweep trial --list-methods`)", default="rotnet")
    source: str = _doc(
        "source photos: image file, folder, 'samples' or 'sample:NAME' (comma-separate several)",
        default="sample:astronaut",
    )
    num_images: int = _doc("N, how many source photos (picked by seed from the source); 0 = "
                           "the whole folder as an ImageFolder stream (full-dataset arm)", default=1)
    augment: str = _doc("augmentation preset (full, none, no-X, only-X) or steps joined by '+'",
                        default="full")
    img_size: int = _doc("patch / training image side in px (>= 63)", default=224)
    arch: str = _doc("AlexNet width: big (96-256-384-384-256) or small (64-192-384-256-256)", default="big")
    sobel: bool | None = _doc("frozen Sobel front end (default: the method's)", default=None)
    epochs: int | None = _doc("training epochs (default: the method's)", default=None)
    patches_per_epoch: int = _doc("patches per epoch (the paper: 1,281,167)", default=1_281_167)
    batch_size: int | None = _doc("training batch size (default: the method's)", default=None)
    lr: float | None = _doc("base learning rate (default: the method's)", default=None)
    momentum: float | None = _doc("SGD momentum (default: the method's)", default=None)
    weight_decay: float | None = _doc("weight decay (default: the method's)", default=None)
    head_hidden: int = _doc("width of the methods' two hidden FC layers (0: a linear head)", default=4096)
    clusters: int | None = _doc("DeepCluster: k of k-means (default 10,000)", default=None)
    pca_dim: int | None = _doc("DeepCluster: PCA-whitened dimensions clustered (default 256)", default=None)
    kmeans_iters: int | None = _doc("DeepCluster: Lloyd iterations per clustering (default 20)", default=None)
    latent_dim: int | None = _doc("BiGAN: size of the uniform latent (default 200)", default=None)
    train_data: str | None = _doc("labelled data the supervised baseline trains on (default: probe_data)",
                                  default=None)
    probe_data: str = _doc("labelled probe data: 'demo', an ImageFolder dir or .tar (train/ + val/ or "
                           "test/), or a torchvision CIFAR-10 root", default="demo")
    probe_img_size: int | None = _doc("probe input side in px (default: img_size)", default=None)
    probe_epochs: int = _doc("linear-probe epochs (the paper: 36; 0: train only, no probe)", default=36)
    probe_every: int = _doc("also probe every K training epochs, reported with that epoch's metrics (0: only "
                            "at the end); what lets a search prune on probe accuracy", default=0)
    probe_lr: float = _doc("probe learning rate, /10 at 10/36, 20/36, 30/36 of the epochs", default=0.01)
    probe_batch_size: int = _doc("probe batch size", default=192)
    probe_weight_decay: float = _doc("probe weight decay", default=1e-5)
    probe_train_limit: int | None = _doc("use at most this many probe training images (by seed)",
                                         default=None)
    probe_val_limit: int | None = _doc("use at most this many held-out images (by seed)", default=None)
    probe_cache: str = _doc("cache pooled features once (auto: when they fit in memory), always, never",
                            default="auto")
    workers: int = _doc("DataLoader workers for image-folder streams", default=2)
    seed: int = _doc("seed of patches, init, data order and subsets", default=0)
    device: str = _doc("auto (CUDA when present), cpu, cuda, cuda:N", default="auto")

    def __post_init__(self) -> None:
        from methods import METHODS  # the registry imports this module

        for f in fields(self):
            _check_type(f.name, f.type, getattr(self, f.name))
        if self.method not in METHODS:
            raise InputError(f"unknown method {self.method!r}; known: {', '.join(sorted(METHODS))}")
        parse_augment(self.augment)
        if self.arch not in ARCHS:
            raise InputError(f"unknown arch {self.arch!r}; known: {', '.join(sorted(ARCHS))}")
        for name in ("img_size", "probe_img_size"):
            size = getattr(self, name)
            if size is not None and size < MIN_INPUT_SIZE:
                raise InputError(
                    f"{name}={size} is below the {MIN_INPUT_SIZE} px AlexNet needs; use 64 or more"
                )
        if self.probe_cache not in PROBE_CACHE_MODES:
            raise InputError(f"probe_cache={self.probe_cache!r}; choose one of {', '.join(PROBE_CACHE_MODES)}")
        if self.num_images < 0:
            raise InputError(f"num_images={self.num_images} must be >= 1 (or 0 for the whole folder)")
        for name in ("patches_per_epoch", "probe_batch_size", "batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InputError(f"{name}={value} must be >= 1")
        if self.probe_epochs < 0:
            raise InputError(f"probe_epochs={self.probe_epochs} must be >= 0 (0: no probe)")
        for name in ("lr", "momentum", "weight_decay", "probe_lr", "probe_weight_decay", "workers", "probe_every",
                     "head_hidden"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise InputError(f"{name}={value} must be >= 0")
        if self.epochs is not None and self.epochs < 0:
            raise InputError(f"epochs={self.epochs} must be >= 0")
        for name in ("clusters", "pca_dim", "kmeans_iters", "latent_dim"):
            value = getattr(self, name)
            if value is not None and value < (2 if name == "clusters" else 1):
                raise InputError(f"{name}={value} is too small")
        if self.clusters is not None and self.clusters > self.patches_per_epoch:
            raise InputError(f"clusters={self.clusters} exceeds patches_per_epoch={self.patches_per_epoch}: "
                             "k-means needs at least k patches")

    @property
    def sources(self) -> list[str]:
        return [s.strip() for s in self.source.split(",") if s.strip()]

    def resolved(self) -> TrialConfig:
        """This config with every ``None`` replaced by the method's default (idempotent)."""
        from methods import METHODS

        defaults = {"sobel": False, "probe_img_size": self.img_size, "train_data": self.probe_data}
        method = METHODS[self.method]
        defaults.update(method.defaults)
        missing = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        if not method.trains and self.epochs:
            missing["epochs"] = 0  # nothing to train: epochs given for a whole grid do not apply
        return dataclasses.replace(self, **missing) if missing else self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys): the basis of a trial's identity."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrialConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"unknown trial config field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**values)
