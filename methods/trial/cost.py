"""What a trial will cost, before it runs: FLOPs from the trunk's own layers, turned into GPU-hours at an
assumed achieved throughput (``monosweep plan --tflops``), or into hours on this CPU (``monosweep trial``
asks before it starts a trial that would take longer than ``CPU_CONFIRM_S`` there).

The trunk's FLOPs are counted, not guessed: every convolution of the trunk's layer table adds 2 x its
multiply-adds at the trial's size (what torch's FlopCounterMode counts; tests/sweep/test_spec.py checks the
walk against a forward pass of the real trunk with every conv and linear layer hooked), so a plan loads no
torch. The rest is a short
list of stated assumptions: how many trunk passes a method makes per patch (each method's
``passes_per_patch``), the size of a probe set named by its path, and the throughput. Measure the
throughput on your GPU with ``bench/bench_mfu.py`` and pass it in; the default is an H100 at about 20 % of
its bf16 peak. This is compute only: a probe that streams JPEGs (ImageNet) is often bound by decoding.

On a CPU the figure is ``CPU_TFLOPS_PER_CORE``, measured from examples/cpu-aligned.yaml on an Intel Xeon VM
(RotNet, 48.7 TFLOP in ~430 s on one core: 0.11 TFLOP/s); BiGAN's generator and discriminator are not in
the count, so its trials take ~7x the figure there (cpu-aligned: 9 TFLOP counted, 600 s).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from methods import registry
from methods.trial.config import PROBE_CACHE_LIMIT_BYTES, ResolvedConfig
from methods.trunk.arch import ARCHS, conv_sides, pool5_dim

__all__ = ["CPU_CONFIRM_S", "DEFAULT_TFLOPS", "Cost", "cpu_seconds", "sweep_hours", "trial_cost"]

DEFAULT_TFLOPS = 200.0  # achieved bf16 TFLOP/s: ~20 % of an H100's dense peak (performance-notes §0)
CPU_TFLOPS_PER_CORE = 0.11  # achieved fp32 TFLOP/s of one core (see above)
CPU_CONFIRM_S = 3600.0  # `monosweep trial` on a CPU asks for --yes beyond this estimate
_POOLED = 5 * 9216  # pooled values per probe image (5 layers x ~9.2k), cached as 2-byte floats
# Probe training images when no limit is set, by a word in the probe data's path.
PROBE_SIZES = {"imagenet": (1_281_167, 50_000), "places": (2_448_873, 20_500), "cifar": (50_000, 10_000),
               "stl": (5_000, 8_000), "demo": (480, 240)}


@dataclass(frozen=True)
class Cost:
    train_flops: float
    probe_flops: float

    @property
    def flops(self) -> float:
        return self.train_flops + self.probe_flops

    def gpu_hours(self, tflops: float = DEFAULT_TFLOPS) -> float:
        return self.flops / (tflops * 1e12) / 3600


@cache
def _forward_flops(arch: str, size: int, head_hidden: int) -> float:
    """FLOPs of one forward pass of the trunk (and a two-hidden-layer head) on one image: 2 x the multiply-adds
    of every conv, walked through the trunk's layer table (its max-pools included)."""
    total, channels = 0, 3
    for (out, kernel, _, _), side in zip(ARCHS[arch], conv_sides(arch, size), strict=True):
        total += 2 * side * side * out * channels * kernel * kernel
        channels = out
    width = pool5_dim(arch, size)  # what the heads read
    head = 2 * (width * head_hidden + head_hidden * head_hidden) if head_hidden else 0
    return float(total + head)


def _probe_images(cfg: ResolvedConfig) -> tuple[int, int]:
    train, val = next((sizes for word, sizes in PROBE_SIZES.items() if word in cfg.probe_data.lower()),
                      PROBE_SIZES["imagenet"])
    return cfg.probe_train_limit or train, cfg.probe_val_limit or val


def trial_cost(cfg: ResolvedConfig) -> Cost:
    """FLOPs of one trial: pretext training plus the all-layer probe (trunk forwards; the heads are small)."""
    step = 3 * _forward_flops(cfg.arch, cfg.img_size, cfg.head_hidden)  # forward + backward
    passes = registry.get_method(cfg.method).passes(cfg)  # the method's own figure (its file says why)
    train = passes * step * cfg.patches_per_epoch * cfg.epochs
    probe_forward = _forward_flops(cfg.arch, cfg.probe_img_size, 0)
    train_images, val_images = _probe_images(cfg)
    small = train_images * _POOLED * 2 <= PROBE_CACHE_LIMIT_BYTES
    cached = cfg.probe_cache == "always" or (cfg.probe_cache == "auto" and small)
    passes = 1 if cached else cfg.probe_epochs  # cached features: the trunk runs once, not once per epoch
    probes = 1 + max(0, cfg.epochs - 1) // cfg.probe_every if cfg.probe_every else 1
    probe = probe_forward * (train_images * passes + val_images) * probes
    return Cost(train, probe if cfg.probe_epochs else 0.0)


def sweep_hours(configs: Iterable[ResolvedConfig], tflops: float = DEFAULT_TFLOPS) -> float:
    return sum(trial_cost(c).gpu_hours(tflops) for c in configs)


def cpu_seconds(cfg: ResolvedConfig, cores: int) -> float:
    """Seconds the trial's compute takes on ``cores`` CPU cores at the measured rate (a lower bound: the probe's
    decoding and BiGAN's generator are not counted)."""
    return trial_cost(cfg).flops / (CPU_TFLOPS_PER_CORE * 1e12 * max(1, cores))
