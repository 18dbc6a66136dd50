"""Helpers for the sweep tests: no-op specs, the CLI in a subprocess, free ports, a moto S3 server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO

PLUGINS = REPO / "tests" / "plugins"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sweep.cli", *args], cwd=REPO, env=env or sweep_env(),
                          capture_output=True, text=True, timeout=timeout)


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")
