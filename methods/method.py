"""The contract every training method implements, and the epoch loop they share.

A method is one file (``methods/pretext/``, ``methods/baselines/``, or a plugin) with one ``Method``
subclass that declares what the rest of the platform needs to know about it: its ``name``, its own
``Options`` (defaults and checks), its ``defaults`` for the training fields, what it ``trains_on``, its cost
(``passes_per_patch``, for ``monosweep plan``) and its ``trunk_style``. It owns the trunk it trains, its
heads and optimisers. The trial calls ``train_epoch`` once per epoch and checkpoints ``state_dict()``
between epochs; everything with a ``state_dict`` that the method keeps as an attribute (modules, optimisers,
schedulers) is saved and restored without per-method code.
"""

from __future__ import annotations

import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar, cast

from methods._lazy import lazy
from methods.metrics import EPOCH, EPOCH_SECONDS, LR, STEPS, TRAIN
from methods.trial.config import MethodOptions, ResolvedConfig, TrainingDefaults
from methods.trunk.arch import PLAIN, TrunkStyle

if TYPE_CHECKING:
    from methods.trial.context import TrialContext
    from methods.trunk.alexnet import AlexNet

torch, F = lazy("torch"), lazy("torch.nn.functional")

__all__ = ["Diverged", "Method", "TrainsOn"]

log = logging.getLogger("monosweep.trial")
_CHECK_EVERY = 50  # steps between finiteness checks (each one waits for the device)
_PROGRESS_SECONDS = 15.0
TrainsOn = Literal["patches", "labelled", "nothing"]
OptionsT = TypeVar("OptionsT", bound=MethodOptions)


class Diverged(RuntimeError):
    """Training produced a non-finite loss (or a method-specific collapse); the trial keeps its last good state."""


