"""Achieved FLOP/s of the big-AlexNet training step vs a large matmul timed in the same run (an MFU-like ratio).

The step is what a RotNet trial runs per batch: the big AlexNet trunk and RotNet's head (two 4096-wide
FC+BN layers, 4 outputs), forward + backward + an SGD (Nesterov) step, on pre-made inputs already on the
device (all four rotations of ``--batch`` patches, so 4 x batch images per step). Its FLOPs are counted
once with ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matmuls, forward and backward);
the reference is a square matmul of the same run (bf16 on CUDA, fp32 on the CPU), so the ratio says how
much of what this device can do the step gets. Knobs, each on and off: channels_last, bf16 autocast
(CUDA only; on the CPU the step runs fp32 and bf16 autocast is reported as a CUDA path) and
``torch.compile`` (default on with CUDA, off on the CPU, where compiling takes > 30 s on 2 cores).
Configurations alternate over the rounds and medians are reported (performance-notes §7 rows 1, 3, 5).

The last line is the achieved TFLOP/s of the configuration trials actually run (CUDA: bf16 autocast +
channels_last, not compiled; CPU: fp32, NCHW) in the form ``monosweep plan --tflops`` takes. The plan
counts a step as 3 x the forward FLOPs; the counted forward + backward is within a few percent of that
(conv1's input gradient is never computed), and both figures per image are printed.

    python bench/bench_mfu.py                     # CUDA: 224 px, batch 192 (x4 rotations); CPU: 64 px, batch 8
    python bench/bench_mfu.py --size 128 --no-compile
    python bench/bench_mfu.py --smoke             # seconds, tiny (CI)
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from _timing import parser as bench_parser
from _timing import rate
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from methods.optim import sgd
from methods.pretext.rotnet import rotations
from methods.trial.inputs import pick_device
from methods.trunk.alexnet import AlexNet
from methods.trunk.heads import mlp_head


@dataclass(frozen=True)
class Config:
    channels_last: bool
    bf16: bool
    compiled: bool

    def __str__(self) -> str:
        return " + ".join([("bf16 autocast" if self.bf16 else "fp32"), ("channels_last" if self.channels_last
                                                                         else "NCHW")]
                          + (["compile"] if self.compiled else []))


class Step:
    """One configuration's model, optimiser and inputs; ``__call__`` runs one training step."""

    def __init__(self, config: Config, size: int, batch: int, device: torch.device, head_hidden: int) -> None:
        self.config, self.device = config, device
        torch.manual_seed(0)
        trunk = AlexNet("big").to(device)
        head = mlp_head(trunk.output_dim(size), 4, head_hidden).to(device)
        self.model: nn.Module = nn.Sequential(trunk, head)
        self.optimiser = sgd([trunk, head], lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True)
        patches = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
        self.x, self.y = rotations(patches)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
            self.x = self.x.contiguous(memory_format=torch.channels_last)
        self.forward: Callable[[torch.Tensor], torch.Tensor] = (
            torch.compile(self.model) if config.compiled else self.model)  # type: ignore[assignment]

    @property
    def images(self) -> int:
        return int(self.x.shape[0])

    def __call__(self) -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.config.bf16):
            logits = self.forward(self.x).float()
        loss = F.cross_entropy(logits, self.y)
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()


def count_flops(step: Step) -> tuple[float, float]:
    """FLOPs of one training step and of one forward pass, counted by torch on an eager step."""
    with FlopCounterMode(display=False) as counter:
        step()
    with FlopCounterMode(display=False) as forward, torch.no_grad():
        step.model(step.x)
    return float(counter.get_total_flops()), float(forward.get_total_flops())


def _counted(run: Callable[[], object]) -> Callable[[], int]:
    """``run`` as a step of :func:`rate` that counts calls."""
    def step() -> int:
        run()
        return 1
    return step


