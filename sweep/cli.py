"""The ``monosweep`` command: validate, plan, run, status, submit a sweep; or run one trial."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from methods.cli import EXAMPLES, add_trial_arguments, guarded, run_from_args
from sweep.estimate import DEFAULT_TFLOPS

__all__ = ["main"]

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


def _spec_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", type=Path, help="the sweep's YAML file")
    parser.add_argument("--storage", help="override the spec's storage (local folder or s3://bucket/prefix)")


def _tracking_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracking-uri", help="MLflow tracking URI, e.g. http://mlflow:5000 (default: the spec's "
                        "tracking_uri, else $MLFLOW_TRACKING_URI, else sqlite beside the results)")


def _load(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from sweep.spec import load_spec

    return load_spec(args.spec)


def cmd_validate(args: argparse.Namespace) -> int:
    from sweep.runner import plan_sweep

    spec = _load(args)
    plan = plan_sweep(spec, str(args.spec), args.storage)
    print(f"{args.spec}: ok - sweep {spec.name!r}, {plan.total} trials, storage {plan.storage.uri}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from sweep.runner import plan_sweep

    spec = _load(args)
    plan = plan_sweep(spec, str(args.spec), args.storage, check_inputs=False)
    counts, to_sample = plan.counts(), sum(plan.to_sample.values())
    print(f"sweep {spec.name!r}: {plan.total} trials - {counts.get('finished', 0)} finished, "
          f"{counts.get('diverged', 0)} diverged, {len(plan.todo) + to_sample} to run (storage {plan.storage.uri})")
    if spec.search is not None:
        print(f"search: {spec.search.num_samples} trials around each of {len(plan.points)} grid points, "
              f"{to_sample} still to sample; {spec.search.mode} {spec.search.metric} over "
              f"{', '.join(spec.search.space)}" + (" (ASHA prunes)" if spec.search.asha else ""))
    from sweep.estimate import sweep_hours

    by_point = {p.id: p.config for p in plan.points}
    unsampled = [by_point[i] for i, n in plan.to_sample.items() for _ in range(n)]
    left, every = [t.config for t in plan.todo] + unsampled, [t.config for t in plan.trials] + unsampled
    print(f"compute: ~{sweep_hours(left, args.tflops):,.1f} GPU-hours to run, {sweep_hours(every, args.tflops):,.1f} "
          f"in all, at {args.tflops:g} TFLOP/s achieved (--tflops; measure yours with bench/bench_mfu.py)")
    rows = [("axis", "value", "total", "finished", "to run")]
    todo = {t.id for t in plan.todo}
    for axis in sorted(spec.grid):
        for value in spec.grid[axis]:
            members = [t for t in plan.trials if getattr(t.config, axis) == value]
            sample = sum(plan.to_sample.get(p.id, 0) for p in plan.points if getattr(p.config, axis) == value)
            rows.append((axis, str(value), str(len(members) + sample),
                         str(sum(plan.status(t) == "finished" for t in members)),
                         str(sum(t.id in todo for t in members) + sample)))
    _print_table(rows)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from sweep.runner import run_sweep

    spec = _load(args)
    summary = run_sweep(spec, str(args.spec), address=args.address, storage=args.storage,
                        tracking=args.tracking_uri, spec_text=args.spec.read_text())
    states = ", ".join(f"{n} {s}" for s, n in sorted(summary.counts.items()))
    print(f"sweep {spec.name!r}: {summary.total} trials ({states}); ran {summary.ran}, skipped {summary.skipped} "
          f"already done; results in {summary.storage}")
    if not summary.ok:
        print(f"some trials did not finish: see `monosweep status {args.spec}`", file=sys.stderr)
    return 0 if summary.ok else 1


def cmd_sync(args: argparse.Namespace) -> int:
    from sweep.runner import sync_sweep

    spec = _load(args)
    changed, tracker = sync_sweep(spec, str(args.spec), args.storage, args.tracking_uri,
                                  spec_text=args.spec.read_text())
    print(f"sweep {spec.name!r}: mirrored {changed} trial run(s) to MLflow at {tracker.uri}; {tracker.ui_hint()}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from sweep.report import write_report
    from sweep.runner import plan_sweep
    from sweep.tracking import Tracker, tracking_uri

    spec = _load(args)
    plan = plan_sweep(spec, str(args.spec), args.storage, check_inputs=False)
    out = args.out or (Path(plan.storage.root) / "report" if not plan.storage.is_s3 else Path(f"{spec.name}-report"))
    files = write_report(spec, plan.trials, plan.records, out, plan.points)
    print(files[1].read_text())
    tracker = Tracker(spec, plan.storage, tracking_uri(spec, plan.storage, args.tracking_uri),
                      lambda message: print(message, file=sys.stderr))
    if tracker.open(running=False):
        tracker.log_parent_artifacts(out)
    print(f"wrote {', '.join(f.name for f in files)} to {out}"
          + ("" if tracker.down else f" (also on the sweep's MLflow run; {tracker.ui_hint()})"))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from sweep.runner import plan_sweep

    spec = _load(args)
    plan = plan_sweep(spec, str(args.spec), args.storage, check_inputs=False)
    axes = spec.varying_axes() or sorted(spec.grid)
    searched = list(spec.search.space) if spec.search is not None else []
    from methods.alexnet import TAPS as layers
    from sweep.search import short
    rows = [("id", "status", "epoch", *axes, *searched, *layers)]
    for trial in plan.trials:
        record = plan.records.get(trial.id)
        probe = (record.result or {}).get("probe", {}) if record else {}
        rows.append((trial.id, plan.status(trial), str(record.epoch if record else 0),
                     *(str(getattr(trial.config, a)) for a in axes),
                     *(short(getattr(trial.config, k)) for k in searched),
                     *(f"{probe[layer]['top1']:.1f}" if layer in probe else "-" for layer in layers)))
    _print_table(rows)
    if plan.to_sample and sum(plan.to_sample.values()):
        print(f"... and {sum(plan.to_sample.values())} search trial(s) not sampled yet")
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from sweep.submit import submit_sweep

    job = submit_sweep(args.spec, args.address, args.storage)
    print(f"submitted {job}: follow it with `ray job logs -f {job} --address {args.address}`")
    return 0


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="monosweep", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, handler: object) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text, epilog=EPILOG,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(handler=handler)
        return sub

    _spec_arguments(command("validate", "check a spec, its images, data and storage; run nothing", cmd_validate))
    plan = command("plan", "show the grid: trials in total, finished, to run, by axis; the GPU-hours it needs",
                   cmd_plan)
    _spec_arguments(plan)
    plan.add_argument("--tflops", type=float, default=DEFAULT_TFLOPS,
                      help=f"achieved TFLOP/s of one GPU for the estimate (default {DEFAULT_TFLOPS:g}: an H100 at "
                      "~20%% of its bf16 peak)")
    run = command("run", "run every trial that is not finished yet (resume and extend by running again)", cmd_run)
    _spec_arguments(run)
    run.add_argument("--address", help="Ray cluster to join (HOST:PORT of its GCS, or 'auto'); default: start "
                     "Ray on this machine")
    _tracking_argument(run)
    sync = command("sync", "mirror the ledger to MLflow (back-fill after the tracking server was down)", cmd_sync)
    _spec_arguments(sync)
    _tracking_argument(sync)
    report = command("report", "per-layer probe table (CSV, Markdown) and plots, mean +- std over seeds",
                     cmd_report)
    _spec_arguments(report)
    report.add_argument("--out", type=Path, help="folder for the report (default: <storage>/<name>/report)")
    _tracking_argument(report)
    _spec_arguments(command("status", "one line per trial: state, epoch, probe top-1 per layer", cmd_status))
    submit = command("submit", "send `monosweep run SPEC` to a Ray cluster as a Ray Job", cmd_submit)
    _spec_arguments(submit)
    submit.add_argument("--address", required=True, help="the cluster's job server, e.g. http://HEAD:8265")

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
