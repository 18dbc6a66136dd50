"""Training-step throughput of BiGAN vs RotNet at the same image size and batch, as a ratio.

Both train on the same generator patches for a fixed wall time; patches/s counts the patches consumed
(RotNet's 4 rotations of a patch count as one patch, as its batch size does). BiGAN's step runs the
encoder, the generator and the joint discriminator three times; the reference figure (Theano, Titan X)
puts it at 0.3-0.5x a RotNet step.

    python bench/bench_steps.py                  # 64 px, batch 64
    python bench/bench_steps.py --size 128 --batch 128
    python bench/bench_steps.py --smoke          # seconds, tiny (CI)
"""

from __future__ import annotations

import os
import platform
import time

import torch
from _timing import parser as bench_parser

from methods import METHODS, TrialConfig
from methods.trial.context import TrialContext
from methods.trial.inputs import pick_device
from methods.trunk.alexnet import AlexNet


def rate(name: str, size: int, batch: int, seconds: float) -> float:
    config = TrialConfig(method=name, img_size=size, batch_size=batch, patches_per_epoch=10**9, epochs=1,
                         device="auto").resolved()
    ctx = TrialContext(config, pick_device("auto"))
    torch.manual_seed(0)
    trunk = AlexNet(config.arch, sobel=bool(config.sobel), style=config.trunk_style).to(ctx.device)
    method = METHODS[name](trunk, ctx)
    patches = ctx.patches()
    sync = torch.cuda.synchronize if ctx.cuda else (lambda: None)

    def step(i: int) -> None:
        method.training_step(patches.batches_at(0, torch.arange(i * batch, (i + 1) * batch), batch).__next__())

    step(0)
    sync()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step(done + 1)
        done += 1
    sync()
    return done * batch / (time.perf_counter() - start)


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    if args.smoke:
        args.size, args.batch, args.seconds = 64, 4, 0.5
    # Smoke runs share a CI machine: one thread avoids the stalls of oversubscribed thread pools.
    torch.set_num_threads(1 if args.smoke else len(os.sched_getaffinity(0)))
    device = pick_device("auto")
    gpu = torch.cuda.get_device_name() if device.type == "cuda" else "none"
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, GPU: {gpu}; torch {torch.__version__}")
    print(f"{args.size} px, batch {args.batch}, {args.seconds:g} s per method")
    rotnet, bigan = (rate(name, args.size, args.batch, args.seconds) for name in ("rotnet", "bigan"))
    print(f"rotnet  {rotnet:9.1f} patches/s")
    print(f"bigan   {bigan:9.1f} patches/s")
    print(f"ratio (BiGAN / RotNet): {bigan / rotnet:.2f}x")


if __name__ == "__main__":
    main()
