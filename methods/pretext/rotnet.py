"""RotNet (Gidaris et al. 2018): predict which of four rotations was applied to a patch.

All four rotations of every patch are in the batch (an effective batch of 4 x batch_size), as in the
original data loader. Defaults follow gidariss/FeatureLearningRotNet's ImageNet AlexNet config: SGD with
Nesterov momentum 0.9, weight decay 5e-4, LR 0.01 divided by 10 at 30 %, 60 % and 90 % of the epochs
(the config's 'lr': 0.1 is overridden by its LUT), batch 192, and a head of two bias-free FC+BN layers.
"""

from __future__ import annotations

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

__all__ = ["RotNet", "rotations"]


def rotations(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch rotated by 0, 90, 180 and 270 degrees, and the rotation labels 0..3."""
    rotated = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)])
    labels = torch.arange(4, device=x.device).repeat_interleave(x.shape[0])
    return rotated, labels


@register
class RotNet(Method[MethodOptions]):
    """RotNet: predict the rotation (0/90/180/270 degrees) of each patch."""

    name = "rotnet"
    defaults = TrainingDefaults(epochs=30, batch_size=192, lr=0.01, momentum=0.9, weight_decay=5e-4)
    passes_per_patch = 4.0  # all four rotations of every patch
    milestones = (0.3, 0.6, 0.9)

    def __init__(self, trunk: AlexNet, ctx: TrialContext) -> None:
        super().__init__(trunk, ctx)
        cfg = self.cfg
        self.head = mlp_head(trunk.output_dim(cfg.img_size), 4, cfg.head_hidden).to(ctx.device)
        self.optimizer = sgd([trunk, self.head], cfg.lr, cfg.momentum, cfg.weight_decay, nesterov=True)
        self.schedule = step_schedule(self.optimizer, cfg.epochs, self.milestones)

    def training_step(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.classification_step(*rotations(batch))
