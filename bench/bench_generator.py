"""Patches/s of the batched generator vs the released PIL recipe and vs per-sample torchvision ops.

Three arms make the same recipe's patches, float tensors (B, 3, S, S) in [0, 1]:

* PIL: what the original code does: torchvision transforms on a PIL image, one image at a time, in as
  many DataLoader workers as there are cores, collated into batches;
* per-sample torchvision: the same chain as ``torchvision.transforms.v2`` tensor ops on the source
  already on the device (the GPU when there is one), applied one patch at a time and stacked: what
  "GPU augmentation" per sample does (no DataLoader, no PIL; performance-notes §7 rows 7-8);
* ours: the trial's patch stream (``epoch_batches`` into a reused buffer): the fused render, a Triton
  kernel on the GPU when there is one, else a numba loop on the same cores.

    python bench/bench_generator.py                 # 64 and 224 px, small and large source photo
    python bench/bench_generator.py --rounds 1      # quicker
    python bench/bench_generator.py --smoke         # seconds, tiny (CI)

The arms alternate for several rounds and the medians are compared, because a shared machine's
speed drifts by tens of percent from minute to minute.
"""

from __future__ import annotations

import os
import platform
import statistics

import torch
import torch.nn.functional as F
import torchvision.transforms.v2 as v2
from _timing import parser as bench_parser
from _timing import rate
from PIL import Image

from methods.data.sources import resolve_sources
from methods.patches.generator import PatchGenerator, PatchRecipe
from tests.support.pil_recipe import released_steps, released_transform


class _PilPatches(torch.utils.data.Dataset):
    def __init__(self, image: Image.Image, recipe: PatchRecipe, length: int) -> None:
        self.image, self.length = image, length
        self.transform = released_transform(recipe, (image.height, image.width))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(self.image)


def _v2_transform(recipe: PatchRecipe, source_size: tuple[int, int]) -> v2.Compose:
    """The released chain as torchvision v2 tensor ops."""
    return v2.Compose(released_steps(recipe, source_size, v2))


def _pil_round(pil: Image.Image, recipe: PatchRecipe, batch: int, workers: int, seconds: float) -> float:
    loader = torch.utils.data.DataLoader(_PilPatches(pil, recipe, 10**9), batch_size=batch, num_workers=workers)
    batches = iter(loader)
    patches_per_s = rate(lambda: next(batches).shape[0], seconds, warmup=1)
    batches._shutdown_workers()  # type: ignore[attr-defined]
    return patches_per_s


def compare(source: torch.Tensor, size: int, batch: int, device: str, seconds: float,
            rounds: int) -> tuple[float, float, float]:
    """Median patches/s of (PIL recipe in DataLoader workers, per-sample torchvision v2 on ``device``,
    ours), the arms alternating ``rounds`` times."""
    recipe = PatchRecipe(size=size)
    pil = Image.fromarray(source.permute(1, 2, 0).numpy())
    workers = len(os.sched_getaffinity(0))
    gen = PatchGenerator([source], recipe, seed=0, device=device)
    on_device = source.to(device).float().div_(255.0)
    per_sample = _v2_transform(recipe, tuple(source.shape[-2:]))

    def v2_batch() -> int:
        return torch.stack([per_sample(on_device) for _ in range(batch)]).clamp_(0.0, 1.0).shape[0]

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    theirs, tv, ours = [], [], []
    for _ in range(rounds):
        # A fresh loader per round, shut down before the other arms run: its workers prefetch in the
        # background and would otherwise compete with them for the cores.
        theirs.append(_pil_round(pil, recipe, batch, workers, seconds))
        tv.append(rate(v2_batch, seconds, sync, warmup=1))
        # The training path: an epoch's stream, every batch rendered into one reused buffer.
        stream = gen.epoch_batches(len(ours), batch, batch * 100_000, reuse=True)
        ours.append(rate(lambda stream=stream: next(stream).shape[0], seconds, sync, warmup=1))
    return statistics.median(theirs), statistics.median(tv), statistics.median(ours)


def main() -> None:
    parser = bench_parser(__doc__, rounds=5, smoke="a few seconds at tiny size: 64 px, small photo only")
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per arm and round")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.rounds, args.sizes, args.batch = 0.2, 1, [64], 16

    cores = len(os.sched_getaffinity(0))
    # Smoke runs share a CI machine: one thread avoids the stalls of oversubscribed thread pools.
    threads = 1 if args.smoke else cores
    torch.set_num_threads(threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    gpu = torch.cuda.get_device_name() if device == "cuda" else "none"
    cpu = platform.processor() or platform.machine()
    print(f"machine: {cpu}, {cores} cores, GPU: {gpu}; torch {torch.__version__}")
    where = device if device == "cuda" else f"{device}, {threads} threads"
    print(f"PIL arm: {cores} DataLoader workers; per-sample torchvision v2: {where}; ours: {where}")
    print(f"batch {args.batch}, medians of {args.rounds} alternating rounds of {args.seconds:g} s per arm")

    sources = [("512x512 photo", resolve_sources("sample:astronaut", 1, 0)[0].load())]
    if not args.smoke:
        # The paper's Image B is 2560 x 1920; a sample photo upscaled to that size costs PIL the same.
        large = F.interpolate(resolve_sources("sample:retina", 1, 0)[0].load()[None].float(), (1920, 2560),
                              mode="bilinear").round().clamp(0, 255).to(torch.uint8)[0]
        sources.append(("2560x1920 photo", large))
    print(f"{'source':<18}{'size':>5}{'PIL /s':>9}{'per-sample tv /s':>18}{'ours /s':>10}"
          f"{'ours/PIL':>10}{'ours/per-sample':>17}")
    for name, source in sources:
        for size in args.sizes:
            theirs, tv, ours = compare(source, size, args.batch, device, args.seconds, args.rounds)
            print(f"{name:<18}{size:>5}{theirs:>9.0f}{tv:>18.0f}{ours:>10.0f}{ours / theirs:>9.1f}x"
                  f"{ours / tv:>16.1f}x", flush=True)


if __name__ == "__main__":
    main()
