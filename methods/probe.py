"""All-layer linear probe: five heads (conv1..conv5) trained in one pass over the labelled data.

The protocol of the paper's probe code (yukimasano/linear-probes), without its bugs: the trunk is frozen
for real (eval mode, features under ``torch.inference_mode``, never in the optimiser) and checked to be
bit-identical afterwards; each tap is max-pooled to about 9k values with sizes derived from the actual
feature maps (so ``big``, ``small`` and any input size work); BatchNorm without affine + Linear per
layer; summed cross-entropy; SGD with the step schedule 10/20/30 of 36 epochs, rescaled to any length.

When the pooled features of the probe set are small enough (``probe_cache: auto``, decided from the
config alone) they are extracted once and the heads train on the cache (the trunk then runs once per
image instead of once per epoch; the protocol's random crop + flip is then replaced by the centre view).
Otherwise features are streamed every epoch from training images with the protocol's random-resized
crop + flip (batched on the device for in-memory sets). Evaluation always sees the centre view.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from methods.data.labelled import LabelledData, Split
from methods.errors import InputError
from methods.optim import step_schedule
from methods.trial.config import PROBE_CACHE_LIMIT_BYTES
from methods.trunk.alexnet import AlexNet
from methods.trunk.arch import TAPS

__all__ = ["ProbeSettings", "pooled_sides", "run_probe"]

log = logging.getLogger("monosweep.probe")


@dataclass(frozen=True)
class ProbeSettings:
    epochs: int = 36
    lr: float = 0.01
    batch_size: int = 192
    weight_decay: float = 1e-5
    momentum: float = 0.9
    milestones: tuple[float, ...] = (10 / 36, 20 / 36, 30 / 36)
    target_dims: int = 9216
    cache: str = "auto"  # auto | always | never
    seed: int = 0
    workers: int = 0


def pooled_sides(trunk: AlexNet, size: int, target_dims: int = 9216) -> dict[str, tuple[int, int]]:
    """Per tap (channels, pooled side): the side whose C x side^2 is closest to ``target_dims``.

    For the big AlexNet at 224 px this gives the reference table (10, 6, 5, 5, 6 -> 9600/9216/9600/9600/9216).
    """
    device = next(trunk.parameters()).device
    was_training = trunk.training
    trunk.eval()
    with torch.inference_mode():
        taps = trunk.taps(torch.zeros(1, 3, size, size, device=device))
    trunk.train(was_training)
    sides = {}
    for name, t in taps.items():
        channels, spatial = t.shape[1], min(t.shape[-2:])
        sides[name] = (channels, max(1, min(spatial, round(math.sqrt(target_dims / channels)))))
    return sides


class ProbeHeads(nn.Module):
    """BatchNorm (no affine) + Linear per tap, on max-pooled features."""

    def __init__(self, sides: Mapping[str, tuple[int, int]], num_classes: int) -> None:
        super().__init__()
        self.sides = dict(sides)
        self.norms = nn.ModuleDict({k: nn.BatchNorm2d(c, affine=False) for k, (c, _) in sides.items()})
        self.linears = nn.ModuleDict({k: nn.Linear(c * s * s, num_classes) for k, (c, s) in sides.items()})
        for linear in self.linears.values():
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)

    def forward(self, feats: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for k, (c, s) in self.sides.items():
            x = feats[k].float().view(-1, c, s, s)
            out[k] = self.linears[k](torch.flatten(self.norms[k](x), 1))
        return out


def _features(trunk: AlexNet, x: torch.Tensor, sides: Mapping[str, tuple[int, int]]) -> dict[str, torch.Tensor]:
    """Pooled taps of a frozen trunk, as ordinary tensors usable by autograd afterwards."""
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=x.device.type == "cuda")
    with torch.inference_mode(), autocast:
        if x.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        taps = trunk.taps(x, list(sides))
        pooled = {k: F.adaptive_max_pool2d(t, sides[k][1]).flatten(1) for k, t in taps.items()}
    return {k: v.clone() for k, v in pooled.items()}


def _available_bytes(device: torch.device) -> int:
    """What could be allocated: free device memory, or the kernel's MemAvailable (free pages plus the page
    cache it can drop; the free pages alone are often a fraction of it on a machine that has read files)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


