"""Running one Backup: collect the selected items, write the tarball, upload, report.

The order of uploads is the crash-safety story: the tarball, checksums, resource list, results and
logs go first; the backup's metadata object (`kubeplane-backup.json`) goes last and is never
rewritten. A backup whose metadata object is missing is not a backup: sync ignores it, restore
refuses it, and an interrupted run leaves exactly that. Because nothing is rewritten after upload,
object-lock (WORM) buckets work.

CPU-bound work (JSON encoding, gzip, encryption) runs in worker threads page by page, and boto3
runs off the loop in storage.py, so the operator's event loop stays responsive during a backup.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import json
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from operators.backup import archive, crypto, restore_plan, selection, signing
from operators.backup.discovery import ApiResource, discover, list_in_one_page, list_items
from operators.backup.locations import Location
from operators.backup.storage import ObjectStore
from operators.core.kube import ApiError, Kube
from operators.core.timeutil import format_time, now

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], Awaitable[None]]


@dataclass
class Results:
    """Per-item errors and warnings, grouped like Velero's results file."""

    errors: dict[str, list[str]] = field(default_factory=dict)  # namespace ("" = cluster) -> messages
    warnings: dict[str, list[str]] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    def error(self, namespace: str, message: str) -> None:
        self.errors.setdefault(namespace, []).append(message)
        self.log.append(f"{format_time(now())} error {namespace or '<cluster>'}: {message}")

    def warning(self, namespace: str, message: str) -> None:
        self.warnings.setdefault(namespace, []).append(message)
        self.log.append(f"{format_time(now())} warning {namespace or '<cluster>'}: {message}")

    def info(self, message: str) -> None:
        self.log.append(f"{format_time(now())} info {message}")

    @property
    def error_count(self) -> int:
        return sum(len(v) for v in self.errors.values())

    @property
    def warning_count(self) -> int:
        return sum(len(v) for v in self.warnings.values())

    def to_json(self) -> bytes:
        def grouped(by_ns: dict[str, list[str]]) -> dict[str, Any]:
            return {"cluster": by_ns.get("", []), "namespaces": {k: v for k, v in sorted(by_ns.items()) if k}}
        return json.dumps({"errors": grouped(self.errors), "warnings": grouped(self.warnings)}, indent=1).encode()


@dataclass
class Outcome:
    phase: str  # Completed | PartiallyFailed | Failed
    items: int
    results: Results
    completed: str  # the completionTimestamp written to the bucket; the status must show the same
    failure_reason: str = ""


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


class _Collector:
    """Writes items into the archive from a worker thread, one page at a time."""

    def __init__(self, sink: IO[bytes]) -> None:
        self.writer = archive.ArchiveWriter(sink)
        self.listed = archive.ResourceList()  # on disk, as the writer's member list
        self.item_namespaces: set[str] = set()

    def add_page(self, items: list[dict[str, Any]], resource: ApiResource) -> None:
        for item in items:
            item.get("metadata", {}).pop("managedFields", None)
            self.writer.add_item(item, resource.group_resource, preferred_version=resource.version)
            meta = item["metadata"]
            self.listed.add(resource.api_version, resource.kind, meta.get("namespace") or "", meta["name"])
            if meta.get("namespace"):
                self.item_namespaces.add(meta["namespace"])


