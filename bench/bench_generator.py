"""Patches/s of the batched generator vs the released PIL recipe, side by side in one process.

The alternative is what the original code does: torchvision transforms on a PIL image, one image at
a time, in as many DataLoader workers as there are cores, collated into batches. Ours draws whole
batches with one resampling pass (plus the colour pass), on the GPU when there is one, else on the
same cores. Both arms produce float tensors (B, 3, S, S) in [0, 1].

    python bench/bench_generator.py                 # 64 and 224 px, small and large source photo
    python bench/bench_generator.py --rounds 1      # quicker

The arms alternate for several rounds and the medians are compared, because a shared machine's
speed drifts by tens of percent from minute to minute.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from PIL import Image

from methods.patches import PatchGenerator, PatchRecipe
from methods.pil_recipe import released_transform
from methods.sources import resolve_sources


class _PilPatches(torch.utils.data.Dataset):
    def __init__(self, image: Image.Image, recipe: PatchRecipe, length: int) -> None:
        self.image, self.length = image, length
        self.transform = released_transform(recipe, (image.height, image.width))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(self.image)


def _rate(step: Callable[[], int], seconds: float, sync: Callable[[], None]) -> float:
    step()  # warm-up
    sync()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        done += step()
    sync()
    return done / (time.perf_counter() - start)


def _pil_round(pil: Image.Image, recipe: PatchRecipe, batch: int, workers: int, seconds: float) -> float:
    loader = torch.utils.data.DataLoader(_PilPatches(pil, recipe, 10**9), batch_size=batch, num_workers=workers)
    batches = iter(loader)
    rate = _rate(lambda: next(batches).shape[0], seconds, lambda: None)
    batches._shutdown_workers()  # type: ignore[attr-defined]
    return rate


def compare(source: torch.Tensor, size: int, batch: int, device: str, seconds: float,
            rounds: int) -> tuple[float, float]:
    """Median patches/s of (PIL recipe in DataLoader workers, ours), the arms alternating ``rounds`` times."""
    recipe = PatchRecipe(size=size)
    pil = Image.fromarray(source.permute(1, 2, 0).numpy())
    workers = len(os.sched_getaffinity(0))
    gen = PatchGenerator([source], recipe, seed=0, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    theirs, ours = [], []
    for _ in range(rounds):
        # A fresh loader per round, shut down before our arm runs: its workers prefetch in the
        # background and would otherwise compete with our arm for the cores.
        theirs.append(_pil_round(pil, recipe, batch, workers, seconds))
        # The training path: an epoch's stream, every batch rendered into one reused buffer.
        stream = gen.epoch_batches(len(ours), batch, batch * 100_000, reuse=True)
        ours.append(_rate(lambda stream=stream: next(stream).shape[0], seconds, sync))
    return statistics.median(theirs), statistics.median(ours)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per arm and round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; medians are reported")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()

    cores = len(os.sched_getaffinity(0))
    torch.set_num_threads(cores)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    gpu = torch.cuda.get_device_name() if device == "cuda" else "none"
    cpu = platform.processor() or platform.machine()
    print(f"machine: {cpu}, {cores} cores, GPU: {gpu}; torch {torch.__version__}")
    print(f"PIL arm: {cores} DataLoader workers; ours: {device}" + ("" if device == "cuda" else f", {cores} threads"))

    small = resolve_sources("sample:astronaut", 1, 0)[0].load()
    # The paper's Image B is 2560 x 1920; a sample photo upscaled to that size costs PIL the same.
    large = F.interpolate(resolve_sources("sample:retina", 1, 0)[0].load()[None].float(), (1920, 2560),
                          mode="bilinear").round().clamp(0, 255).to(torch.uint8)[0]
    print(f"{'source':<18}{'size':>5}{'PIL patches/s':>16}{'ours patches/s':>17}{'ratio':>8}")
    for name, source in (("512x512 photo", small), ("2560x1920 photo", large)):
        for size in args.sizes:
            theirs, ours = compare(source, size, args.batch, device, args.seconds, args.rounds)
            print(f"{name:<18}{size:>5}{theirs:>16.0f}{ours:>17.0f}{ours / theirs:>7.1f}x", flush=True)


if __name__ == "__main__":
    main()
