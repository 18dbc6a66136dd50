"""``monosweep submit``: send ``monosweep run SPEC`` to a Ray cluster as a Ray Job.

Ray Jobs, not Ray Client: the Tune driver then runs on the cluster and survives the laptop that
submitted it (Ray Client is not meant for Tune workloads). The cluster needs monosweep installed
(the image of ``Dockerfile``); the job ships only the spec, in a temporary ``working_dir``.

That ``working_dir`` is why paths need care. The job runs in a directory Ray unpacks on the cluster
and deletes later, so every path in the spec that is relative to *this* machine would point into it:

- storage: a relative local storage (the default ``monosweep-results``) is resolved here, on the
  submitting machine, and passed as an absolute ``--storage``, so ``monosweep submit`` writes where
  ``monosweep run`` would. That is right for a cluster on this machine or a filesystem shared at the
  same path; a remote cluster needs ``s3://`` storage, hence the note printed for a remote address.
- images and data (``source``, ``probe_data``, ``train_data``): a relative path is refused, not
  resolved. Resolving it would change the trial's values, hence its id, so the submitted sweep would
  no longer be the sweep ``monosweep run`` resumes and extends; and the path would only exist here.
- a relative file ``tracking_uri`` (``sqlite:///mlflow.db``) is refused too: the MLflow database would
  be written into the temporary directory and lost. A server URI or an absolute path is sent as is.

``MONOSWEEP_*`` variables (plugins and such) travel with the job, as ``run`` sends them to its workers.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from methods.errors import InputError, first_line
from sweep.grid import expand
from sweep.spec import DEFAULT_STORAGE, SweepSpec, load_spec, spec_text

__all__ = ["JobRequest", "job_request", "submit_sweep"]

_BUILT_IN = {"source": ("samples", "sample:"), "probe_data": ("demo",), "train_data": ("demo",)}
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}


@dataclass
class JobRequest:
    """What is sent to the job server: the command, its runtime env, and notes for the user."""

    entrypoint: str
    runtime_env: dict[str, Any]
    storage: str
    notes: list[str] = field(default_factory=list)


def _relative_paths(spec: SweepSpec) -> list[tuple[str, str]]:
    """(field, value) for every image, data or MLflow path of the spec that is relative to this machine."""
    found = []
    for name, builtin in _BUILT_IN.items():
        values = spec.grid.get(name, []) + ([spec.fixed[name]] if name in spec.fixed else [])
        for value in values:
            entries = str(value).split(",") if name == "source" else [str(value)]
            for entry in (e.strip() for e in entries):
                if value is not None and entry and not entry.startswith(builtin) and not Path(entry).is_absolute():
                    found.append((name, entry))
    uri = spec.tracking_uri or ""
    path = uri.removeprefix("sqlite:///") if uri.startswith("sqlite:///") else "" if ":" in uri else uri
    if path and not Path(path).is_absolute():  # sqlite:///mlflow.db or a bare folder, not http:// or postgresql://
        found.append(("tracking_uri", uri))
    return found


def _storage(spec: SweepSpec, override: str | None) -> str:
    """The storage base for the job: ``s3://`` as given, a local path made absolute here."""
    base = override or spec.storage or DEFAULT_STORAGE
    if "://" in base:
        return base
    return str(Path(base).expanduser().resolve())


def job_request(spec_path: Path, spec: SweepSpec, address: str, storage: str | None = None,
                environ: Mapping[str, str] | None = None) -> JobRequest:
    """Build the job for ``spec`` without contacting anything (see the module docstring)."""
    relative = _relative_paths(spec)
    if relative:
        name, value = relative[0]
        raise InputError(
            f"{spec_path}: {name} {value!r} is a relative path, which would not resolve in the job's temporary "
            "directory on the cluster: give an absolute path that exists on every node (a shared filesystem or "
            "the image), a built-in one (samples, sample:NAME, demo), or a server URI for tracking_uri")
    base = _storage(spec, storage)
    entry = f"monosweep run {shlex.quote(spec_path.name)} --address auto --storage {shlex.quote(base)}"
    notes = []
    host = urlparse(address if "://" in address else f"http://{address}").hostname or ""
    if "://" not in base and host not in _LOOPBACK:
        notes.append(f"storage {base} is a local path: the cluster's nodes write there, which needs a filesystem "
                     "shared at that path; for a remote cluster use --storage s3://bucket/prefix")
    env = {k: v for k, v in (os.environ if environ is None else environ).items() if k.startswith("MONOSWEEP_")}
    runtime_env: dict[str, Any] = {}
    if env:  # inside the job, `monosweep run` leaves them to the job's runtime_env (see runner.connect)
        runtime_env["env_vars"] = env
    return JobRequest(entry, runtime_env, base, notes)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def submit_sweep(spec_path: Path, address: str, storage: str | None = None,
                 log: Callable[[str], None] = _stderr, overrides: Sequence[str] = ()) -> str:
    """Validate the spec here, then submit it (merged with its ``base:`` files and ``overrides``, so the job
    needs no other file); returns the job id."""
    spec = load_spec(spec_path, overrides)
    expand(spec, str(spec_path))  # a bad grid value fails here, not on the cluster
    request = job_request(spec_path, spec, address, storage)
    from ray.job_submission import JobSubmissionClient

    try:
        client = JobSubmissionClient(address)
    except Exception as err:  # the client raises ConnectionError, ValueError or RuntimeError
        raise InputError(f"cannot reach the Ray job server at {address}: {first_line(err)} "
                         "(start the head with `ray start --head --dashboard-host 0.0.0.0`)") from None
    for note in request.notes:
        log(f"monosweep submit: note: {note}")
    job_id = f"monosweep-{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    with tempfile.TemporaryDirectory(prefix="monosweep-submit-") as tmp:
        (Path(tmp) / spec_path.name).write_text(spec_text(spec_path, overrides))
        try:
            return client.submit_job(entrypoint=request.entrypoint, submission_id=job_id,
                                     runtime_env={"working_dir": tmp, **request.runtime_env})
        except RuntimeError as err:  # the job server's HTTP errors (auth, runtime env upload, ...)
            raise InputError(f"the Ray job server at {address} refused the job: {first_line(err)}") from None
