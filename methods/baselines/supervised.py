"""Supervised baseline: the AlexNet trained with the labels of a labelled set (the paper's upper row).

Trains on ``train_data`` (default: the probe set's train split) at the trial's image size, with flips,
SGD momentum 0.9, weight decay 5e-4 and LR 0.01 divided by 10 at a third and two thirds of the epochs
(torchvision's AlexNet recipe, rescaled). An epoch is one pass over the labelled train split.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from methods._lazy import lazy
from methods.method import Method
from methods.optim import sgd, step_schedule
from methods.registry import register
from methods.trial.config import MethodOptions, TrainingDefaults
from methods.trunk.heads import mlp_head

if TYPE_CHECKING:
    from methods.trial.context import TrialContext
    from methods.trunk.alexnet import AlexNet

torch = lazy("torch")

__all__ = ["Supervised"]


@register
class Supervised(Method[MethodOptions]):
    """Supervised baseline: AlexNet trained with the labels of a labelled set."""

    name = "supervised"
    defaults = TrainingDefaults(epochs=90, batch_size=256, lr=0.01, momentum=0.9, weight_decay=5e-4)
    trains_on = "labelled"
    milestones = (1 / 3, 2 / 3)

    def __init__(self, trunk: AlexNet, ctx: TrialContext) -> None:
        super().__init__(trunk, ctx)
        cfg = self.cfg
        self.data = ctx.labelled(cfg.train_data, cfg.img_size)
        self.head = mlp_head(trunk.output_dim(cfg.img_size), self.data.num_classes, cfg.head_hidden)
        self.head.to(ctx.device)
        self.optimizer = sgd([trunk, self.head], cfg.lr, cfg.momentum, cfg.weight_decay)
        self.schedule = step_schedule(self.optimizer, cfg.epochs, self.milestones)

    def steps_per_epoch(self) -> int:
        return -(-len(self.data.train) // self.cfg.batch_size)

    def batches(self, epoch: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        return self.data.train.batches(self.cfg.batch_size, self.ctx.device, augment=True,
                                       shuffle_seed=self.cfg.seed * 1_000_003 + epoch, workers=self.cfg.workers)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.classification_step(*batch)
