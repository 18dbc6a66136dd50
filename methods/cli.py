"""Command line for one trial: ``monosweep trial ...`` or ``python -m methods ...``.

Every :class:`TrialConfig` field is a flag (``img_size`` -> ``--img-size``), so the CLI and the config
can't drift apart. ``--config FILE`` (YAML or JSON) sets values first; flags override them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

__all__ = ["add_trial_arguments", "guarded", "main", "run_from_args"]

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

  # N = 5 photos picked by the seed from a folder (or from the built-in 'samples'):
  monosweep trial --source samples --num-images 5 --seed 3

augmentation presets: full, none, no-<step>, only-<step>; or steps joined by '+', e.g. crop+scale
steps: crop scale rotate shear hflip vflip jitter      (list them: --list-augment)
"""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _parse_type(annotation: str) -> type:
    for t in ("int", "float", "str"):
        if t in annotation.split(" | "):
            return {"int": int, "float": float, "str": str}[t]
    return str


def add_trial_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per TrialConfig field plus the run options (shared by both front ends)."""
    from methods.config import TrialConfig

    group = parser.add_argument_group("trial config (defaults: the paper's protocol)")
    for f in fields(TrialConfig):
        default = None if f.default is MISSING else f.default
        annotation = str(f.type)
        help_text = f"{f.metadata.get('help', '')} [default: {default}]"
        if annotation.startswith("bool"):
            group.add_argument(_flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=help_text)
        else:
            group.add_argument(_flag(f.name), dest=f.name, type=_parse_type(annotation),
                               default=argparse.SUPPRESS, metavar=f.name.upper(), help=help_text)
    run = parser.add_argument_group("running")
    run.add_argument("--config", type=Path, help="YAML or JSON file of trial config values (flags override)")
    run.add_argument("--checkpoint-dir", type=Path,
                     help="keep the latest checkpoint here and resume from it when present; "
                     "the final trunk weights land there too (trunk.pt)")
    run.add_argument("--output", type=Path, help="write the result (config, history, probe table) as JSON")
    run.add_argument("--list-methods", action="store_true", help="list the methods and exit")
    run.add_argument("--list-augment", action="store_true", help="list augmentation steps and presets and exit")
    run.add_argument("-q", "--quiet", action="store_true", help="only print the final table")


def _config_values(args: argparse.Namespace) -> dict[str, Any]:
    from methods.config import TrialConfig
    from methods.errors import InputError, first_line

    values: dict[str, Any] = {}
    if args.config is not None:
        if not args.config.is_file():
            raise InputError(f"config file not found: {args.config}")
        text = args.config.read_text()
        try:
            import yaml

            loaded = yaml.safe_load(text) if args.config.suffix in (".yaml", ".yml") else json.loads(text)
        except (ValueError, yaml.YAMLError) as err:
            raise InputError(f"cannot parse {args.config}: {first_line(err)}") from None
        if not isinstance(loaded, Mapping):
            raise InputError(f"{args.config} must hold a mapping of trial config fields")
        values.update(loaded)
    names = {f.name for f in fields(TrialConfig)}
    values.update({k: v for k, v in vars(args).items() if k in names})
    return values


def _save_checkpoint(directory: Path, reported: str | None) -> None:
    """Copy the files of a reported directory (``checkpoint.pt`` each epoch, ``trunk.pt`` at the end)
    into ``directory``, each atomically (write aside, then rename)."""
    if reported is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    for source in Path(reported).iterdir():
        tmp = directory / (source.name + ".tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, directory / source.name)


def run_from_args(args: argparse.Namespace) -> int:
    """Run the trial the parsed arguments describe; returns the exit code."""
    from methods import METHODS, TrialConfig, run_trial
    from methods.augment import AUGMENTATIONS, PRESETS
    from methods.trial import CHECKPOINT_FILE

    if args.list_methods:
        for name, cls in sorted(METHODS.items()):
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
    resume = None
    if args.checkpoint_dir is not None and (args.checkpoint_dir / CHECKPOINT_FILE).is_file():
        resume = args.checkpoint_dir
    report = None
    if args.checkpoint_dir is not None:
        directory = args.checkpoint_dir

        def report(metrics: Mapping[str, Any], checkpoint: str | None) -> None:
            _save_checkpoint(directory, checkpoint)

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


def guarded(prog: str, command: Callable[[], int]) -> int:
    """Run a command; bad input becomes one ``PROG: error: ...`` line and exit code 2."""
    from methods.errors import InputError

    try:
        return command()
    except InputError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None, prog: str = "python -m methods") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    return guarded(parser.prog, lambda: run_from_args(args))
