"""The ``monosweep`` command.

Subcommands:
  trial   run one trial (train a method, probe every conv layer) — see ``monosweep trial --help``
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from methods.cli import EXAMPLES, add_trial_arguments, guarded, run_from_args

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monosweep",
        description="Sweeps of self-supervised methods trained on very few images, probed layer by layer.",
        epilog="Run `monosweep COMMAND --help` for the options and examples of each command.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    trial = commands.add_parser(
        "trial", help="run one trial end to end and print the per-layer probe table",
        description="Run one trial: train a method on patches of a few photos, then linear-probe every "
        "conv layer (conv1..conv5) and print the per-layer accuracy.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_trial_arguments(trial)
    trial.set_defaults(handler=run_from_args)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return guarded(f"monosweep {args.command}", lambda: int(args.handler(args)))


if __name__ == "__main__":
    sys.exit(main())
