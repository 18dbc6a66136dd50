"""Which code, which machine and which data made a result: the package version with its git commit, the
torch / CUDA versions and device, and content digests of the source photos and the probe set.

The commit is read from the checkout the code runs from; an installed copy without its ``.git`` (a wheel,
the Docker image, whose ``.dockerignore`` drops ``.git``) reads the commit baked into ``methods/_build.json``
when it was built (``setup.py`` for a wheel, the Dockerfile's ``MONOSWEEP_COMMIT`` for the image).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # (torch is imported where it is used: setup.py runs this file where there is no torch)
    import torch

__all__ = ["BUILD_FILE", "bake", "code_version", "digest", "environment"]

HERE = Path(__file__).resolve().parent
BUILD_FILE = "_build.json"  # {"commit": "<12 hex digits>[-dirty]"}, written at build time beside this file


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True, timeout=5,
                          check=True).stdout.strip()


def checkout_commit() -> str | None:
    """The commit of the checkout this file lives in (``-dirty`` with uncommitted changes), or None."""
    try:
        sha = _git("rev-parse", "--short=12", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha


def _baked(folder: Path = HERE) -> str | None:
    try:
        commit = json.loads((folder / BUILD_FILE).read_text())["commit"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(commit) if commit else None


@cache
def code_version() -> str:
    """``<version>+g<commit>`` (the commit from the checkout, else the one baked in at build), or the bare
    version when neither is known."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        text = version("monosweep")
    except PackageNotFoundError:
        text = "unknown"
    commit = checkout_commit() or _baked()
    return f"{text}+g{commit}" if commit else text


def bake(commit: str | None, folder: Path = HERE) -> str | None:
    """Write ``commit`` (or the checkout's, or $MONOSWEEP_COMMIT) into ``folder/_build.json``; returns it
    (None, and nothing written, when none is known)."""
    commit = commit or os.environ.get("MONOSWEEP_COMMIT") or checkout_commit()
    if not commit or commit == "unknown":
        return None
    (folder / BUILD_FILE).write_text(json.dumps({"commit": commit[:40]}) + "\n")
    return commit


def environment(device: torch.device) -> dict[str, str]:
    """What ran the trial: code, Python, torch, CUDA and the device's name."""
    import torch

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    return {"monosweep": code_version(), "python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.version.cuda or "none", "device": f"{device.type}: {name}"}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def digest(parts: Iterable[torch.Tensor | str | bytes]) -> str:
    """sha256 (first 16 hex digits) over tensors (dtype, shape and bytes) and strings, in order."""
    import torch

    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, torch.Tensor):
            t = part.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().data if t.numel() else b"")
        else:
            h.update(part.encode() if isinstance(part, str) else part)
            h.update(b"\0")
    return h.hexdigest()[:16]


if __name__ == "__main__":  # python -m methods.provenance --bake [COMMIT]: what the Dockerfile runs
    if sys.argv[1:2] != ["--bake"]:
        sys.exit("usage: python -m methods.provenance --bake [COMMIT]")
    baked = bake(sys.argv[2] if len(sys.argv) > 2 else None)
    print(f"baked commit {baked} into {HERE / BUILD_FILE}" if baked else "no commit known: nothing baked")
