"""``monosweep validate SPEC``: the spec, every trial's values, images, data sets and the storage checked."""

from __future__ import annotations

import argparse

from sweep.commands._shared import command, spec_of
from sweep.plan import plan_sweep


@command
def main(args: argparse.Namespace) -> int:
    spec = spec_of(args)
    plan = plan_sweep(spec, str(args.spec), args.storage)
    print(f"{args.spec}: ok - sweep {spec.name!r}, {plan.total} trials, storage {plan.storage.uri}")
    return 0
