"""A sweep's storage root: a local folder or ``s3://bucket/prefix``, holding small files by relative path.

The ledger's records, the checkpoints and the lease live here. Three promises:

- **Transient faults are waited out.** Every call is retried with exponential backoff (tenacity) for
  ``$MONOSWEEP_STORAGE_RETRY_S`` seconds (default 300) when the fault is one that passes: a connection
  refused or cut, a timeout, a 5xx or throttling reply, an NFS hiccup. Only then does a call give up, with
  :class:`StorageUnavailable` (one line). The first contact (:meth:`Storage.check`) fails at once instead,
  so a wrong endpoint is said before anything runs.
- **Writes are atomic and durable.** S3 PUTs are atomic; locally a file is written aside, fsynced, renamed
  into place and its folder fsynced, and the temporary file never outlives a failed write.
- **Conditional writes exclude.** :meth:`Storage.create` writes only if the file is absent and
  :meth:`Storage.replace` / :meth:`Storage.delete` only if it is unchanged since it was read (its version):
  on S3 ``If-None-Match: *`` and ``If-Match: <ETag>``, locally an ``flock`` around the check and the write.
  The lease is built on them.

S3 goes through boto3, with the usual AWS settings (``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` for
MinIO/moto, ``AWS_REGION``, credentials from the environment, config files or an instance role); nothing
of them is stored.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

from methods.errors import InputError, ServiceError, first_line, redact

__all__ = ["RETRY_ENV", "Storage", "StorageUnavailable", "Versioned", "env_seconds"]

RETRY_ENV = "MONOSWEEP_STORAGE_RETRY_S"
_DEFAULT_RETRY_S = 300.0
_TIMEOUT_S = 5.0
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_TRANSIENT_ERRNOS = {errno.EIO, errno.EAGAIN, errno.EINTR, errno.ESTALE, errno.ETIMEDOUT, errno.ECONNRESET}
_TRANSIENT_CODES = {"Throttling", "ThrottlingException", "SlowDown", "RequestTimeout", "RequestTimeTooSkewed",
                    "InternalError", "ServiceUnavailable", "ConditionalRequestConflict"}
T = TypeVar("T")


class StorageUnavailable(ServiceError):
    """The storage stayed unreachable through every retry."""


@dataclass(frozen=True)
class Versioned:
    """A file's content and its version (S3's ETag; locally a digest of the content)."""

    data: bytes
    version: str


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def _transient(err: BaseException) -> bool:
    """Whether a fault may pass if we wait (everything else is an answer: missing, refused, wrong)."""
    try:
        from botocore.exceptions import ClientError, HTTPClientError
        from botocore.exceptions import ConnectionError as BotoConnectionError
    except ImportError:  # no boto3 (e.g. the GPU kit): local storage only, where only some OSErrors pass
        return isinstance(err, OSError) and err.errno in _TRANSIENT_ERRNOS

    if isinstance(err, BotoConnectionError | HTTPClientError):
        return True
    if isinstance(err, ClientError):
        status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return status >= 500 or err.response.get("Error", {}).get("Code") in _TRANSIENT_CODES
    return isinstance(err, OSError) and err.errno in _TRANSIENT_ERRNOS


def env_seconds(name: str, default: float) -> float:
    """A number of seconds from the environment variable ``name``; a one-line InputError if it is not one."""
    try:
        seconds = float(os.environ.get(name, default))
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # (NaN too)
        raise InputError(f"${name}={os.environ[name]!r} is not a number of seconds: unset it or give e.g. {default:g}")
    return seconds


def parse_uri(uri: str) -> tuple[str, str]:
    """(``"s3"`` or ``"local"``, root): ``s3://bucket[/prefix]`` or a local path; anything else is an
    InputError whose line starts with the URI (callers say where it came from)."""
    if uri.startswith("s3:"):
        parsed = urlparse(uri)
        bucket = parsed.netloc
        if not uri.startswith("s3://") or not bucket:
            raise InputError(f"{uri!r} names no bucket: use s3://bucket/prefix")
        if "@" in bucket:
            raise InputError(f"{redact(uri)!r}: credentials do not belong in a storage URI (they would be written "
                             "to logs and records): use s3://bucket/prefix with AWS_ACCESS_KEY_ID / "
                             "AWS_SECRET_ACCESS_KEY or ~/.aws")
        if not _BUCKET.match(bucket):
            raise InputError(f"{uri!r}: {bucket!r} is not a valid S3 bucket name")
        return "s3", f"{bucket}{parsed.path}".rstrip("/")
    if "://" in uri or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:/", uri):
        raise InputError(f"{uri!r} is neither a local path nor s3://bucket/prefix")
    return "local", str(Path(uri).expanduser().resolve())


class _LocalFiles:
    """Files under a local (or shared) folder; conditional writes under an flock of a lock file beside."""

    def __init__(self, root: str) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return Path(self.root) / key

    def read(self, key: str) -> Versioned | None:
        try:
            data = self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return Versioned(data, _digest(data))

    def write(self, key: str, data: bytes) -> str:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        folder = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(folder)  # the rename itself survives a crash
        finally:
            os.close(folder)
        return _digest(data)

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target.parent / f".{target.name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def create(self, key: str, data: bytes) -> str | None:
        with self._locked(key):
            return None if self._path(key).exists() else self.write(key, data)

    def replace(self, key: str, data: bytes, version: str) -> str | None:
        with self._locked(key):
            current = self.read(key)
            return self.write(key, data) if current is not None and current.version == version else None

    def delete(self, key: str, version: str | None) -> bool:
        if version is None:
            with contextlib.suppress(FileNotFoundError):
                self._path(key).unlink()
            return True
        with self._locked(key):
            current = self.read(key)
            if current is None or current.version != version:
                return False
            self._path(key).unlink()
            return True

    def list(self, folder: str) -> dict[str, str | None]:
        try:
            return {p.name: None for p in self._path(folder).iterdir() if p.is_file()}
        except (FileNotFoundError, NotADirectoryError):
            return {}

    def check(self) -> None:
        Path(self.root).mkdir(parents=True, exist_ok=True)


class _S3Objects:
    """Objects under ``bucket/prefix`` through boto3; conditional writes by If-None-Match / If-Match."""

    def __init__(self, root: str) -> None:
        import boto3
        import botocore.session
        from botocore.config import Config

        self.bucket, _, self.prefix = root.partition("/")
        # botocore's own retries are few and quick: the Storage's retry policy owns the waiting.
        config = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=_TIMEOUT_S,
                        max_pool_connections=32,  # the ledger reads 16 records at once
                        read_timeout=4 * _TIMEOUT_S)
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        # botocore turns every listed object's LastModified into a datetime with dateutil (~0.2 ms each: 2 of
        # the ~8 s a plan of a 10,000-record ledger took); nothing here reads a timestamp, so they stay text.
        session = botocore.session.get_session()
        session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=str)
        self.client = boto3.Session(botocore_session=session).client("s3", region_name=region, config=config)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    @staticmethod
    def _code(err: Exception) -> str:
        return str(getattr(err, "response", {}).get("Error", {}).get("Code", ""))

    def read(self, key: str) -> Versioned | None:
        from botocore.exceptions import ClientError

        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as err:
            if self._code(err) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise
        return Versioned(answer["Body"].read(), answer["ETag"])

    def write(self, key: str, data: bytes) -> str:
        return str(self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)["ETag"])

    def _conditional(self, call: Callable[[], Any]) -> Any:
        from botocore.exceptions import ClientError

        try:
            return call()
        except ClientError as err:
            if self._code(err) in ("PreconditionFailed", "412", "NoSuchKey"):
                return None
            raise

    def create(self, key: str, data: bytes) -> str | None:
        answer = self._conditional(lambda: self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data,
                                                                  IfNoneMatch="*"))
        return None if answer is None else str(answer["ETag"])

    def replace(self, key: str, data: bytes, version: str) -> str | None:
        answer = self._conditional(lambda: self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data,
                                                                  IfMatch=version))
        return None if answer is None else str(answer["ETag"])

    def delete(self, key: str, version: str | None) -> bool:
        extra = {} if version is None else {"IfMatch": version}
        answer = self._conditional(lambda: self.client.delete_object(Bucket=self.bucket, Key=self._key(key), **extra))
        return answer is not None

    def list(self, folder: str) -> dict[str, str | None]:
        prefix = self._key(folder).rstrip("/") + "/"
        names: dict[str, str | None] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix,
                                                                          Delimiter="/"):
            names.update({item["Key"][len(prefix):]: item["ETag"] for item in page.get("Contents", [])})
        return names

    def check(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as err:
            if self._code(err) in ("404", "NoSuchBucket", "NotFound"):
                raise InputError(f"storage s3://{self.bucket}: bucket {self.bucket!r} does not exist") from None
            raise


class Storage:
    """Files under one root, addressed by relative paths like ``trials/abc.json`` (see the module doc)."""

    def __init__(self, uri: str) -> None:
        try:
            kind, self.root = parse_uri(uri)
        except InputError as err:
            raise InputError(f"storage {err}") from None
        self.is_s3 = kind == "s3"
        self.uri = f"s3://{self.root}" if self.is_s3 else self.root
        self._files: _LocalFiles | _S3Objects = _S3Objects(self.root) if self.is_s3 else _LocalFiles(self.root)

    def __reduce__(self) -> tuple[Any, ...]:  # (its clients are rebuilt where it is unpickled)
        return (Storage, (self.uri,))

    def path(self, rel: str = "") -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def _where(self) -> str:
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS"
        return f"S3 endpoint {endpoint}" if self.is_s3 else self.root

    def _call(self, what: str, call: Callable[[], T]) -> T:
        """``call`` with the retry policy of the module docstring."""
        patience = env_seconds(RETRY_ENV, _DEFAULT_RETRY_S)
        try:
            for attempt in Retrying(stop=stop_after_delay(patience), reraise=True,
                                    wait=wait_random_exponential(multiplier=0.5, max=15),
                                    retry=retry_if_exception(_transient)):
                with attempt:
                    return call()
        except Exception as err:
            if _transient(err):
                raise StorageUnavailable(f"storage {self.uri}: {what} failed for {patience:.0f} s "
                                         f"({first_line(err)}); nothing finished is lost: run again once "
                                         f"{self._where()} answers") from None
            raise
        raise AssertionError("unreachable")  # (Retrying either returns or raises)

    def check(self) -> None:
        """Reach the root now (create it locally), so a bad location fails before anything runs."""
        try:
            self._files.check()
        except InputError:
            raise
        except Exception as err:  # noqa: BLE001 - the first contact: every failure is one line, at once
            what = f"cannot reach {self._where()}" if self.is_s3 else "cannot create"
            raise InputError(f"storage {self.uri}: {what}: {first_line(err)}") from None

    def unreachable(self) -> str | None:
        """Why this storage cannot be read now (None: it can), creating nothing: for commands that only look.
        A local folder that does not exist yet reads as empty."""
        if not self.is_s3:
            return None
        try:
            self._files.check()
        except Exception as err:  # noqa: BLE001 - whatever it is, the caller goes on without the ledger
            return first_line(err)
        return None

    def read(self, rel: str) -> Versioned | None:
        return self._call(f"reading {rel}", lambda: self._files.read(rel))

    def read_bytes(self, rel: str) -> bytes | None:
        found = self.read(rel)
        return None if found is None else found.data

    def read_text(self, rel: str) -> str | None:
        data = self.read_bytes(rel)
        return None if data is None else data.decode()

    def write_bytes(self, rel: str, data: bytes) -> str:
        """Write atomically (readers see the old or the new content, never a part); returns the version."""
        return self._call(f"writing {rel}", lambda: self._files.write(rel, data))

    def write_text(self, rel: str, text: str) -> str:
        return self.write_bytes(rel, text.encode())

    def create(self, rel: str, data: bytes) -> str | None:
        """Write only if ``rel`` does not exist; its version, or None if it exists."""
        return self._call(f"creating {rel}", lambda: self._files.create(rel, data))

    def replace(self, rel: str, data: bytes, version: str) -> str | None:
        """Write only if ``rel`` is still at ``version``; the new version, or None if it changed or is gone."""
        return self._call(f"replacing {rel}", lambda: self._files.replace(rel, data, version))

    def delete(self, rel: str, version: str | None = None) -> bool:
        """Delete ``rel`` (only if still at ``version``, when given); False if it had changed."""
        return self._call(f"deleting {rel}", lambda: self._files.delete(rel, version))

    def download(self, rel: str, local: Path) -> bool:
        data = self.read_bytes(rel)
        if data is None:
            return False
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(data)
        return True

    def list(self, rel_dir: str) -> list[str]:
        """Names of the files directly inside ``rel_dir`` (empty if it does not exist), hidden ones left out."""
        return sorted(self.listing(rel_dir))

    def listing(self, rel_dir: str) -> dict[str, str | None]:
        """The files directly inside ``rel_dir`` with their versions as the listing gives them (S3: the ETag,
        what a read of it returns too; local: None), hidden ones left out."""
        names = self._call(f"listing {rel_dir}", lambda: self._files.list(rel_dir))
        return {n: v for n, v in names.items() if not n.startswith(".")}
