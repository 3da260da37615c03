"""`kubeplane backup|restore|schedule|backup-location ...`: Velero's CLI verbs over our CRDs.

Every verb talks to the API server in $KUBECONFIG; the ones that read object storage (logs,
download, verify) resolve the BackupStorageLocation and its credential Secret the way the operator
does, so they need read access to Secrets in the operator's namespace.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import IO, Any, TypeVar

import click
import yaml

from operators.backup import archive, crypto, locations, signing
from operators.backup.locations import GROUP, VERSION
from operators.backup.storage import ObjectStore, StorageError
from operators.cli.common import run_with_kube
from operators.core.kube import Kube

T = TypeVar("T")
FINAL_PHASES = {"Completed", "PartiallyFailed", "Failed", "FailedValidation"}


def _run(fn: Callable[[Kube], Awaitable[T]]) -> T:
    return run_with_kube(fn, (StorageError, locations.LocationError, archive.ArchiveError, crypto.DecryptionError))


def _path(namespace: str, plural: str, name: str | None = None) -> str:
    base = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}"
    return f"{base}/{name}" if name else base


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _selector(value: str | None) -> dict[str, Any] | None:
    """`a=b,c=d` into a LabelSelector's matchLabels."""
    if not value:
        return None
    labels = {}
    for part in value.split(","):
        key, sep, val = part.partition("=")
        if not sep:
            raise click.BadParameter(f"{part!r}: expected key=value", param_hint="--selector")
        labels[key.strip()] = val.strip()
    return {"matchLabels": labels}


def _mappings(value: str | None) -> dict[str, str] | None:
    if not value:
        return None
    out = {}
    for part in value.split(","):
        src, sep, dst = part.partition(":")
        if not sep:
            raise click.BadParameter(f"{part!r}: expected old:new", param_hint="--namespace-mappings")
        out[src.strip()] = dst.strip()
    return out


def _prune(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if v is not None}


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(str(c).ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in rows)


Columns = list[tuple[str, Callable[[dict[str, Any]], Any]]]


def _print(items: list[dict[str, Any]], output: str, columns: Columns) -> None:
    if output == "json":
        click.echo(json.dumps(items if len(items) != 1 else items[0], indent=2))
    elif output == "yaml":
        click.echo(yaml.safe_dump(items if len(items) != 1 else items[0], sort_keys=False))
    elif not items:
        click.echo("No resources found.")
    else:
        rows = [[name for name, _ in columns]] + [[str(get(i) if get(i) is not None else "") for _, get in columns]
                                                  for i in items]
        click.echo(_table(rows))


def _status(obj: Mapping[str, Any]) -> dict[str, Any]:
    return dict(obj.get("status") or {})


BACKUP_COLUMNS: Columns = [
    ("NAME", lambda o: o["metadata"]["name"]),
    ("STATUS", lambda o: _status(o).get("phase", "New")),
    ("ITEMS", lambda o: (_status(o).get("progress") or {}).get("itemsBackedUp")),
    ("ERRORS", lambda o: _status(o).get("errors", 0)),
    ("WARNINGS", lambda o: _status(o).get("warnings", 0)),
    ("CREATED", lambda o: o["metadata"].get("creationTimestamp")),
    ("EXPIRES", lambda o: _status(o).get("expiration")),
    ("STORAGE LOCATION", lambda o: _status(o).get("storageLocation") or (o.get("spec") or {}).get("storageLocation")),
]
RESTORE_COLUMNS: Columns = [
    ("NAME", lambda o: o["metadata"]["name"]),
    ("BACKUP", lambda o: _status(o).get("backupName") or (o.get("spec") or {}).get("backupName")),
    ("STATUS", lambda o: _status(o).get("phase", "New")),
    ("RESTORED", lambda o: (_status(o).get("progress") or {}).get("itemsRestored")),
    ("ERRORS", lambda o: _status(o).get("errors", 0)),
    ("WARNINGS", lambda o: _status(o).get("warnings", 0)),
    ("DRY RUN", lambda o: (o.get("spec") or {}).get("dryRun", False)),
    ("CREATED", lambda o: o["metadata"].get("creationTimestamp")),
]
SCHEDULE_COLUMNS: Columns = [
    ("NAME", lambda o: o["metadata"]["name"]),
    ("STATUS", lambda o: _status(o).get("phase", "New")),
    ("SCHEDULE", lambda o: o["spec"]["schedule"]),
    ("PAUSED", lambda o: o["spec"].get("paused", False)),
    ("LAST BACKUP", lambda o: _status(o).get("lastBackup")),
]
LOCATION_COLUMNS: Columns = [
    ("NAME", lambda o: o["metadata"]["name"]),
    ("PHASE", lambda o: _status(o).get("phase")),
    ("BUCKET/PREFIX", lambda o: "/".join(filter(None, [o["spec"]["objectStorage"]["bucket"],
                                                       o["spec"]["objectStorage"].get("prefix")]))),
    ("ACCESS MODE", lambda o: o["spec"].get("accessMode", "ReadWrite")),
    ("DEFAULT", lambda o: o["spec"].get("default", False)),
    ("LAST VALIDATED", lambda o: _status(o).get("lastValidationTime")),
    ("MESSAGE", lambda o: _status(o).get("message")),
]

