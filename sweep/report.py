"""``monosweep report``: the paper's picture from the ledger — probe top-1 per conv layer, mean ± std over
seeds, for every group of the grid — as CSV, Markdown and PNG plots.

A group is one combination of the grid's axes other than ``seed``; its trials are the seeds. Built on the
sweep's result rows (``sweep/table.py``, read from the ledger, the source of truth), so a report never
disagrees with ``monosweep status`` or ``sweep.results``.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from methods.data.labelled import DEMO, DEMO_NOTE
from methods.errors import InputError
from methods.metrics import LAYERS as PROBE_LAYERS
from methods.metrics import probe_metric
from sweep.baselines import RANDOM, like
from sweep.grid import Trial
from sweep.ledger.records import DONE, TrialRecord
from sweep.pictures import BASELINES, REFERENCE, chance_level, plot_layers, save_filter_rows
from sweep.plan import Plan
from sweep.search import best, objective
from sweep.spec import Search, SweepSpec
from sweep.table import rows

__all__ = ["REFERENCE", "Group", "group_results", "plot_trial", "report_groups", "versus_random", "write_report"]


@dataclass
class Group:
    key: tuple[tuple[str, Any], ...]  # (axis, value) pairs that define the group
    seeds: list[Any]
    diverged: int
    top1: dict[str, list[float]]  # layer -> one value per seed
    like: tuple[Any, ...] = ()  # what a like-for-like random baseline shares with it (sweep/baselines.py)
    ids: list[str] = field(default_factory=list)  # its trials, one per seed

    def label(self) -> str:
        return " ".join(f"{v}" if a == "method" else f"{a}={v}" for a, v in self.key) or "all"

    def mean(self, layer: str) -> float:
        return statistics.fmean(self.top1[layer]) if self.top1.get(layer) else math.nan

    def std(self, layer: str) -> float:
        values = self.top1.get(layer, [])
        return statistics.stdev(values) if len(values) > 1 else 0.0

    def spread(self, layer: str) -> float:
        """Max - min over the seeds."""
        values = self.top1.get(layer, [])
        return max(values) - min(values) if values else 0.0


def group_axes(spec: SweepSpec) -> list[str]:
    """The axes that tell groups apart: ``method`` first, then every other axis with several values."""
    varying = [a for a in spec.varying_axes() if a not in ("seed", "method")]
    return ["method", *varying]


def group_results(spec: SweepSpec, results: Sequence[dict[str, Any]]) -> list[Group]:
    """Groups of finished (or diverged) trials with probe results, in the grid's order, from the sweep's
    result rows (:func:`sweep.table.rows`: what ``sweep.results`` and ``monosweep status`` show)."""
    axes = group_axes(spec)
    top1 = {layer: probe_metric(layer, "top1") for layer in PROBE_LAYERS}
    groups: dict[tuple[tuple[str, Any], ...], Group] = {}
    for row in results:
        probed = {layer: row["metrics"][m] for layer, m in top1.items() if m in row["metrics"]}
        if row["state"] not in DONE or not probed:
            continue
        key = tuple((a, row["values"].get(a, row["config"].get(a))) for a in axes)
        group = groups.setdefault(key, Group(key, [], 0, {layer: [] for layer in PROBE_LAYERS}, like(row["config"])))
        group.seeds.append(row["config"]["seed"])
        group.ids.append(row["id"])
        group.diverged += row["state"] == "diverged"
        for layer, value in probed.items():
            group.top1[layer].append(float(value))
    return list(groups.values())


def plot_trial(record: TrialRecord, trial: Trial, label: Callable[[Trial], str], path: Path) -> None:
    """One trial's probe top-1 per layer (its MLflow run's layers.png)."""
    assert record.result is not None
    probe = record.result.probe
    group = Group((("method", label(trial)),), [record.config.get("seed")], int(record.status == "diverged"),
                  {layer: [probe[layer]["top1"]] for layer in PROBE_LAYERS if layer in probe})
    plot_layers([group], path, f"trial {record.id}", str(record.config.get("probe_data", "")),
                chance_level([record]))


def _csv(groups: Sequence[Group], axes: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*axes, "seeds", "diverged", *(f"{layer}_{s}" for layer in PROBE_LAYERS for s in ("mean", "std"))])
    for g in groups:
        writer.writerow([v for _, v in g.key] + [len(g.seeds), g.diverged]
                        + [f"{x:.4f}" for layer in PROBE_LAYERS for x in (g.mean(layer), g.std(layer))])
    return out.getvalue()


def _markdown(groups: Sequence[Group], axes: Sequence[str], title: str) -> str:
    header = [*axes, "seeds", *PROBE_LAYERS]
    lines = [f"# {title}", "", "Linear-probe top-1 (%) per conv layer, mean ± std over seeds.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for g in groups:
        cells = [str(v) for _, v in g.key] + [str(len(g.seeds)) + (f" ({g.diverged} diverged)" if g.diverged else "")]
        cells += [f"{g.mean(layer):.1f} ± {g.std(layer):.1f}" for layer in PROBE_LAYERS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def versus_random(groups: Sequence[Group]) -> list[tuple[Group, Group]]:
    """Each group of a method that trains on patches with the random group of the same input and probe."""
    randoms = [g for g in groups if dict(g.key).get("method") == RANDOM]
    pairs = []
    for g in groups:
        candidates = [r for r in randoms if r.like == g.like]
        if dict(g.key).get("method") not in BASELINES and candidates:
            # Axes a random trunk ignores (epochs, augment ...) can split it into equivalent groups: the one
            # that shares most of this group's other values stands for them.
            pairs.append((g, max(candidates, key=lambda r: len(set(r.key[1:]) & set(g.key[1:])))))
    return pairs


def _versus_markdown(pairs: Sequence[tuple[Group, Group]]) -> str:
    lines = ["", "## Against the random trunk with the same input", "",
             "Difference of the mean top-1 (points) from the random trunk with the same input and probe "
             "(`sobel` included); bold where it exceeds the larger of the two seed spreads (max − min over seeds).",
             "", "| group | random | " + " | ".join(PROBE_LAYERS) + " |", "|" + "---|" * (2 + len(PROBE_LAYERS))]
    for g, r in pairs:
        cells = []
        for layer in PROBE_LAYERS:
            gap = g.mean(layer) - r.mean(layer)
            beyond = len(g.seeds) > 1 and len(r.seeds) > 1 and abs(gap) > max(g.spread(layer), r.spread(layer))
            cells.append(f"**{gap:+.1f}**" if beyond else f"{gap:+.1f}")
        lines.append(f"| {g.label()} | {r.label()} (n={len(r.seeds)}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _versus_csv(pairs: Sequence[tuple[Group, Group]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["group", "random", *(f"{layer}_{s}" for layer in PROBE_LAYERS
                                          for s in ("gap", "spread", "random_spread"))])
    for g, r in pairs:
        writer.writerow([g.label(), r.label()] + [f"{x:.4f}" for layer in PROBE_LAYERS for x in
                                                  (g.mean(layer) - r.mean(layer), g.spread(layer), r.spread(layer))])
    return out.getvalue()


def report_groups(spec: SweepSpec, plan: Plan) -> tuple[list[Trial], list[Group]]:
    """The trials a report stands on (for a search, the best trial around each grid point) and their groups;
    a one-line error when no trial has probe results yet."""
    trials = plan.trials
    if spec.search is not None:
        chosen = {found[0].id for p in plan.points if (found := best(spec.search, p.id, plan.records)) is not None}
        trials = [t for t in trials if t.id in chosen]
    chosen_ids = {t.id for t in trials}
    groups = group_results(spec, [r for r in rows(plan) if r["id"] in chosen_ids])
    if not groups:
        raise InputError(f"sweep {spec.name!r} has no finished trial with probe results yet: nothing to report")
    return trials, groups


def write_report(spec: SweepSpec, plan: Plan, out: Path) -> tuple[list[Path], list[Group]]:
    """Write report.csv, report.md, the plots and conv1's filters side by side into ``out``; returns the
    files written and the groups they show. For a search, the best trial around each grid point stands for it."""
    trials, groups = report_groups(spec, plan)
    out.mkdir(parents=True, exist_ok=True)
    axes = group_axes(spec)
    probes = sorted({str(t.config.probe_data) for t in trials})
    probe_data = ", ".join(probes)
    chance_line = chance_level([plan.records[i] for g in groups for i in g.ids])
    files = [out / "report.csv", out / "report.md", out / "layers.png"]
    files[0].write_text(_csv(groups, axes))
    title = f"Sweep {spec.name}" + (" (the best search trial around each grid point)" if spec.search else "")
    pairs = versus_random(groups)
    note = f"\n> Note: {DEMO_NOTE}.\n" if DEMO in probes else ""
    files[1].write_text(_markdown(groups, axes, title) + note + (_versus_markdown(pairs) if pairs else ""))
    if pairs:
        files.append(out / "versus_random.csv")
        files[-1].write_text(_versus_csv(pairs))
    plot_layers(groups, files[2], spec.name, probe_data, chance_line)
    for method in sorted({dict(g.key)["method"] for g in groups}):
        mine = [g for g in groups if dict(g.key)["method"] == method]
        seen: set[frozenset[frozenset[int]]] = set()
        for axis in axes[1:]:  # one plot per other varying axis: its values side by side
            # Axes that split this method's groups the same way (source: samples always with N = 10)
            # would draw the same curves twice: the first one stands for both.
            split: dict[Any, set[int]] = {}
            for i, g in enumerate(mine):
                split.setdefault(dict(g.key)[axis], set()).add(i)
            partition = frozenset(frozenset(ids) for ids in split.values())
            marginal = _marginal(_controlled(mine, axis), axis)
            if len(marginal) > 1 and partition not in seen:
                seen.add(partition)
                path = out / f"layers_{method}_by_{axis}.png"
                plot_layers(marginal, path, f"{spec.name} {method} by {axis}", probe_data, chance_line)
                files.append(path)
    if _filters(groups, plan, out / "conv1_filters.png"):
        files.append(out / "conv1_filters.png")
    if spec.search is not None:
        files.append(out / "search.csv")
        files[-1].write_text(_search_csv(spec.search, {t.id: plan.records[t.id] for t in plan.trials
                                                       if t.id in plan.records}))
    return files, groups


FILTER_ROWS = 16  # groups drawn in the side-by-side conv1 picture (the grid's order; the rest left out)


def _filters(groups: Sequence[Group], plan: Plan, path: Path) -> bool:
    """conv1's filters of each group's first trial (its lowest seed), one labelled row per group."""
    with tempfile.TemporaryDirectory(prefix="monosweep-report-") as tmp:
        trunks = {}
        for i, g in enumerate(groups[:FILTER_ROWS]):
            seed, first = min(zip(g.seeds, g.ids, strict=True))
            record, local = plan.records[first], Path(tmp) / f"{i}.pt"
            if record.trunk and plan.storage.download(record.trunk, local):
                trunks[f"{g.label()} (seed {seed})"] = local
        if trunks:
            save_filter_rows(trunks, path)
        return bool(trunks)


def _search_csv(search: Search, records: dict[str, TrialRecord]) -> str:
    """Every sampled trial: its grid point, state, sampled values and metric, best first per point."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["point", "trial", "status", *search.space, search.metric])
    rows = []
    for record in records.values():
        if record.search is not None:
            value = objective(record, search.metric)
            rows.append((record.search, record.id, record.status, *(record.values[k] for k in search.space),
                         "" if value is None else f"{value:.4f}"))
    sign = -1 if search.mode == "max" else 1
    rows.sort(key=lambda r: (r[0], r[-1] == "", sign * float(r[-1] or 0)))
    writer.writerows(rows)
    return out.getvalue()


