"""Backup sync decisions (operators/backup/sync.py): what to create, complete and delete."""

from typing import Any

import pytest

from operators.backup import sync
from operators.backup.sync import SYNCED_FROM, InvalidMetadata, backup_from_metadata, plan_sync


def backup(name: str, phase: str | None = None, location: str | None = "default", *,
           synced_from: str | None = None, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if synced_from:
        meta["annotations"] = {SYNCED_FROM: synced_from}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status: dict[str, Any] = {}
    if phase:
        status["phase"] = phase
    if location and phase:
        status["storageLocation"] = location
    return {"metadata": meta, "status": status}


def test_stored_names_need_the_metadata_object():
    keys = [
        "backups/a/kubeplane-backup.json", "backups/a/a.tar.gz",
        "backups/b/b.tar.gz",  # an unfinished upload: no metadata object
        "backups/c/kubeplane-backup.json",
        "backups/d/nested/kubeplane-backup.json",  # not a backup's own metadata object
        "restores/r/kubeplane-backup.json",
        "backups/Bad_Name/kubeplane-backup.json",  # cannot be a Backup's name
    ]
    assert sync.stored_backup_names(keys) == {"a", "c"}


def test_backups_only_in_the_bucket_are_created():
    plan = plan_sync("default", {"a", "b", "c"}, [backup("b", "Completed")])
    assert plan.create == ["a", "c"]
    assert plan.delete == [] and plan.complete == []


def test_a_name_taken_by_any_backup_is_not_created():
    # Whatever the other object is (another location's, failed, new, being deleted): no duplicate.
    cluster = [backup("a", "Failed"), backup("b", None), backup("c", "Completed", "other"),
               backup("d", "Completed", deleting=True)]
    assert plan_sync("default", {"a", "b", "c", "d"}, cluster).create == []


def test_completed_backups_whose_metadata_vanished_are_deleted():
    cluster = [backup("gone", "Completed"), backup("partly", "PartiallyFailed"), backup("here", "Completed")]
    plan = plan_sync("default", {"here"}, cluster)
    assert plan.delete == ["gone", "partly"]
    assert plan.create == []


@pytest.mark.parametrize("phase", [None, "New", "InProgress", "Failed", "FailedValidation", "Deleting"])
def test_unfinished_or_failed_backups_are_never_deleted(phase):
    # An InProgress backup has no metadata object yet; a Failed one never will.
    assert plan_sync("default", set(), [backup("x", phase)]).delete == []


def test_only_backups_on_this_location_are_deleted():
    cluster = [backup("elsewhere", "Completed", "other"), backup("nowhere", "Completed", None)]
    assert plan_sync("default", set(), cluster).delete == []


def test_backups_being_deleted_are_left_to_their_finalizer():
    assert plan_sync("default", set(), [backup("x", "Completed", deleting=True)]).delete == []


def test_synced_backups_without_status_are_completed_or_removed():
    cluster = [backup("pending", synced_from="default"), backup("orphan", synced_from="default"),
               backup("theirs", synced_from="other")]
    plan = plan_sync("default", {"pending", "theirs"}, cluster)
    assert plan.complete == ["pending"]
    assert plan.delete == ["orphan"]
    assert plan.create == []


def test_synced_pending():
    assert sync.is_synced_pending(backup("x", synced_from="default"))
    assert sync.is_synced_pending(backup("x", "New", synced_from="default"))
    assert not sync.is_synced_pending(backup("x", "Completed", synced_from="default"))
    assert not sync.is_synced_pending(backup("x"))


STORED = {
    "apiVersion": "backup.kubeplane.dev/v1alpha1", "kind": "Backup",
    "metadata": {"name": "nightly-1", "namespace": "old-ns", "uid": "u-1",
                 "labels": {"backup.kubeplane.dev/schedule-name": "nightly"}},
    "spec": {"includedNamespaces": ["shop"], "ttl": "24h"},
    "status": {"phase": "Completed", "formatVersion": "1.1.0", "storageLocation": "primary",
               "startTimestamp": "2026-01-01T00:00:00Z", "completionTimestamp": "2026-01-01T00:01:00Z",
               "expiration": "2026-01-02T00:00:00Z", "progress": {"totalItems": 9, "itemsBackedUp": 9},
               "errors": 0, "warnings": 1, "encrypted": False},
}


def test_backup_from_metadata():
    obj, status = backup_from_metadata("nightly-1", STORED, "dr", "kubeplane-system")
    assert obj == {
        "apiVersion": "backup.kubeplane.dev/v1alpha1", "kind": "Backup",
        "metadata": {"name": "nightly-1", "namespace": "kubeplane-system",
                     "labels": {"backup.kubeplane.dev/schedule-name": "nightly",
                                "backup.kubeplane.dev/storage-location": "dr"},
                     "annotations": {SYNCED_FROM: "dr"}},
        "spec": {"includedNamespaces": ["shop"], "ttl": "24h"},
    }
    assert "status" not in obj and "uid" not in obj["metadata"]
    assert status == {
        "phase": "Completed", "formatVersion": "1.1.0", "storageLocation": "dr",
        "startTimestamp": "2026-01-01T00:00:00Z", "completionTimestamp": "2026-01-01T00:01:00Z",
        "expiration": "2026-01-02T00:00:00Z", "progress": {"totalItems": 9, "itemsBackedUp": 9},
        "errors": 0, "warnings": 1,
    }


def test_backup_from_metadata_keeps_the_failure_reason_of_a_partial_backup():
    stored = {**STORED, "status": {**STORED["status"], "phase": "PartiallyFailed", "failureReason": "1 item failed"}}
    _, status = backup_from_metadata("nightly-1", stored, "dr", "ns")
    assert status["phase"] == "PartiallyFailed" and status["failureReason"] == "1 item failed"


@pytest.mark.parametrize("stored", [
    {**STORED, "metadata": {**STORED["metadata"], "name": "other"}},  # not this directory's backup
    {**STORED, "kind": "Restore"},
    {**STORED, "status": {**STORED["status"], "phase": "InProgress"}},
    {**STORED, "status": {}},
])
def test_backup_from_metadata_refuses_what_is_not_a_finished_backup(stored):
    with pytest.raises(InvalidMetadata):
        backup_from_metadata("nightly-1", stored, "dr", "ns")


def test_long_location_names_make_valid_label_values():
    obj, _ = backup_from_metadata("nightly-1", STORED, "l" * 80, "ns")
    assert len(obj["metadata"]["labels"][sync.STORAGE_LOCATION_LABEL]) <= 63
    assert obj["metadata"]["annotations"][SYNCED_FROM] == "l" * 80


@pytest.mark.parametrize(("spec", "env", "expected"), [
    ({}, None, 60.0),
    ({"backupSyncPeriod": "1m0s"}, None, 60.0),
    ({"backupSyncPeriod": "5m"}, None, 300.0),
    ({"backupSyncPeriod": "0s"}, None, 0.0),  # off
    ({"backupSyncPeriod": "5m"}, "3", 3.0),  # tests shorten it ...
    ({"backupSyncPeriod": "0s"}, "3", 0.0),  # ... but never turn a disabled sync on
])
def test_sync_period(monkeypatch, spec, env, expected):
    from operators.backup.operator import sync_period
    if env is None:
        monkeypatch.delenv("KUBEPLANE_SYNC_SECONDS", raising=False)
    else:
        monkeypatch.setenv("KUBEPLANE_SYNC_SECONDS", env)
    assert sync_period({"spec": spec}) == expected
