"""Random baseline: the trunk as initialised, never trained (the paper's 'random' / 'Gaussian' row)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from methods.base import Method

__all__ = ["RandomInit"]


class RandomInit(Method):
    """Random baseline: the reference initialisation, never trained."""

    name = "random"
    defaults: ClassVar[dict[str, Any]] = {"epochs": 0, "batch_size": 1, "lr": 0.0, "momentum": 0.0,
                                          "weight_decay": 0.0}
    trains = False

    def training_step(self, batch: Any) -> dict[str, torch.Tensor]:
        raise RuntimeError("the random baseline has nothing to train")
