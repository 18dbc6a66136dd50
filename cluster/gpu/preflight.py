"""The kit's preflight, in the Python that will run the sweeps (on the GPU machine: once the bundle is installed):
does everything import, at which versions, do the bundled packages' requirements hold there (the check that
``pip install --no-deps`` skips), do the run's specs expand (every trial config checked, nothing run), and the
MLflow database every sweep then shares. Prints one line: ``KIT-PREFLIGHT {json}``.

    python cluster/gpu/preflight.py --site DIR --tracking sqlite:////tmp/mlflow.db SPEC.yaml ...
    python cluster/gpu/preflight.py --site DIR --requirements-only     # (tests/cluster/test_gpu_kit.py)
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata as md
import json
import os
import sys
from typing import Any

IMPORTS = ("torch", "ray", "ray.tune", "mlflow", "pydantic", "optuna", "sweep.cli", "sweep.driver", "methods")
VERSIONS = ("torch", "torchvision", "triton", "numpy", "pandas", "pyarrow", "protobuf", "grpcio", "packaging",
            "typing-extensions", "ray", "mlflow-skinny", "pydantic", "optuna", "sqlalchemy")


def requirement_problems(site: str) -> list[str]:
    """Each requirement of a package installed in ``site`` (Ray's with its tune extra) that the versions this Python
    finds do not meet."""
    from packaging.requirements import Requirement

    problems = []
    for dist in md.distributions(path=[site]) if os.path.isdir(site) else []:
        extras = ("", "tune") if dist.metadata["Name"].lower() == "ray" else ("",)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in extras):
                continue
            try:
                found = md.version(req.name)
            except md.PackageNotFoundError:
                problems.append(f"{dist.metadata['Name']} needs {req}: not installed")
                continue
            if not req.specifier.contains(found, prereleases=True):
                problems.append(f"{dist.metadata['Name']} needs {req}, found {found}")
    return problems


def _version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def check(site: str, tracking: str, specs: list[str]) -> dict[str, Any]:
    failed: dict[str, str] = {}
    for name in IMPORTS:
        try:
            importlib.import_module(name)
        except Exception as err:  # (a report, not a crash: every failure is listed)
            failed[name] = f"{type(err).__name__}: {err}"[:300]
    expanded: dict[str, int] = {}
    if "sweep.driver" not in failed:
        from sweep.grid import expand
        from sweep.spec import load_spec

        root = os.path.commonpath([os.path.dirname(p) for p in specs]) if specs else ""
        for path in specs:
            try:
                expanded[os.path.relpath(path, root)] = len(expand(load_spec(path), path))
            except Exception as err:
                failed[f"spec {path}"] = f"{type(err).__name__}: {err}"[:300]
    cuda, gpu = None, None
    if "torch" not in failed:
        import torch

        cuda = torch.cuda.is_available()
        gpu = torch.cuda.get_device_name() if cuda else None
    if "mlflow" not in failed:
        from mlflow import MlflowClient

        MlflowClient(tracking_uri=tracking).search_experiments()
    return {"python": sys.version.split()[0], "cuda": cuda, "gpu": gpu, "specs": expanded, "failed": failed,
            "versions": {name: _version(name) for name in VERSIONS}, "problems": requirement_problems(site)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--site", required=True, help="the folder the bundle was installed into (--target)")
    parser.add_argument("--tracking", help="the MLflow tracking URI the sweeps will share")
    parser.add_argument("--requirements-only", action="store_true", help="only check the bundled requirements")
    parser.add_argument("specs", nargs="*", help="the run's spec files, to expand")
    args = parser.parse_args()
    if args.requirements_only:
        report: dict[str, Any] = {"problems": requirement_problems(args.site)}
    else:
        if not args.tracking:
            parser.error("--tracking is needed unless --requirements-only")
        report = check(args.site, args.tracking, args.specs)
    print("KIT-PREFLIGHT " + json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
