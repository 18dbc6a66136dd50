"""The all-layer probe epoch: ours vs back-propagating through the frozen trunk, and vs five one-layer runs.

Three arms train linear probes for one epoch each on the same labelled images, in streaming mode (no
feature cache: the trunk runs on every batch, with the protocol's random-resized crop + flip), with the
same heads (``methods.probe.ProbeHeads``: BatchNorm without affine + Linear on max-pooled taps, pooled
sizes from ``pooled_sides``), optimiser (SGD 0.01, momentum 0.9) and loop:

* ours: the trunk frozen for real (eval mode, features under ``torch.inference_mode``: the probe's own
  ``_features``), one pass over the data feeding all five heads;
* reference: the loop of the paper's probe code (yukimasano/linear-probes ``eval_linear_probes.py``):
  five heads in one pass, but the trunk runs with autograd on (its parameters require grad, they are
  just not in the optimiser), so every step back-propagates through the whole trunk for nothing;
* five one-layer runs: DeepCluster's ``eval_linear.py`` way, one head per run (conv1 .. conv5), each
  run a full pass with the trunk cut after its layer, features under ``inference_mode`` like ours.

Both ratios are images/s of ours / images/s of the alternative (> 1: ours is faster; the five one-layer
runs together count as one all-layer epoch). The arms use the same precision and layout as the probe
(bf16 autocast and channels_last on CUDA, fp32 on the CPU), so the ratio isolates the lever: the
reference code also ran fp32 on the GPU, which would add the AMP factor on top. The in-memory images are
put on the device first, so no arm pays a host-to-device copy.
Data: the offline CIFAR-10 tar when present (``$MONOSWEEP_CIFAR10_TAR`` or ../shared/data), else the
built-in ``demo`` set; ``--data`` picks another.

    python bench/bench_probe.py                  # CUDA: 224 px, 10,000 images; CPU: 64 px, 1,024 images
    python bench/bench_probe.py --data demo --size 128
    python bench/bench_probe.py --smoke          # seconds, tiny (CI)
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from _timing import parser as bench_parser

from methods.data.labelled import LabelledData, Split, load_labelled
from methods.probe import ProbeHeads, _features, pooled_sides
from methods.trial.inputs import pick_device
from methods.trunk.alexnet import AlexNet
from methods.trunk.arch import TAPS

REPO = Path(__file__).resolve().parents[1]
Sides = Mapping[str, tuple[int, int]]
Features = Callable[[AlexNet, torch.Tensor, Sides], dict[str, torch.Tensor]]


def default_data() -> str:
    """The offline CIFAR-10 tar where the tests look for it, else the built-in demo set."""
    tar = REPO.parent / "shared" / "data" / "cifar10-jpeg.tar"
    for candidate in (os.environ.get("MONOSWEEP_CIFAR10_TAR", ""), str(tar)):
        if candidate and Path(candidate).is_file():
            return candidate
    return "demo"


def autograd_features(trunk: AlexNet, x: torch.Tensor, sides: Sides) -> dict[str, torch.Tensor]:
    """The reference loop's features: the same taps and pooling as ours, but recorded by autograd."""
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=x.device.type == "cuda")
    with autocast:
        if x.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        taps = trunk.taps(x, list(sides))
        return {k: F.adaptive_max_pool2d(t, sides[k][1]).flatten(1) for k, t in taps.items()}


class Probe:
    """Heads and their optimiser for some taps, trained one epoch at a time with a given feature function."""

    def __init__(self, trunk: AlexNet, sides: Sides, classes: int, features: Features) -> None:
        self.trunk, self.sides, self.features = trunk, dict(sides), features
        self.heads = ProbeHeads(self.sides, classes).to(next(trunk.parameters()).device)
        self.optimiser = torch.optim.SGD(self.heads.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-5)

    def epoch(self, split: Split, batch: int, seed: int) -> float:
        """One epoch (the probe's training loop, step for step); returns the mean summed loss."""
        self.heads.train()
        total, count = 0.0, 0
        device = next(self.heads.parameters()).device
        for x, y in split.batches(batch, device, shuffle_seed=seed, augment=True, crop=True):
            logits = self.heads(self.features(self.trunk, x, self.sides))
            loss = sum(F.cross_entropy(out, y) for out in logits.values())
            self.optimiser.zero_grad(set_to_none=True)  # the heads' gradients (the reference's trunk ones pile up)
            loss.backward()  # type: ignore[union-attr]
            self.optimiser.step()
            total += float(loss.detach()) * y.shape[0]  # type: ignore[union-attr]
            count += y.shape[0]
        return total / max(count, 1)


