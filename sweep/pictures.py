"""The pictures people look at rather than read: probe top-1 per conv layer (with chance and the seed spread
marked) and conv1's filters, for one trial (its MLflow run) and for a sweep's report.

Groups are :class:`sweep.report.Group`: a label, and per layer one top-1 value per seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from methods.data.labelled import DEMO
from methods.metrics import LAYERS as PROBE_LAYERS
from methods.trunk.filters import CONV1_WEIGHT, filter_grid, labelled_rows
from sweep.baselines import RANDOM

if TYPE_CHECKING:
    from sweep.ledger.records import TrialRecord
    from sweep.report import Group

__all__ = ["BASELINES", "REFERENCE", "chance_level", "plot_layers", "save_filter_rows", "save_filters"]

# Linear probes on ImageNet (top-1 %), AlexNet, Zhang, Isola & Efros 2017 (Split-Brain), Table 2 — the
# protocol the paper follows; see ../shared/paper.md §4.1. Drawn dashed for orientation.
REFERENCE = {
    "supervised (ImageNet labels)": (19.3, 36.3, 44.2, 48.3, 50.5),
    "random (Gaussian init)": (11.6, 17.1, 16.9, 16.3, 14.1),
}
REFERENCE_SOURCE = "ImageNet linear probes, Zhang et al. 2017 Table 2"
BASELINES = ("supervised", RANDOM)


def chance_level(records: Sequence[TrialRecord]) -> float | None:
    """Chance top-1 (%) of the probe task the records share (None when they do not share one known count)."""
    counts = {r.result.inputs.get("probe", {}).get("classes") for r in records if r.result is not None}
    return 100.0 / int(counts.pop()) if len(counts) == 1 and None not in counts else None


def plot_layers(groups: Sequence[Group], path: Path, title: str, probe_data: str, chance: float | None = None) -> None:
    """Probe top-1 per layer, one curve per group with ± 1 std over its seeds, chance dotted; beside it the
    ImageNet reference curves (which share our axis only when the probe is ImageNet)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = list(range(1, len(PROBE_LAYERS) + 1))
    same_scale = "imagenet" in probe_data.lower()  # the references are ImageNet numbers
    fig, axes = plt.subplots(1, 1 if same_scale else 2, figsize=(7.5 if same_scale else 12, 4.8), squeeze=False)
    ours, ref = axes[0][0], axes[0][-1]
    for i, g in enumerate(groups):  # the baselines dashed, like the reference rows: the curves to compare against
        style = "--" if dict(g.key).get("method") in BASELINES else "-"
        ours.errorbar(x, [g.mean(layer) for layer in PROBE_LAYERS], yerr=[g.std(layer) for layer in PROBE_LAYERS],
                      marker="osD^v"[i // 10 % 5], capsize=3, linestyle=style,  # a new marker once colours repeat
                      label=f"{g.label()} (n={len(g.seeds)}" + (f", {g.diverged} diverged)" if g.diverged else ")"))
    if chance is not None:
        ours.axhline(chance, color="grey", linestyle=":", linewidth=1.2, label=f"chance ({chance:.0f} %)")
    for (name, values), colour in zip(REFERENCE.items(), ("black", "grey"), strict=True):
        ref.plot(x, values, linestyle="--", color=colour, marker=".", label=f"{name}")
    ours.set_title(f"{title}: probe on {Path(probe_data).name or probe_data}")
    if not same_scale:
        ref.set_title(f"reference: {REFERENCE_SOURCE}", fontsize=9)
    extra: list[Any] = []
    for ax in (ours, ref):
        ax.set_xticks(x, list(PROBE_LAYERS))
        ax.set_xlabel("layer")
        ax.set_ylabel("linear probe top-1 (%)")
        ax.grid(alpha=0.3)
        spread = ax is ours and any(len(g.seeds) > 1 for g in groups)
        title_ = "error bars: ± 1 std over the n seeds" if spread else None
        if ax is ours and len(groups) > 4:  # a long legend goes below the axes instead of over the curves
            below = ax.legend(fontsize=8, title=title_, title_fontsize=8, loc="upper left",
                              bbox_to_anchor=(0.0, -0.15))
            below.set_in_layout(False)  # tight_layout keeps the axes' size; the saved image grows instead
            extra.append(below)
        else:
            ax.legend(fontsize=8, title=title_ if ax is ours else None, title_fontsize=8)
    if DEMO in probe_data.split(", "):
        extra.append(fig.text(0.01, -0.02, "demo probe: a smoke test - it shows that every step runs, not what a "
                              "trunk learnt (a random trunk scores as high); probe CIFAR-10 for that",
                              fontsize=8, color="dimgrey", ha="left", va="top"))
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight", bbox_extra_artists=extra)
    plt.close(fig)


def _conv1_grid(trunk: Path) -> Any:
    import torch

    state = torch.load(trunk, map_location="cpu", weights_only=True)  # tensors only: no code from storage
    return filter_grid(state[CONV1_WEIGHT])


def save_filters(trunk: Path, path: Path) -> None:
    """conv1's filters of the trunk saved at ``trunk`` (a state dict) as a PNG."""
    from PIL import Image

    Image.fromarray(_conv1_grid(trunk)).save(path)


def save_filter_rows(trunks: Mapping[str, Path], path: Path) -> None:
    """conv1's filters of several trunks, one labelled row each (the report's side-by-side view)."""
    from PIL import Image

    Image.fromarray(labelled_rows({label: _conv1_grid(t) for label, t in trunks.items()})).save(path)
