"""Which built-in probe set ranks trunks as CIFAR-10 does? (issue 16 part 1(b); docs/reproduction.md)

The quickstart can only show what one image teaches if the set it probes on, made from what installed
packages ship (no download), orders trunks the way a real set does. This script takes the finished trunks of
``examples/quickstart-budget.yaml`` (random, one-image RotNet with the full augmentation at 512 steps) and of
``examples/quickstart-probes.yaml`` (RotNet without augmentation, supervised), probes every conv layer of each
on every candidate set with the quickstart's probe settings, and compares with the trunks' own CIFAR-10
probes (their ledger records): per layer, the Kendall tau of the four trunks' means, and whether RotNet
``full`` is above random by more than the seed spread on conv2 and conv3, as on CIFAR-10.

The candidates (all deterministic, 64 px, train and val from disjoint material):
  * ``demo`` — the current built-in set: colour crops labelled by photo;
  * ``grey-photos`` — crops in grey with random size, brightness, contrast and gamma (no colour shortcut),
    flat crops (black sky) drawn again (the first run's "grey-jitter" was the same without the redraw);
  * ``textures`` — grey crops of texture-like photos at random rotations and scales, labelled by photo;
  * ``digits`` — scikit-learn's 8x8 digits at random scales and places on tinted noise, labelled by digit;
  * ``faces`` — scikit-image's LFW subset, face or not (200 images of 25 x 25).

Each trunk is probed ``--probe-seeds`` times (default 3) with different head seeds and the mean is compared:
one probe of these ~500-image validation sets moves by several points with the head's initialisation alone.

    monosweep run examples/quickstart-budget.yaml --set fixed.probe_data=data/cifar10   # the trunks first
    monosweep run examples/quickstart-probes.yaml --set fixed.probe_data=data/cifar10
    python docs/probe_agreement.py --out docs/notes/probe_agreement_seeded.json        # from the repository root
    python docs/probe_agreement.py --check-cifar     # also re-probe one trunk on CIFAR-10 (same numbers?)
    python docs/probe_agreement.py --sweeps quickstart-probes-heldout \
        --out docs/notes/probe_agreement_heldout_seeded.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from methods import registry  # noqa: E402
from methods.data.labelled import LabelledData, Split, _fit, load_labelled  # noqa: E402
from methods.data.sources import SAMPLES, load_sample  # noqa: E402
from methods.probe import ProbeSettings, run_probe  # noqa: E402
from methods.trial.run import _load  # noqa: E402
from methods.trunk.alexnet import AlexNet  # noqa: E402
from methods.trunk.arch import TAPS  # noqa: E402

SIZE = 64
SWEEPS = ("quickstart-budget", "quickstart-probes")
# (label, predicate on a record's config): the four trunks the candidates must rank.
TRUNKS: dict[str, Callable[[dict], bool]] = {
    "random": lambda c: c["method"] == "random",
    "rotnet full": lambda c: c["method"] == "rotnet" and c["augment"] == "full" and c["epochs"] == 8,
    "rotnet none": lambda c: c["method"] == "rotnet" and c["augment"] == "none" and c["epochs"] == 8,
    "supervised": lambda c: c["method"] == "supervised",
}


# ------------------------------------------------------------------------------------------- candidates
def _grey(x: torch.Tensor) -> torch.Tensor:
    """uint8 or float (3, H, W) -> float grey (1, H, W) in [0, 1]."""
    x = x.float() / (255.0 if x.dtype == torch.uint8 else 1.0)
    return (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2])[None]


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def _photo_crops(names: tuple[str, ...], per_class: tuple[int, int], rng: random.Random,
                 transform: Callable[[torch.Tensor, random.Random], torch.Tensor], side_frac: float = 0.3,
                 margin: float = 1.0) -> tuple[list[list[torch.Tensor]], list[list[int]]]:
    """Crops per photo, train from the left 60 %, val from the rest (as ``demo``), each passed to ``transform``.
    ``margin`` > 1 cuts a larger region first (room for a rotation that is then centre-cropped)."""
    crops: list[list[torch.Tensor]] = [[], []]
    labels: list[list[int]] = [[], []]
    for label, name in enumerate(names):
        photo = _load_any(name)
        h, w = photo.shape[-2:]
        cut = round(0.6 * w)
        for split, (x_lo, x_hi) in enumerate(((0, cut), (cut, w))):
            for _ in range(per_class[split]):
                side = round(side_frac * min(h, x_hi - x_lo) * rng.uniform(0.6, 1.0))
                big = min(round(side * margin), x_hi - x_lo, h)
                x, y = rng.randint(x_lo, x_hi - big), rng.randint(0, h - big)
                crops[split].append(transform(photo[:, y : y + big, x : x + big], rng))
                labels[split].append(label)
    return crops, labels


def _load_any(name: str) -> torch.Tensor:
    """A photo of the scikit-image wheel as uint8 (3, H, W), grey ones repeated to three channels."""
    if name in SAMPLES:
        return load_sample(name)
    import skimage.data

    array = np.asarray(getattr(skimage.data, name)())
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(array[..., :3])).permute(2, 0, 1)


def _made(name: str, classes: list[str], crops: list[list[torch.Tensor]], labels: list[list[int]]) -> LabelledData:
    splits = [Split(torch.tensor(labels[s]), SIZE, images=_fit(crops[s], SIZE)) for s in (0, 1)]
    return LabelledData(name, classes, splits[0], splits[1])


FLAT = 4.0  # grey-level std (of 255) below which a crop is drawn again: no content, the same in both splits


def grey_photos() -> LabelledData:
    """Grey, relit crops of 0.18-0.3 x the region's short side, 120 train and 40 val per photo."""
    def relit(crop: torch.Tensor, rng: random.Random) -> torch.Tensor:
        grey = _grey(crop)
        mean = grey.mean()
        grey = (grey - mean) * rng.uniform(0.5, 1.5) + mean + rng.uniform(-0.25, 0.25)
        grey = grey.clamp(0, 1) ** math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
        return _to_uint8(grey.expand(3, -1, -1))

    rng = random.Random(1)
    crops: list[list[torch.Tensor]] = [[], []]
    labels: list[list[int]] = [[], []]
    for label, name in enumerate(SAMPLES):
        photo = load_sample(name)
        h, w = photo.shape[-2:]
        cut = round(0.6 * w)
        for split, (x_lo, x_hi) in enumerate(((0, cut), (cut, w))):
            for _ in range(120 if split == 0 else 40):
                crop = None
                while crop is None or float(crop.float().std()) < FLAT:
                    side = round(min(h, x_hi - x_lo) * rng.uniform(0.18, 0.3))
                    x, y = rng.randint(x_lo, x_hi - side), rng.randint(0, h - side)
                    crop = photo[:, y : y + side, x : x + side]
                crops[split].append(relit(crop, rng))
                labels[split].append(label)
    return _made("grey-photos", list(SAMPLES), crops, labels)


