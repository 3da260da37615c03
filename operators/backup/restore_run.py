"""Running one Restore: fetch and verify the backup, then create its items in Velero's order.

Nothing is applied before the whole tarball has been checked (paths, member types, sizes and every
checksum; decryption authenticates it too): a tampered or malicious backup is refused with the
list of problems, and the cluster is untouched.

The tarball is never stored: the first pass streams it from object storage, verifies it and indexes
the items the restore's selection takes (archive.index_archive). A backup whose chosen objects fit the
index budget is then restored from that index; for a larger one the index keeps each item's kind,
identity and owners, and the objects are streamed from the tarball again, each checked against the
manifest once more as it is read: one shared pass for every tier when the members come tier by tier
(a backup writes its types in restore order), else one pass per tier (an older kubeplane's tarball).
The tarball is never written to disk; the bookkeeping is (the checksum manifest and the index, in
scratch tables: scratch.py, ~0.7 KiB an object), so what the process holds does not grow with the backup.

Items restore tier by tier (restore_plan.restore_tiers): CRDs, namespaces, ..., then everything
else. Inside a tier items are created concurrently (bounded). ownerReferences are re-linked to the
new UIDs as owners appear (ownership.Relinker), which Velero does not do.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import json
import queue
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

import aiohttp

from operators.backup import archive, crypto, restore_plan, selection, signing
from operators.backup.backup_run import Results
from operators.backup.discovery import discover
from operators.backup.locations import LocationError
from operators.backup.ownership import ItemKey, OwnerIndex, Relinker
from operators.backup.scratch import ScratchError
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


_END = object()


class _BackupReader:
    """The backup's tarball in object storage, read as a plaintext stream as often as needed."""

    def __init__(self, store: Any, backup_name: str, key: bytes | None, signing_key: bytes) -> None:
        self.store, self.key, self.signing_key = store, key, signing_key
        self.keys = archive.BackupKeys(backup_name)
        self._manifest: archive.Manifest | None = None

    @property
    def manifest(self) -> archive.Manifest:
        assert self._manifest is not None, "load_manifest first"
        return self._manifest

    async def load_manifest(self) -> None:
        if not await self.store.exists(self.keys.metadata):
            raise StorageError(f"backup {self.keys.name!r} has no metadata object in storage: it never completed")
        try:  # before the checksums are trusted (or even decrypted)
            self._manifest = await signing.read_manifest(self.store, self.keys.name, self.signing_key, self.key)
        except signing.SignatureError as e:
            raise archive.ArchiveRejected([str(e)]) from None
        except ValueError as e:
            raise archive.ArchiveRejected([f"the metadata object is not valid JSON: {e}"]) from None

    async def _open(self) -> tuple[IO[bytes], IO[bytes]]:
        """The plaintext stream, and the download under it (close that one)."""
        body: IO[bytes] = await self.store.open_stream(self.keys.contents)
        if self.key is None:
            return body, body
        plaintext = crypto.decrypt_iter(body, self.key, self.keys.contents)
        plain = io.BufferedReader(crypto.IteratorReader(plaintext), buffer_size=1 << 20)
        return plain, body

    async def index(self, select: Callable[[str, Mapping[str, Any]], bool]) -> archive.ArchiveIndex:
        """The first pass: verify everything, index what a restore takes."""
        stream, body = await self._open()
        try:
            return await asyncio.to_thread(archive.index_archive, stream, self.manifest, select=select)
        finally:
            await asyncio.to_thread(body.close)

    async def items(self, wanted: Callable[[str], bool]) -> AsyncGenerator[archive.ArchiveItem, None]:
        """A later pass: the members `wanted`, read in a worker thread a batch at a time."""
        stream, body = await self._open()
        handoff: queue.Queue[Any] = queue.Queue(maxsize=4)
        stop = threading.Event()

        def put(value: Any) -> bool:
            while not stop.is_set():
                with contextlib.suppress(queue.Full):
                    handoff.put(value, timeout=0.2)
                    return True
            return False

        def produce() -> None:
            batch: list[archive.ArchiveItem] = []
            try:
                for item in archive.stream_items(stream, self.manifest, wanted):
                    batch.append(item)
                    if len(batch) >= CONCURRENCY and not put(batch):
                        return
                    if len(batch) >= CONCURRENCY:
                        batch = []
                put(batch)
                put(_END)
            except BaseException as e:  # handed to the reader, raised there
                put(e)
            finally:
                body.close()

        thread = threading.Thread(target=produce, name=f"restore-read-{self.keys.name}", daemon=True)
        thread.start()
        try:
            while True:
                got = await asyncio.to_thread(handoff.get)
                if got is _END:
                    return
                if isinstance(got, BaseException):
                    raise got
                for item in got:
                    yield item
        finally:
            stop.set()
            await asyncio.to_thread(thread.join)