namespace_option = click.option("-n", "--namespace", default="kubeplane-system", show_default=True,
                                 help="The backup operator's namespace.")
output_option = click.option("-o", "--output", type=click.Choice(["table", "json", "yaml"]), default="table")


def _filter_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--include-namespaces", help="Namespaces to include (comma-separated, * = all)."),
        click.option("--exclude-namespaces", help="Namespaces to leave out."),
        click.option("--include-resources", help="Resources to include, e.g. deployments,configmaps."),
        click.option("--exclude-resources", help="Resources to leave out."),
        click.option("--include-cluster-resources", type=bool, default=None,
                     help="true/false; unset: only for whole-cluster backups."),
        click.option("-l", "--selector", help="Only items with these labels (key=value,...)."),
    ]):
        fn = option(fn)
    return fn


def _filters(kw: Mapping[str, Any]) -> dict[str, Any]:
    return _prune({
        "includedNamespaces": _csv(kw["include_namespaces"]),
        "excludedNamespaces": _csv(kw["exclude_namespaces"]),
        "includedResources": _csv(kw["include_resources"]),
        "excludedResources": _csv(kw["exclude_resources"]),
        "includeClusterResources": kw["include_cluster_resources"],
        "labelSelector": _selector(kw["selector"]),
    })


async def _wait(kube: Kube, path: str, what: str, total_key: str, done_key: str) -> dict[str, Any]:
    """Poll until a final phase, drawing a progress bar on stderr."""
    last = ""
    while True:
        obj = await kube.get(path)
        status = _status(obj)
        phase = status.get("phase", "New")
        progress = status.get("progress") or {}
        total, done = progress.get(total_key) or 0, progress.get(done_key) or 0
        width = 30
        filled = int(width * done / total) if total else 0
        line = f"\r{what}: {phase:<16} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        if line != last:
            click.echo(line, nl=False, err=True)
            last = line
        if phase in FINAL_PHASES:
            click.echo("", err=True)
            return obj
        await asyncio.sleep(0.5)


def _create(namespace: str, plural: str, body: Mapping[str, Any], *, wait: bool, done_key: str) -> None:
    """Create a Backup or Restore; with `wait`, follow it to a final phase and exit 1 unless Completed."""
    kind, name = body["kind"], body["metadata"]["name"]

    async def go(kube: Kube) -> None:
        await kube.create(_path(namespace, plural), body)
        click.echo(f"{kind} {name} created.")
        if wait:
            _summary(await _wait(kube, _path(namespace, plural, name), kind.lower(), "totalItems", done_key))
    _run(go)


def _summary(obj: Mapping[str, Any]) -> None:
    status = _status(obj)
    click.echo(f"{obj['kind']} {obj['metadata']['name']}: {status.get('phase')}")
    for key in ("failureReason", "validationErrors", "dryRun"):
        if status.get(key):
            click.echo(f"  {key}: {status[key]}")
    if status.get("phase") not in ("Completed",):
        sys.exit(1)


# --- backup ---------------------------------------------------------------------------------------


@click.group("backup")
def backup_group() -> None:
    """Create, inspect, verify and delete backups."""


@backup_group.command("create")
@click.argument("name")
@_filter_options
@click.option("--ttl", help="How long to keep the backup (e.g. 720h).")
@click.option("--storage-location", help="BackupStorageLocation (default: the default one).")
@click.option("--wait", is_flag=True, help="Wait for the backup to finish, with progress.")
@namespace_option
def backup_create(name: str, ttl: str | None, storage_location: str | None, wait: bool, namespace: str,
                  **filters: Any) -> None:
    """Back up what the filters select."""
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Backup", "metadata": {"name": name},
            "spec": _prune({**_filters(filters), "ttl": ttl, "storageLocation": storage_location})}

    _create(namespace, "backups", body, wait=wait, done_key="itemsBackedUp")


