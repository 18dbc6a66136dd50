"""Command line for one trial: ``monosweep trial ...`` or ``python -m methods ...``.

Every trial-config field is a flag (``img_size`` -> ``--img-size``), each method's own options included
(in a group of their own), so the command line and the config can't drift apart. ``--config FILE`` (YAML
or JSON) sets values first; flags override them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic.fields import FieldInfo

from methods import registry
from methods.errors import InputError, first_line, guarded
from methods.patches.augment import AUGMENTATIONS, PRESETS
from methods.trial.config import TrialConfig, option_fields, trial_fields
from methods.trial.cost import CPU_CONFIRM_S, cpu_seconds, trial_cost
from methods.trial.inputs import check_inputs, pick_device
from methods.trial.reporter import CHECKPOINT_FILE
from methods.trial.result import TrialResult
from methods.trial.run import run_trial

log = logging.getLogger("monosweep")

__all__ = ["add_trial_arguments", "build_parser", "main", "run_from_args"]

EXAMPLES = """\
examples:
  # one-image RotNet on a built-in photo, tiny and quick on a laptop CPU (~1 min):
  monosweep trial --method rotnet --source sample:astronaut --img-size 64 --epochs 2 \\
      --patches-per-epoch 2048 --batch-size 64 --head-hidden 512 --probe-epochs 8

  # the random baseline probed on CIFAR-10 kept as an ImageFolder tar, 64 px:
  monosweep trial --method random --img-size 64 --probe-data cifar10-jpeg.tar \\
      --probe-train-limit 10000 --probe-val-limit 2000 --probe-epochs 10

  # an augmentation ablation on your own photo, resumable from ./ckpt:
  monosweep trial --source photo.jpg --augment no-jitter --checkpoint-dir ckpt --output result.json

  # N = 5 photos picked by the seed from a folder (or from the built-in 'samples'), the paper's protocol
  # (a GPU job: on a CPU it stops with its estimate unless --yes):
  monosweep trial --source samples --num-images 5 --seed 3

augmentation presets: full, none, no-<step>, only-<step>; or steps joined by '+', e.g. crop+scale
steps: crop scale rotate shear hflip vflip jitter      (list them: --list-augment)
"""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _scalar(annotation: Any) -> Any:
    """``int`` for ``int | None``: the type a flag parses."""
    if isinstance(annotation, types.UnionType):
        return next(a for a in annotation.__args__ if a is not type(None))
    return annotation


def _add_field(group: argparse._ArgumentGroup, name: str, info: FieldInfo) -> None:
    kind = _scalar(info.annotation)
    shown = "" if info.default is None else f" [default: {info.default}]"
    help_text = f"{info.description or ''}{shown}"
    if kind is bool:
        group.add_argument(_flag(name), dest=name, action=argparse.BooleanOptionalAction,
                           default=argparse.SUPPRESS, help=help_text)
    else:
        group.add_argument(_flag(name), dest=name, type=kind, default=argparse.SUPPRESS, metavar=name.upper(),
                           help=help_text)


def add_trial_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per trial-config field (the methods' options grouped by method), plus the run options."""
    common = {k: v for k, v in trial_fields().items() if k not in option_fields()}
    trial = parser.add_argument_group("trial config (defaults: the paper's protocol)")
    probe = parser.add_argument_group("linear probe")
    for name, info in common.items():
        _add_field(probe if name.startswith("probe_") else trial, name, info)
    by_method: dict[str, list[tuple[str, FieldInfo]]] = {}
    for name, (method, info) in option_fields().items():
        by_method.setdefault(method.name, []).append((name, info))
    for method_name, options in sorted(by_method.items()):
        group = parser.add_argument_group(f"{method_name} options (with --method {method_name})")
        for name, info in options:
            _add_field(group, name, info)
    run = parser.add_argument_group("running")
    run.add_argument("--config", type=Path, help="YAML or JSON file of trial config values (flags override)")
    run.add_argument("--checkpoint-dir", type=Path,
                     help="keep the latest checkpoint here and resume from it when present; "
                     "the final trunk weights land there too (trunk.pt)")
    run.add_argument("--output", type=Path, help="write the result (config, history, probe table) as JSON")
    run.add_argument("--list-methods", action="store_true", help="list the methods and exit")
    run.add_argument("--list-augment", action="store_true", help="list augmentation steps and presets and exit")
    run.add_argument("-q", "--quiet", action="store_true", help="only print the final table")
    run.add_argument("--yes", action="store_true", help="run even a trial estimated to take more than an hour on "
                     "this machine's CPU (without it such a trial stops before it starts and says so)")


