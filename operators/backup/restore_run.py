"""Running one Restore: fetch and verify the backup, then create its items in Velero's order.

Nothing is applied before the whole tarball has been checked (paths, member types, sizes and every
checksum; decryption authenticates it too): a tampered or malicious backup is refused with the
list of problems, and the cluster is untouched.

Items restore tier by tier (restore_plan.restore_tiers): CRDs, namespaces, ..., then everything
else. Inside a tier items are created concurrently (bounded). ownerReferences are re-linked to the
new UIDs as owners appear (ownership.Relinker), which Velero does not do.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from operators.backup import archive, crypto, restore_plan, selection
from operators.backup.backup_run import Results
from operators.backup.discovery import discover
from operators.backup.locations import LocationError
from operators.backup.ownership import ItemKey, OwnerIndex, Relinker, item_key
from operators.backup.storage import StorageError
from operators.core.kube import ApiError, Kube
from operators.core.timeutil import format_time, now

if TYPE_CHECKING:
    from operators.backup.operator import BackupOperator

CONCURRENCY = 16  # items of one tier created at once
CRD_WAIT_SECONDS = 60.0  # as Velero: wait this long for a restored CRD to be established


def item_path(group_resource: str, obj: Mapping[str, Any], namespace: str, name: str | None = None) -> str:
    plural, _, group = group_resource.partition(".")
    version = str(obj.get("apiVersion", "v1")).rpartition("/")[2]
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    if namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{plural}"
    return f"{base}/{name}" if name else base


@dataclass
class Tally:
    restored: int = 0
    would_create: int = 0
    would_update: int = 0
    would_skip: int = 0
    total: int = 0
    lines: list[str] = field(default_factory=list)  # the dry-run report


async def _download_verified(op: BackupOperator, store: Any, backup_name: str, key: bytes | None,
                             tmp: Any) -> archive.VerifiedArchive:
    keys = archive.BackupKeys(backup_name)
    if not await store.exists(keys.metadata):
        raise StorageError(f"backup {backup_name!r} has no metadata object in storage: it never completed")
    manifest_raw = await store.get_bytes(keys.checksums)
    if key is not None:
        manifest_raw = crypto.decrypt(manifest_raw, key)
        plain = tempfile.TemporaryFile()
        writer = crypto.DecryptingWriter(plain, key)
        await store.get_to_file(keys.contents, writer)
        await asyncio.to_thread(writer.close)
        tmp.close()
        tmp = plain
    else:
        await store.get_to_file(keys.contents, tmp)
    await asyncio.to_thread(tmp.seek, 0)
    verified = archive.VerifiedArchive(tmp, archive.Manifest.from_json(manifest_raw))
    await asyncio.to_thread(verified.__enter__)
    return verified


async def run_restore(op: BackupOperator, restore: dict[str, Any]) -> None:
    kube: Kube = op.kube
    name = restore["metadata"]["name"]
    spec = restore.get("spec") or {}
    dry_run = bool(spec.get("dryRun"))

    async def fail(phase: str, reason: str, **extra: Any) -> None:
        op.events.warning(restore, "RestoreFailed" if phase == "Failed" else phase, reason)
        await op.patch_status("restores", name, {"phase": phase, "failureReason": reason,
                                                 "completionTimestamp": format_time(now()), **extra})

    errors = selection.validate_restore_spec(spec)
    backup_name = spec.get("backupName")
    if not errors and not backup_name:
        backup_name = await op.latest_completed_backup(spec["scheduleName"])
        if backup_name is None:
            errors.append(f"schedule {spec['scheduleName']!r} has no Completed backup")
    backup = await op.get("backups", backup_name) if backup_name and not errors else None
    if not errors and backup is None:
        errors.append(f"backup {backup_name!r} not found in namespace {restore['metadata']['namespace']!r}")
    if backup is not None and (backup.get("status") or {}).get("phase") not in ("Completed", "PartiallyFailed"):
        errors.append(f"backup {backup_name!r} is {(backup.get('status') or {}).get('phase', 'New')}, not Completed")
    if errors or backup is None or backup_name is None:
        await fail("FailedValidation", "the spec was refused: " + "; ".join(errors), validationErrors=errors)
        return

    started = now()
    await op.patch_status("restores", name, {"phase": "InProgress", "startTimestamp": format_time(started),
                                             "backupName": backup_name})
    try:
        location, store = await op.location_for((backup.get("status") or {}).get("storageLocation"))
    except (LocationError, StorageError) as e:
        await fail("Failed", f"the backup's storage location cannot be used: {e}")
        return

    results = Results()
    tmp = tempfile.TemporaryFile(prefix=f"restore-{name}-")
    try:
        try:
            verified = await _download_verified(op, store, backup_name, location.encryption_key, tmp)
        except archive.ArchiveRejected as e:
            await fail("Failed", f"the backup failed verification; nothing was restored: {'; '.join(e.problems[:5])}")
            return
        except (crypto.DecryptionError, StorageError, archive.ArchiveError) as e:
            await fail("Failed", f"the backup could not be read; nothing was restored: {e}")
            return
        try:
            items = await asyncio.to_thread(lambda: list(verified.items()))
        finally:
            verified.__exit__(None, None, None)
    finally:
        tmp.close()

    types = await discover(kube)
    select = selection.Selection.for_restore(spec, types)
    options = restore_plan.options_from_spec(spec, name, backup_name, types)
    backed_up_namespaces = [i.obj for i in items if i.group_resource == selection.NAMESPACES]
    chosen = [
        i for i in items
        if i.group_resource != selection.NAMESPACES
        and select.resource_included(i.group_resource, namespaced=bool(i.namespace))
        and select.item_included(i.obj, check_exclude_label=False)
    ]
    namespace_names = restore_plan.namespaces_to_restore(select, backed_up_namespaces, {i.namespace for i in chosen})
    by_name = {(ns.get("metadata") or {}).get("name"): ns for ns in backed_up_namespaces}
    prepared: list[restore_plan.Prepared] = []
    for ns_name in namespace_names:
        target = options.target_namespace(ns_name)
        obj = restore_plan.namespace_object(by_name.get(ns_name), target, options)
        prepared.append(restore_plan.Prepared(selection.NAMESPACES, "", target, "", obj=obj))
    prepared += [restore_plan.prepare(i.obj, i.group_resource, options) for i in chosen]

    index = OwnerIndex()
    for item in chosen:
        index.add(item_key(item.group_resource, item.obj), item.obj)
    relinker = Relinker(index, [item_key(i.group_resource, i.obj) for i in chosen])
    old_uids = {item_key(i.group_resource, i.obj): i.obj["metadata"].get("uid") for i in chosen}
    by_key = {ItemKey(p.group_resource, p.namespace, p.name): p for p in prepared}
    tally = Tally(total=len(prepared))
    policy = spec.get("existingResourcePolicy") or "none"
    semaphore = asyncio.Semaphore(CONCURRENCY)
    last_report = time.monotonic()

    async def report_progress() -> None:
        """At most once a second, as items finish (a tier may hold thousands of items)."""
        nonlocal last_report
        if time.monotonic() - last_report < 1.0:
            return
        last_report = time.monotonic()
        await op.patch_status("restores", name, {"progress": {"totalItems": tally.total,
                                                              "itemsRestored": tally.restored}})

    async def restore_one(p: restore_plan.Prepared) -> None:
        await restore_item(p)
        await report_progress()

    async def restore_item(p: restore_plan.Prepared) -> None:
        key = ItemKey(p.group_resource, p.namespace, p.name)
        where = f"{p.group_resource} {p.target_namespace + '/' if p.target_namespace else ''}{p.name}"
        for warning in p.warnings:
            results.warning(p.target_namespace, warning)
        if p.obj is None:
            tally.lines.append(f"skip {where}: {p.skip_reason}")
            tally.would_skip += 1
            relinker.failed(key, old_uids.get(key))
            return
        obj = p.obj
        refs, dropped = relinker.references_for_create(key, p.owner_references)
        for warning in dropped:
            results.warning(p.target_namespace, warning)
        if refs:
            obj = {**obj, "metadata": {**obj["metadata"], "ownerReferences": refs}}
        collection = item_path(p.group_resource, obj, p.target_namespace)
        single = item_path(p.group_resource, obj, p.target_namespace, p.name)
        original_uid = old_uids.get(key)
        async with semaphore:
            try:
                if dry_run:
                    try:
                        live = await kube.get(single)
                    except ApiError as e:
                        if not e.not_found:
                            raise
                        tally.would_create += 1
                        tally.lines.append(f"create {where}")
                        return
                    decision = restore_plan.decide_existing(obj, live, policy, options)
                    if decision.action == "patch":
                        tally.would_update += 1
                        tally.lines.append(f"update {where}: {decision.reason}")
                    else:
                        tally.would_skip += 1
                        tally.lines.append(f"skip {where}: {decision.reason}")
                    return
                try:
                    created = await kube.create(collection, obj)
                    tally.restored += 1
                except ApiError as e:
                    if e.status != 409:
                        raise
                    live = await kube.get(single)
                    decision = restore_plan.decide_existing(obj, live, policy, options)
                    if decision.action == "warn":
                        results.warning(p.target_namespace, f"{where}: {decision.reason}")
                    if decision.patch is not None:
                        await kube.patch(single, decision.patch)
                    created = live
                    tally.restored += decision.action == "patch"
                for patch in relinker.created(key, original_uid, created["metadata"]["uid"]):
                    target = by_key[patch.key]
                    await kube.patch(item_path(target.group_resource, target.obj or {}, target.target_namespace,
                                               target.name), patch.patch)
            except ApiError as e:
                results.error(p.target_namespace, f"{where}: {e.message}")
                relinker.failed(key, original_uid)

    for tier in restore_plan.restore_tiers({p.group_resource for p in prepared}):
        members = [p for p in prepared if p.group_resource in tier]
        await asyncio.gather(*(restore_one(p) for p in members))
        if tier == (selection.CRDS,) and not dry_run:
            await _wait_for_crds(kube, [p.name for p in members], results)
        await report_progress()
    for warning in relinker.finish():
        results.warning("", warning)

    phase = "PartiallyFailed" if results.error_count else "Completed"
    reason = f"{results.error_count} item(s) failed; see `kubeplane restore logs {name}`" if results.error_count else ""
    if not location.read_only:
        keys = archive.RestoreKeys(name)
        report = {"results": json.loads(results.to_json()), "dryRun": tally.lines if dry_run else []}
        try:
            await store.put_bytes(keys.results, gzip.compress(json.dumps(report).encode(), mtime=0))
            await store.put_bytes(keys.logs, gzip.compress("\n".join(results.log + tally.lines).encode(), mtime=0))
        except StorageError as e:
            results.warning("", f"could not upload the restore's results: {e}")
    status: dict[str, Any] = {
        "phase": phase, "completionTimestamp": format_time(now()),
        "errors": results.error_count, "warnings": results.warning_count,
        "progress": {"totalItems": tally.total, "itemsRestored": tally.restored},
    }
    if dry_run:
        status["dryRun"] = {"wouldCreate": tally.would_create, "wouldUpdate": tally.would_update,
                            "wouldSkip": tally.would_skip}
    # null removes a reason an earlier writer left (a merge patch): Completed never carries one.
    status["failureReason"] = reason or None
    await op.patch_status("restores", name, status)
    message = (f"dry run: would create {tally.would_create}, update {tally.would_update}, skip {tally.would_skip}"
               if dry_run else f"{tally.restored} items restored from {backup_name}")
    if phase == "Completed":
        op.events.normal(restore, "RestoreCompleted", message)
    else:
        op.events.warning(restore, "RestorePartiallyFailed", reason)


async def _wait_for_crds(kube: Kube, names: list[str], results: Results) -> None:
    deadline = time.monotonic() + CRD_WAIT_SECONDS
    pending = set(names)
    while pending and time.monotonic() < deadline:
        for crd_name in list(pending):
            try:
                crd = await kube.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd_name}")
            except ApiError:
                continue
            if restore_plan.crd_ready(crd):
                pending.discard(crd_name)
        if pending:
            await asyncio.sleep(0.5)
    for crd_name in sorted(pending):
        results.warning("", f"CRD {crd_name} not established after {CRD_WAIT_SECONDS:.0f}s; its resources may fail")
