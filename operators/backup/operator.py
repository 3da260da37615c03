"""The backup operator: Kopf handlers that enqueue, and one sync per kind that acts.

Run it with `kubeplane run backup`. It watches BackupStorageLocations, Backups and Restores in
its own namespace (default `kubeplane-system`; a Backup reads the whole cluster, so that
namespace is the security boundary).

Level-triggered and crash-safe: the phase in status is the state machine. A run that this process
did not start but that says InProgress was interrupted (the operator died): it ends Failed with
reason "interrupted" and its partial files are removed, never reported Completed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import aiohttp
import kopf

from operators.backup import archive, locations, naming, selection, signing, sync
from operators.backup.backup_run import run_backup
from operators.backup.locations import GROUP, VERSION, Location, LocationError
from operators.backup.restore_run import run_restore
from operators.backup.storage import ObjectStore, StorageError
from operators.core import allocator, cron
from operators.core.events import EventRecorder
from operators.core.kube import ApiError, Kube
from operators.core.leader import LeaderElector, campaign, elector_for, shut_down, when_leading
from operators.core.settings import configure_common
from operators.core.timeutil import format_time, now, parse_time
from operators.core.workqueue import RetryLater, WorkQueue

logger = logging.getLogger(__name__)

FINALIZER = f"{GROUP}/delete-files"
INTERRUPTED = "interrupted: the backup operator stopped during the run; partial files were removed"
Key = tuple[str, str]  # (kind plural, name)
SYNC_KEY = "backupsync"  # queue key (SYNC_KEY, location name): one bucket-to-cluster sync pass


def sync_period(bsl: Mapping[str, Any]) -> float:
    """Seconds between sync passes of a location (0 = off): `spec.backupSyncPeriod` (default 1m),
    or KUBEPLANE_SYNC_SECONDS when set (tests)."""
    spec = bsl.get("spec") or {}
    if spec.get("backupSyncPeriod") and naming.parse_duration(spec["backupSyncPeriod"]).total_seconds() == 0:
        return 0.0
    override = os.environ.get("KUBEPLANE_SYNC_SECONDS")
    if override:
        return float(override)
    return naming.parse_duration(spec.get("backupSyncPeriod") or "1m").total_seconds()


def operator_namespace() -> str:
    return os.environ.get("KUBEPLANE_NAMESPACE", "kubeplane-system")


def path(plural: str, name: str | None = None, *, status: bool = False) -> str:
    base = f"/apis/{GROUP}/{VERSION}/namespaces/{operator_namespace()}/{plural}"
    if name:
        base += f"/{name}"
    return base + ("/status" if status else "")


class BackupOperator:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.queue: WorkQueue[Key] = WorkQueue("backup")
        self.events = EventRecorder(kube, "kubeplane-backup")
        self.running: set[Key] = set()  # runs this process started; anything else InProgress was interrupted
        self.tasks: list[asyncio.Task[None]] = []
        self.syncing: set[str] = set()  # locations whose bucket sync is scheduled in the queue
        self.leader: LeaderElector | None = None

    def start(self) -> None:
        # One active replica (a Lease): a standby never touches a Backup another replica is writing;
        # once it leads, whatever the old leader left InProgress is "interrupted" (not in self.running).
        self.leader = elector_for(self.kube, "kubeplane-backup")
        self.tasks = [
            asyncio.create_task(when_leading(self.leader, lambda: self.queue.run_workers(self.sync, 2)),
                                name="backup workers"),
            asyncio.create_task(self.events.run(), name="backup events"),
            asyncio.create_task(when_leading(self.leader, self.collect_garbage_forever), name="backup gc"),
            *campaign(self.leader),
        ]

    async def stop(self) -> None:
        await shut_down(self.tasks, self.leader, self.kube)

    # --- shared helpers ------------------------------------------------------------------------

    async def get(self, plural: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.kube.get(path(plural, name))
        except ApiError as e:
            if e.not_found:
                return None
            raise

    async def patch_status(self, plural: str, name: str, status: Mapping[str, Any]) -> None:
        try:
            await self.kube.patch(path(plural, name, status=True), {"status": dict(status)})
        except ApiError as e:
            if not e.not_found:
                raise

    async def location_for(self, name: str | None) -> tuple[Location, ObjectStore]:
        bsl = await locations.get_location(self.kube, operator_namespace(), name)
        location = await locations.resolve(self.kube, bsl)
        return location, ObjectStore(location.config)

    async def sync(self, key: Key) -> float | None:
        plural, name = key
        if plural == "backupstoragelocations":
            return await self.sync_location(name)
        if plural == "backups":
            return await self.sync_backup(name)
        if plural == "restores":
            return await self.sync_restore(name)
        if plural == "schedules":
            return await self.sync_schedule(name)
        if plural == SYNC_KEY:
            return await self.sync_bucket(name)
        return None

    # --- BackupStorageLocation -----------------------------------------------------------------

    async def sync_location(self, name: str) -> float | None:
        bsl = await self.get("backupstoragelocations", name)
        if bsl is None:
            return None
        try:
            location = await locations.resolve(self.kube, bsl)
            await ObjectStore(location.config).check_bucket()
            phase, message = "Available", ""
        except (LocationError, StorageError) as e:
            phase, message = "Unavailable", str(e)
        old = bsl.get("status") or {}
        if old.get("phase") != phase or old.get("message", "") != message:
            if phase == "Unavailable":
                self.events.warning(bsl, "LocationUnavailable", message)
            else:
                self.events.normal(bsl, "LocationAvailable", "the bucket is reachable with these credentials")
        await self.patch_status("backupstoragelocations", name, {
            "phase": phase, "message": message or None, "lastValidationTime": format_time(now()),
            "observedGeneration": bsl["metadata"].get("generation"),
        })
        if phase == "Available" and name not in self.syncing and sync_period(bsl):
            self.syncing.add(name)  # from now on the sync key reschedules itself
            self.queue.add((SYNC_KEY, name))
        every = naming.parse_duration((bsl.get("spec") or {}).get("validationFrequency") or "1m")
        return every.total_seconds() or None

    # --- backup sync: bucket -> cluster (Velero's backup sync controller) ----------------------

    async def sync_bucket(self, name: str) -> float | None:
        """One sync pass of a location; returns its sync period (the next pass)."""
        bsl = await self.get("backupstoragelocations", name)
        period = sync_period(bsl) if bsl is not None and not bsl["metadata"].get("deletionTimestamp") else 0.0
        if bsl is None or not period:
            self.syncing.discard(name)  # sync_location schedules it again if sync is turned back on
            return None
        if (bsl.get("status") or {}).get("phase") != "Available":
            return period
        try:
            location = await locations.resolve(self.kube, bsl)
            store = ObjectStore(location.config)
            # The cluster first, then the bucket: see sync.plan_sync.
            cluster = await self.kube.list_all(path("backups"))
            stored = sync.stored_backup_names(await store.list_keys("backups/"))
        except (LocationError, StorageError) as e:
            logger.warning("backup sync of location %s skipped: %s", name, e)
            self.queue.add(("backupstoragelocations", name))  # let validation say so in its status
            return period
        plan = sync.plan_sync(name, stored, cluster)
        for backup_name in plan.create:
            await self.create_synced_backup(bsl, store, backup_name, location.signing_key)
        for backup_name in plan.complete:
            await self.write_synced_status(bsl, store, backup_name, location.signing_key)
        for backup_name in plan.delete:
            await self.remove_vanished_backup(bsl, store, backup_name)
        await self.patch_status("backupstoragelocations", name, {"lastSyncedTime": format_time(now())})
        return period

    async def _stored_backup(self, bsl: dict[str, Any], store: ObjectStore, backup_name: str,
                             signing_key: bytes) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The Backup to create and its status, from the stored metadata object; None (and a Warning on the
        location) when it is not a backup this installation's key signed (signing.py)."""
        try:
            stored = await signing.read_verified(store, backup_name, signing_key)
            return sync.backup_from_metadata(backup_name, stored, bsl["metadata"]["name"], operator_namespace())
        except signing.SignatureError as e:
            logger.warning("backup sync: backup %s on location %s not imported: %s",
                           backup_name, bsl["metadata"]["name"], e)
            self.events.warning(bsl, "UntrustedBackup", f"not imported: {e}")
            return None
        except (StorageError, ValueError, AttributeError) as e:
            logger.warning("backup sync: cannot take backup %s from location %s: %s",
                           backup_name, bsl["metadata"]["name"], e)
            return None

    async def create_synced_backup(self, bsl: dict[str, Any], store: ObjectStore, backup_name: str,
                                   signing_key: bytes) -> None:
        found = await self._stored_backup(bsl, store, backup_name, signing_key)
        if found is None:
            return
        obj, status = found
        try:
            await self.kube.create(path("backups"), obj)
        except ApiError as e:
            if not e.conflict:  # conflict: created meanwhile (a backup run, another location): leave it
                logger.warning("backup sync: cannot create Backup %s: %s", backup_name, e)
            return
        await self._finish_synced(bsl, backup_name, status)

    async def write_synced_status(self, bsl: dict[str, Any], store: ObjectStore, backup_name: str,
                                  signing_key: bytes) -> None:
        found = await self._stored_backup(bsl, store, backup_name, signing_key)
        if found is not None:
            await self._finish_synced(bsl, backup_name, found[1])

    async def _finish_synced(self, bsl: dict[str, Any], backup_name: str, status: Mapping[str, Any]) -> None:
        # Status first (until then sync_backup leaves the New Backup alone), then the finalizer:
        # deleting a synced Backup deletes its files like any other (kept on a ReadOnly location).
        await self.patch_status("backups", backup_name, status)
        try:
            await self.kube.patch(path("backups", backup_name), {"metadata": {"finalizers": [FINALIZER]}})
        except ApiError as e:
            if not e.not_found:
                raise
        self.events.normal(bsl, "BackupSynced", f"backup {backup_name} found in the bucket: Backup created")

    async def remove_vanished_backup(self, bsl: dict[str, Any], store: ObjectStore, backup_name: str) -> None:
        if await store.exists(archive.BackupKeys(backup_name).metadata):
            return  # back (or listed late): keep it
        backup = await self.get("backups", backup_name)
        if backup is None:
            return
        finalizers = backup["metadata"].get("finalizers") or []
        try:
            if finalizers:  # the files are gone: nothing for the finalizer to delete
                await self.kube.patch(path("backups", backup_name), [
                    {"op": "test", "path": "/metadata/finalizers", "value": finalizers},
                    {"op": "replace", "path": "/metadata/finalizers",
                     "value": [f for f in finalizers if f != FINALIZER]},
                ], content_type="application/json-patch+json")
            await self.kube.delete(path("backups", backup_name))
        except ApiError as e:
            if e.not_found:
                return
            if e.status == 422:  # the finalizers changed under us: next pass
                logger.info("backup sync: Backup %s changed while removing it; next pass", backup_name)
                return
            raise
        self.events.normal(bsl, "BackupRemoved",
                           f"backup {backup_name} is no longer in the bucket: Backup object removed")

    # --- Backup --------------------------------------------------------------------------------

    async def sync_backup(self, name: str) -> float | None:
        key = ("backups", name)
        backup = await self.get("backups", name)
        if backup is None or key in self.running:
            return None
        status = backup.get("status") or {}
        phase = status.get("phase") or "New"
        if backup["metadata"].get("deletionTimestamp"):
            await self.delete_backup_files(backup)
            return None
        if sync.is_synced_pending(backup):
            return None  # created by backup sync, its stored status is being written: never run it
        if phase == "New":
            self.running.add(key)
            try:
                await self.start_backup(backup)
            finally:
                self.running.discard(key)
            await asyncio.to_thread(allocator.release_free_memory)
        elif phase == "InProgress":
            await self.fail_interrupted(backup)
        return None

    async def start_backup(self, backup: dict[str, Any]) -> None:
        name = backup["metadata"]["name"]
        spec = backup.get("spec") or {}
        errors = selection.validate_backup_spec(spec)
        location: Location | None = None
        store: ObjectStore | None = None
        if not errors:
            try:
                location, store = await self.location_for(spec.get("storageLocation"))
                if location.read_only:
                    errors.append(f"BackupStorageLocation {location.name!r} is ReadOnly: no new backups there")
                else:
                    await store.check_bucket()
                    # A name already used in the bucket (another cluster on a shared bucket, a planted
                    # object, a Backup deleted on a ReadOnly location): never write, or clean up, there.
                    taken = await store.list_keys(archive.BackupKeys(name).directory)
                    if taken:
                        errors.append(f"backup {name!r} already exists in object storage (location "
                                      f"{location.name!r}, {len(taken)} object(s) under backups/{name}/); "
                                      "choose another name")
            except (LocationError, StorageError) as e:
                errors.append(str(e))
        if errors or location is None or store is None:
            self.events.warning(backup, "FailedValidation", "; ".join(errors))
            await self.patch_status("backups", name, {
                "phase": "FailedValidation", "validationErrors": errors,
                "failureReason": "the spec was refused: " + "; ".join(errors),
                "completionTimestamp": format_time(now()),
            })
            return

        started = now()
        ttl = naming.parse_duration(spec.get("ttl") or "720h")
        expiration = started + ttl
        # The finalizer first: from here on, deleting the Backup must delete its files.
        await self.kube.patch(path("backups", name), {"metadata": {"finalizers": [FINALIZER]}})
        await self.patch_status("backups", name, {
            "phase": "InProgress", "startTimestamp": format_time(started), "expiration": format_time(expiration),
            "storageLocation": location.name, "formatVersion": archive.FORMAT_VERSION,
            "observedGeneration": backup["metadata"].get("generation"),
        })
        self.events.normal(backup, "BackupStarted", f"backing up to {location.name}")

        async def progress(total: int, done: int) -> None:
            # Best effort: a progress write that fails (429, 5xx, a dropped connection) is no reason
            # to fail, and clean away, a backup that is going well; the next write says the same.
            try:
                await self.patch_status("backups", name, {"progress": {"totalItems": total, "itemsBackedUp": done}})
            except (ApiError, aiohttp.ClientError, TimeoutError) as e:
                logger.warning("backup %s: progress not written (%s); carrying on", name, e)

        try:
            outcome = await run_backup(self.kube, backup, location, store, progress, started, expiration)
        except (StorageError, ApiError, OSError) as e:
            reason = f"the backup failed: {e}"
            await self.remove_partial(store, name)
            self.events.warning(backup, "BackupFailed", reason)
            await self.patch_status("backups", name, {
                "phase": "Failed", "failureReason": reason, "completionTimestamp": format_time(now()),
            })
            if isinstance(e, StorageError):  # the location is the likely culprit: say so there too
                self.queue.add(("backupstoragelocations", location.name))
            return
        final: dict[str, Any] = {
            "phase": outcome.phase, "completionTimestamp": outcome.completed,
            "errors": outcome.results.error_count, "warnings": outcome.results.warning_count,
            "progress": {"totalItems": outcome.items, "itemsBackedUp": outcome.items},
        }
        if outcome.failure_reason:
            final["failureReason"] = outcome.failure_reason
        await self.patch_status("backups", name, final)
        if outcome.phase == "Completed":
            self.events.normal(backup, "BackupCompleted", f"{outcome.items} items backed up")
        else:
            self.events.warning(backup, "BackupPartiallyFailed", outcome.failure_reason)

    async def remove_partial(self, store: ObjectStore, name: str) -> None:
        """Delete what an unfinished run uploaded. Without the metadata object it never counted as
        a backup; removing the rest keeps the bucket tidy."""
        try:
            await store.delete_prefix(archive.BackupKeys(name).directory)
        except StorageError as e:
            logger.warning("could not remove partial files of backup %s: %s", name, e)

    async def fail_interrupted(self, backup: dict[str, Any]) -> None:
        """A Backup left InProgress by a run that is not running (the operator died, or lost its
        Lease, or the status write that would have said Completed failed).

        The metadata object is written last: if it is in the bucket and names this Backup (its uid),
        the run finished and only the status was lost, so the stored status is adopted and nothing is
        deleted. If it names another uid, the files are someone else's (a shared bucket, a planted
        object) and are never touched. Otherwise the run was cut short: its partial files go and the
        Backup is Failed. When the bucket cannot be read, nothing is decided and the sync retries."""
        name = backup["metadata"]["name"]
        keys = archive.BackupKeys(name)
        store: ObjectStore | None = None
        location: Location | None = None
        try:
            location, store = await self.location_for((backup.get("status") or {}).get("storageLocation"))
        except (LocationError, StorageError) as e:
            logger.warning("backup %s: cannot reach its location after the interruption: %s", name, e)
        if location is not None and store is not None:
            try:
                stored = json.loads(await store.get_bytes(keys.metadata)) if await store.exists(keys.metadata) \
                    else None
            except (StorageError, ValueError) as e:
                raise RetryLater(f"backup {name}: cannot tell whether the interrupted run finished: {e}") from e
            if stored is not None:
                stored_uid = (stored.get("metadata") or {}).get("uid") if isinstance(stored, dict) else None
                untrusted = await self._untrusted(store, name, stored, location.signing_key)
                if stored_uid == backup["metadata"].get("uid") and untrusted is None:
                    status = sync.stored_status(stored, location.name)
                    await self.patch_status("backups", name, status)
                    self.events.normal(backup, "BackupCompleted",
                                       "the run had finished; its status is taken from the bucket")
                    return
                what = f"another backup (uid {stored_uid})" if untrusted is None else f"a backup it cannot trust " \
                    f"({untrusted})"
                reason = f"interrupted, and backups/{name}/ in object storage holds {what}: left untouched"
                self.events.warning(backup, "BackupInterrupted", reason)
                await self.patch_status("backups", name, {
                    "phase": "Failed", "failureReason": reason, "completionTimestamp": format_time(now()),
                })
                return
            if not location.read_only:
                await self.remove_partial(store, name)
        self.events.warning(backup, "BackupInterrupted", INTERRUPTED)
        await self.patch_status("backups", name, {
            "phase": "Failed", "failureReason": INTERRUPTED, "completionTimestamp": format_time(now()),
        })

    @staticmethod
    async def _untrusted(store: ObjectStore, name: str, stored: Any, key: bytes) -> str | None:
        """Why the stored metadata object is not a backup this installation signed; None when it is."""
        try:
            await signing.read_verified(store, name, key, stored)
        except signing.SignatureError as e:
            return str(e)
        except StorageError as e:
            raise RetryLater(f"backup {name}: cannot read its checksums object: {e}") from e
        return None

    async def delete_backup_files(self, backup: dict[str, Any]) -> None:
        name = backup["metadata"]["name"]
        finalizers = backup["metadata"].get("finalizers") or []
        if FINALIZER not in finalizers:
            return
        await self.patch_status("backups", name, {"phase": "Deleting"})
        try:
            location, store = await self.location_for((backup.get("status") or {}).get("storageLocation"))
        except LocationError as e:
            # The location is gone: nothing we can delete; do not block the object forever.
            self.events.warning(backup, "FilesNotDeleted", f"{e}; the Backup object is removed, its files are not")
        else:
            if location.read_only:
                self.events.normal(backup, "FilesKept", f"{location.name} is ReadOnly: files are kept")
            else:
                try:
                    keys = archive.BackupKeys(name)
                    # The metadata object first: once it is gone the backup no longer counts (nor syncs
                    # back); if it cannot go (object lock), nothing else is touched.
                    await store.delete_prefix(keys.directory, first=keys.metadata)
                except StorageError as e:
                    self.events.warning(backup, "DeleteFailed", str(e))
                    raise RetryLater(str(e)) from e
        remaining = [f for f in finalizers if f != FINALIZER]
        await self.kube.patch(path("backups", name), [
            {"op": "test", "path": "/metadata/finalizers", "value": finalizers},
            {"op": "replace", "path": "/metadata/finalizers", "value": remaining},
        ], content_type="application/json-patch+json")

    # --- Schedule ------------------------------------------------------------------------------

    async def sync_schedule(self, name: str) -> float | None:
        schedule = await self.get("schedules", name)
        if schedule is None or schedule["metadata"].get("deletionTimestamp"):
            return None
        spec, status = schedule.get("spec") or {}, schedule.get("status") or {}
        errors = naming.validate_schedule(spec.get("schedule"))
        errors += selection.validate_backup_spec(spec.get("template") or {})
        if errors:
            if status.get("phase") != "FailedValidation":
                self.events.warning(schedule, "FailedValidation", "; ".join(errors))
            await self.patch_status("schedules", name, {"phase": "FailedValidation", "validationErrors": errors})
            return None
        if status.get("phase") != "Enabled":
            await self.patch_status("schedules", name, {"phase": "Enabled", "validationErrors": None})
        if spec.get("paused"):
            return None
        timetable = cron.parse_standard(spec["schedule"])
        current = now()
        last_backup = parse_time(status.get("lastBackup"))
        last_skipped = parse_time(status.get("lastSkipped"))
        if last_backup is None and last_skipped is None:
            # A new (or never-run) schedule backs up at once, unless told to wait for its first slot.
            if spec.get("skipImmediately"):
                await self.patch_status("schedules", name, {"lastSkipped": format_time(current)})
                return self._seconds_until(timetable.next(current), current)
            due, upcoming = True, None
        else:
            created = parse_time(schedule["metadata"].get("creationTimestamp")) or current
            due, upcoming = naming.is_due(timetable, current, created=created, last_backup=last_backup,
                                          last_skipped=last_skipped)
        if not due:
            return self._seconds_until(upcoming, current)
        selector = f"{naming.SCHEDULE_NAME_LABEL}={naming.valid_label_value(name)}"
        if naming.backup_in_flight(await self.kube.list_all(path("backups"), labelSelector=selector)):
            return 10.0  # never two backups of one schedule in flight: look again shortly
        backup_name = naming.timestamped_name(name, current)
        metadata: dict[str, Any] = {
            "name": backup_name, "labels": {naming.SCHEDULE_NAME_LABEL: naming.valid_label_value(name)},
        }
        if spec.get("useOwnerReferencesInBackup"):
            metadata["ownerReferences"] = [{
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "Schedule", "name": name,
                "uid": schedule["metadata"]["uid"], "controller": True,
            }]
        try:
            await self.kube.create(path("backups"), {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "Backup", "metadata": metadata,
                "spec": spec.get("template") or {},
            })
        except ApiError as e:
            if not e.conflict:
                raise
            existing = await self.get("backups", backup_name)
            labels = ((existing or {}).get("metadata") or {}).get("labels") or {}
            if labels.get(naming.SCHEDULE_NAME_LABEL) != naming.valid_label_value(name):
                # The name is taken by a Backup this Schedule did not create: say so, and count the slot
                # as skipped (the next slot has another name), never as backed up.
                message = (f"backup {backup_name} already exists and was not created by this Schedule: "
                           "this slot is skipped")
                self.events.warning(schedule, "BackupNameTaken", message)
                await self.patch_status("schedules", name, {"lastSkipped": format_time(current)})
                return self._seconds_until(timetable.next(current), current)
            # Otherwise an earlier attempt of this very slot created it: fine.
        self.events.normal(schedule, "BackupCreated", f"created backup {backup_name}")
        await self.patch_status("schedules", name, {"lastBackup": format_time(current)})
        return self._seconds_until(timetable.next(current), current)

    @staticmethod
    def _seconds_until(when: datetime | None, current: datetime) -> float | None:
        if when is None:
            return None
        return min(max((when - current).total_seconds(), 1.0), 300.0)

    # --- garbage collection --------------------------------------------------------------------

    async def collect_garbage_forever(self) -> None:
        """Delete Backups past their expiration (their finalizer deletes the files), as Velero's
        GC controller does (Velero: hourly; here every KUBEPLANE_GC_SECONDS, default 60)."""
        interval = float(os.environ.get("KUBEPLANE_GC_SECONDS", "60"))
        while True:
            await asyncio.sleep(interval)
            try:
                # As Velero: nothing on a ReadOnly location is garbage-collected (sync would bring it back).
                read_only = {
                    bsl["metadata"]["name"] for bsl in await self.kube.list_all(path("backupstoragelocations"))
                    if (bsl.get("spec") or {}).get("accessMode") == "ReadOnly"
                }
                for backup in await self.kube.list_all(path("backups")):
                    status = backup.get("status") or {}
                    if status.get("phase") in ("New", "InProgress", None) or not naming.is_expired(status, now()):
                        continue
                    if status.get("storageLocation") in read_only:
                        continue
                    self.events.normal(backup, "Expired", f"expired at {status.get('expiration')}: deleting")
                    try:
                        await self.kube.delete(path("backups", backup["metadata"]["name"]))
                    except ApiError as e:
                        if not e.not_found:
                            raise
            except Exception:
                logger.exception("garbage collection pass failed; trying again next pass")

    # --- Restore -------------------------------------------------------------------------------

    async def sync_restore(self, name: str) -> float | None:
        key = ("restores", name)
        restore = await self.get("restores", name)
        if restore is None or key in self.running:
            return None
        phase = (restore.get("status") or {}).get("phase") or "New"
        if phase == "New":
            self.running.add(key)
            try:
                await run_restore(self, restore)
            finally:
                self.running.discard(key)
            await asyncio.to_thread(allocator.release_free_memory)
        elif phase == "InProgress":
            self.events.warning(restore, "RestoreInterrupted", INTERRUPTED)
            await self.patch_status("restores", name, {
                "phase": "Failed", "completionTimestamp": format_time(now()),
                "failureReason": "interrupted: the backup operator stopped during the restore; "
                                 "what was restored stays, create a new Restore to finish",
            })
        return None

    async def latest_completed_backup(self, schedule: str) -> str | None:
        selector = f"{naming.SCHEDULE_NAME_LABEL}={naming.valid_label_value(schedule)}"
        latest = naming.most_recent_completed(await self.kube.list_all(path("backups"), labelSelector=selector))
        return None if latest is None else str(latest["metadata"]["name"])


# --- Kopf wiring --------------------------------------------------------------------------------

_operator: BackupOperator | None = None


@kopf.on.startup()
async def start_backup_operator(settings: kopf.OperatorSettings, **_: Any) -> None:
    global _operator
    configure_common(settings)
    allocator.set_thresholds()  # before the first run frees an upload part (operators/core/allocator.py)
    _operator = BackupOperator(await Kube.connect())
    _operator.start()


@kopf.on.cleanup()
async def stop_backup_operator(**_: Any) -> None:
    if _operator is not None:
        await _operator.stop()


def _enqueue(plural: str) -> Any:
    async def handler(body: kopf.Body, **_: Any) -> None:
        if _operator is not None and body.metadata.namespace == operator_namespace():
            _operator.queue.add((plural, body.metadata.name or ""))
    return handler


for _plural in ("backupstoragelocations", "backups", "restores", "schedules"):
    kopf.on.event(GROUP, VERSION, _plural)(_enqueue(_plural))