def _config_values(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if args.config is not None:
        if not args.config.is_file():
            raise InputError(f"config file not found: {args.config}")
        text = args.config.read_text()
        try:
            loaded = yaml.safe_load(text) if args.config.suffix in (".yaml", ".yml") else json.loads(text)
        except (ValueError, yaml.YAMLError) as err:
            raise InputError(f"cannot parse {args.config}: {first_line(err)}") from None
        if not isinstance(loaded, Mapping):
            raise InputError(f"{args.config} must hold a mapping of trial config fields")
        values.update(loaded)
    names = trial_fields()
    values.update({k: v for k, v in vars(args).items() if k in names})
    return values


class _KeepCheckpoints:
    """A reporter that copies each reported file (``checkpoint.pt`` every epoch, ``trunk.pt`` at the end)
    into one folder, atomically (write aside, then rename)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _keep(self, reported: Path) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for source in reported.iterdir():
            tmp = self.directory / (source.name + ".tmp")
            shutil.copyfile(source, tmp)
            os.replace(tmp, self.directory / source.name)

    def epoch(self, metrics: Mapping[str, float], checkpoint: Path) -> None:
        self._keep(checkpoint)

    def end(self, result: TrialResult, trunk: Path) -> None:
        self._keep(trunk)


def _duration(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:,.0f} {unit}"
    return f"{seconds:.0f} s"


def _check_cpu_budget(config: TrialConfig, confirmed: bool) -> None:
    """On a machine without a GPU, say what the trial will take first; beyond an hour, only with --yes (the
    defaults are the paper's protocol, a multi-GPU-hour job, which a CPU would run for months)."""
    resolved = config.resolved()
    if pick_device(resolved.device).type != "cpu":
        return
    cores = os.cpu_count() or 1
    seconds = cpu_seconds(resolved, cores)
    if seconds > CPU_CONFIRM_S and not confirmed:
        check_inputs(resolved)  # a bad path is the first thing to hear of (else run_trial checks it, once)
        raise InputError(f"this trial needs ~{trial_cost(resolved).flops / 1e12:,.0f} TFLOP: about "
                         f"{_duration(seconds)} on this machine's {cores} CPU cores (no GPU in use); pass --yes to "
                         "run it anyway, or start small: monosweep trial --config examples/trial-quickstart.yaml")
    log.info("estimate: about %s on %d CPU cores (compute only)", _duration(seconds), cores)


def run_from_args(args: argparse.Namespace) -> int:
    """Run the trial the parsed arguments describe; returns the exit code."""
    if args.list_methods:
        for name, cls in sorted(registry.methods().items()):
            summary = (cls.__doc__ or "").strip().splitlines() or [""]
            print(f"{name:<12} {summary[0]}")
        return 0
    if args.list_augment:
        for name, text in AUGMENTATIONS.items():
            print(f"{name:<8} {text}")
        print("presets:", ", ".join(PRESETS))
        return 0
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    config = TrialConfig.from_dict(_config_values(args))
    _check_cpu_budget(config, args.yes)
    resume = None
    if args.checkpoint_dir is not None and (args.checkpoint_dir / CHECKPOINT_FILE).is_file():
        resume = args.checkpoint_dir
    report = _KeepCheckpoints(args.checkpoint_dir) if args.checkpoint_dir is not None else None
    result = run_trial(config, report=report, resume_from=resume)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result.to_dict(), indent=2))
    cfg = result.config
    print(f"{cfg['method']} on {cfg['source']} (N={cfg['num_images']}, augment={cfg['augment']}, "
          f"seed={cfg['seed']}): {result.status} after {result.epochs_done} epoch(s); "
          f"linear probe on {cfg['probe_data']}")
    print(result.table())
    return 0


def build_parser(prog: str = "python -m methods") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Run one trial: train a method on patches of a few photos, then "
        "linear-probe every conv layer (conv1..conv5) and print the per-layer accuracy.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_trial_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m methods") -> int:
    """The trial command line: plugins from $MONOSWEEP_PLUGINS first (their methods and options are flags)."""
    return guarded(prog, lambda: _main(argv, prog))


def _main(argv: Sequence[str] | None, prog: str) -> int:
    registry.load_plugins()
    args = build_parser(prog).parse_args(argv)
    return run_from_args(args)