TEXTURES = ("brick", "grass", "gravel", "immunohistochemistry", "hubble_deep_field", "moon", "page", "coins")


def textures() -> LabelledData:
    import torchvision.transforms.functional as TF

    def rotate(region: torch.Tensor, rng: random.Random) -> torch.Tensor:
        g = _grey(region).expand(3, -1, -1)
        turned = TF.rotate(g, rng.uniform(0.0, 360.0), interpolation=TF.InterpolationMode.BILINEAR)
        side = round(region.shape[-1] / math.sqrt(2))
        top = (region.shape[-1] - side) // 2
        return _to_uint8(turned[:, top : top + side, top : top + side])

    crops, labels = _photo_crops(TEXTURES, (150, 50), random.Random(2), rotate, side_frac=0.25, margin=math.sqrt(2))
    return _made("textures", list(TEXTURES), crops, labels)


def digits() -> LabelledData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float() / 16.0  # (1797, 8, 8)
    rng = np.random.default_rng(3)
    out: list[list[torch.Tensor]] = [[], []]
    labels: list[list[int]] = [[], []]
    for i, (image, label) in enumerate(zip(images, bunch.target, strict=True)):
        split = 0 if i < 1200 else 1
        background = torch.from_numpy(rng.uniform(0, 1, 3)).float().view(3, 1, 1)
        ink = torch.from_numpy(rng.uniform(0, 1, 3)).float().view(3, 1, 1)
        while abs(float((ink - background).mean())) < 0.25:  # legible: the ink differs from the ground
            ink = torch.from_numpy(rng.uniform(0, 1, 3)).float().view(3, 1, 1)
        canvas = background + torch.from_numpy(rng.normal(0, 0.12, (3, SIZE, SIZE))).float()
        side = int(rng.integers(20, 49))
        alpha = F.interpolate(image[None, None], (side, side), mode="bilinear", align_corners=False)[0]
        x, y = (int(v) for v in rng.integers(0, SIZE - side + 1, 2))
        patch = canvas[:, y : y + side, x : x + side]
        canvas[:, y : y + side, x : x + side] = patch * (1 - alpha) + ink * alpha
        out[split].append(_to_uint8(canvas))
        labels[split].append(int(label))
    return _made("digits", [str(d) for d in range(10)], out, labels)


