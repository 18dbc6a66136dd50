"""``monosweep completion SHELL``: the shell code that completes monosweep's commands and options."""

from __future__ import annotations

import argparse


def main(args: argparse.Namespace) -> int:
    import argcomplete

    print(argcomplete.shellcode(["monosweep"], shell=args.shell))
    return 0
