"""Real servers started as separate processes on 127.0.0.1: moto's S3 server, an MLflow tracking server and a
plain HTTP file server (standing in for a data set's download site)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def _bin(name: str) -> str:
    return shutil.which(name, path=os.path.dirname(sys.executable)) or name


S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


@contextmanager
def moto_s3(*buckets: str) -> Iterator[dict[str, str]]:
    """moto's S3 server as a separate process; yields the environment that points clients at it."""
    port = free_port()
    proc = subprocess.Popen([_bin("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {**S3_CREDENTIALS, "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}"}
    try:
        wait_for_port(port)
        for bucket in buckets:
            s3_client(env).create_bucket(Bucket=bucket)
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # (busy with thousands of objects: it may not answer TERM in time)
            proc.kill()
            proc.wait(timeout=10)


@dataclass
class FileServer:
    """``python -m http.server`` over one folder; its request log tells which files were asked for."""

    url: str
    log: Path

    def requests(self) -> list[str]:
        return [line.split('"')[1] for line in self.log.read_text().splitlines() if line.count('"') >= 2]


@contextmanager
def file_server(folder: Path, log: Path) -> Iterator[FileServer]:
    port = free_port()
    with log.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                 "--directory", str(folder)], stdout=sink, stderr=sink)
    try:
        wait_for_port(port)
        yield FileServer(f"http://127.0.0.1:{port}", log)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def s3_client(env: dict[str, str]) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"], region_name=env["AWS_REGION"],
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])


class MlflowServer:
    """``mlflow server`` (sqlite backend, artifacts proxied to S3) in its own process group."""

    def __init__(self, db: Path, s3_env: dict[str, str], artifacts: str = "s3://mlflow/artifacts") -> None:
        self.db, self.s3_env, self.artifacts = db, s3_env, artifacts
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        env = {**os.environ, **self.s3_env, "MLFLOW_S3_ENDPOINT_URL": self.s3_env["AWS_ENDPOINT_URL_S3"],
               "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.proc = subprocess.Popen(
            [_bin("mlflow"), "server", "--backend-store-uri", f"sqlite:///{self.db}", "--artifacts-destination",
             self.artifacts, "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"mlflow server on port {self.port} did not answer /health")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None