def faces() -> LabelledData:
    import skimage.data

    subset = torch.from_numpy(np.asarray(skimage.data.lfw_subset())).float()  # (200, 25, 25): 100 faces first
    out: list[list[torch.Tensor]] = [[], []]
    labels: list[list[int]] = [[], []]
    for i, image in enumerate(subset):
        label, within = (0, i) if i < 100 else (1, i - 100)
        split = 0 if within < 70 else 1
        out[split].append(_to_uint8(image[None].expand(3, -1, -1)))
        labels[split].append(label)
    return _made("faces", ["face", "not a face"], out, labels)


CANDIDATES: dict[str, Callable[[], LabelledData]] = {
    "demo": lambda: load_labelled("demo", SIZE),
    "grey-photos": grey_photos,
    "textures": textures,
    "digits": digits,
    "faces": faces,
}


# ------------------------------------------------------------------------------------------- trunks
def finished_trunks(results: Path, sweeps: list[str]) -> list[tuple[str, dict, Path, dict]]:
    """(trunk label, config, trunk.pt, CIFAR-10 probe) of every finished trial of the sweeps."""
    found = []
    for sweep in sweeps:
        for path in sorted((results / sweep / "trials").glob("*.json")):
            record = json.loads(path.read_text())
            if record["status"] != "finished":
                continue
            config = record["config"]
            label = next((name for name, match in TRUNKS.items() if match(config)), None)
            if label is not None:
                found.append((label, config, results / sweep / record["trunk"], record["result"]["probe"]))
    return found


def load_trunk(config: dict, weights: Path) -> AlexNet:
    style = registry.get_method(config["method"]).trunk_style
    trunk = AlexNet(config["arch"], sobel=config["sobel"], style=style)
    trunk.load_state_dict(_load(weights))
    return trunk


def settings_of(config: dict, probe_seed: int = 0) -> ProbeSettings:
    return ProbeSettings(epochs=config["probe_epochs"], lr=config["probe_lr"], batch_size=config["probe_batch_size"],
                         weight_decay=config["probe_weight_decay"], cache=config["probe_cache"],
                         seed=config["seed"] + 1000 * probe_seed)


def probe_seeded(trunk: AlexNet, data: LabelledData, config: dict, probe_seed: int) -> dict[str, dict[str, float]]:
    """One probe with its heads' initialisation and its shuffling fixed by (trial seed, probe seed)."""
    torch.manual_seed(config["seed"] + 1000 * probe_seed)
    return run_probe(trunk, data, settings_of(config, probe_seed), torch.device("cpu"))


# ------------------------------------------------------------------------------------------- agreement
def kendall_tau(a: list[float], b: list[float]) -> float:
    pairs = list(itertools.combinations(range(len(a)), 2))
    score = sum(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]) for i, j in pairs)
    return float(score) / len(pairs)


def summarise(scores: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, tuple[float, float]]]:
    """{trunk: {tap: (mean, spread = max - min over seeds)}}."""
    return {trunk: {tap: (float(np.mean(v)), float(np.max(v) - np.min(v))) for tap, v in taps.items()}
            for trunk, taps in scores.items()}