async def _get_items(kube: Kube, namespace: str, plural: str, name: str | None) -> list[dict[str, Any]]:
    if name:
        return [await kube.get(_path(namespace, plural, name))]
    return await kube.list_all(_path(namespace, plural))


@backup_group.command("describe")
@click.argument("name")
@namespace_option
def backup_describe(name: str, namespace: str) -> None:
    """Spec, status and the resource list of one backup."""
    async def go(kube: Kube) -> None:
        backup = await kube.get(_path(namespace, "backups", name))
        click.echo(yaml.safe_dump({"name": name, "spec": backup.get("spec"), "status": backup.get("status")},
                                  sort_keys=False))
        try:
            store, key = await _store(kube, namespace, backup)
            keys = archive.BackupKeys(name)
            listed = json.loads(gzip.decompress(_open(await store.get_bytes(keys.resource_list), key,
                                                      keys.resource_list)))
            click.echo("Resource list:")
            for kind, names in listed.items():
                click.echo(f"  {kind}:")
                for item in names:
                    click.echo(f"    - {item}")
        except StorageError as e:
            click.echo(f"(resource list unavailable: {e})")
    _run(go)


async def _location(kube: Kube, namespace: str, backup: Mapping[str, Any]) -> locations.Location:
    bsl_name = _status(backup).get("storageLocation") or (backup.get("spec") or {}).get("storageLocation")
    return await locations.resolve(kube, await locations.get_location(kube, namespace, bsl_name))


async def _store(kube: Kube, namespace: str, backup: Mapping[str, Any]) -> tuple[ObjectStore, bytes | None]:
    location = await _location(kube, namespace, backup)
    return ObjectStore(location.config), location.encryption_key


def _open(data: bytes, key: bytes | None, object_key: str) -> bytes:
    """A stored object's plaintext (`object_key`: where it is stored, which an encrypted object is bound to)."""
    return crypto.decrypt(data, key, object_key) if key is not None and crypto.is_encrypted(data[:16]) else data


@backup_group.command("logs")
@click.argument("name")
@namespace_option
def backup_logs(name: str, namespace: str) -> None:
    """The backup's log, and its per-item errors and warnings."""
    async def go(kube: Kube) -> None:
        backup = await kube.get(_path(namespace, "backups", name))
        store, key = await _store(kube, namespace, backup)
        keys = archive.BackupKeys(name)
        click.echo(gzip.decompress(_open(await store.get_bytes(keys.logs), key, keys.logs)).decode())
        click.echo(gzip.decompress(_open(await store.get_bytes(keys.results), key, keys.results)).decode())
    _run(go)


def _fetch(name: str, namespace: str) -> tuple[IO[bytes], archive.Manifest, bytes | None]:
    """Download a backup's tarball into a temporary file (as stored: maybe encrypted) and its manifest."""
    async def go(kube: Kube) -> tuple[IO[bytes], archive.Manifest, bytes | None]:
        backup = await kube.get(_path(namespace, "backups", name))
        location = await _location(kube, namespace, backup)
        store, key = ObjectStore(location.config), location.encryption_key
        keys = archive.BackupKeys(name)
        if not await store.exists(keys.metadata):
            raise click.ClickException(f"backup {name} is incomplete: no metadata object in storage")
        try:
            manifest = await signing.read_manifest(store, name, location.signing_key, key)
        except (signing.SignatureError, ValueError) as e:
            raise click.ClickException(f"backup {name} failed verification: {e}") from None
        raw = tempfile.TemporaryFile()
        await store.get_to_file(keys.contents, raw)
        return raw, manifest, key
    raw, manifest, key = _run(go)
    raw.seek(0)
    return raw, manifest, key


def _plaintext(raw: IO[bytes], key: bytes | None, sink: IO[bytes], name: str) -> None:
    """Copy backup `name`'s stored tarball into `sink`, decrypting (and authenticating) it when encrypted."""
    out: IO[bytes] = (crypto.DecryptingWriter(sink, key, archive.BackupKeys(name).contents)  # type: ignore[assignment]
                      if key is not None else sink)
    for chunk in iter(lambda: raw.read(1 << 16), b""):
        out.write(chunk)
    if key is not None:
        out.close()
    sink.seek(0)


