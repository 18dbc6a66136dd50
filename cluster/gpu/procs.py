"""The kit's child processes: each step in a process group of its own (so a step past its time ends whole, Ray's
processes with it), and the one Ray head every sweep of a kit run joins.

Standard library only. Ray's processes die with the process that started them (Linux parent-death signal), so
ending a group ends its Ray too; nothing outside the kit's own groups is ever signalled (no ``ray stop``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def run_logged(command: Sequence[str], log: Path, env: Mapping[str, str], cwd: Path, timeout: float,
               on_timeout: Sequence[str] | None = None) -> tuple[int, float]:
    """Run ``command`` with its output in ``log``; past ``timeout`` run ``on_timeout`` (a clean stop, given 40 s),
    then end the group: SIGINT, SIGTERM, SIGKILL. Returns (exit code, seconds)."""
    started = time.monotonic()
    with log.open("w") as handle:
        child = subprocess.Popen(list(command), cwd=cwd, env=dict(env), stdout=handle, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        try:
            code = child.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            if on_timeout:
                try:
                    subprocess.run(list(on_timeout), cwd=cwd, env=dict(env), capture_output=True, timeout=40)
                except subprocess.TimeoutExpired:
                    pass
            code = end(child)
    signal_group(child.pid, signal.SIGKILL)  # whatever of the step is left (Ray's processes, once the step is gone)
    return code, time.monotonic() - started


def end(child: subprocess.Popen[bytes]) -> int:
    for sig, wait in ((signal.SIGINT, 15), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        signal_group(child.pid, sig)
        try:
            return child.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    return -9


def signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RayHead:
    """``ray start --head --block`` on this machine, on loopback, in its own temp folder and process group: every
    sweep joins it with ``--address`` instead of starting (and stopping) a Ray runtime of its own."""

    def __init__(self, env: Mapping[str, str], log: Path, cpus: int, gpus: int | None) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        # A short folder: Ray's socket paths inside it must fit the 107 characters of AF_UNIX.
        self.temp_dir = tempfile.mkdtemp(prefix="gk-ray-", dir="/tmp")
        command = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", "--head", f"--port={self.port}",
                   f"--num-cpus={cpus}", "--include-dashboard=false", "--disable-usage-stats",
                   f"--temp-dir={self.temp_dir}", "--node-ip-address=127.0.0.1"]
        if gpus is not None:
            command.append(f"--num-gpus={gpus}")
        self.log = log.open("w")
        self.process = subprocess.Popen(command, env=dict(env), stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def wait(self, timeout: float) -> bool:
        """Whether the head's GCS answers within ``timeout`` (False, too, when ``ray start`` died)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                time.sleep(0.2)
        return False

    def stop(self) -> None:
        signal_group(self.process.pid, signal.SIGKILL)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        self.log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