class _Cache:
    """Pooled float16 features of a whole split, extracted once."""

    def __init__(self, trunk: AlexNet, split: Split, sides: Mapping[str, tuple[int, int]],
                 settings: ProbeSettings, device: torch.device) -> None:
        n = len(split)
        self.labels = split.labels.to(device)
        self.feats = {k: torch.empty(n, c * s * s, dtype=torch.float16, device=device) for k, (c, s) in sides.items()}
        start = 0
        for x, _ in split.batches(settings.batch_size, device, workers=settings.workers):
            for k, v in _features(trunk, x, sides).items():
                self.feats[k][start : start + v.shape[0]] = v
            start += x.shape[0]

    def batches(self, batch_size: int, seed: int) -> list[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        order = torch.randperm(len(self.labels), generator=torch.Generator().manual_seed(seed))
        order = order.to(self.labels.device)
        return [({k: v[idx] for k, v in self.feats.items()}, self.labels[idx])
                for idx in order.split(batch_size)]


def _use_cache(mode: str, data: LabelledData, sides: Mapping[str, tuple[int, int]], device: torch.device) -> bool:
    """Whether to cache, from the config alone (``PROBE_CACHE_LIMIT_BYTES``); a cache that does not fit in
    memory now is refused in one line rather than silently swapped for the streamed protocol."""
    needed = len(data.train) * sum(c * s * s for c, s in sides.values()) * 2
    if mode != "always" and (mode == "never" or needed > PROBE_CACHE_LIMIT_BYTES):
        return False
    available = _available_bytes(device)
    if needed > available * 0.8:
        raise InputError(f"the probe's feature cache needs {needed / 2**30:.1f} GiB but {available / 2**30:.1f} GiB "
                         f"is available on {device}; set probe_cache: never (streams random crops every epoch, "
                         f"a different protocol) or probe_train_limit, or free memory")
    return True


def _state(trunk: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trunk.state_dict().items()}


def run_probe(
    trunk: AlexNet, data: LabelledData, settings: ProbeSettings, device: torch.device
) -> dict[str, dict[str, float]]:
    """Train the five heads on ``data.train`` and return {tap: {"top1", "top5", "loss"}} on ``data.val``."""
    trunk.eval()
    grad_flags = [p.requires_grad for p in trunk.parameters()]
    trunk.requires_grad_(False)
    before = _state(trunk)
    try:
        heads, sides = _train_heads(trunk, data, settings, device)
        results = _evaluate(trunk, heads, data.val, sides, settings, device)
    finally:
        for p, flag in zip(trunk.parameters(), grad_flags, strict=True):
            p.requires_grad_(flag)
    after = trunk.state_dict()
    changed = [k for k, v in before.items() if not torch.equal(v, after[k])]
    if changed:
        raise RuntimeError(f"the probe changed the frozen trunk: {changed[:3]}")
    return results


def _train_heads(trunk: AlexNet, data: LabelledData, settings: ProbeSettings,
                 device: torch.device) -> tuple[ProbeHeads, dict[str, tuple[int, int]]]:
    sides = pooled_sides(trunk, data.train.size, settings.target_dims)
    heads = ProbeHeads(sides, data.num_classes).to(device)
    optimiser = torch.optim.SGD(heads.parameters(), lr=settings.lr, momentum=settings.momentum,
                                weight_decay=settings.weight_decay)
    schedule = step_schedule(optimiser, settings.epochs, settings.milestones)

    t0 = time.perf_counter()
    use_cache = _use_cache(settings.cache, data, sides, device)
    cache = _Cache(trunk, data.train, sides, settings, device) if use_cache else None
    if cache is not None:
        log.info("probe: cached %d x %d pooled features in %.1fs", len(data.train),
                 sum(c * s * s for c, s in sides.values()), time.perf_counter() - t0)
    for epoch in range(settings.epochs):
        heads.train()
        seed = settings.seed * 1000 + epoch
        if cache is not None:
            batches = cache.batches(settings.batch_size, seed)
        else:
            batches = ((_features(trunk, x, sides), y) for x, y in data.train.batches(
                settings.batch_size, device, shuffle_seed=seed, augment=True, crop=True, workers=settings.workers))
        total, count = 0.0, 0
        for feats, y in batches:
            logits = heads(feats)
            loss = sum(F.cross_entropy(out, y) for out in logits.values())
            optimiser.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[union-attr]
            optimiser.step()
            total += float(loss.detach()) * y.shape[0]  # type: ignore[union-attr]
            count += y.shape[0]
        schedule.step()
        log.info("probe epoch %d/%d  summed loss %.3f  (%.0fs)", epoch + 1, settings.epochs,
                 total / max(count, 1), time.perf_counter() - t0)
    return heads, sides


def _evaluate(trunk: AlexNet, heads: ProbeHeads, split: Split, sides: Mapping[str, tuple[int, int]],
              settings: ProbeSettings, device: torch.device) -> dict[str, dict[str, float]]:
    heads.eval()
    k = min(5, heads.linears[TAPS[0]].out_features)
    hits = {name: torch.zeros(2, dtype=torch.float64) for name in sides}
    losses = dict.fromkeys(sides, 0.0)
    n = 0
    with torch.no_grad():
        for x, y in split.batches(settings.batch_size, device, workers=settings.workers):
            logits = heads(_features(trunk, x, sides))
            for name, out in logits.items():
                top = out.topk(k, dim=1).indices
                correct = top.eq(y[:, None])
                hits[name][0] += float(correct[:, 0].sum())
                hits[name][1] += float(correct.any(1).sum())
                losses[name] += float(F.cross_entropy(out, y, reduction="sum"))
            n += y.shape[0]
    return {name: {"top1": 100.0 * float(h[0]) / n, "top5": 100.0 * float(h[1]) / n, "loss": losses[name] / n}
            for name, h in hits.items()}
