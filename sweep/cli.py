"""The ``monosweep`` command: validate, plan, run, status, rerun, stop, report, sync, submit a sweep; fetch
probe data; or run one trial.

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
  monosweep status spec.yaml --state failed --json                 # what failed, for a script
  monosweep rerun spec.yaml --where method=deepcluster --dry-run    # what a rerun would run again
  monosweep stop spec.yaml                        # stop a running sweep cleanly (from any machine)
  monosweep run spec.yaml --set fixed.epochs=4 --set grid.seed=[0,1,2]   # override spec values
  monosweep report examples/quickstart.yaml       # table + plots: probe top-1 per layer, mean +- std
  monosweep sync examples/quickstart.yaml         # back-fill MLflow from the ledger
  monosweep run spec.yaml --address 10.0.0.1:6379 --storage s3://bucket/sweeps   # on a cluster
  monosweep submit spec.yaml --address http://10.0.0.1:8265                      # as a Ray Job
  monosweep trial --help                          # one trial, no Ray

Probe data: `monosweep data cifar10 DIR` downloads CIFAR-10 into the layout the probe reads.
A spec can build on another: `base: cpu-small.yaml` (merged, then validated as one).
Shell completion: eval "$(monosweep completion bash)" (or zsh, fish).

S3 storage reads the usual AWS settings (AWS_ENDPOINT_URL_S3 for MinIO and friends, AWS_REGION,
credentials from the environment or ~/.aws); they are never written to results or logs.
"""

TRIAL_HELP = "run one trial end to end and print the per-layer probe table (`monosweep trial --help`)"


COMMAND_EXAMPLES = {
    "status": """\
examples:
  monosweep status spec.yaml                                  # the table
  monosweep status spec.yaml --where method=rotnet,seed=0|1   # rotnet trials of seed 0 or 1
  monosweep status spec.yaml --state failed,interrupted       # what is left to finish
  monosweep status spec.yaml --json | jq -r .id               # one JSON object per line and trial
  monosweep status spec.yaml --format csv --out results.csv   # flat columns: values, metrics, config
  monosweep status spec.yaml --format parquet --out results.parquet
  monosweep status spec.yaml --watch                          # refresh every 5 s while a sweep runs

In Python: `import sweep; df = sweep.results("spec.yaml")` gives the same rows as a pandas DataFrame.
""",
    "rerun": """\
examples:
  monosweep rerun spec.yaml --where method=deepcluster --dry-run   # list what would run again
  monosweep rerun spec.yaml --where method=deepcluster,seed=1      # after fixing a method's bug
  monosweep rerun spec.yaml --state failed,diverged                # only trials that ended badly
  monosweep rerun spec.yaml --where id=3f2a9c01b7de

The earlier result stays in the trial's record (`history`) and its MLflow run is kept, tagged
superseded; the new attempt gets a new run under the same sweep. Nothing else in the sweep runs.
""",
    "stop": """\
examples:
  monosweep stop spec.yaml                  # ask the sweep's driver to stop; wait until it has
  monosweep stop spec.yaml --wait 0         # ask, and return at once
  monosweep stop spec.yaml --storage s3://bucket/sweeps   # a sweep submitted as a Ray Job

The request goes through the sweep's storage, so it works from any machine that reaches it. Running
trials end `interrupted` at their last epoch's checkpoint; `monosweep run spec.yaml` resumes them.
""",
    "data": """\
examples:
  monosweep data cifar10 data/cifar10     # download (torchvision's downloader, MD5-checked), then
                                          #   probe_data: data/cifar10 in the spec
  monosweep data cifar100 data/cifar100
  monosweep data stl10 data/stl10
  monosweep data cifar10 data/cifar10 --mirror http://files.lab.local/datasets   # a local copy
  monosweep data imagenet                 # how to lay out ImageNet (not downloadable: sign-up needed)

Running it again on a complete folder checks the checksums and downloads nothing.
""",
    "completion": """\
examples:
  eval "$(monosweep completion bash)"       # in ~/.bashrc
  eval "$(monosweep completion zsh)"        # in ~/.zshrc
  monosweep completion fish > ~/.config/fish/completions/monosweep.fish
""",
}


