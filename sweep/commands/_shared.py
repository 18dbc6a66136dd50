"""What every command does around its work: plugins first, one-line errors, the spec, aligned tables."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Sequence

from methods import registry
from methods.errors import guarded
from sweep.spec import SweepSpec, load_spec, spec_text

__all__ = ["command", "print_table", "spec_of", "spec_text_of"]


def command(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A command's ``main``: plugin methods loaded, bad input as one ``monosweep CMD: error: ...`` line (exit 2)."""

    @functools.wraps(run)
    def main(args: argparse.Namespace) -> int:
        def body() -> int:
            registry.load_plugins()
            return run(args)

        return guarded(f"monosweep {args.command}", body)

    return main


def spec_of(args: argparse.Namespace) -> SweepSpec:
    """The spec file with its ``base:`` files and the ``--set`` overrides merged in."""
    return load_spec(args.spec, args.set)


def spec_text_of(args: argparse.Namespace) -> str:
    """The spec as it runs (the merged document when it has a base or overrides), kept with the sweep."""
    return spec_text(args.spec, args.set)


def print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