def timed(run: Callable[[], object], sync: Callable[[], None]) -> float:
    sync()
    start = time.perf_counter()
    run()
    sync()
    return time.perf_counter() - start


def on_device(data: LabelledData, device: torch.device) -> Split:
    split = data.train
    assert split.images is not None, "the bench needs an in-memory labelled set"
    return Split(split.labels.to(device), split.size, images=split.images.to(device))


def main() -> None:
    parser = bench_parser(__doc__, rounds=3)
    parser.add_argument("--data", default=None, help="labelled data (default: the CIFAR-10 tar if present, else demo)")
    parser.add_argument("--size", type=int, default=None, help="probe input px (default: CUDA 224, CPU 64)")
    parser.add_argument("--images", type=int, default=None, help="training images (default: CUDA 10000, CPU 1024)")
    parser.add_argument("--batch", type=int, default=192, help="probe batch size (the protocol's)")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    # Smoke runs share a CI machine: one thread avoids the stalls of oversubscribed thread pools.
    torch.set_num_threads(1 if args.smoke else cores)
    device = pick_device("auto")
    cuda = device.type == "cuda"
    if args.smoke:
        args.data, args.size, args.images, args.batch, args.rounds = "demo", 64, 64, 32, 1
    data_spec = args.data or default_data()
    size = args.size or (224 if cuda else 64)
    images = args.images or (10_000 if cuda else 1024)
    gpu = torch.cuda.get_device_name() if cuda else "none"
    cpu = platform.processor() or platform.machine()
    print(f"machine: {cpu}, {cores} cores, GPU: {gpu}; torch {torch.__version__}; device {device}")

    data = load_labelled(data_spec, size, train_limit=images, val_limit=1)
    split = on_device(data, device)
    n = len(split)
    print(f"data {data.name}: {n} training images at {size} px, {data.num_classes} classes, batch {args.batch}; "
          f"streaming (crop + flip on the device), medians of {args.rounds} alternating rounds")

    torch.manual_seed(0)
    trunk = AlexNet("big").to(device).eval()
    if cuda:
        trunk = trunk.to(memory_format=torch.channels_last)
    sides = pooled_sides(trunk, size)
    frozen = Probe(trunk, sides, data.num_classes, _features)
    reference = Probe(trunk, sides, data.num_classes, autograd_features)
    singles = [Probe(trunk, {tap: sides[tap]}, data.num_classes, _features) for tap in TAPS]
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def run_frozen(seed: int) -> None:
        trunk.requires_grad_(False)
        frozen.epoch(split, args.batch, seed)

    def run_reference(seed: int) -> None:
        trunk.requires_grad_(True)  # not in the optimiser: never stepped, but back-propagated into
        reference.epoch(split, args.batch, seed)
        trunk.requires_grad_(False)

    def run_singles(seed: int) -> None:
        trunk.requires_grad_(False)
        for probe in singles:
            probe.epoch(split, args.batch, seed)

    arms = {"ours": run_frozen, "reference": run_reference, "singles": run_singles}
    # Warm-up on a few batches' worth (kernels, allocator), then the timed rounds.
    warm = Split(split.labels[: 2 * args.batch], size, images=split.images[: 2 * args.batch])  # type: ignore[index]
    for probe in (frozen, reference, *singles):
        trunk.requires_grad_(probe is reference)
        probe.epoch(warm, args.batch, 0)
    trunk.requires_grad_(False)
    seconds: dict[str, list[float]] = {name: [] for name in arms}
    for r in range(args.rounds):
        for name, run in arms.items():
            seconds[name].append(timed(lambda run=run, seed=r + 1: run(seed), sync))
    med = {name: statistics.median(values) for name, values in seconds.items()}

    labels = {"ours": "ours (inference_mode trunk, 5 heads, 1 pass)",
              "reference": "reference loop (autograd through the trunk, 5 heads)",
              "singles": "five one-layer runs (1 head per pass)"}
    print(f"{'arm':<54}{'epoch s':>9}{'images/s':>10}")
    for name, label in labels.items():
        print(f"{label:<54}{med[name]:>9.2f}{n / med[name]:>10.0f}")
    print(f"ours vs back-propagating through the frozen trunk: {med['reference'] / med['ours']:.2f}x")
    print(f"ours vs five one-layer runs: {med['singles'] / med['ours']:.2f}x")


if __name__ == "__main__":
    main()
