"""A trial's inputs checked before any work: its source photos, its labelled data, its device.

What ``monosweep validate`` runs for every trial of a sweep, so it reads headers and folder listings only
(no decoding, no training code); each problem is a one-line InputError.
"""

from __future__ import annotations

from methods import registry
from methods._lazy import lazy
from methods.data.folder_stream import FolderStream
from methods.data.labelled import locate_labelled
from methods.data.sources import resolve_sources
from methods.errors import InputError
from methods.trial.config import ResolvedConfig

torch = lazy("torch")

__all__ = ["check_inputs", "pick_device"]


def pick_device(name: str) -> torch.device:
    """``auto`` is CUDA when present, else the CPU; an unavailable CUDA request is an InputError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device={name} but this machine has no usable CUDA GPU; use device=auto or cpu")
    return device


def check_inputs(cfg: ResolvedConfig) -> None:
    """Fail fast, before any work, on a source or data set that cannot be used (one-line InputError)."""
    trains_on = registry.get_method(cfg.method).trains_on
    if trains_on == "patches":
        if cfg.num_images == 0:
            FolderStream(cfg.source, cfg.img_size, cfg.seed, torch.device("cpu"))
        else:
            for source in resolve_sources(cfg.sources, cfg.num_images, cfg.seed):
                source.check()
    elif trains_on == "labelled":
        locate_labelled(cfg.train_data)
    locate_labelled(cfg.probe_data)
    if cfg.device not in ("auto", "cpu"):  # (those two are always there: no torch needed to say so)
        pick_device(cfg.device)
