"""The Ray session a driver runs its sweep in: a local runtime bound to this machine, or a cluster's."""

from __future__ import annotations

import os
import socket
from typing import Any

import ray

from methods.errors import InputError, first_line

__all__ = ["connect", "one_line"]


def one_line(err: BaseException) -> str:
    """An error as the one line a record or a message shows: its type and first line."""
    return f"{type(err).__name__}: {first_line(err)}"


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
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(include_dashboard=False, **kwargs)
    except (ConnectionError, RuntimeError) as err:  # e.g. --address auto with no cluster on this machine
        raise InputError(f"cannot connect to Ray at {address or 'a new local runtime'}: {one_line(err)}") from None
