"""A test-only method with an option of its own, in one file and nowhere else: the proof that adding a
method needs no edit elsewhere. Loaded through $MONOSWEEP_PLUGINS.

"Mirror": predict whether a patch was mirrored left-right; ``share`` of the patches are (default 0.5).
"""

from __future__ import annotations

from pydantic import Field

from methods import Method, MethodOptions, TrainingDefaults, lazy, register
from methods.optim import sgd
from methods.trial.config import check_field
from methods.trunk.heads import mlp_head

torch = lazy("torch")  # loaded when the method trains: validating and planning a sweep cost no torch


class MirrorOptions(MethodOptions):
    share: float = Field(0.5, description="Mirror: fraction of the patches that are mirrored")

    _fraction = check_field("share", ok=lambda v: 0.0 < v < 1.0,
                            says="{name}={value} must lie strictly between 0 and 1")


@register
class Mirror(Method[MirrorOptions]):
    """Mirror: predict whether each patch was mirrored (a plugin's method, for the platform's tests)."""

    name = "mirror"
    Options = MirrorOptions
    defaults = TrainingDefaults(epochs=1, batch_size=32, lr=0.01, momentum=0.9, weight_decay=5e-4)
    passes_per_patch = 1.0

    def __init__(self, trunk, ctx) -> None:  # noqa: ANN001 - the base class documents them
        super().__init__(trunk, ctx)
        cfg = self.cfg
        self.head = mlp_head(trunk.output_dim(cfg.img_size), 2, cfg.head_hidden).to(ctx.device)
        self.optimizer = sgd([trunk, self.head], cfg.lr, cfg.momentum, cfg.weight_decay)

    def training_step(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        mirrored = torch.rand(batch.shape[0], device=batch.device) < self.options.share
        x = torch.where(mirrored.view(-1, 1, 1, 1), batch.flip(-1), batch)
        return self.classification_step(x, mirrored.long())