def in_archive_order(tiers: list[tuple[str, ...]], spans: Mapping[str, tuple[int, int]]) -> bool:
    """Whether every tier's members come after the previous tier's last one (`spans`: each type's
    first and last position in the archive), so that one pass can restore them tier by tier."""
    last = -1
    for tier in tiers:
        held = [spans[r] for r in tier if r in spans]
        if not held:
            continue
        if min(first for first, _ in held) < last:
            return False
        last = max(end for _, end in held)
    return True


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
    reader = _BackupReader(store, backup_name, location.encryption_key, location.signing_key)
    types = await discover(kube)
    select = selection.Selection.for_restore(spec, types)

    def chosen_item(group_resource: str, obj: Mapping[str, Any]) -> bool:
        return (select.resource_included(group_resource, namespaced=bool((obj.get("metadata") or {}).get("namespace")))
                and select.item_included(obj, check_exclude_label=False))

    try:
        await reader.load_manifest()
        index = await reader.index(chosen_item)  # holds only the items chosen (and every Namespace)
    except archive.ArchiveRejected as e:
        await fail("Failed", f"the backup failed verification; nothing was restored: {'; '.join(e.problems[:5])}")
        return
    except (crypto.DecryptionError, StorageError, archive.ArchiveError, ScratchError) as e:
        await fail("Failed", f"the backup could not be read; nothing was restored: {e}")
        return

    options = restore_plan.options_from_spec(spec, name, backup_name, types)
    backed_up_namespaces = [i.obj for i in index.namespaces if i.obj]
    chosen = index.items  # on disk (archive.ItemTable), with the objects while they fit the index's budget
    item_namespaces, present = await asyncio.to_thread(lambda: (chosen.distinct("namespace"),
                                                                chosen.distinct("group_resource")))
    namespace_names = restore_plan.namespaces_to_restore(select, backed_up_namespaces, item_namespaces)
    by_name = {(ns.get("metadata") or {}).get("name"): ns for ns in backed_up_namespaces}
    namespaces: list[restore_plan.Prepared] = []
    for ns_name in namespace_names:
        target = options.target_namespace(ns_name)
        obj = restore_plan.namespace_object(by_name.get(ns_name), target, options)
        namespaces.append(restore_plan.Prepared(selection.NAMESPACES, "", target, "", obj=obj))
    owners, old_uids, locations = await asyncio.to_thread(_ownership, chosen, options)
    relinker = Relinker(owners)  # every owner in the index is restored: the index holds the chosen items only
    tally = Tally(total=len(namespaces) + len(chosen))
    policy = spec.get("existingResourcePolicy") or "none"
    slots = asyncio.Semaphore(CONCURRENCY)
    last_report = time.monotonic()

    async def report_progress() -> None:
        """At most once a second, as items finish (a tier may hold thousands of items)."""
        nonlocal last_report
        if time.monotonic() - last_report < 1.0:
            return
        last_report = time.monotonic()
        await op.patch_status("restores", name, {"progress": {"totalItems": tally.total,
                                                              "itemsRestored": tally.restored}})

    failures: list[BaseException] = []  # what an item's task raised beyond an item's own error

    async def restore_one(p: restore_plan.Prepared) -> None:
        try:
            await restore_item(p)
            await report_progress()
        except Exception as e:  # kept, and raised by restore_all once the others end
            failures.append(e)
        finally:
            slots.release()

    async def restore_all(prepared: AsyncIterator[restore_plan.Prepared]) -> None:
        """Each item as it comes, at most CONCURRENCY at once (a slot is taken before an item is
        started, so a stream is read no faster than items are created). Once a task failed beyond
        its item, no further item starts; the ones running finish, then the failure is raised (it
        would otherwise be lost with its finished task, and the restore called Completed)."""
        tasks: set[asyncio.Task[None]] = set()
        try:
            async for p in prepared:
                await slots.acquire()
                if failures:
                    slots.release()
                    break
                task = asyncio.create_task(restore_one(p))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            if tasks:
                await asyncio.gather(*tasks)
        if failures:
            raise failures[0]

    async def from_memory(items: list[restore_plan.Prepared]) -> AsyncIterator[restore_plan.Prepared]:
        for p in items:
            yield p

    async def from_archive(tier: tuple[str, ...]) -> AsyncIterator[restore_plan.Prepared]:
        if index.whole:
            for item in chosen.in_types(tier):
                assert item.obj is not None  # a whole index holds every object
                yield restore_plan.prepare(item.obj, item.group_resource, options)
            return
        async for item in reader.items(chosen.wanted(tier)):
            assert item.obj is not None  # a streamed item has its object
            yield restore_plan.prepare(item.obj, item.group_resource, options)

    tiers = restore_plan.restore_tiers(present | ({selection.NAMESPACES} if namespaces else set()))
    # Tiers streamed by one shared pass over the tarball when its members come tier by tier (as
    # kubeplane writes them since the backup sorts its types so); otherwise one pass per tier. The
    # Namespaces come from the index, and CRDs (first or last in the tarball) by a pass of their own.
    one_pass = [t for t in tiers if t not in ((selection.NAMESPACES,), (selection.CRDS,))]
    if index.whole or not in_archive_order(one_pass, chosen.type_spans()):
        one_pass = []
    shared: AsyncGenerator[archive.ArchiveItem, None] | None = None
    pending: archive.ArchiveItem | None = None

    async def from_shared(tier: tuple[str, ...]) -> AsyncIterator[restore_plan.Prepared]:
        """This tier's items from the shared pass: up to the first item of a later tier."""
        nonlocal shared, pending
        if shared is None:
            shared = reader.items(chosen.wanted(r for t in one_pass for r in t))
        position = one_pass.index(tier)
        while True:
            if pending is None:
                pending = await anext(shared, None)
                if pending is None:
                    return
            if pending.group_resource not in tier:
                if any(pending.group_resource in t for t in one_pass[:position + 1]):
                    raise archive.ArchiveRejected([f"{pending.path}: out of the order verified"])
                return
            item, pending = pending, None
            assert item.obj is not None  # a streamed item has its object
            yield restore_plan.prepare(item.obj, item.group_resource, options)

    async def restore_status(single: str, created: dict[str, Any], status: dict[str, Any], where: str) -> None:
        """restoreStatus: the backed-up status through the status subresource (a create ignores it),
        guarded by the new object's uid; a kind without the subresource keeps the status it got."""
        try:
            await kube.patch(f"{single}/status", {"metadata": {"uid": created["metadata"]["uid"]},
                                                  "status": status})
        except ApiError as e:
            if e.status in (404, 405):
                results.warning(p_namespace(created), f"{where}: status not restored: no status subresource")
            else:
                results.warning(p_namespace(created), f"{where}: status not restored: {e.message}")

    def p_namespace(obj: Mapping[str, Any]) -> str:
        return str((obj.get("metadata") or {}).get("namespace") or "")

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
                if p.status:
                    await restore_status(single, created, p.status, where)
            except ApiError as e:
                if e.status != 409:
                    raise
                live = await kube.get(single)
                decision = restore_plan.decide_existing(obj, live, policy, options)
                if decision.action == "warn":
                    results.warning(p.target_namespace, f"{where}: {decision.reason}")
                    # Another object than the backed-up one: dependents must not be re-linked to it
                    # (restored pods would be adopted by an unrelated ReplicaSet).
                    relinker.failed(key, original_uid)
                    return
                if decision.patch is not None:
                    await kube.patch(single, decision.patch)
                created = live
                tally.restored += decision.action == "patch"
            for patch in relinker.created(key, original_uid, created["metadata"]["uid"]):
                group_resource, version, namespace, dependent = locations[patch.key]
                await kube.patch(item_path(group_resource, version, namespace, dependent), patch.patch)
        except ApiError as e:
            results.error(p.target_namespace, f"{where}: {e.message}")
            relinker.failed(key, original_uid)
        except (aiohttp.ClientError, TimeoutError) as e:
            # The connection broke with the request sent: whether the write landed is unknown (a write
            # is not retried), so the item is reported failed; a second restore skips it if it exists.
            cause = str(e) or "no answer from the API server"
            results.error(p.target_namespace, f"{where}: {type(e).__name__}: {cause}")
            relinker.failed(key, original_uid)

    try:
        for tier in tiers:
            try:
                if tier == (selection.NAMESPACES,):
                    await restore_all(from_memory(namespaces))
                elif tier in one_pass:
                    await restore_all(from_shared(tier))
                else:
                    await restore_all(from_archive(tier))
            except (archive.ArchiveRejected, crypto.DecryptionError, StorageError, archive.ArchiveError,
                    ScratchError) as e:
                problem = "; ".join(e.problems[:5]) if isinstance(e, archive.ArchiveRejected) else str(e)
                results.error("", f"the backup could not be read again during the restore, so it stopped "
                                  f"before its {', '.join(tier)} items: {problem}")
                break
            if tier == (selection.CRDS,) and not dry_run:
                await _wait_for_crds(kube, chosen.names(selection.CRDS), results)
            await report_progress()
    finally:
        if shared is not None:  # its reader thread ends with it
            await shared.aclose()
    for warning in relinker.finish():
        results.warning("", warning)
    chosen.close()  # the scratch files go now (an exception before this leaves them to the collector)
    reader.manifest.members.close()

    phase = "PartiallyFailed" if results.error_count else "Completed"
    reason = f"{results.error_count} item(s) failed; see `kubeplane restore logs {name}`" if results.error_count else ""
    if not location.read_only:
        keys = archive.RestoreKeys(name)
        report = {"results": json.loads(results.to_json()), "dryRun": tally.lines if dry_run else []}
        sealing = location.encryption_key  # as the backup's own files: the log names every item restored
        try:
            report_gz = gzip.compress(json.dumps(report).encode(), mtime=0)
            log_gz = gzip.compress("\n".join(results.log + tally.lines).encode(), mtime=0)
            await store.put_bytes(keys.results, crypto.seal(report_gz, sealing, keys.results))
            await store.put_bytes(keys.logs, crypto.seal(log_gz, sealing, keys.logs))
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


def _ownership(chosen: archive.ItemTable, options: restore_plan.RestoreOptions) -> tuple[
        OwnerIndex, dict[ItemKey, str], dict[ItemKey, tuple[str, dict[str, Any], str, str]]]:
    """Ownership planned from the index (items carry uid, kind and ownerReferences): the owners, their
    backed-up UIDs, and where each dependent lives now (to patch it). Only the items some reference
    names (owners) and the items with references (dependents) take part, so these tables stay empty
    for a backup without ownerReferences, whatever its size."""
    owners = OwnerIndex()
    old_uids: dict[ItemKey, str] = {}
    locations: dict[ItemKey, tuple[str, dict[str, Any], str, str]] = {}
    for i in chosen.with_references(chosen.referenced_uids()):
        key = ItemKey(i.group_resource, i.namespace, i.name)
        owners.add(key, {"kind": i.kind, "metadata": {"uid": i.uid, "ownerReferences": list(i.owner_references)}})
        if i.uid:
            old_uids[key] = i.uid
        if i.owner_references:
            locations[key] = (i.group_resource, {"apiVersion": i.api_version}, options.target_namespace(i.namespace),
                              i.name)
    return owners, old_uids, locations


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
