"""Signed backups: only a backup this installation (or one sharing its key) wrote is synced or restored.

Write access to the bucket must not be enough to make the cluster create objects: a restore can create
anything (a ClusterRoleBinding included), so a backup planted in the bucket, or one whose files were
swapped, must be refused. Every backup's metadata object (`kubeplane-backup.json`, the last object a
run writes) carries

    "signature": {"format": FORMAT, "keyId": <16 hex digits>, "hmac": <64 hex digits>}

where hmac = HMAC-SHA256(signing key, DOMAIN | name | 0 | sha256(checksums object as stored) | 0 |
canonical JSON of the metadata object without "signature"). The checksums object pins the tarball and
every member (archive.Manifest), so the MAC covers every byte that is restored; the name binds it to its
place in the bucket (a signed backup copied under another name does not verify); the canonical JSON
covers the stored status that sync imports.

The key is 32 bytes in a Secret of the operator's namespace (the chart generates it and keeps it on
uninstall; `make up` creates one). It never goes to the bucket. Clusters that restore each other's backups
share the Secret's value. The key id (a hash of the key, not the key) lets an error say "signed with
another key" instead of "tampered".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from operators.backup import archive

if TYPE_CHECKING:
    from operators.backup.storage import ObjectStore

FORMAT = "kubeplane.dev/backup-signature/v1"
DOMAIN = b"kubeplane.dev backup metadata v1\x00"
SECRET_ENV = "KUBEPLANE_BACKUP_SIGNING_SECRET"
DEFAULT_SECRET = "kubeplane-backup-signing-key"
SECRET_KEY = "key"
SECRET_LABEL = "backup.kubeplane.dev/signing-key"  # on the chart's Secret: how the CLI finds it
FIELD = "signature"


class SignatureError(Exception):
    """The backup is not signed, or not by this key, or was changed after it was signed."""


def secret_name() -> str:
    """The name of the Secret (in the operator's namespace) holding the signing key under `key`."""
    return os.environ.get(SECRET_ENV) or DEFAULT_SECRET


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"kubeplane.dev backup signing key id\x00" + key).hexdigest()[:16]


def _mac(key: bytes, name: str, metadata: Mapping[str, Any], checksums: bytes) -> str:
    body = {k: v for k, v in metadata.items() if k != FIELD}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    message = b"".join((DOMAIN, name.encode(), b"\x00", hashlib.sha256(checksums).digest(), b"\x00", canonical))
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(key: bytes, name: str, metadata: Mapping[str, Any], checksums: bytes) -> dict[str, str]:
    """The signature of backup `name`'s metadata object, given its checksums object as stored."""
    return {"format": FORMAT, "keyId": key_id(key), "hmac": _mac(key, name, metadata, checksums)}


def verify(key: bytes, name: str, metadata: Mapping[str, Any], checksums: bytes) -> None:
    """Raise SignatureError unless `metadata` (the stored metadata object, parsed) carries a valid signature
    by `key` for backup `name` and this checksums object."""
    signature = metadata.get(FIELD)
    if not isinstance(signature, Mapping) or signature.get("format") != FORMAT:
        raise SignatureError(f"backup {name!r} is not signed: it was not written by a kubeplane backup operator "
                             "holding a signing key (or was written before backups were signed)")
    if signature.get("keyId") != key_id(key):
        raise SignatureError(f"backup {name!r} is signed with another key (key id {signature.get('keyId')!r}, "
                             f"this operator's is {key_id(key)!r}): to restore another cluster's backups, share "
                             f"its {secret_name()} Secret's value")
    if not hmac.compare_digest(str(signature.get("hmac") or ""), _mac(key, name, metadata, checksums)):
        raise SignatureError(f"backup {name!r} does not match its signature: its metadata or checksums were "
                             "changed after it was written, or it was copied from another name")


async def read_verified(store: ObjectStore, name: str, key: bytes,
                        metadata: Any = None) -> tuple[dict[str, Any], bytes]:
    """Backup `name`'s metadata object (parsed; pass `metadata` when it was read already) and its checksums
    object as stored, once both verify with `key`: what sync, restore, an interrupted run's adoption and the
    CLI read before they trust anything of a backup. Raises SignatureError when they do not verify (a
    metadata object that is not a JSON object is not signed either), ValueError when the metadata object is
    not JSON, StorageError when either object cannot be read."""
    keys = archive.BackupKeys(name)
    if metadata is None:
        metadata = json.loads(await store.get_bytes(keys.metadata))
    if not isinstance(metadata, dict):
        raise SignatureError(f"backup {name!r} is not signed: its metadata object is not a JSON object")
    checksums = await store.get_bytes(keys.checksums)
    verify(key, name, metadata, checksums)
    return metadata, checksums