@backup_group.command("download")
@click.argument("name")
@click.option("-o", "--output", "target", type=click.Path(dir_okay=False), help="File (default NAME-data.tar.gz).")
@namespace_option
def backup_download(name: str, target: str | None, namespace: str) -> None:
    """Download the backup's tarball (decrypted, checked against its checksums)."""
    raw, manifest, key = _fetch(name, namespace)
    path = target or f"{name}-data.tar.gz"
    try:
        with raw, open(path, "w+b") as out:
            _plaintext(raw, key, out, name)
            archive.verify_archive(out, manifest)
    except (archive.ArchiveError, crypto.DecryptionError) as e:
        raise click.ClickException(f"{path} failed verification: {e}") from None
    click.echo(f"Backup {name} downloaded to {path} (checksums verified).")


@backup_group.command("verify")
@click.argument("name")
@namespace_option
def backup_verify(name: str, namespace: str) -> None:
    """Check a backup's signature, every checksum (and its decryption, when encrypted). Exit 1 if anything is
    off."""
    try:
        raw, manifest, key = _fetch(name, namespace)
        with raw, tempfile.TemporaryFile() as plain:
            _plaintext(raw, key, plain, name)
            archive.verify_archive(plain, manifest)
    except (click.ClickException, archive.ArchiveError, crypto.DecryptionError) as e:
        message = e.message if isinstance(e, click.ClickException) else str(e)
        click.echo(f"Backup {name}: verification FAILED: {message}", err=True)
        sys.exit(1)
    click.echo(f"Backup {name}: OK (signed with this installation's key, {len(manifest.members)} members, every "
               "checksum matches).")


@backup_group.command("delete")
@click.argument("name")
@click.option("--confirm", is_flag=True, help="Do not ask.")
@namespace_option
def backup_delete(name: str, confirm: bool, namespace: str) -> None:
    """Delete a backup and its files (files are kept on ReadOnly locations)."""
    if not confirm:
        click.confirm(f"Delete backup {name} and its files?", abort=True)

    async def go(kube: Kube) -> None:
        await kube.delete(_path(namespace, "backups", name))
    _run(go)
    click.echo(f"Backup {name} deletion requested; its files are removed by the operator.")


# --- restore --------------------------------------------------------------------------------------


@click.group("restore")
def restore_group() -> None:
    """Restore backups."""


@restore_group.command("create")
@click.argument("name", required=False)
@click.option("--from-backup", help="The backup to restore.")
@click.option("--from-schedule", help="Restore the latest Completed backup of this schedule.")
@_filter_options
@click.option("--namespace-mappings", help="old:new,... restore namespace old into new.")
@click.option("--existing-resource-policy", type=click.Choice(["none", "update"]), default=None)
@click.option("--preserve-nodeports", is_flag=True, default=None)
@click.option("--dry-run", is_flag=True, default=None, help="Report what would happen; change nothing.")
@click.option("--wait", is_flag=True, help="Wait for the restore to finish, with progress.")
@namespace_option
def restore_create(name: str | None, from_backup: str | None, from_schedule: str | None,
                   namespace_mappings: str | None, existing_resource_policy: str | None,
                   preserve_nodeports: bool | None, dry_run: bool | None, wait: bool, namespace: str,
                   **filters: Any) -> None:
    """Restore a backup (or a schedule's latest)."""
    if bool(from_backup) == bool(from_schedule):
        raise click.UsageError("give exactly one of --from-backup and --from-schedule")
    name = name or f"{from_backup or from_schedule}-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"
    spec = _prune({**_filters(filters), "backupName": from_backup, "scheduleName": from_schedule,
                   "namespaceMapping": _mappings(namespace_mappings),
                   "existingResourcePolicy": existing_resource_policy,
                   "preserveNodePorts": preserve_nodeports, "dryRun": dry_run})
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Restore", "metadata": {"name": name}, "spec": spec}

    _create(namespace, "restores", body, wait=wait, done_key="itemsRestored")


@restore_group.command("describe")
@click.argument("name")
@namespace_option
def restore_describe(name: str, namespace: str) -> None:
    """Spec and status of one restore."""
    restore = _run(lambda kube: kube.get(_path(namespace, "restores", name)))
    click.echo(yaml.safe_dump({"name": name, "spec": restore.get("spec"), "status": restore.get("status")},
                              sort_keys=False))


@restore_group.command("logs")
@click.argument("name")
@namespace_option
def restore_logs(name: str, namespace: str) -> None:
    """The restore's log (for a dry run: what it would create, update or skip, and why)."""
    async def go(kube: Kube) -> None:
        restore = await kube.get(_path(namespace, "restores", name))
        backup = await kube.get(_path(namespace, "backups", _status(restore).get("backupName") or ""))
        store, key = await _store(kube, namespace, backup)
        logs = archive.RestoreKeys(name).logs
        click.echo(gzip.decompress(_open(await store.get_bytes(logs), key, logs)).decode())
    _run(go)


