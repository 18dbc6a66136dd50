"""``monosweep submit``: send ``monosweep run SPEC`` to a Ray cluster as a Ray Job.

Ray Jobs, not Ray Client: the Tune driver then runs on the cluster and survives the laptop that
submitted it (Ray Client is not meant for Tune workloads).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from methods.errors import InputError
from sweep.spec import load_spec

__all__ = ["submit_sweep"]


def submit_sweep(spec_path: Path, address: str, storage: str | None = None) -> str:
    """Validate the spec here, then submit it; returns the job id."""
    load_spec(spec_path)  # fail here, not on the cluster
    from ray.job_submission import JobSubmissionClient

    try:
        client = JobSubmissionClient(address)
    except Exception as err:  # the client raises ConnectionError, ValueError or RuntimeError
        raise InputError(f"cannot reach the Ray job server at {address}: {str(err).splitlines()[0]} "
                         "(start the head with `ray start --head --dashboard-host 0.0.0.0`)") from None
    with tempfile.TemporaryDirectory(prefix="monosweep-submit-") as tmp:
        (Path(tmp) / spec_path.name).write_text(spec_path.read_text())
        entry = f"monosweep run {spec_path.name} --address auto"
        if storage:
            entry += f" --storage {storage}"
        return client.submit_job(entrypoint=entry, runtime_env={"working_dir": tmp})
