"""A Backup left InProgress by a run that is not running (reliability issue, C1): the bucket decides.
Its metadata object under this Backup's uid means the run finished and only the status write was lost:
the stored status is adopted and nothing is deleted (the previous code deleted backups/<name>/,
metadata included). Another uid means someone else's backup: never touched. No metadata: the partial
files go and the Backup is Failed. An unreadable bucket decides nothing. A metadata object this
installation's key did not sign (signing.py) is never adopted, nor deleted."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import pytest

from operators.backup import operator as backup_operator
from operators.backup import signing
from operators.backup.archive import BackupKeys
from operators.backup.storage import StorageError
from operators.core.workqueue import RetryLater


class FakeStore:
    def __init__(self, objects: dict[str, bytes], broken: bool = False) -> None:
        self.objects = objects
        self.broken = broken
        self.deleted: list[str] = []

    async def exists(self, key: str) -> bool:
        if self.broken:
            raise StorageError("the bucket does not answer")
        return key in self.objects

    async def get_bytes(self, key: str) -> bytes:
        return self.objects[key]

    async def open_stream(self, key: str) -> io.BytesIO:
        return io.BytesIO(self.objects[key])

    async def delete_prefix(self, prefix: str) -> int:
        self.deleted.append(prefix)
        gone = [k for k in self.objects if k.startswith(prefix)]
        for key in gone:
            del self.objects[key]
        return len(gone)


KEY = bytes(range(32))


class FakeLocation:
    name = "default"
    read_only = False
    signing_key = KEY


class Recorder:
    def __init__(self) -> None:
        self.statuses: list[dict[str, Any]] = []

    async def patch(self, path: str, body: Any, **_: Any) -> Any:
        self.statuses.append(body["status"])
        return {}


def backup(uid: str = "uid-1") -> dict[str, Any]:
    return {"metadata": {"name": "nightly", "namespace": "kubeplane-system", "uid": uid},
            "status": {"phase": "InProgress", "storageLocation": "default"}}


CHECKSUMS = b'{"format": "kubeplane.dev/backup-checksums/v1"}'


def stored(uid: str, key: bytes | None = KEY) -> bytes:
    metadata: dict[str, Any] = {"metadata": {"name": "nightly", "uid": uid}, "status": {
        "phase": "Completed", "completionTimestamp": "2026-12-01T01:00:00Z", "errors": 0, "warnings": 0,
        "progress": {"totalItems": 9, "itemsBackedUp": 9}}}
    if key is not None:
        metadata["signature"] = signing.sign(key, "nightly", metadata, hashlib.sha256(CHECKSUMS).digest())
    return json.dumps(metadata).encode()


def operator_with(store: FakeStore, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Recorder]:
    kube = Recorder()
    op = backup_operator.BackupOperator(kube)  # type: ignore[arg-type]

    async def location_for(name: str | None) -> tuple[Any, Any]:
        return FakeLocation(), store

    monkeypatch.setattr(op, "location_for", location_for)
    return op, kube


KEYS = BackupKeys("nightly")


async def test_a_finished_run_whose_status_write_was_lost_is_completed_not_deleted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    store = FakeStore({KEYS.metadata: stored("uid-1"), KEYS.checksums: CHECKSUMS, KEYS.contents: b"tarball"})
    op, kube = operator_with(store, monkeypatch)
    await op.fail_interrupted(backup())
    assert store.deleted == [] and KEYS.contents in store.objects
    [status] = kube.statuses
    assert status["phase"] == "Completed" and status["completionTimestamp"] == "2026-12-01T01:00:00Z"


async def test_another_backups_files_are_never_touched(monkeypatch: pytest.MonkeyPatch) -> None:
    store = FakeStore({KEYS.metadata: stored("someone-else"), KEYS.checksums: CHECKSUMS,
                       KEYS.contents: b"their tarball"})
    op, kube = operator_with(store, monkeypatch)
    await op.fail_interrupted(backup())
    assert store.deleted == [] and KEYS.contents in store.objects
    [status] = kube.statuses
    assert status["phase"] == "Failed" and "holds another backup" in status["failureReason"]


@pytest.mark.parametrize("key", [None, bytes(32)], ids=["unsigned", "another-key"])
async def test_a_metadata_object_this_key_did_not_sign_is_neither_adopted_nor_deleted(
        key: bytes | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bucket's writer planted a metadata object under this Backup's uid: not taken as Completed."""
    store = FakeStore({KEYS.metadata: stored("uid-1", key), KEYS.checksums: CHECKSUMS, KEYS.contents: b"planted"})
    op, kube = operator_with(store, monkeypatch)
    await op.fail_interrupted(backup())
    assert store.deleted == [] and KEYS.contents in store.objects
    [status] = kube.statuses
    assert status["phase"] == "Failed" and "cannot trust" in status["failureReason"], status


async def test_a_cut_short_run_is_cleaned_and_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    store = FakeStore({KEYS.contents: b"half a tarball"})
    op, kube = operator_with(store, monkeypatch)
    await op.fail_interrupted(backup())
    assert store.deleted == [KEYS.directory] and store.objects == {}
    assert kube.statuses[-1]["phase"] == "Failed"
    assert kube.statuses[-1]["failureReason"] == backup_operator.INTERRUPTED


async def test_an_unreadable_bucket_decides_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    store = FakeStore({KEYS.metadata: stored("uid-1")}, broken=True)
    op, kube = operator_with(store, monkeypatch)
    with pytest.raises(RetryLater):
        await op.fail_interrupted(backup())
    assert store.deleted == [] and kube.statuses == []
