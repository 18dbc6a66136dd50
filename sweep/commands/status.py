"""``monosweep status SPEC``: one line per trial (state, epoch, probe top-1 per layer), selected with
``--where``/``--state``, as a table, JSON lines, CSV or Parquet; ``--watch`` refreshes while a sweep runs."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from methods.data.labelled import DEMO, DEMO_NOTE
from methods.errors import InputError
from methods.metrics import LAYERS, probe_metric
from sweep.commands._shared import command, print_table, spec_of
from sweep.ledger.records import PENDING, RUNNING
from sweep.plan import Plan, prepare, read_plan
from sweep.search import short
from sweep.selection import Selection, select
from sweep.spec import SweepSpec
from sweep.table import frame, rows


def _table(spec: SweepSpec, plan: Plan, selection: Selection) -> None:
    axes = spec.varying_axes() or sorted(spec.grid)
    searched = list(spec.search.space) if spec.search is not None else []
    lines = [("id", "status", "epoch", *axes, *searched, *LAYERS)]
    for row in rows(plan, selection):
        values, metrics = row["values"], row["metrics"]
        lines.append((row["id"], row["state"], str(row["epoch"]),
                      *(str(values.get(a, row["config"].get(a))) for a in axes),
                      *(short(values.get(k)) for k in searched),
                      *(f"{metrics[m]:.1f}" if (m := probe_metric(layer, "top1")) in metrics else "-"
                        for layer in LAYERS)))
    if len(lines) == 1:
        print(f"no trial matches {selection.text}" if selection else "the sweep has no trial yet")
        return
    print_table(lines)
    if any(t.config.probe_data == DEMO for t in plan.trials):
        print(f"note: {DEMO_NOTE}")
    if plan.to_sample and sum(plan.to_sample.values()) and not selection:
        print(f"... and {sum(plan.to_sample.values())} search trial(s) not sampled yet")


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)


def _show(args: argparse.Namespace, spec: SweepSpec, plan: Plan, selection: Selection) -> None:
    if args.format == "table":
        _table(spec, plan, selection)
    elif args.format == "json":
        _emit("".join(json.dumps(row, sort_keys=True) + "\n" for row in rows(plan, selection)), args.out)
    elif args.format == "csv":
        _emit(frame(plan, spec, selection).to_csv(index=False), args.out)
    else:
        frame(plan, spec, selection).to_parquet(args.out, index=False)


@command
def main(args: argparse.Namespace) -> int:
    spec = spec_of(args)
    if args.format == "parquet" and args.out is None:
        raise InputError("--format parquet writes a file: give it with --out FILE (e.g. --out results.parquet)")
    if args.watch is not None and args.format != "table":
        raise InputError("--watch refreshes the table: use it without --json/--format (or loop over those yourself)")
    selection = select(args.where, args.state, sorted(spec.grid))
    points, store = prepare(spec, str(args.spec), args.storage, check_inputs=False)  # once; the ledger each time
    if args.watch is None:
        _show(args, spec, read_plan(spec, points, store), selection)
        if args.out:
            print(f"wrote {Path(args.out)}", file=sys.stderr)
        return 0
    try:
        while True:
            print("\033[H\033[J" if sys.stdout.isatty() else "", end="")
            print(f"{time.strftime('%H:%M:%S')}  monosweep status {args.spec}  "
                  f"(every {args.watch:g} s; Ctrl-C to stop)")
            plan = read_plan(spec, points, store)
            _show(args, spec, plan, selection)
            if not any(plan.status(t) in (PENDING, RUNNING) for t in plan.trials) and not sum(plan.to_sample.values()):
                print("every trial has ended")
                return 0
            sys.stdout.flush()
            time.sleep(args.watch)
    except KeyboardInterrupt:
        return 0
