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

import asyncio
import hashlib
import hmac
import json
import os
import tempfile
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

from operators.backup import archive, crypto

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


def _mac(key: bytes, name: str, metadata: Mapping[str, Any], checksums_sha256: bytes) -> str:
    body = {k: v for k, v in metadata.items() if k != FIELD}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    message = b"".join((DOMAIN, name.encode(), b"\x00", checksums_sha256, b"\x00", canonical))
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(key: bytes, name: str, metadata: Mapping[str, Any], checksums_sha256: bytes) -> dict[str, str]:
    """The signature of backup `name`'s metadata object, given the sha256 of its checksums object as stored."""
    return {"format": FORMAT, "keyId": key_id(key), "hmac": _mac(key, name, metadata, checksums_sha256)}


def verify(key: bytes, name: str, metadata: Mapping[str, Any], checksums_sha256: bytes) -> None:
    """Raise SignatureError unless `metadata` (the stored metadata object, parsed) carries a valid signature
    by `key` for backup `name` and the checksums object with this sha256."""
    signature = metadata.get(FIELD)
    if not isinstance(signature, Mapping) or signature.get("format") != FORMAT:
        raise SignatureError(f"backup {name!r} is not signed: it was not written by a kubeplane backup operator "
                             "holding a signing key (or was written before backups were signed)")
    if signature.get("keyId") != key_id(key):
        raise SignatureError(f"backup {name!r} is signed with another key (key id {signature.get('keyId')!r}, "
                             f"this operator's is {key_id(key)!r}): to restore another cluster's backups, share "
                             f"its {secret_name()} Secret's value")
    if not hmac.compare_digest(str(signature.get("hmac") or ""), _mac(key, name, metadata, checksums_sha256)):
        raise SignatureError(f"backup {name!r} does not match its signature: its metadata or checksums were "
                             "changed after it was written, or it was copied from another name")


async def read_verified(store: ObjectStore, name: str, key: bytes, metadata: Any = None,
                        into: IO[bytes] | None = None) -> dict[str, Any]:
    """Backup `name`'s metadata object (parsed; pass `metadata` when it was read already), once it and its
    checksums object verify with `key`: what sync, restore, an interrupted run's adoption and the CLI read
    before they trust anything of a backup. The checksums object (~34 MiB at 100,000 objects) streams
    through the hash into `into` when given (a file: it is read only after it verified), nowhere otherwise.
    Raises SignatureError when they do not verify (a metadata object that is not a JSON object is not
    signed either), ValueError when the metadata object is not JSON, StorageError when either object
    cannot be read."""
    keys = archive.BackupKeys(name)
    if metadata is None:
        metadata = json.loads(await store.get_bytes(keys.metadata))
    if not isinstance(metadata, dict):
        raise SignatureError(f"backup {name!r} is not signed: its metadata object is not a JSON object")
    body = await store.open_stream(keys.checksums)

    def digest() -> bytes:
        sha = hashlib.sha256()
        with body:
            while chunk := body.read(1 << 20):
                sha.update(chunk)
                if into is not None:
                    into.write(chunk)
        return sha.digest()

    verify(key, name, metadata, await asyncio.to_thread(digest))
    return metadata


async def read_manifest(store: ObjectStore, name: str, signing_key: bytes,
                        encryption_key: bytes | None) -> archive.Manifest:
    """Backup `name`'s checksum manifest, once its metadata and checksums objects verify (`read_verified`):
    streamed into a temporary file, decrypted into another when the location encrypts, and parsed from
    there into its on-disk table (archive.Manifest.read), in a worker thread. Raises as `read_verified`,
    and crypto.DecryptionError / archive.ArchiveRejected for what fails after it."""
    stored = tempfile.TemporaryFile()
    try:
        await read_verified(store, name, signing_key, into=stored)

        def parse() -> archive.Manifest:
            source = stored
            stored.seek(0)
            if encryption_key is not None:  # the plaintext in a file of its own, the ciphertext dropped
                source = tempfile.TemporaryFile()
                for piece in crypto.decrypt_iter(stored, encryption_key, context=archive.BackupKeys(name).checksums):
                    source.write(piece)
                stored.close()
                source.seek(0)
            with source:
                return archive.Manifest.read(source)
        return await asyncio.to_thread(parse)
    finally:
        stored.close()
