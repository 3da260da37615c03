"""Backup sync (Velero's backup sync controller): the bucket is the source of truth.

Every `spec.backupSyncPeriod` of an Available location (ReadOnly ones too: that is the
disaster-recovery path), the operator compares the backups stored there with the Backup objects
in its namespace:

- a backup whose metadata object (`kubeplane-backup.json`) is in the bucket but which has no
  Backup object of that name is created from the metadata, then its status is written from the
  stored status;
- a Completed or PartiallyFailed Backup on this location whose metadata object vanished is
  removed (its finalizer first: the files are gone, there is nothing to delete).

This module holds the decisions, as pure functions; the operator does the I/O.

A synced Backup is created with the annotation `backup.kubeplane.dev/synced-from=<location>` and
no status. The operator never starts a New Backup carrying it (it would otherwise run it as a new
backup); the status is written right after the create, and a pass that finds such a Backup still
without status (the operator died in between) writes it then.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from operators.backup import naming
from operators.backup.locations import GROUP, VERSION

SYNCED_FROM = f"{GROUP}/synced-from"
STORAGE_LOCATION_LABEL = f"{GROUP}/storage-location"
METADATA_FILE = "kubeplane-backup.json"
FINAL_PHASES = frozenset({"Completed", "PartiallyFailed"})
# Status fields a synced Backup takes over from the stored one (the Backup CRD's status schema).
STATUS_FIELDS = (
    "phase", "formatVersion", "storageLocation", "startTimestamp", "completionTimestamp", "expiration",
    "progress", "errors", "warnings", "failureReason", "validationErrors",
)
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def stored_backup_names(keys: Iterable[str]) -> set[str]:
    """Names of the complete backups among object keys relative to the location's prefix
    (`backups/<name>/kubeplane-backup.json`); a directory without its metadata object is an
    unfinished upload and does not count."""
    names: set[str] = set()
    for key in keys:
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == "backups" and parts[2] == METADATA_FILE and _NAME.match(parts[1]):
            names.add(parts[1])
    return names


def is_synced_pending(backup: Mapping[str, Any]) -> bool:
    """A Backup that sync created and whose stored status is not written yet: never run it."""
    annotations = (backup.get("metadata") or {}).get("annotations") or {}
    phase = (backup.get("status") or {}).get("phase") or "New"
    return phase == "New" and bool(annotations.get(SYNCED_FROM))


@dataclass
class SyncPlan:
    create: list[str] = field(default_factory=list)  # in the bucket, no Backup object of that name
    complete: list[str] = field(default_factory=list)  # synced from here, status still to be written
    delete: list[str] = field(default_factory=list)  # on this location, metadata object gone


def plan_sync(location: str, stored: Iterable[str], cluster_backups: Iterable[Mapping[str, Any]]) -> SyncPlan:
    """What one sync pass of `location` does, given the names of the complete backups stored there
    and every Backup object in the operator's namespace.

    List the cluster before the bucket: a backup's metadata object is written before its Backup
    says Completed, so a Backup seen Completed has its metadata object in a listing made after.
    """
    stored_set = set(stored)
    plan = SyncPlan()
    in_cluster: set[str] = set()
    for backup in cluster_backups:
        meta = backup.get("metadata") or {}
        name = str(meta.get("name") or "")
        in_cluster.add(name)
        if meta.get("deletionTimestamp"):
            continue
        status = backup.get("status") or {}
        annotations = meta.get("annotations") or {}
        if is_synced_pending(backup):
            if annotations.get(SYNCED_FROM) != location:
                continue
            (plan.complete if name in stored_set else plan.delete).append(name)
        elif status.get("storageLocation") == location and status.get("phase") in FINAL_PHASES:
            if name not in stored_set:
                plan.delete.append(name)
    plan.create = sorted(n for n in stored_set - in_cluster if _NAME.match(n))
    plan.complete.sort()
    plan.delete.sort()
    return plan


class InvalidMetadata(ValueError):
    """The stored metadata object cannot become a Backup (the message says why)."""


def backup_from_metadata(name: str, stored: Mapping[str, Any], location: str,
                         namespace: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Backup object to create (without status) and the status to write afterwards, from a
    backup's stored metadata object."""
    meta = stored.get("metadata") or {}
    if stored.get("kind") != "Backup" or meta.get("name") != name:
        raise InvalidMetadata(f"backups/{name}/{METADATA_FILE} does not describe backup {name!r}")
    status = stored_status(stored, location)
    if status.get("phase") not in FINAL_PHASES:
        raise InvalidMetadata(f"backup {name!r} is stored with phase {status.get('phase')!r}, not Completed")
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    labels[STORAGE_LOCATION_LABEL] = naming.valid_label_value(location)
    obj = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Backup",
        "metadata": {"name": name, "namespace": namespace, "labels": labels,
                     "annotations": {SYNCED_FROM: location}},
        "spec": dict(stored.get("spec") or {}),
    }
    return obj, status


def stored_status(stored: Mapping[str, Any], location: str) -> dict[str, Any]:
    """The stored status, limited to the fields a Backup's status has; the location is the one the
    backup was found on (it may have been written through another location on the same bucket)."""
    raw = stored.get("status") or {}
    status = {k: raw[k] for k in STATUS_FIELDS if k in raw and raw[k] is not None}
    status["storageLocation"] = location
    return status
