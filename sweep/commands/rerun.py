"""``monosweep rerun SPEC --where ... --state ...``: the selected trials run again from scratch, nothing else."""

from __future__ import annotations

import argparse

from methods.errors import InputError
from sweep.commands._shared import command, print_table, spec_of, spec_text_of
from sweep.commands.run import report_summary
from sweep.driver import run_sweep
from sweep.plan import plan_sweep
from sweep.selection import check_selected, select


@command
def main(args: argparse.Namespace) -> int:
    spec = spec_of(args)
    if not args.where and not args.state:
        raise InputError("rerun needs a selection: --where KEY=VALUE,... and/or --state STATE (e.g. --where "
                         "method=deepcluster, --state failed); `monosweep run` resumes what is not finished")
    selection = select(args.where, args.state, sorted(spec.grid))
    if args.dry_run:
        plan = plan_sweep(spec, str(args.spec), args.storage, check_inputs=False)
        chosen = selection.apply(plan)
        check_selected(chosen, selection, len(plan.trials))
        axes = spec.varying_axes() or sorted(spec.grid)
        print_table([("id", "status", *axes), *((t.id, plan.status(t), *(str(t.value(a)) for a in axes))
                                                 for t in chosen)])
        print(f"would rerun {len(chosen)} of {len(plan.trials)} trials ({selection.text}); nothing was run")
        return 0
    summary = run_sweep(spec, str(args.spec), address=args.address, storage=args.storage,
                        tracking=args.tracking_uri, spec_text=spec_text_of(args), rerun=selection)
    return report_summary(spec, summary, args.spec)