async def run_backup(
    kube: Kube,
    backup: Mapping[str, Any],
    location: Location,
    store: ObjectStore,
    progress: ProgressFn,
    started: datetime,
    expiration: datetime,
) -> Outcome:
    """Back up what `backup.spec` selects into `location`; return the final phase and counts."""
    name = backup["metadata"]["name"]
    spec = backup.get("spec") or {}
    keys = archive.BackupKeys(name)
    results = Results()
    types = await discover(kube)
    by_name = {t.group_resource: t for t in types}
    namespaces = await kube.list_all("/api/v1/namespaces")
    excluded = selection.excluded_by_label(namespaces)
    select = selection.Selection.from_spec(spec, types, extra_excluded_namespaces=excluded)
    included = [t for t in types if select.type_included(t) and t.group_resource != selection.NAMESPACES]
    # Written in the order a restore takes them (its tiers), so that one pass over the tarball can
    # restore tier after tier. The Namespaces of what was taken come after it all, and so do the CRDs
    # a backup without cluster-scoped resources takes for its custom resources (a restore reads both
    # apart from that pass).
    position = {r: i for i, r in enumerate(restore_plan.restore_order(t.group_resource for t in included))}
    included.sort(key=lambda t: position[t.group_resource])
    results.info(f"backing up {len(included)} resource types to {location.name}")

    # The tarball streams into a multipart upload as it is written: no temporary file, one part in
    # memory; the object exists only once the upload completes, so a run cut short leaves no tarball.
    upload = store.multipart_writer(keys.contents)
    try:
        sink: IO[bytes] = upload  # type: ignore[assignment]
        encrypting: crypto.EncryptingWriter | None = None
        if location.encryption_key is not None:
            encrypting = crypto.EncryptingWriter(upload, location.encryption_key,  # type: ignore[arg-type]
                                                 context=keys.contents)
            sink = encrypting  # type: ignore[assignment]
        collector = _Collector(sink)
        count = 0
        last_report = 0.0
        custom_types: list[ApiResource] = []

        async def take(resource: ApiResource, items: list[dict[str, Any]]) -> None:
            nonlocal count, last_report
            chosen = [item for item in items if select.item_included(item)]
            if not chosen:
                return
            await asyncio.to_thread(collector.add_page, chosen, resource)
            count += len(chosen)
            if time.monotonic() - last_report >= 1.0:  # as Velero: progress at most once a second
                last_report = time.monotonic()
                await progress(count, count)

        for resource in included:
            scopes: list[str | None] = [None]
            if resource.namespaced and (listed := select.namespaces_to_list()) is not None:
                scopes = list(listed)
            found = False
            async for page in _pages(kube, resource, scopes, results):
                found = found or bool(page)
                await take(resource, page)
            if found and resource.group not in _BUILTIN_GROUPS:
                custom_types.append(resource)

        # The Namespace objects of everything taken, and the CRDs of every custom resource taken.
        chosen_namespaces = select.select_namespaces(namespaces, collector.item_namespaces)
        namespace_type = by_name[selection.NAMESPACES]
        if select.resource_included(selection.NAMESPACES, namespaced=False):
            wanted = [dict(ns) for ns in namespaces if ns["metadata"]["name"] in chosen_namespaces]
            for ns in wanted:
                ns.setdefault("apiVersion", "v1")
                ns.setdefault("kind", "Namespace")
            await take_all(collector, wanted, namespace_type)
            count += len(wanted)
        crd_type = by_name.get(selection.CRDS)
        if crd_type is not None and custom_types and not select.cluster_scoped_allowed():
            crds = [crd async for page in list_items(kube, crd_type) for crd in page]
            needed = [dict(c) for c in selection.crds_for(custom_types, crds)]
            await take_all(collector, needed, crd_type)
            count += len(needed)

        manifest = await asyncio.to_thread(collector.writer.close)
        if encrypting is not None:
            await asyncio.to_thread(encrypting.close)
        results.info(f"{count} items written; completing the upload")
        await asyncio.to_thread(upload.close)
        logger.info("backup %s: %d items, tarball %d bytes (%d stored) uploaded", name, count,
                    manifest.archive.size, upload.written)
        await progress(count, count)
    except BaseException:
        await asyncio.to_thread(upload.abort)
        raise

    sealing = location.encryption_key
    checksums_sha256 = await _put_written(store, keys.checksums, manifest.write_json, sealing)
    manifest.members.close()
    await _put_written(store, keys.resource_list, collector.listed.write_json, sealing, compress=True)
    collector.listed.close()
    await store.put_bytes(keys.results, crypto.seal(_gzip(results.to_json()), sealing, keys.results))
    phase = "PartiallyFailed" if results.error_count else "Completed"
    reason = f"{results.error_count} item(s) failed; see `kubeplane backup logs {name}`" if results.error_count else ""
    results.info(f"backup {phase}")
    await store.put_bytes(keys.logs, crypto.seal(_gzip("\n".join(results.log).encode()), sealing, keys.logs))

    # Last, and only once: the metadata object that makes this a complete backup.
    completed = format_time(now())
    final: dict[str, Any] = {
        "apiVersion": backup.get("apiVersion"), "kind": "Backup",
        "metadata": {k: v for k, v in backup["metadata"].items() if k in ("name", "namespace", "labels", "uid")},
        "spec": spec,
        "status": {
            "phase": phase, "formatVersion": archive.FORMAT_VERSION, "storageLocation": location.name,
            "startTimestamp": format_time(started), "completionTimestamp": completed,
            "expiration": format_time(expiration), "progress": {"totalItems": count, "itemsBackedUp": count},
            "errors": results.error_count, "warnings": results.warning_count,
            "encrypted": location.encryption_key is not None,
        },
    }
    if reason:
        final["status"]["failureReason"] = reason
    final[signing.FIELD] = signing.sign(location.signing_key, name, final, checksums_sha256)
    await store.put_bytes(keys.metadata, json.dumps(final, indent=1).encode())
    return Outcome(phase, count, results, completed, reason)