# --- schedule -------------------------------------------------------------------------------------


@click.group("schedule")
def schedule_group() -> None:
    """Backups on a cron schedule."""


@schedule_group.command("create")
@click.argument("name")
@click.option("--schedule", "cron", required=True, help='Cron in UTC, e.g. "0 3 * * *", or @daily.')
@_filter_options
@click.option("--ttl")
@click.option("--storage-location")
@click.option("--skip-immediately", is_flag=True, default=None)
@click.option("--paused", is_flag=True, default=None)
@namespace_option
def schedule_create(name: str, cron: str, ttl: str | None, storage_location: str | None,
                    skip_immediately: bool | None, paused: bool | None, namespace: str, **filters: Any) -> None:
    """Create a schedule."""
    template = _prune({**_filters(filters), "ttl": ttl, "storageLocation": storage_location})
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Schedule", "metadata": {"name": name},
            "spec": _prune({"schedule": cron, "template": template, "skipImmediately": skip_immediately,
                            "paused": paused})}
    _run(lambda kube: kube.create(_path(namespace, "schedules"), body))
    click.echo(f"Schedule {name} created.")


def _set_paused(name: str, namespace: str, paused: bool) -> None:
    _run(lambda kube: kube.patch(_path(namespace, "schedules", name), {"spec": {"paused": paused}}))
    click.echo(f"Schedule {name} {'paused' if paused else 'unpaused'}.")


@schedule_group.command("pause")
@click.argument("name")
@namespace_option
def schedule_pause(name: str, namespace: str) -> None:
    """Stop taking backups."""
    _set_paused(name, namespace, True)


@schedule_group.command("unpause")
@click.argument("name")
@namespace_option
def schedule_unpause(name: str, namespace: str) -> None:
    """Take backups again."""
    _set_paused(name, namespace, False)


# --- backup-location ------------------------------------------------------------------------------


@click.group("backup-location")
def location_group() -> None:
    """Where backups are stored."""


@location_group.command("create")
@click.argument("name")
@click.option("--bucket", required=True)
@click.option("--prefix")
@click.option("--s3-url", help="Endpoint, e.g. http://minio.minio:9000 (empty: AWS).")
@click.option("--region", default="us-east-1", show_default=True)
@click.option("--credential", help="SECRET=KEY holding an AWS credentials file.")
@click.option("--default", "is_default", is_flag=True)
@click.option("--access-mode", type=click.Choice(["ReadWrite", "ReadOnly"]), default="ReadWrite", show_default=True)
@namespace_option
def location_create(name: str, bucket: str, prefix: str | None, s3_url: str | None, region: str,
                    credential: str | None, is_default: bool, access_mode: str, namespace: str) -> None:
    """Create a BackupStorageLocation (S3 API; MinIO needs --s3-url)."""
    spec: dict[str, Any] = {"objectStorage": _prune({"bucket": bucket, "prefix": prefix}),
                            "config": _prune({"region": region, "s3Url": s3_url,
                                              "s3ForcePathStyle": "true" if s3_url else None}),
                            "default": is_default, "accessMode": access_mode}
    if credential:
        secret, sep, key = credential.partition("=")
        if not sep:
            raise click.BadParameter("expected SECRET=KEY", param_hint="--credential")
        spec["credential"] = {"name": secret, "key": key}
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "BackupStorageLocation", "metadata": {"name": name},
            "spec": spec}
    _run(lambda kube: kube.create(_path(namespace, "backupstoragelocations"), body))
    click.echo(f"BackupStorageLocation {name} created; `kubeplane backup-location get` shows when it is Available.")


def _add_get(group: click.Group, plural: str, what: str, columns: Columns) -> None:
    """`<group> get [NAME] [-o table|json|yaml]` for one kind."""
    @group.command("get", help=f"List {what} (or show one).")
    @click.argument("name", required=False)
    @namespace_option
    @output_option
    def get(name: str | None, namespace: str, output: str) -> None:
        _print(_run(lambda kube: _get_items(kube, namespace, plural, name)), output, columns)


_add_get(backup_group, "backups", "backups", BACKUP_COLUMNS)
_add_get(restore_group, "restores", "restores", RESTORE_COLUMNS)
_add_get(schedule_group, "schedules", "schedules", SCHEDULE_COLUMNS)
_add_get(location_group, "backupstoragelocations", "backup storage locations", LOCATION_COLUMNS)

GROUPS = [backup_group, restore_group, schedule_group, location_group]
