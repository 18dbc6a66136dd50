"""A sweep's storage root: a local folder or ``s3://bucket/prefix``, behind one pyarrow filesystem.

The ledger, the checkpoints and Ray Tune's own experiment folders all go through the same
filesystem object, so local and S3 runs take one code path. S3 settings come from the usual AWS
environment (``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` for MinIO/moto, ``AWS_REGION``,
credentials from the environment, config files or an instance role); nothing of them is stored.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs as pafs

from methods.errors import InputError, first_line

__all__ = ["Storage"]

_TIMEOUT_S = 5.0


def _s3_filesystem() -> pafs.S3FileSystem:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    options: dict[str, object] = {"region": region, "connect_timeout": _TIMEOUT_S, "request_timeout": _TIMEOUT_S,
                                  "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=2)}
    if endpoint:
        parsed = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
        options.update(endpoint_override=parsed.netloc, scheme=parsed.scheme or "http")
    return pafs.S3FileSystem(**options)  # type: ignore[arg-type]


class Storage:
    """Files under one root, addressed by relative paths like ``trials/abc.json``."""

    def __init__(self, uri: str) -> None:
        self.uri = uri.rstrip("/")
        if uri.startswith("s3://"):
            self.fs: pafs.FileSystem = _s3_filesystem()
            self.root = self.uri.removeprefix("s3://")
            if not self.root.split("/", 1)[0]:
                raise InputError(f"storage {uri}: expected s3://bucket/prefix")
        elif "://" in uri:
            raise InputError(f"storage {uri}: use a local path or s3://bucket/prefix")
        else:
            self.fs = pafs.LocalFileSystem()
            self.root = str(Path(uri).expanduser().resolve())
            self.uri = self.root

    @property
    def is_s3(self) -> bool:
        return isinstance(self.fs, pafs.S3FileSystem)

    def path(self, rel: str = "") -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def check(self) -> None:
        """Reach the root now (create it locally), so a bad location fails before anything runs."""
        try:
            if self.is_s3:
                bucket = self.root.split("/", 1)[0]
                info = self.fs.get_file_info(bucket)
                if info.type == pafs.FileType.NotFound:
                    raise InputError(f"storage {self.uri}: bucket {bucket!r} does not exist")
            else:
                self.fs.create_dir(self.root, recursive=True)
        except OSError as err:
            where = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS"
            what = f"cannot reach S3 endpoint {where}" if self.is_s3 else "cannot create"
            raise InputError(f"storage {self.uri}: {what}: {first_line(err)}") from None

    def read_bytes(self, rel: str) -> bytes | None:
        try:
            with self.fs.open_input_stream(self.path(rel)) as stream:
                return stream.read()
        except FileNotFoundError:
            return None
        except OSError as err:
            if "not found" in str(err).lower() or "nosuchkey" in str(err).lower():
                return None
            raise

    def read_text(self, rel: str) -> str | None:
        data = self.read_bytes(rel)
        return None if data is None else data.decode()

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write atomically: readers see the old or the new content, never a part (S3 PUTs are
        atomic; locally the file is written aside and renamed)."""
        target = self.path(rel)
        parent = target.rsplit("/", 1)[0]
        if self.is_s3:
            with self.fs.open_output_stream(target) as stream:
                stream.write(data)
            return
        self.fs.create_dir(parent, recursive=True)
        tmp = f"{parent}/.{uuid.uuid4().hex}.tmp"
        with self.fs.open_output_stream(tmp) as stream:
            stream.write(data)
        os.replace(tmp, target)

    def write_text(self, rel: str, text: str) -> None:
        self.write_bytes(rel, text.encode())

    def upload(self, local: Path, rel: str) -> None:
        self.write_bytes(rel, local.read_bytes())

    def download(self, rel: str, local: Path) -> bool:
        data = self.read_bytes(rel)
        if data is None:
            return False
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(data)
        return True

    def list(self, rel_dir: str) -> list[str]:
        """Names of the files directly inside ``rel_dir`` (empty if it does not exist)."""
        selector = pafs.FileSelector(self.path(rel_dir), allow_not_found=True, recursive=False)
        return sorted(info.base_name for info in self.fs.get_file_info(selector)
                      if info.type == pafs.FileType.File and not info.base_name.startswith("."))

    def delete(self, rel: str) -> None:
        try:
            self.fs.delete_file(self.path(rel))
        except FileNotFoundError:
            pass
