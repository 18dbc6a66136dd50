"""``monosweep submit SPEC --address http://HEAD:8265``: ``monosweep run SPEC`` as a Ray Job on a cluster."""

from __future__ import annotations

import argparse

from sweep.commands._shared import command
from sweep.submit import submit_sweep


@command
def main(args: argparse.Namespace) -> int:
    job = submit_sweep(args.spec, args.address, args.storage, overrides=args.set)
    print(f"submitted {job}: follow it with `ray job logs -f {job} --address {args.address}`")
    return 0
