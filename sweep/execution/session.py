"""The Ray session a driver runs its sweep in: a local runtime bound to this machine, or a cluster's."""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ray
from ray._private import ray_constants
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from methods.errors import InputError, first_line
from sweep.storage import Storage

__all__ = ["check_nodes", "connect", "one_line"]

# a node check's answers that judge nothing: the node went away, or did not answer in time
_GONE = (ray.exceptions.GetTimeoutError, ray.exceptions.NodeDiedError, ray.exceptions.WorkerCrashedError,
         ray.exceptions.TaskUnschedulableError)


@contextmanager
def _loopback_only() -> Iterator[None]:
    """While a local runtime starts: its node address is 127.0.0.1, so its GCS, raylet and workers listen
    on 127.0.0.1 only. Ray 2.60 turns a loopback address into the machine's own unless it treats the
    machine as one that never joins a cluster (what it does on Windows and macOS: the module constant its
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` sets, read when the address is resolved). Put back afterwards: a
    running runtime keeps its address, and a later ``--address`` join resolves as usual."""
    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def one_line(err: BaseException) -> str:
    """An error as the one line a record or a message shows: its type and first line."""
    return f"{type(err).__name__}: {first_line(err)}"


class _FirstLines(logging.Handler):
    """Ray's and Tune's own warnings and errors as one line each on stderr: a trial's traceback belongs in
    its record (``monosweep status`` shows it), not on the driver's terminal."""

    def emit(self, record: logging.LogRecord) -> None:
        lines = record.getMessage().strip().splitlines()
        if lines:
            print(f"[ray] {lines[0][:300]}", file=sys.stderr, flush=True)


_TOKEN_NOTICE = "ray._private.authentication.authentication_token_setup"


def _one_line_logs() -> None:
    for name in ("ray", "ray.tune"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [_FirstLines(logging.WARNING)]
        logger.propagate = False


def connect(address: str | None) -> None:
    """Start local Ray (no address) or join a cluster; an unreachable address is a one-line error."""
    if ray.is_initialized():
        return
    if address and address != "auto":
        if address.startswith(("http://", "https://")):
            raise InputError(f"--address {address} is a job-server URL: use `monosweep submit` for it, or give "
                             "the cluster's GCS address HOST:6379 to `monosweep run`")
        host, _, port = address.removeprefix("ray://").rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=3).close()
        except (OSError, ValueError) as err:
            raise InputError(f"cannot reach the Ray cluster at {address}: {err}; start it with `ray start --head` "
                             "or leave out --address to run on this machine") from None
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Probe metrics come only at probe epochs: a search or ASHA must accept results without them.
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    # Trials run where the driver runs, so relative paths in a spec (source: ./photo.jpg) mean what they
    # mean to `validate`; Tune would otherwise move each trial into its own folder.
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    # Ctrl-C stops `run` (the records say "running": the next run resumes them) instead of Tune's handler
    # swallowing it and the sweep moving on to its next wave.
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    # MONOSWEEP_* settings (e.g. MONOSWEEP_PLUGINS) travel to the workers of a remote cluster too.
    ours = {k: v for k, v in os.environ.items() if k.startswith("MONOSWEEP_")}
    # Inside a Ray Job (`monosweep submit`) the job's runtime_env already carries them to every worker,
    # and Ray refuses a driver runtime_env that repeats the job's variables.
    if ours and "RAY_JOB_CONFIG_JSON_ENV_VAR" not in os.environ:
        kwargs["runtime_env"] = {"env_vars": ours}
    _one_line_logs()
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            # A runtime of its own on 127.0.0.1: Ray's notice that it turned token auth on for it asks nothing
            # of the user (a cluster's token is set up as cluster/README.md says).
            logging.getLogger(_TOKEN_NOTICE).setLevel(logging.ERROR)
            # "local": a runtime of its own, even where `ray start` left a cluster (or RAY_ADDRESS names one),
            # which a bare ray.init() would join; --address auto joins that one on purpose.
            with _loopback_only():
                ray.init(address="local", include_dashboard=False, **kwargs)
    except (ConnectionError, RuntimeError) as err:  # e.g. --address auto with no cluster on this machine
        raise InputError(f"cannot connect to Ray at {address or 'a new local runtime'}: {one_line(err)}") from None


def _reads(uri: str, marker: str) -> bytes | None:
    """Run on one node: the marker as that node reads it from the sweep's storage."""
    return Storage(uri).read_bytes(marker)


def check_nodes(storage: Storage, timeout: float = 120.0) -> None:
    """Every live node of the cluster sees the sweep's storage, or a one-line InputError naming one that
    does not: a marker written here must read the same there (a local folder on a multi-machine cluster
    is the usual culprit: each node would keep its own ledger)."""
    marker, token = f"nodes/{uuid.uuid4().hex}", uuid.uuid4().hex.encode()
    storage.write_bytes(marker, token)
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
        reads = ray.remote(num_cpus=0, max_retries=0)(_reads)
        answers = [reads.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                   .remote(storage.uri, marker) for n in nodes]
        fix = ("--storage s3://bucket/prefix, or a folder every node shares at the same path"
               if not storage.is_s3 else "the same S3 endpoint and credentials on every node")
        deadline = time.monotonic() + timeout  # one deadline for all nodes, not one per node
        for node, pending in zip(nodes, answers, strict=True):
            where = f"node {node.get('NodeManagerAddress')}"
            try:
                answer = ray.get(pending, timeout=max(0.0, deadline - time.monotonic()))
            except _GONE as err:  # the node went away meanwhile, or did not answer in time: nothing to judge
                print(f"[monosweep] warning: {where} did not answer the storage check ({type(err).__name__}); "
                      "not judged", file=sys.stderr)
                continue
            except ray.exceptions.RayTaskError as err:  # it answered, with an error: it cannot read the storage
                raise InputError(f"{where} cannot read the sweep's storage {storage.uri} "
                                 f"({first_line(getattr(err, 'cause', None) or err)}): use {fix}") from None
            if answer != token:
                seen = "nothing" if answer is None else "something else"
                raise InputError(f"{where} does not see the sweep's storage {storage.uri} "
                                 f"(a marker written there reads {seen} on that node): use {fix}")
    finally:
        storage.delete(marker)
