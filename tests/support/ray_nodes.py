"""A Ray cluster of real ``ray start`` nodes on this machine, each one ``ray start --block`` process the test
can kill by PID (its raylet with it) and start again; nothing else on the machine is touched (no
``ray stop``)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

from tests.support.servers import _bin, free_port, wait_for_port

__all__ = ["RayNodes"]


class RayNodes:
    def __init__(self, env: dict[str, str]) -> None:
        # A short folder of its own: Ray's socket paths inside it must fit the 107 characters of AF_UNIX.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
        self.env = {**env, "RAY_AUTH_MODE": "disabled"}
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.head: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []

    def _start(self, args: Sequence[str], wrapper: Sequence[str] = ()) -> subprocess.Popen[bytes]:
        command = [*wrapper, _bin("ray"), "start", "--block", "--disable-usage-stats", *args]
        return subprocess.Popen(command, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)

    def start_head(self, cpus: int = 1) -> None:
        self.head = self._start(["--head", f"--port={self.port}", f"--num-cpus={cpus}", "--include-dashboard=false",
                                 f"--temp-dir={self.temp_dir}", "--node-ip-address=127.0.0.1"])
        wait_for_port(self.port, timeout=60)
        self._wait_for(1)  # (the GCS port opens before the head counts itself: a worker's wait would end early)

    def add_worker(self, cpus: int = 1, wrapper: Sequence[str] = (), wait: bool = True) -> subprocess.Popen[bytes]:
        """A worker node; ``wrapper`` runs it inside another command (``unshare ...``); ``wait``: until the
        cluster counts it."""
        before = self.alive() if wait else 0
        worker = self._start([f"--address={self.address}", f"--num-cpus={cpus}", "--node-ip-address=127.0.0.1"],
                             wrapper)
        self.workers.append(worker)
        if wait:
            self._wait_for(before + 1)
        return worker

    def _wait_for(self, nodes: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.alive() < nodes:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Ray cluster at {self.address} did not count {nodes} live nodes "
                                   f"in {timeout:.0f} s")
            time.sleep(0.5)

    def alive(self) -> int:
        """Live nodes, as the cluster's GCS says."""
        done = subprocess.run([_bin("ray"), "status", f"--address={self.address}"], env=self.env,
                              capture_output=True, text=True, timeout=60)
        active = done.stdout.partition("Active:")[2].partition("Pending:")[0]  # (not the recent failures)
        return active.count("node_")

    def kill(self, node: subprocess.Popen[bytes]) -> None:
        """SIGKILL the node's whole process tree (its raylet, object store, workers) at once."""
        try:
            tree = [node.pid, *(child.pid for child in psutil.Process(node.pid).children(recursive=True))]
        except psutil.NoSuchProcess:
            return
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        node.wait(timeout=30)

    def stop(self) -> None:
        for node in [*self.workers, *([self.head] if self.head is not None else [])]:
            self.kill(node)
        self.workers, self.head = [], None
        shutil.rmtree(self.temp_dir, ignore_errors=True)
