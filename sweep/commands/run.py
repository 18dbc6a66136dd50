"""``monosweep run SPEC``: every trial that is not finished yet, on local Ray or a cluster."""

from __future__ import annotations

import argparse
import sys

from sweep.commands._shared import command, spec_of
from sweep.driver import run_sweep


@command
def main(args: argparse.Namespace) -> int:
    spec = spec_of(args)
    summary = run_sweep(spec, str(args.spec), address=args.address, storage=args.storage,
                        tracking=args.tracking_uri, spec_text=args.spec.read_text())
    states = ", ".join(f"{n} {s}" for s, n in sorted(summary.counts.items()))
    print(f"sweep {spec.name!r}: {summary.total} trials ({states}); ran {summary.ran}, skipped {summary.skipped} "
          f"already done; results in {summary.storage}")
    if not summary.ok:
        print(f"some trials did not finish: see `monosweep status {args.spec}`", file=sys.stderr)
    return 0 if summary.ok else 1
