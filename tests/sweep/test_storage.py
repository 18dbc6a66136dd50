"""The storage under the ledger, on a local folder and on a real S3-compatible server (moto) behind a proxy
that cuts the link: atomic, conditional, patient through an outage, one line when it gives up."""

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from methods.errors import InputError
from sweep.ledger import snapshot
from sweep.ledger.records import TrialRecord
from sweep.ledger.store import Ledger
from sweep.storage import RETRY_ENV, Storage, StorageUnavailable
from tests.support.proxy import FaultyProxy
from tests.support.sweeps import cli, noop_spec, sweep_env


@pytest.fixture
def s3_proxy(s3_server: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultyProxy]:
    """This process's S3 calls go to moto through a proxy the test can cut."""
    port = int(s3_server["AWS_ENDPOINT_URL_S3"].rsplit(":", 1)[1])
    with FaultyProxy("127.0.0.1", port) as proxy:
        for key, value in {**s3_server, "AWS_ENDPOINT_URL_S3": proxy.url}.items():
            monkeypatch.setenv(key, value)
        yield proxy


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return Storage(str(tmp_path / "root"))
    request.getfixturevalue("s3_proxy")
    return Storage("s3://sweeps/root")


def test_conditional_writes_create_once_replace_and_delete_only_the_version_read(storage: Storage) -> None:
    first = storage.create("lease.json", b"a")
    assert first is not None and storage.create("lease.json", b"b") is None  # exists: not overwritten
    assert storage.read_bytes("lease.json") == b"a"
    second = storage.replace("lease.json", b"c", first)
    assert second is not None and storage.replace("lease.json", b"d", first) is None  # stale version
    assert storage.read("lease.json").data == b"c" and storage.read("lease.json").version == second
    assert not storage.delete("lease.json", first) and storage.read_bytes("lease.json") == b"c"
    assert storage.delete("lease.json", second) and storage.read_bytes("lease.json") is None
    assert storage.replace("lease.json", b"e", second) is None  # gone: nothing to replace


