"""Sweeps through the real command line: no-op specs, the CLI in a subprocess, the environment that finds
the test plugin method."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support import REPO

PLUGINS = REPO / "tests" / "plugins"


def sweep_env(**extra: str) -> dict[str, str]:
    """The environment a sweep driver (and the Ray workers it starts) needs to find the no-op method."""
    env = {**os.environ, "MONOSWEEP_PLUGINS": "noop_method", "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PLUGINS), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def noop_spec(path: Path, name: str, seeds: list[int], storage: Path | str, epochs: int = 1,
              extra: str = "") -> Path:
    path.write_text(f"""
name: {name}
grid:
  method: [noop]
  seed: {seeds}
fixed:
  arch: small
  epochs: {epochs}
  probe_epochs: 0
  device: cpu
resources: {{cpu: 1}}
storage: {storage}
{extra}
""")
    return path


def read_records(root: Path) -> dict[str, dict[str, Any]]:
    """A local ledger's records (``<root>/trials/<id>.json``) by trial id, as JSON."""
    return {p.stem: json.loads(p.read_text()) for p in sorted((root / "trials").glob("*.json"))}


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300,
        cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sweep.cli", *args], cwd=cwd, env=env or sweep_env(),
                          capture_output=True, text=True, timeout=timeout)
