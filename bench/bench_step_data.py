"""Is data free? A RotNet training step fed by the live patch generator vs the same step on pre-made tensors.

Both arms run the method's own step (``RotNet.training_step``: all four rotations, bf16 autocast and
channels_last on CUDA, SGD) on the same model in one process. The live arm draws each batch from the
trial's patch stream the way ``Method.train_epoch`` does (``patch_batches``: the generator on the trial's
device, every batch rendered into one reused buffer); the pre-made arm cycles through a few batches of
the same shape made beforehand and already on the device. If making patches is free, the ratio
live / pre-made is 1; the target on a GPU is >= 0.95 (performance-notes §7 row 2). On a CPU the
generator competes with the step for the same cores, so the ratio shows the generator's share there.

    python bench/bench_step_data.py                  # CUDA: 64 and 224 px, batch 192; CPU: 64 px, batch 64
    python bench/bench_step_data.py --sizes 128 --batch 128
    python bench/bench_step_data.py --smoke          # seconds, tiny (CI)
"""

from __future__ import annotations

import itertools
import os
import platform
import statistics
from collections.abc import Iterator

import torch
from _timing import parser as bench_parser
from _timing import rate

from methods import METHODS, TrialConfig
from methods.method import Method
from methods.trial.context import TrialContext
from methods.trial.inputs import pick_device
from methods.trunk.alexnet import AlexNet


def build(size: int, batch: int, head_hidden: int) -> Method:
    """A RotNet method as ``run_trial`` builds it (trunk channels_last on CUDA), outside any trial."""
    config = TrialConfig(method="rotnet", img_size=size, batch_size=batch, head_hidden=head_hidden,
                         patches_per_epoch=batch * 1000, epochs=1, device="auto").resolved()
    ctx = TrialContext(config, pick_device("auto"))
    torch.manual_seed(0)
    trunk = AlexNet(config.arch, sobel=bool(config.sobel)).to(ctx.device)
    if ctx.cuda:
        trunk = trunk.to(memory_format=torch.channels_last)
    return METHODS["rotnet"](trunk, ctx)


def _endless(method: Method) -> Iterator[torch.Tensor]:
    """The method's training batches, epoch after epoch (epoch 1 is kept for the pre-made arm)."""
    for epoch in itertools.count(2):
        yield from method.patch_batches(epoch)


def compare(size: int, batch: int, head_hidden: int, seconds: float, rounds: int) -> tuple[float, float]:
    """Median patches/s of (live generator, pre-made tensors), the arms alternating ``rounds`` times."""
    method = build(size, batch, head_hidden)
    method.trunk.train()
    sync = torch.cuda.synchronize if method.ctx.cuda else (lambda: None)
    # Pre-made: a few real patches, cloned out of the generator and kept on the device.
    made = [x.clone() for x in itertools.islice(method.patch_batches(1), 4)]
    cycle = itertools.cycle(made)
    live = _endless(method)

    def live_step() -> int:
        x = next(live)
        method.training_step(x)
        return x.shape[0]

    def premade_step() -> int:
        x = next(cycle)
        method.training_step(x)
        return x.shape[0]

    lives, premades = [], []
    for _ in range(rounds):
        lives.append(rate(live_step, seconds, sync, warmup=2))
        premades.append(rate(premade_step, seconds, sync, warmup=2))
    return statistics.median(lives), statistics.median(premades)


def main() -> None:
    parser = bench_parser(__doc__, rounds=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="patch sizes (default: CUDA 64 224, CPU 64)")
    parser.add_argument("--batch", type=int, default=None, help="patches per step (default: CUDA 192, CPU 64)")
    parser.add_argument("--head-hidden", type=int, default=4096, help="RotNet head width (the method's default)")
    parser.add_argument("--seconds", type=float, default=None, help="timed seconds per arm and round")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    torch.set_num_threads(cores)
    device = pick_device("auto")
    cuda = device.type == "cuda"
    if args.smoke:
        args.sizes, args.batch, args.head_hidden, args.seconds, args.rounds = [64], 4, 64, 0.3, 1
    sizes = args.sizes or ([64, 224] if cuda else [64])
    batch = args.batch or (192 if cuda else 64)
    seconds = args.seconds or (3.0 if cuda else 8.0)
    gpu = torch.cuda.get_device_name() if cuda else "none"
    cpu = platform.processor() or platform.machine()
    print(f"machine: {cpu}, {cores} cores, GPU: {gpu}; torch {torch.__version__}; device {device}")
    print(f"RotNet step (x4 rotations), big AlexNet, head {args.head_hidden}, batch {batch} patches; "
          f"medians of {args.rounds} alternating rounds of {seconds:g} s per arm")
    print(f"{'size':>5}{'live generator /s':>19}{'pre-made /s':>13}{'ratio':>8}")
    for size in sizes:
        live, premade = compare(size, batch, args.head_hidden, seconds, args.rounds)
        print(f"{size:>5}{live:>19.1f}{premade:>13.1f}{live / premade:>7.2f}x", flush=True)
    print("ratio = live / pre-made patches/s: 1 when data is free; the GPU target is 0.95 or more")


if __name__ == "__main__":
    main()
