"""``monosweep data NAME DIR``: fetch a public labelled set into the layout the probe reads (or say how to lay
out one that cannot be fetched)."""

from __future__ import annotations

import argparse
import sys

from methods.data.public import DESCRIBED, fetch
from sweep.commands._shared import command


@command
def main(args: argparse.Namespace) -> int:
    if args.name in DESCRIBED:
        print(DESCRIBED[args.name])
        return 0
    if args.dir is None:
        print(f"monosweep data: error: give the folder to put {args.name} in, e.g. monosweep data {args.name} "
              f"data/{args.name}", file=sys.stderr)
        return 2
    fetch(args.name, args.dir, mirror=args.mirror)
    return 0
