"""``monosweep report SPEC``: the per-layer table (CSV, Markdown) and plots, attached to the sweep's MLflow run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sweep.commands._shared import command, spec_of
from sweep.plan import plan_sweep
from sweep.report import write_report
from sweep.tracking import Tracker, tracking_uri


@command
def main(args: argparse.Namespace) -> int:
    spec = spec_of(args)
    plan = plan_sweep(spec, str(args.spec), args.storage, check_inputs=False)
    out = args.out or (Path(plan.storage.root) / "report" if not plan.storage.is_s3 else Path(f"{spec.name}-report"))
    files, groups = write_report(spec, plan, out)
    print(files[1].read_text())
    tracker = Tracker(spec, plan.storage, tracking_uri(spec, plan.storage, args.tracking_uri),
                      lambda message: print(message, file=sys.stderr))
    if tracker.open(running=False):
        tracker.log_parent_artifacts(out)
        tracker.log_parent_curves({g.label(): {layer: g.mean(layer) for layer in g.top1 if g.top1[layer]}
                                   for g in groups})
    print(f"wrote {', '.join(f.name for f in files)} to {out}"
          + ("" if tracker.down else f" (also on the sweep's MLflow run; {tracker.ui_hint()})"))
    return 0
