"""The ``monosweep`` command: validate, plan, run, status, report, sync, submit a sweep; or run one trial.

This module only parses: it imports nothing but argparse, so ``monosweep --help`` answers at once. Each
command lives in ``sweep/commands/<name>.py`` (a ``main(args)``), loaded by name once it is chosen; the
``trial`` command is the trial engine's own command line (``methods/trial/cli.py``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["build_parser", "main"]

DESCRIPTION = """\
Sweeps of self-supervised methods trained on very few images, probed layer by layer.

A sweep is one YAML file: a grid of trial-config values (method x source x N x augmentation x seed x
...), where to store results, what each trial reserves. `monosweep run` runs every trial that is not
finished yet on a local or remote Ray cluster; run it again to resume a broken sweep, or after adding
values to the grid to run only the new trials.
"""

EPILOG = """\
examples:
  monosweep validate examples/quickstart.yaml     # check the spec, its images and storage
  monosweep plan examples/quickstart.yaml         # how many trials, how many finished, by axis
  monosweep run examples/quickstart.yaml          # run on this machine (local Ray, CPU if no GPU)
  monosweep status examples/quickstart.yaml       # one line per trial: state, epoch, probe top-1
  monosweep report examples/quickstart.yaml       # table + plots: probe top-1 per layer, mean +- std
  monosweep sync examples/quickstart.yaml         # back-fill MLflow from the ledger
  monosweep run spec.yaml --address 10.0.0.1:6379 --storage s3://bucket/sweeps   # on a cluster
  monosweep submit spec.yaml --address http://10.0.0.1:8265                      # as a Ray Job
  monosweep trial --help                          # one trial, no Ray

S3 storage reads the usual AWS settings (AWS_ENDPOINT_URL_S3 for MinIO and friends, AWS_REGION,
credentials from the environment or ~/.aws); they are never written to results or logs.
"""

TRIAL_HELP = "run one trial end to end and print the per-layer probe table (`monosweep trial --help`)"


def _spec_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", type=Path, help="the sweep's YAML file")
    parser.add_argument("--storage", help="override the spec's storage (local folder or s3://bucket/prefix)")


def _tracking_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracking-uri", help="MLflow tracking URI, e.g. http://mlflow:5000 (default: the spec's "
                        "tracking_uri, else $MLFLOW_TRACKING_URI, else sqlite beside the results)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="monosweep", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text, epilog=EPILOG,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        _spec_arguments(sub)
        return sub

    command("validate", "check a spec, its images, data and storage; run nothing")
    plan = command("plan", "show the grid: trials in total, finished, to run, by axis; the GPU-hours it needs")
    plan.add_argument("--tflops", type=float, help="achieved TFLOP/s of one GPU for the estimate (default: an H100 "
                      "at ~20%% of its bf16 peak; measure yours with bench/bench_mfu.py)")
    run = command("run", "run every trial that is not finished yet (resume and extend by running again)")
    run.add_argument("--address", help="Ray cluster to join (HOST:PORT of its GCS, or 'auto'); default: start "
                     "Ray on this machine")
    _tracking_argument(run)
    _tracking_argument(command("sync", "mirror the ledger to MLflow (back-fill after the tracking server was down)"))
    report = command("report", "per-layer probe table (CSV, Markdown) and plots, mean +- std over seeds")
    report.add_argument("--out", type=Path, help="folder for the report (default: <storage>/<name>/report)")
    _tracking_argument(report)
    command("status", "one line per trial: state, epoch, probe top-1 per layer")
    submit = command("submit", "send `monosweep run SPEC` to a Ray cluster as a Ray Job")
    submit.add_argument("--address", required=True, help="the cluster's job server, e.g. http://HEAD:8265")
    commands.add_parser("trial", help=TRIAL_HELP, add_help=False)  # parsed by the trial's own command line
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["trial"]:
        trial_cli = importlib.import_module("methods.trial.cli")
        return int(trial_cli.main(argv[1:], prog="monosweep trial"))
    args = build_parser().parse_args(argv)
    command = importlib.import_module(f"sweep.commands.{args.command}")
    try:
        return int(command.main(args))
    except BrokenPipeError:  # `monosweep status ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (no second error at exit)
        return 0


if __name__ == "__main__":
    sys.exit(main())
