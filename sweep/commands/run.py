"""``monosweep run SPEC``: every trial that is not finished yet, on local Ray or a cluster."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sweep.commands._shared import command, spec_of, spec_text_of
from sweep.driver import RunSummary, run_sweep
from sweep.spec import SweepSpec


def report_summary(spec: SweepSpec, summary: RunSummary, path: Path) -> int:
    """The run's last line, and its exit status: 0 when every trial ended well or a stop was asked for."""
    states = ", ".join(f"{n} {s}" for s, n in sorted(summary.counts.items()))
    print(f"sweep {spec.name!r}: {summary.total} trials ({states}); ran {summary.ran}, skipped {summary.skipped} "
          f"already done; results in {summary.storage}")
    if summary.stopped_by:
        print(f"stopped on request ({summary.stopped_by}): `monosweep run {path}` resumes it", file=sys.stderr)
        return 0
    if not summary.ok:
        print(f"some trials did not finish: see `monosweep status {path}`", file=sys.stderr)
    return 0 if summary.ok else 1


@command
def main(args: argparse.Namespace) -> int:
    spec = spec_of(args)
    summary = run_sweep(spec, str(args.spec), address=args.address, storage=args.storage,
                        tracking=args.tracking_uri, spec_text=spec_text_of(args))
    return report_summary(spec, summary, args.spec)