def _spec_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", type=Path, help="the sweep's YAML file")
    parser.add_argument("--storage", help="override the spec's storage (local folder or s3://bucket/prefix)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a spec value, e.g. --set fixed.epochs=4 --set grid.seed=[0,1,2] (YAML "
                        "values; repeatable; part of the trial identity like any value in the file)")


def _selection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--where", action="append", metavar="KEY=VALUE,...",
                        help="only trials whose values match every pair, e.g. method=deepcluster,seed=1 "
                        "(KEY=A|B for either value; keys: id, grid axes, any trial-config field; "
                        "repeat for alternatives)")
    parser.add_argument("--state", action="append", metavar="STATE,...",
                        help="only trials in these states: pending, running, finished, failed, diverged, "
                        "interrupted, pruned")


def _tracking_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracking-uri", help="MLflow tracking URI, e.g. http://mlflow:5000 (default: the spec's "
                        "tracking_uri, else $MLFLOW_TRACKING_URI, else sqlite beside the results)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="monosweep", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, spec: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text,
                                  epilog=COMMAND_EXAMPLES.get(name, EPILOG),
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        if spec:
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
    status = command("status", "one line per trial: state, epoch, probe top-1 per layer; or JSON, CSV, Parquet")
    _selection_arguments(status)
    status.add_argument("--format", choices=("table", "json", "csv", "parquet"), default="table",
                        help="table (default); json: one object per line and trial (id, state, values, config, "
                        "metrics, attempts, error); csv/parquet: flat columns, as sweep.results() gives")
    status.add_argument("--json", action="store_const", dest="format", const="json", help="the same as --format json")
    status.add_argument("--out", type=Path, help="write to this file instead of stdout (needed for parquet)")
    status.add_argument("--watch", type=float, nargs="?", const=5.0, metavar="SECONDS",
                        help="refresh the table every SECONDS (default 5) until every trial has ended")
    rerun = command("rerun", "run selected trials again from scratch (finished ones too); nothing else runs")
    _selection_arguments(rerun)
    rerun.add_argument("--dry-run", action="store_true", help="list the selected trials; run nothing")
    rerun.add_argument("--address", help="Ray cluster to join, as for `monosweep run`")
    _tracking_argument(rerun)
    stop = command("stop", "ask the driver running this sweep to stop cleanly; a later `run` resumes it")
    stop.add_argument("--wait", type=float, default=120.0, metavar="SECONDS",
                      help="wait this long for the driver to stop and release its lease (default 120; 0: "
                      "do not wait)")
    data = command("data", "download CIFAR-10/100 or STL-10 for the probe; say how to lay out ImageNet/Places",
                   spec=False)
    data.add_argument("name", choices=("cifar10", "cifar100", "stl10", "imagenet", "places"), help="the data set")
    data.add_argument("dir", type=Path, nargs="?", help="where to put it (then probe_data: DIR in a spec)")
    data.add_argument("--mirror", metavar="URL", help="a folder URL holding the set's archive under its usual name "
                      "(default: torchvision's own URL)")
    completion = command("completion", "print the shell code that completes monosweep's commands", spec=False)
    completion.add_argument("shell", choices=("bash", "zsh", "fish"), help="your shell")
    submit = command("submit", "send `monosweep run SPEC` to a Ray cluster as a Ray Job")
    submit.add_argument("--address", required=True, help="the cluster's job server, e.g. http://HEAD:8265")
    commands.add_parser("trial", help=TRIAL_HELP, add_help=False)  # parsed by the trial's own command line
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["trial"]:
        trial_cli = importlib.import_module("methods.trial.cli")
        return int(trial_cli.main(argv[1:], prog="monosweep trial"))
    parser = build_parser()
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions (see `monosweep completion`)
        import argcomplete

        argcomplete.autocomplete(parser)
    args = parser.parse_args(argv)
    command = importlib.import_module(f"sweep.commands.{args.command}")
    try:
        return int(command.main(args))
    except BrokenPipeError:  # `monosweep status ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (no second error at exit)
        return 0


if __name__ == "__main__":
    sys.exit(main())
