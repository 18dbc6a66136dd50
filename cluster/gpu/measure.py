"""The kit's figures, read from what the sweeps leave behind: their ledgers, their MLflow database, wall times.

Standard library only (it runs in the GPU image before and without the bundle). A trial's record
(``<storage>/<name>/trials/<id>.json``) says when it last changed (``updated``: its end, for a finished trial) and how
long it trained and probed (``result.seconds``), so a sweep's wall time splits into time inside trials and the
platform's time around them.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
from pathlib import Path
from typing import Any

LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")


def records(root: Path) -> list[dict[str, Any]]:
    """A local sweep's trial records (``root`` is ``<storage>/<name>``); none when it never ran."""
    return [json.loads(p.read_text()) for p in sorted((root / "trials").glob("*.json"))]


def inside(record: dict[str, Any]) -> float:
    """Seconds the trial spent training and probing (its own clock)."""
    seconds = (record.get("result") or {}).get("seconds") or {}
    return float(seconds.get("train", 0.0)) + float(seconds.get("probe", 0.0))


def sweep_figures(rows: list[dict[str, Any]], wall: float, concurrency: int) -> dict[str, Any]:
    """What one sweep cost: trials finished, wall time, time inside trials, and the platform's time per trial.

    ``overhead_per_trial_s`` is the slot time a trial costs beyond its own work: (wall x concurrency - time inside
    trials) / trials. ``span_s`` runs from the first trial's start to the last one's end, so ``wall - span_s`` is the
    sweep's fixed cost (Python, Ray and MLflow start-up, shut-down)."""
    done = [r for r in rows if r.get("status") == "finished"]
    figures: dict[str, Any] = {"trials": len(rows), "finished": len(done), "wall_s": round(wall, 2)}
    if not done:
        return figures
    ends = [float(r["updated"]) for r in done]
    starts = [end - inside(r) for end, r in zip(ends, done, strict=True)]
    work = sum(inside(r) for r in done)
    train = [float(r["result"]["seconds"].get("train", 0.0)) for r in done]
    figures.update(span_s=round(max(ends) - min(starts), 2), inside_s=round(work, 2),
                   train_s_mean=round(statistics.mean(train), 3),
                   overhead_per_trial_s=round((wall * concurrency - work) / len(done), 3))
    return figures


def packing(packed: dict[str, Any], alone: dict[str, Any], patches: int) -> dict[str, Any]:
    """The same trials packed (``gpu: 0.25``: four share the GPU) and alone (``gpu: 1``): throughput of each arm
    and the ratio packed / alone, over the sweeps' wall times and over their training spans."""
    out: dict[str, Any] = {"patches_per_arm": patches, "packed": packed, "alone": alone}
    for arm in (packed, alone):
        if arm.get("finished"):
            arm["patches_per_s_wall"] = round(patches * arm["finished"] / arm["trials"] / arm["wall_s"], 1)
    if packed.get("finished") == packed.get("trials") == alone.get("finished") == alone.get("trials") != 0:
        out["ratio_wall"] = round(alone["wall_s"] / packed["wall_s"], 3)
        out["ratio_span"] = round(alone["span_s"] / packed["span_s"], 3)
    return out


def per_layer(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Probe top-1 per method and conv layer over the finished trials: mean, std (0 for one trial), n."""
    by_method: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        probe = (row.get("result") or {}).get("probe") or {}
        if row.get("status") != "finished" or not probe:
            continue
        method = str(row["values"].get("method", row["config"].get("method")))
        for layer in LAYERS:
            if layer in probe:
                by_method.setdefault(method, {}).setdefault(layer, []).append(float(probe[layer]["top1"]))
    return {method: {layer: {"mean": round(statistics.mean(v), 2), "std": round(statistics.pstdev(v), 2),
                             "n": len(v)} for layer, v in layers.items()} for method, layers in by_method.items()}


def mlflow_runs(db: Path) -> dict[str, int]:
    """Runs per MLflow experiment in an sqlite tracking database (the sweep's parent run and one per trial)."""
    if not db.is_file():
        return {}
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT e.name, COUNT(r.run_uuid) FROM experiments e LEFT JOIN runs r "
                                  "ON r.experiment_id = e.experiment_id GROUP BY e.name").fetchall()
    return {str(name): int(n) for name, n in rows}


def markdown(summary: dict[str, Any]) -> str:
    """The summary as a page to paste from: machine, phases, packing, overhead, per-layer table."""
    lines = [f"# GPU kit run ({summary['mode']}), {summary['started']}", ""]
    machine = summary.get("machine", {})
    lines += [f"Machine: {machine.get('gpu') or 'no GPU'}, {machine.get('cpus')} CPUs; Python {machine.get('python')}, "
              f"torch {machine.get('torch')}, ray {machine.get('ray')}, mlflow {machine.get('mlflow')}; "
              f"{summary.get('seconds', 0):.0f} s of a {summary['budget_s']:.0f} s budget.", ""]
    lines += ["| phase | ok | seconds | note |", "|---|---|---|---|"]
    for name, phase in summary.get("phases", {}).items():
        lines.append(f"| {name} | {'yes' if phase.get('ok') else 'NO'} | {phase.get('seconds', 0):.0f} | "
                     f"{phase.get('note', '')} |")
    pack = summary.get("packing") or {}
    if pack:
        lines += ["", f"## Packing: the same trials at `gpu: {pack.get('fraction')}` and at `gpu: 1`", "",
                  "| arm | finished | wall s | span s | patches/s (wall) | overhead s/trial |",
                  "|---|---|---|---|---|---|"]
        for arm in ("packed", "alone"):
            figures = pack.get(arm, {})
            lines.append(f"| {arm} | {figures.get('finished')}/{figures.get('trials')} | {figures.get('wall_s')} | "
                         f"{figures.get('span_s')} | {figures.get('patches_per_s_wall')} | "
                         f"{figures.get('overhead_per_trial_s')} |")
        lines += ["", f"Throughput ratio packed / alone: **{pack.get('ratio_wall')}x** over the wall time, "
                  f"{pack.get('ratio_span')}x over the training span."]
    science = summary.get("science") or {}
    if science.get("per_layer"):
        lines += ["", f"## Probe top-1 per layer at {science.get('img_size')} px ({science.get('probe_set')})", "",
                  "| method | n | " + " | ".join(LAYERS) + " |", "|---|---|" + "---|" * len(LAYERS)]
        for method, layers in sorted(science["per_layer"].items()):
            n = max(v["n"] for v in layers.values())
            cells = [f"{layers[k]['mean']:.1f} ± {layers[k]['std']:.1f}" if k in layers else "-" for k in LAYERS]
            lines.append(f"| {method} | {n} | " + " | ".join(cells) + " |")
        lines += ["", f"Sweep overhead per trial (slot time beyond the trials' own work): "
                  f"{science.get('overhead_per_trial_s')} s over {science.get('finished')} trials in "
                  f"{len(science.get('waves', []))} waves."]
    for name, bench in (summary.get("benches") or {}).items():
        lines += ["", f"## {name} ({'ok' if bench.get('ok') else 'FAILED'}, {bench.get('seconds', 0):.0f} s)", "",
                  "```", *bench.get("lines", []), "```"]
    if summary.get("errors"):
        lines += ["", "## Errors", "", *[f"- {e}" for e in summary["errors"]]]
    return "\n".join(lines) + "\n"