def _controlled(groups: Sequence[Group], axis: str) -> list[Group]:
    """The groups that make a like-with-like comparison along ``axis``: those whose value of each other
    axis occurs with more than one value of ``axis`` (augment=none exists for one image only, so the
    N = 10 trials stay out of the augmentation plot). An axis that moves in lockstep with ``axis``
    (source=samples always with N = 10) cannot be held fixed and is not."""
    kept = list(groups)
    for other in sorted({a for g in groups for a, _ in g.key} - {axis}):
        pairs = {(dict(g.key)[axis], dict(g.key)[other]) for g in kept}
        if len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs}):
            continue  # one-to-one: confounded with the axis
        partners: dict[Any, set[Any]] = {}
        for a, b in pairs:
            partners.setdefault(b, set()).add(a)
        kept = [g for g in kept if len(partners[dict(g.key)[other]]) > 1]
    return kept


def _marginal(groups: Sequence[Group], axis: str) -> list[Group]:
    """Pool the groups by one axis' value (all other axes and seeds together)."""
    pooled: dict[Any, Group] = {}
    for g in groups:
        value = dict(g.key)[axis]
        target = pooled.setdefault(value, Group(((axis, value),), [], 0, {layer: [] for layer in PROBE_LAYERS}))
        target.seeds += g.seeds
        target.diverged += g.diverged
        for layer in PROBE_LAYERS:
            target.top1[layer] += g.top1[layer]
    return list(pooled.values())
