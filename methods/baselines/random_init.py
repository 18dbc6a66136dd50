"""Random baseline: the trunk as initialised, never trained (the paper's 'random' / 'Gaussian' row)."""

from __future__ import annotations

from typing import Any

from methods._lazy import lazy
from methods.method import Method
from methods.registry import register
from methods.trial.config import MethodOptions, TrainingDefaults

torch = lazy("torch")

__all__ = ["RandomInit"]


@register
class RandomInit(Method[MethodOptions]):
    """Random baseline: the reference initialisation, never trained."""

    name = "random"
    defaults = TrainingDefaults(epochs=0, batch_size=1, lr=0.0, momentum=0.0, weight_decay=0.0)
    trains_on = "nothing"
    passes_per_patch = 0.0

    def training_step(self, batch: Any) -> dict[str, torch.Tensor]:
        raise RuntimeError("the random baseline has nothing to train")