def test_a_failed_local_write_leaves_no_temporary_file_and_the_old_content(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    storage = Storage(str(tmp_path))
    storage.write_text("trials/a.json", "old")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        storage.write_text("trials/a.json", "new")
    assert storage.read_text("trials/a.json") == "old"
    assert sorted(p.name for p in (tmp_path / "trials").iterdir()) == ["a.json"]


def test_an_s3_outage_is_waited_out_and_one_that_lasts_is_one_line(s3_proxy: FaultyProxy,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    storage = Storage("s3://sweeps/outage")
    storage.write_text("trials/a.json", "{}")
    s3_proxy.cut()
    threading.Timer(4.0, s3_proxy.heal).start()
    start = time.monotonic()
    assert storage.read_text("trials/a.json") == "{}"  # answered once the link came back
    assert time.monotonic() - start >= 3.5

    monkeypatch.setenv(RETRY_ENV, "3")
    s3_proxy.cut()
    with pytest.raises(StorageUnavailable) as failed:
        storage.write_text("trials/b.json", "{}")
    message = str(failed.value)
    assert "\n" not in message and "failed for 3 s" in message and "run again" in message


def test_the_first_contact_fails_at_once_and_malformed_uris_are_one_line(s3_proxy: FaultyProxy) -> None:
    s3_proxy.cut()
    start = time.monotonic()
    with pytest.raises(InputError, match="cannot reach S3 endpoint"):
        Storage("s3://sweeps/x").check()
    assert time.monotonic() - start < 20
    for uri in ("s3://", "s3:///prefix", "s3:bucket/x", "gs://bucket/x", "s3://Bad_Bucket/x"):
        with pytest.raises(InputError, match="^storage '"):
            Storage(uri)


def test_s3_storage_without_a_bucket_is_refused_by_validate_and_nothing_is_written(tmp_path: Path) -> None:
    spec = noop_spec(tmp_path / "s.yaml", "nobucket", [0], "s3://")
    done = cli("validate", str(spec), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"monosweep validate: error: {spec}: storage: 's3://' names no bucket: use s3://bucket/prefix"]
    assert list(tmp_path.iterdir()) == [spec]  # no folder named s3: or anything else


def test_credentials_in_a_storage_uri_are_refused_and_never_printed(tmp_path: Path) -> None:
    spec = noop_spec(tmp_path / "s.yaml", "creds", [0], "s3://AKIAEXAMPLE:s3cr3tkey@bucket/sweeps")
    for command in ("validate", "plan"):
        done = cli(command, str(spec), cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert "credentials do not belong in a storage URI" in line and "s3://bucket/sweeps" in line
        assert "s3cr3tkey" not in done.stdout + done.stderr and "AKIAEXAMPLE" not in done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == [spec]


def _record(trial_id: str = "0123456789ab", **changes: object) -> TrialRecord:
    return TrialRecord(trial_id, status="finished", **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "why"), [
    ("", "unreadable"),
    ('{"id": "0123456789ab", "status": "finish', "unreadable"),
    ("[1, 2]", "unreadable"),
    (_record(checkpoint="checkpoints/0123456789ab/../ffffffffffff/checkpoint.pt").to_json(), "points outside"),
    (_record(trunk="/etc/passwd").to_json(), "points outside"),
    (_record("ffffffffffff").to_json(), "is not the id of its file"),
])
def test_a_record_that_cannot_be_trusted_is_moved_aside_in_one_line(
    tmp_path: Path, text: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    storage = Storage(str(tmp_path))
    storage.write_text("trials/0123456789ab.json", text)
    storage.write_text("trials/aaaaaaaaaaaa.json", _record("aaaaaaaaaaaa").to_json())
    records = Ledger(storage).read_all()
    assert list(records) == ["aaaaaaaaaaaa"]  # the other records are read as ever
    assert storage.list("trials") == ["aaaaaaaaaaaa.json"]
    (aside,) = storage.list("quarantine")
    assert aside.startswith("0123456789ab.json.") and storage.read_text(f"quarantine/{aside}") == text
    (line,) = [r.getMessage() for r in caplog.records if r.name == "monosweep.ledger"]
    assert why in line and "moved to quarantine/" in line and "\n" not in line


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_a_record_rewritten_after_it_was_read_unreadable_stays_in_place(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Its trial may rewrite it between the read and the move aside: the new record must survive."""
    if kind == "s3":
        request.getfixturevalue("s3_proxy")
    storage = Storage(str(tmp_path) if kind == "local" else "s3://sweeps/rewritten")
    storage.write_text("trials/0123456789ab.json", "")
    torn = storage.read("trials/0123456789ab.json")
    good = _record().to_json()
    storage.write_text("trials/0123456789ab.json", good)  # the trial writes it again, meanwhile
    assert torn is not None and Ledger(storage)._parse("0123456789ab", torn) is None
    assert storage.read_text("trials/0123456789ab.json") == good and storage.list("quarantine") == []
    assert Ledger(storage).read("0123456789ab") is not None


def test_a_record_from_a_newer_version_is_read_and_one_with_a_bad_checkpoint_entry_is_not() -> None:
    data = json.loads(_record(checkpoint="checkpoints/0123456789ab/1/checkpoint.pt").to_json())
    data["checkpoints"] = [{"epoch": 1, "path": "checkpoints/0123456789ab/1/checkpoint.pt", "sha256": None,
                            "size": 12}]  # a key a newer version may add
    assert TrialRecord.from_json(json.dumps(data), "0123456789ab").checkpoints[0].epoch == 1
    data["checkpoints"] = ["checkpoints/0123456789ab/1/checkpoint.pt"]
    with pytest.raises(TypeError, match="Checkpoint is not a JSON object"):
        TrialRecord.from_json(json.dumps(data), "0123456789ab")


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_a_time_setting_that_is_not_seconds_is_one_line(tmp_path: Path, value: str) -> None:
    spec = noop_spec(tmp_path / "s.yaml", "env", [0], tmp_path / "results")
    done = cli("run", str(spec), env=sweep_env(MONOSWEEP_LEASE_TIMEOUT_S=value), timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith(
        f"$MONOSWEEP_LEASE_TIMEOUT_S={value!r} is not a number of seconds: unset it or give e.g. 60")


def test_a_record_round_trips_byte_identically_with_its_checkpoint_digests() -> None:
    record = _record()
    for epoch in (1, 2, 3):
        dropped = record.checkpointed(epoch, f"checkpoints/0123456789ab/{epoch}/checkpoint.pt", f"{epoch:064x}")
    assert dropped == ["checkpoints/0123456789ab/1/checkpoint.pt"]  # two are kept
    assert [c.epoch for c in record.checkpoints] == [2, 3] and record.epoch == 3
    text = record.to_json()
    assert TrialRecord.from_json(text, "0123456789ab").to_json() == text
    assert json.loads(text)["checkpoint"] == "checkpoints/0123456789ab/3/checkpoint.pt"


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The storage paths this process reads from now on, in order (the reads themselves are real)."""
    fetched: list[str] = []
    read = Storage.read

    def counted(self: Storage, rel: str) -> object:
        fetched.append(rel)
        return read(self, rel)

    monkeypatch.setattr(Storage, "read", counted)
    return fetched


def test_s3_records_unchanged_since_the_last_read_come_from_the_local_copy(
    s3_proxy: FaultyProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONOSWEEP_CACHE_DIR", str(tmp_path / "cache"))
    storage = Storage("s3://sweeps/cached")
    ledger = Ledger(storage)
    ids = [f"{i:012x}" for i in range(6)]
    for trial_id in ids:
        ledger.write(TrialRecord(trial_id, status="finished", values={"seed": trial_id}))
    fetched = _count_reads(monkeypatch)
    first = ledger.read_all()
    assert len(fetched) == 6 and sorted(first) == ids
    fetched.clear()
    changed = first[ids[2]]
    changed.status = "failed"
    ledger.write(changed)  # another writer: a new ETag in the listing
    again = ledger.read_all()
    assert fetched == [f"trials/{ids[2]}.json"]  # only the changed record was fetched
    assert again[ids[2]].status == "failed" and {r.status for k, r in again.items() if k != ids[2]} == {"finished"}
    assert {k: r.to_json() for k, r in again.items() if k != ids[2]} == {k: r.to_json() for k, r in first.items()
                                                                          if k != ids[2]}
    cached = next((tmp_path / "cache" / "records").glob(f"*/{ids[0]}"))
    cached.write_bytes(b'"someotheretag"\n{}')  # a local copy the bucket does not vouch for is not used
    fetched.clear()
    assert ledger.read_all()[ids[0]].status == "finished" and fetched == [f"trials/{ids[0]}.json"]


def test_a_new_reader_of_many_s3_records_takes_the_ones_the_listing_vouches_for_from_the_snapshot(
    s3_proxy: FaultyProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = Storage("s3://sweeps/shared")
    ledger = Ledger(storage)
    ids = [f"{i:012x}" for i in range(snapshot.MIN_FETCHES + 8)]
    for trial_id in ids:
        ledger.write(TrialRecord(trial_id, status="finished", values={"seed": trial_id}))
    fetched = _count_reads(monkeypatch)

    def new_machine(name: str) -> dict[str, TrialRecord]:  # a reader with nothing of its own cached
        monkeypatch.setenv("MONOSWEEP_CACHE_DIR", str(tmp_path / name))
        fetched.clear()
        return ledger.read_all()

    first = new_machine("a")  # no snapshot yet: every record fetched, then snapshotted
    assert sorted(first) == ids and len(fetched) == len(ids) + 1  # (+1: it looked for a snapshot)
    second = new_machine("b")
    assert fetched == [snapshot.SNAPSHOT]  # one request instead of 40
    assert {k: r.to_json() for k, r in second.items()} == {k: r.to_json() for k, r in first.items()}

    changed = second[ids[3]]
    changed.status = "failed"
    ledger.write(changed)  # after the snapshot: its copy of this record is stale
    forged = snapshot.load(storage)
    forged[ids[5]] = forged[ids[5]].replace(b'"finished"', b'"pruned"')  # bytes the listing's ETag does not match
    snapshot.save(storage, forged)
    third = new_machine("c")
    assert sorted(fetched) == sorted([snapshot.SNAPSHOT, f"trials/{ids[3]}.json", f"trials/{ids[5]}.json"])
    assert third[ids[3]].status == "failed" and third[ids[5]].status == "finished"
    assert {r.status for k, r in third.items() if k != ids[3]} == {"finished"}

    storage.write_bytes(snapshot.SNAPSHOT, b"\x1f\x8b not gzip")  # damaged: ignored, everything fetched
    fourth = new_machine("d")
    assert len(fetched) == len(ids) + 1 and {k: r.to_json() for k, r in fourth.items()} == {
        k: r.to_json() for k, r in third.items()}
    fetched.clear()
    assert ledger.read_all() == fourth and fetched == []  # (and then from this machine's own copy)