def main() -> None:
    parser = bench_parser(__doc__, rounds=3)
    parser.add_argument("--size", type=int, default=None, help="image px (default: CUDA 224, CPU 64)")
    parser.add_argument("--batch", type=int, default=None, help="patches per step, x4 rotations (default: CUDA 192, "
                        "CPU 8)")
    parser.add_argument("--head-hidden", type=int, default=4096, help="RotNet head width (the method's default)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="also time torch.compile'd configurations (default: on with CUDA, off on the CPU)")
    parser.add_argument("--matmul", type=int, default=None, help="side of the square matmul (default: CUDA 8192, "
                        "CPU 2048)")
    parser.add_argument("--seconds", type=float, default=None, help="timed seconds per config and round")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    torch.set_num_threads(1 if args.smoke else cores)  # smoke runs share a CI machine: no oversubscription
    device = pick_device("auto")
    cuda = device.type == "cuda"
    if args.smoke:
        args.size, args.batch, args.head_hidden, args.matmul, args.seconds, args.rounds = 64, 2, 64, 256, 0.2, 1
    size = args.size or (224 if cuda else 64)
    batch = args.batch or (192 if cuda else 8)
    compile_too = cuda and not args.smoke if args.compile is None else args.compile
    n = args.matmul or (8192 if cuda else 2048)
    seconds = args.seconds or (2.0 if cuda else 4.0)
    dtype = torch.bfloat16 if cuda else torch.float32
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    gpu = torch.cuda.get_device_name() if cuda else "none"
    cpu = platform.processor() or platform.machine()
    print(f"machine: {cpu}, {cores} cores, GPU: {gpu}; torch {torch.__version__}; device {device}")
    if cuda:
        print(f"fp32 rows use torch's defaults: cuDNN TF32 {torch.backends.cudnn.allow_tf32}, "
              f"matmul TF32 {torch.backends.cuda.matmul.allow_tf32}")
    else:
        print(f"{torch.get_num_threads()} threads; bf16 autocast is a CUDA path (trials run fp32 on the CPU): "
              "not timed here")
    configs = [Config(cl, bf16, comp) for comp, bf16, cl in itertools.product(
        (False, True) if compile_too else (False,), (False, True) if cuda else (False,), (False, True))]
    steps = {c: Step(c, size, batch, device, args.head_hidden) for c in configs}
    first = steps[configs[0]]
    step_flops, forward_flops = count_flops(first)
    per_image = step_flops / first.images
    print(f"big AlexNet + RotNet head ({args.head_hidden}), {size} px, {batch} patches x 4 rotations = "
          f"{first.images} images/step; counted {per_image / 1e9:.3f} GFLOP/image fwd+bwd "
          f"(plan's 3 x forward: {3 * forward_flops / first.images / 1e9:.3f})")

    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for config, step in steps.items():  # warm-up (compiling happens here)
        start = time.perf_counter()
        for _ in range(3):
            step()
        sync()
        if config.compiled:
            print(f"  compiled {config} in {time.perf_counter() - start:.0f} s (3 warm-up steps included)")
    torch.matmul(a, b)
    matmuls: list[float] = []
    rates: dict[Config, list[float]] = {c: [] for c in configs}
    for _ in range(args.rounds):
        matmuls.append(2 * n**3 * rate(_counted(lambda: torch.matmul(a, b)), seconds, sync) / 1e12)
        for config, step in steps.items():
            rates[config].append(rate(_counted(step), seconds, sync))
    peak = statistics.median(matmuls)
    print(f"matmul {n}x{n} {str(dtype).removeprefix('torch.')}: {peak:.3f} TFLOP/s (median of {args.rounds})")
    print(f"{'config':<40}{'img/s':>10}{'TFLOP/s':>10}{'vs matmul':>11}")
    achieved: dict[Config, float] = {}
    for config in configs:
        steps_per_s = statistics.median(rates[config])
        achieved[config] = steps_per_s * step_flops / 1e12
        print(f"{str(config):<40}{steps_per_s * first.images:>10.1f}{achieved[config]:>10.3f}"
              f"{achieved[config] / peak:>10.2f}x")
    trial = Config(channels_last=cuda, bf16=cuda, compiled=False)
    print(f"(the configuration trials run: {trial})")
    print(f"for monosweep plan: --tflops {achieved[trial]:.3g}")


if __name__ == "__main__":
    main()