class Method(ABC, Generic[OptionsT]):
    """One self-supervised (or baseline) method; see the module docstring for what a subclass declares."""

    name: ClassVar[str]
    Options: ClassVar[type[MethodOptions]] = MethodOptions
    defaults: ClassVar[TrainingDefaults]
    trains_on: ClassVar[TrainsOn] = "patches"  # patches of the source photos, a labelled set (train_data)
    passes_per_patch: ClassVar[float] = 1.0  # trunk forward+backward passes per training patch (a forward: 1/3)
    trunk_style: ClassVar[TrunkStyle] = PLAIN  # how its original builds the AlexNet (activations, conv1's BN)
    lr_scales_with_batch: ClassVar[bool] = True  # SGD: lr_scaling=linear keeps its lr per sample (not Adam)

    def __init__(self, trunk: AlexNet, ctx: TrialContext) -> None:
        self.trunk = trunk
        self.ctx = ctx
        self.cfg: ResolvedConfig = ctx.config
        self.options = cast(OptionsT, ctx.config.options)

    @classmethod
    def trains(cls) -> bool:
        return cls.trains_on != "nothing"

    @classmethod
    def passes(cls, cfg: ResolvedConfig) -> float:
        """Trunk passes per training patch of this trial, for ``plan`` (``passes_per_patch`` unless the
        method's options change it)."""
        return cls.passes_per_patch

    @classmethod
    def warnings(cls, cfg: ResolvedConfig) -> list[str]:
        """What is legal but likely not what a faithful run wants (one line each, saying how to fix it);
        ``validate``, ``plan`` and ``run`` print them. Never refused: a spec that ran keeps its trial ids."""
        return []

    @classmethod
    def check_config(cls, cfg: ResolvedConfig) -> None:
        """Checks across fields, before anything runs (a one-line InputError); the options' own checks are
        validators of ``Options``."""

    # ---------------------------------------------------------------- what a method writes
    @abstractmethod
    def training_step(self, batch: Any) -> dict[str, torch.Tensor]:
        """One optimisation step; returns detached scalars, at least ``loss``."""

    def batches(self, epoch: int) -> Iterable[Any]:
        """The epoch's batches; by default the trial's patches (see ``patch_batches``)."""
        return self.patch_batches(epoch)

    def patch_batches(self, epoch: int, indices: torch.Tensor | None = None,
                      views: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
        """The trial's patches of ``epoch`` (its stream, or the patches numbered ``indices``, cropped by
        ``views`` if given: ``methods.patches.sampling.training_views``), in batches.

        From the patch generator every batch is rendered into one reused buffer, so a batch is only valid
        until the next one is drawn. That is safe for ``train_epoch``, which drops each batch after its
        step, as long as ``training_step`` keeps nothing that aliases its batch (RotNet, DeepCluster and
        BiGAN only derive new tensors from it); a method that must keep batches draws its own.
        """
        cfg = self.cfg
        source = self.ctx.patches()
        if indices is None:
            return source.epoch_batches(epoch, cfg.batch_size, cfg.patches_per_epoch, reuse=True)
        return source.batches_at(epoch, indices, cfg.batch_size, reuse=True, views=views)

    def start_epoch(self, epoch: int) -> None:
        """Hook before an epoch's steps (DeepCluster re-clusters here)."""

    def end_epoch(self, epoch: int) -> None:
        """Hook after an epoch's steps; steps the attribute ``schedule`` if there is one."""
        schedule = getattr(self, "schedule", None)
        if schedule is not None:
            schedule.step()

    # ---------------------------------------------------------------- shared machinery
    def steps_per_epoch(self) -> int:
        return -(-self.cfg.patches_per_epoch // self.cfg.batch_size)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """Run one epoch and return its mean step metrics as ``train.<name>``, with its number and timing."""
        self.trunk.train()
        self.start_epoch(epoch)
        sums: dict[str, torch.Tensor] = {}
        steps, t0, last_log = 0, time.perf_counter(), time.perf_counter()
        total = self.steps_per_epoch()
        for batch in self.batches(epoch):
            metrics = self.training_step(batch)
            for k, v in metrics.items():
                sums[k] = sums[k] + v.detach().float() if k in sums else v.detach().float()
            steps += 1
            if steps % _CHECK_EVERY == 0:
                self.check(metrics)
            if time.perf_counter() - last_log > _PROGRESS_SECONDS:
                last_log = time.perf_counter()
                rate = steps / (last_log - t0)
                log.info("epoch %d  step %d/%d  loss %.4f  %.1f steps/s  epoch ETA %.0fs", epoch + 1, steps,
                         total, float(metrics["loss"]), rate, (total - steps) / max(rate, 1e-9))
        means = {k: float(v) / max(steps, 1) for k, v in sums.items()}
        means.update(self.epoch_metrics())
        self.check(means, epoch_end=True)
        lr = self.current_lr()  # the rate this epoch ran at, before the schedule steps
        self.end_epoch(epoch)
        seconds = time.perf_counter() - t0
        out = {TRAIN + k: v for k, v in means.items()}
        out.update({EPOCH: float(epoch + 1), EPOCH_SECONDS: seconds, STEPS: float(steps)})
        if lr is not None:
            out[LR] = lr
        return out

    def classification_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """One SGD step of cross-entropy through ``trunk`` and ``self.head`` with ``self.optimizer``
        (what RotNet and the supervised baseline share; DeepCluster's pseudo-labels too)."""
        head, optimizer = self.head, self.optimizer
        with self.ctx.autocast():
            logits = head(self.trunk(self.ctx.prepare(x))).float()
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss.detach(), "acc": (logits.argmax(1) == y).float().mean()}

    def current_lr(self) -> float | None:
        optimiser = getattr(self, "optimizer", None)
        return float(optimiser.param_groups[0]["lr"]) if optimiser is not None else None

    def epoch_metrics(self) -> dict[str, float]:
        """Metrics measured once per epoch rather than per step (DeepCluster's NMI, cluster count)."""
        return {}

    def check(self, metrics: dict[str, Any], epoch_end: bool = False) -> None:
        """Raise :class:`Diverged` if training has failed (by default: a non-finite loss). Called with a
        step's metrics every few steps, and with the epoch's means (``epoch_end=True``)."""
        for name, value in metrics.items():
            if name.endswith("loss") and not math.isfinite(float(value)):
                raise Diverged(f"non-finite {name} {float(value)}")

    def _stateful(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "ctx" and hasattr(v, "state_dict")}

    def state_dict(self) -> dict[str, Any]:
        return {k: v.state_dict() for k, v in self._stateful().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        stateful = self._stateful()
        missing = set(stateful) - set(state)
        if missing:
            raise ValueError(f"checkpoint lacks state for {sorted(missing)}")
        for k, v in stateful.items():
            v.load_state_dict(state[k])
