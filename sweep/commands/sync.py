"""``monosweep sync SPEC``: the ledger mirrored to MLflow, nothing run (after the tracking server was down)."""

from __future__ import annotations

import argparse

from sweep.commands._shared import command, spec_of, spec_text_of
from sweep.driver import sync_sweep


@command
def main(args: argparse.Namespace) -> int:
    spec = spec_of(args)
    changed, tracker = sync_sweep(spec, str(args.spec), args.storage, args.tracking_uri,
                                  spec_text=spec_text_of(args))
    print(f"sweep {spec.name!r}: mirrored {changed} trial run(s) to MLflow at {tracker.shown}; {tracker.ui_hint()}")
    return 0