async def _put_written(store: ObjectStore, key: str, write: Callable[[IO[bytes]], None], sealing: bytes | None,
                       *, compress: bool = False) -> bytes:
    """Store what `write(out)` writes (gzip'ed with `compress`; encrypted and bound to `key` when the
    location has a key, as crypto.seal does) by way of a temporary file: the checksums object and the
    resource list grow with the backup (~34 MiB of checksums at 100,000 objects) and are never held
    whole. Returns the sha256 of the stored bytes (what the signature covers)."""
    with tempfile.TemporaryFile() as spooled:
        def build() -> bytes:
            encrypting = crypto.EncryptingWriter(spooled, sealing, context=key) if sealing is not None else None
            target: IO[bytes] = encrypting if encrypting is not None else spooled  # type: ignore[assignment]
            if compress:
                with gzip.GzipFile(fileobj=target, mode="wb", mtime=0) as zipped:
                    write(zipped)  # type: ignore[arg-type]
            else:
                write(target)
            if encrypting is not None:
                encrypting.close()
            spooled.seek(0)
            sha = hashlib.sha256()
            while chunk := spooled.read(1 << 20):
                sha.update(chunk)
            spooled.seek(0)
            return sha.digest()
        digest = await asyncio.to_thread(build)
        await store.put_stream(key, spooled)
    return digest


async def _pages(kube: Kube, resource: ApiResource, scopes: list[str | None],
                 results: Results) -> AsyncIterator[list[dict[str, Any]]]:
    """The pages of one type in the scopes: when it lists in more than one namespace, first one
    cluster-wide page; if that holds the whole type, its items in those namespaces are all there is
    (one request instead of one a namespace). Otherwise, or when the cluster-wide list is refused,
    namespace by namespace (_list_scopes), whose errors are the ones a backup reports."""
    if len(scopes) > 1:
        try:
            whole = await list_in_one_page(kube, resource)
        except ApiError:
            whole = None
        if whole is not None:
            wanted = set(scopes)
            yield [item for item in whole if (item.get("metadata") or {}).get("namespace") in wanted]
            return
    async for page in _list_scopes(kube, resource, scopes, results):
        yield page


async def _list_scopes(kube: Kube, resource: ApiResource, scopes: list[str | None],
                       results: Results) -> AsyncIterator[list[dict[str, Any]]]:
    """The pages of one type in each scope (a namespace, or None: everywhere), LIST_CONCURRENCY scopes
    listed at once: most lists of a type in one namespace are empty, and one after the other they
    cost a round trip each (256 namespaces x ~20 types). Pages come out one at a time, so one writer
    takes them; listing only runs ahead by LIST_CONCURRENCY pages. A scope that may not be listed is
    an error (403: as Velero's "Error listing items", the backup is PartiallyFailed, never Completed
    with a whole type missing) or a warning (404/405: the type went away, or cannot be listed); any
    other failure stops every listing and is raised."""
    pages: asyncio.Queue[list[dict[str, Any]] | BaseException | None] = asyncio.Queue()  # None: the end
    room = asyncio.Semaphore(LIST_CONCURRENCY)  # pages listed and not yet taken
    slots = asyncio.Semaphore(LIST_CONCURRENCY)  # scopes being listed

    async def one(scope: str | None) -> None:
        async with slots:
            try:
                async for page in list_items(kube, resource, scope):
                    await room.acquire()
                    pages.put_nowait(page)
            except ApiError as e:
                if e.status == 403:
                    results.error(scope or "", f"cannot list {resource.group_resource}: {e.message}")
                elif e.status in (404, 405):
                    results.warning(scope or "", f"cannot list {resource.group_resource}: {e.message}")
                else:
                    raise

    async def all_scopes() -> None:
        try:
            async with asyncio.TaskGroup() as group:  # the first failure cancels the other listings
                for scope in scopes:
                    group.create_task(one(scope))
        except BaseExceptionGroup as failures:  # handed to the reader as the one failure it is
            pages.put_nowait(failures.exceptions[0])
            return
        pages.put_nowait(None)

    lister = asyncio.create_task(all_scopes())
    try:
        while (got := await pages.get()) is not None:
            if isinstance(got, BaseException):
                raise got
            room.release()
            yield got
    finally:
        if not lister.done():  # the reader stopped early: stop listing
            lister.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lister


async def take_all(collector: _Collector, items: list[dict[str, Any]], resource: ApiResource) -> None:
    if items:
        await asyncio.to_thread(collector.add_page, items, resource)


LIST_CONCURRENCY = 4  # namespaces listed at once for one type

# Groups Kubernetes itself serves: their types need no CRD in the backup.
_BUILTIN_GROUPS = frozenset({
    "", "apps", "batch", "autoscaling", "policy", "networking.k8s.io", "rbac.authorization.k8s.io",
    "storage.k8s.io", "coordination.k8s.io", "discovery.k8s.io", "events.k8s.io", "scheduling.k8s.io",
    "node.k8s.io", "certificates.k8s.io", "admissionregistration.k8s.io", "apiextensions.k8s.io",
    "apiregistration.k8s.io", "flowcontrol.apiserver.k8s.io", "resource.k8s.io", "internal.apiserver.k8s.io",
    "storagemigration.k8s.io", "authentication.k8s.io", "authorization.k8s.io",
})
