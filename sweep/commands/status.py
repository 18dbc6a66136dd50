"""``monosweep status SPEC``: one line per trial, its state, epoch and probe top-1 per layer."""

from __future__ import annotations

import argparse

from methods.metrics import LAYERS
from sweep.commands._shared import command, print_table, spec_of
from sweep.plan import plan_sweep
from sweep.search import short


@command
def main(args: argparse.Namespace) -> int:
    spec = spec_of(args)
    plan = plan_sweep(spec, str(args.spec), args.storage, check_inputs=False)
    axes = spec.varying_axes() or sorted(spec.grid)
    searched = list(spec.search.space) if spec.search is not None else []
    rows = [("id", "status", "epoch", *axes, *searched, *LAYERS)]
    for trial in plan.trials:
        record = plan.records.get(trial.id)
        probe = record.result.probe if record is not None and record.result is not None else {}
        rows.append((trial.id, plan.status(trial), str(record.epoch if record else 0),
                     *(str(trial.value(a)) for a in axes), *(short(trial.value(k)) for k in searched),
                     *(f"{probe[layer]['top1']:.1f}" if layer in probe else "-" for layer in LAYERS)))
    print_table(rows)
    if plan.to_sample and sum(plan.to_sample.values()):
        print(f"... and {sum(plan.to_sample.values())} search trial(s) not sampled yet")
    return 0
