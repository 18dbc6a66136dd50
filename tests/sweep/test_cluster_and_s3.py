"""The same sweeps on a real 2-node Ray cluster and on a real S3-compatible server (moto), both on 127.0.0.1."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import free_port, s3_client
from tests.support.sweeps import cli, noop_spec, sweep_env


@pytest.fixture
def two_nodes(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A head and a worker node, one CPU each, started by Ray's own test utility (only its processes)."""
    from ray.cluster_utils import Cluster

    for key, value in sweep_env(RAY_AUTH_MODE="disabled").items():
        monkeypatch.setenv(key, value)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        yield cluster.address
    finally:
        cluster.shutdown()


def test_trials_land_on_both_nodes_of_a_two_node_cluster(two_nodes: str, tmp_path: Path) -> None:
    spec = noop_spec(tmp_path / "s.yaml", "twonodes", [0, 1, 2, 3], tmp_path / "results")
    env = sweep_env(RAY_AUTH_MODE="disabled", MONOSWEEP_NOOP_SLEEP="1.5")
    done = cli("run", str(spec), "--address", two_nodes, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "twonodes" / "trials").glob("*.json")]
    assert len(records) == 4 and all(r["status"] == "finished" for r in records)
    assert len({r["node"] for r in records}) == 2


def test_a_sweep_with_s3_storage_keeps_its_ledger_and_checkpoints_in_the_bucket(
    s3_server: dict[str, str], tmp_path: Path
) -> None:
    spec = noop_spec(tmp_path / "s.yaml", "ons3", [0, 1], "s3://sweeps/team")
    env = sweep_env(**s3_server)
    done = cli("run", str(spec), env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    s3 = s3_client(s3_server)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="sweeps", Prefix="team/ons3/")["Contents"]]
    trials = [k for k in keys if k.startswith("team/ons3/trials/")]
    assert len(trials) == 2 and any(k.startswith("team/ons3/checkpoints/") for k in keys)
    for key in trials:
        record = json.loads(s3.get_object(Bucket="sweeps", Key=key)["Body"].read())
        assert record["status"] == "finished" and record["checkpoint"].endswith("checkpoint.pt")
    assert "testing" not in "".join(s3.get_object(Bucket="sweeps", Key=k)["Body"].read().decode(errors="ignore")
                                    for k in trials)  # credentials never land in results
    again = cli("run", str(spec), env=env)
    assert again.returncode == 0 and "ran 0, skipped 2" in again.stdout


def test_unreachable_cluster_or_s3_endpoint_is_one_line_and_submits_nothing(tmp_path: Path) -> None:
    spec = noop_spec(tmp_path / "s.yaml", "nowhere", [0], tmp_path / "results")
    port = free_port()
    no_cluster = cli("run", str(spec), "--address", f"127.0.0.1:{port}")
    assert no_cluster.returncode == 2
    assert no_cluster.stderr.strip().splitlines()[-1].startswith(
        f"monosweep run: error: cannot reach the Ray cluster at 127.0.0.1:{port}")
    assert not (tmp_path / "results" / "nowhere" / "trials").exists()

    env = sweep_env(AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{free_port()}", AWS_ACCESS_KEY_ID="x",
                    AWS_SECRET_ACCESS_KEY="y", AWS_REGION="us-east-1")
    no_s3 = cli("run", str(noop_spec(tmp_path / "t.yaml", "nos3", [0], "s3://sweeps/x")), env=env)
    assert no_s3.returncode == 2
    last = no_s3.stderr.strip().splitlines()[-1]
    assert last.startswith("monosweep run: error: storage s3://sweeps/x/nos3: cannot reach S3 endpoint http://127.0.0.1:")