def agreement(candidate: dict, cifar: dict) -> dict[str, object]:
    trunks = [t for t in TRUNKS if t in candidate and t in cifar]
    taus = {tap: kendall_tau([candidate[t][tap][0] for t in trunks], [cifar[t][tap][0] for t in trunks])
            for tap in TAPS}

    def beyond(tap: str) -> float:
        (rot, rot_spread), (rnd, rnd_spread) = candidate["rotnet full"][tap], candidate["random"][tap]
        return (rot - rnd) if rot - rnd > max(rot_spread, rnd_spread) else float("nan")

    gaps = {tap: candidate["rotnet full"][tap][0] - candidate["random"][tap][0] for tap in TAPS}
    return {"tau": taus, "mean_tau": float(np.mean(list(taus.values()))), "rotnet_minus_random": gaps,
            "beyond_spread": {tap: not math.isnan(beyond(tap)) for tap in TAPS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=ROOT / "monosweep-results")
    parser.add_argument("--sweeps", nargs="*", default=list(SWEEPS), help="sweeps whose trunks to probe")
    parser.add_argument("--only", nargs="*", default=list(CANDIDATES), help="candidate sets to probe")
    parser.add_argument("--probe-seeds", type=int, default=3,
                        help="probes per trunk and set (head initialisation and order); a trunk's score is their mean")
    parser.add_argument("--check-cifar", action="store_true",
                        help="re-probe the first trunk on CIFAR-10 and compare with its record")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "notes" / "probe_agreement.json")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    trunks = finished_trunks(args.results, args.sweeps)
    counts = {t: sum(1 for label, *_ in trunks if label == t) for t in TRUNKS}
    print("trunks:", counts, flush=True)

    if args.check_cifar:
        label, config, weights, recorded = trunks[0]
        data = load_labelled(config["probe_data"], config["probe_img_size"], config["probe_train_limit"],
                             config["probe_val_limit"], config["seed"])
        again = run_probe(load_trunk(config, weights), data, settings_of(config), torch.device("cpu"))
        print("CIFAR-10 re-probe of", label, "seed", config["seed"],
              {tap: (round(recorded[tap]["top1"], 2), round(again[tap]["top1"], 2)) for tap in TAPS}, flush=True)

    cifar: dict[str, dict[str, list[float]]] = {}
    for label, _, _, probe in trunks:
        for tap in TAPS:
            cifar.setdefault(label, {}).setdefault(tap, []).append(probe[tap]["top1"])
    report: dict[str, object] = {"trunks": counts, "cifar10": summarise(cifar), "candidates": {}}
    for name in args.only:
        t0 = time.perf_counter()
        data = CANDIDATES[name]()
        scores: dict[str, dict[str, list[float]]] = {}
        noise: list[float] = []  # per trunk and tap: max - min over the probe seeds
        for label, config, weights, _ in trunks:
            trunk = load_trunk(config, weights)
            probes = [probe_seeded(trunk, data, config, k) for k in range(args.probe_seeds)]
            for tap in TAPS:
                values = [p[tap]["top1"] for p in probes]
                scores.setdefault(label, {}).setdefault(tap, []).append(float(np.mean(values)))
                noise.append(max(values) - min(values))
        summary = summarise(scores)
        result = {"classes": data.num_classes, "train": len(data.train), "val": len(data.val),
                  "chance": 100.0 / data.num_classes, "scores": summary,
                  "agreement": agreement(summary, report["cifar10"]),  # type: ignore[arg-type]
                  "probe_seeds": args.probe_seeds, "probe_noise": float(np.mean(noise)),
                  "seconds": time.perf_counter() - t0}
        report["candidates"][name] = result  # type: ignore[index]
        print(f"\n{name}: {data.num_classes} classes, {len(data.train)}/{len(data.val)}, "
              f"{result['seconds']:.0f}s, mean tau {result['agreement']['mean_tau']:+.2f}, probe noise "
              f"{result['probe_noise']:.1f} (mean max-min over {args.probe_seeds} probes of one trunk)", flush=True)
        for label, taps in summary.items():
            print(f"  {label:12s}", " ".join(f"{m:5.1f}±{s:3.1f}" for m, s in taps.values()), flush=True)
        print("  tau/layer   ", " ".join(f"{v:+.2f}" for v in result["agreement"]["tau"].values()), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print("\nCIFAR-10:")
    for label, taps in report["cifar10"].items():  # type: ignore[union-attr]
        print(f"  {label:12s}", " ".join(f"{m:5.1f}±{s:3.1f}" for m, s in taps.values()))
    print("written", args.out)


if __name__ == "__main__":
    main()
