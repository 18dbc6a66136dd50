"""Optimiser helpers shared by the methods and the probe."""

from __future__ import annotations

from collections.abc import Sequence

from methods._lazy import lazy

torch, nn = lazy("torch"), lazy("torch.nn")

__all__ = ["sgd", "step_schedule"]


def sgd(modules: Sequence[nn.Module], lr: float, momentum: float, weight_decay: float,
        nesterov: bool = False) -> torch.optim.SGD:
    """SGD over the trainable parameters of ``modules`` (a frozen Sobel front end is left out)."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                           nesterov=nesterov and momentum > 0)


def step_schedule(
    optimiser: torch.optim.Optimizer, epochs: int, fractions: Sequence[float]
) -> torch.optim.lr_scheduler.MultiStepLR:
    """LR x0.1 at the given fractions of the run: the originals' step tables rescaled to any length."""
    milestones = sorted({max(1, round(f * epochs)) for f in fractions})
    return torch.optim.lr_scheduler.MultiStepLR(optimiser, milestones, gamma=0.1)
