"""BackupStorageLocations: from the custom resource (and its Secrets) to a usable object store.

The credential Secret holds an AWS shared-credentials file, as Velero's AWS plugin expects:

    [default]
    aws_access_key_id = ...
    aws_secret_access_key = ...

Secret values stay in memory: they never reach logs, Events or status.
"""

from __future__ import annotations

import base64
import configparser
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from operators.backup import crypto, signing
from operators.backup.storage import StorageConfig
from operators.core.kube import ApiError, Kube

GROUP = "backup.kubeplane.dev"
VERSION = "v1alpha1"
ENCRYPTION_KEY_BYTES = 32  # AES-256


class LocationError(Exception):
    """The location cannot be used; the message says why, without secret values."""


def parse_credentials_file(text: str, profile: str = "default") -> tuple[str, str]:
    parser = configparser.ConfigParser()
    try:
        parser.read_string(text)
    except configparser.Error as e:
        raise LocationError(f"the credential is not an AWS credentials file ({type(e).__name__})") from None
    if not parser.has_section(profile):
        raise LocationError(f"the credential has no [{profile}] profile")
    section = parser[profile]
    access, secret = section.get("aws_access_key_id", ""), section.get("aws_secret_access_key", "")
    if not access or not secret:
        raise LocationError("the credential needs aws_access_key_id and aws_secret_access_key")
    return access.strip(), secret.strip()


def storage_config(spec: Mapping[str, Any], credentials: tuple[str, str] | None) -> StorageConfig:
    """StorageConfig from a BackupStorageLocation spec (pure; Secrets already resolved)."""
    config = spec.get("config") or {}
    storage = spec["objectStorage"]
    access, secret = credentials or ("", "")
    return StorageConfig(
        bucket=storage["bucket"],
        prefix=storage.get("prefix") or "",
        endpoint_url=config.get("s3Url") or None,
        region=config.get("region") or "us-east-1",
        force_path_style=config.get("s3ForcePathStyle", "false") == "true",
        insecure_skip_tls_verify=config.get("insecureSkipTLSVerify", "false") == "true",
        ca_bundle=base64.b64decode(storage["caCert"]) if storage.get("caCert") else None,
        access_key=access,
        secret_key=secret,
    )


async def _secret_value(kube: Kube, namespace: str, ref: Mapping[str, str], what: str) -> bytes:
    try:
        secret = await kube.get(f"/api/v1/namespaces/{namespace}/secrets/{ref['name']}")
    except ApiError as e:
        if e.not_found:
            raise LocationError(f"{what} Secret {ref['name']!r} not found in namespace {namespace!r}") from None
        raise
    data = secret.get("data") or {}
    if ref["key"] not in data:
        raise LocationError(f"{what} Secret {ref['name']!r} has no key {ref['key']!r}")
    return base64.b64decode(data[ref["key"]])


@dataclass(frozen=True)
class Location:
    name: str
    namespace: str
    spec: Mapping[str, Any]
    config: StorageConfig
    encryption_key: bytes | None
    signing_key: bytes  # signing.py: never sent to the bucket

    @property
    def read_only(self) -> bool:
        return self.spec.get("accessMode") == "ReadOnly"


async def resolve(kube: Kube, bsl: Mapping[str, Any]) -> Location:
    """Read a location's Secrets and build its storage settings; LocationError says what is wrong."""
    meta, spec = bsl["metadata"], bsl["spec"]
    namespace = meta["namespace"]
    credentials = None
    if spec.get("credential"):
        raw = await _secret_value(kube, namespace, spec["credential"], "credential")
        credentials = parse_credentials_file(raw.decode("utf-8", errors="replace"))
    key = None
    if spec.get("encryption"):
        raw_key = await _secret_value(kube, namespace, spec["encryption"]["keySecret"], "encryption key")
        try:
            key = crypto.parse_key(raw_key)
        except ValueError:
            raise LocationError(
                f"the encryption key must be {ENCRYPTION_KEY_BYTES} bytes (raw, 64 hex digits or base64); create one "
                "with: head -c 32 /dev/urandom > key && kubectl create secret generic NAME --from-file=key"
            ) from None
    signing_key = await _signing_key(kube, namespace)
    config = storage_config(spec, credentials)
    if config.ca_bundle is not None:
        try:
            ssl.create_default_context(cadata=config.ca_bundle.decode("ascii", errors="replace"))
        except (ssl.SSLError, ValueError) as e:
            raise LocationError(f"objectStorage.caCert is not a PEM CA bundle (base64 of the PEM text): {e}") from None
    return Location(meta["name"], namespace, spec, config, key, signing_key)


async def _signing_key(kube: Kube, namespace: str) -> bytes:
    """The installation's backup signing key (signing.py), from its Secret in the location's namespace."""
    name = signing.secret_name()
    if not os.environ.get(signing.SECRET_ENV):
        # The CLI, next to a release not named kubeplane: the chart labels the Secret it made.
        try:
            found = (await kube.get(f"/api/v1/namespaces/{namespace}/secrets",
                                    labelSelector=f"{signing.SECRET_LABEL}=true")).get("items") or []
        except ApiError:
            found = []  # may not list Secrets: the default name it is
        if len(found) == 1:
            name = found[0]["metadata"]["name"]
    hint = (f"the chart creates it; otherwise: head -c 32 /dev/urandom > key && kubectl -n {namespace} create "
            f"secret generic {name} --from-file=key (clusters restoring each other's backups share its value)")
    try:
        raw = await _secret_value(kube, namespace, {"name": name, "key": signing.SECRET_KEY}, "backup signing key")
        return crypto.parse_key(raw)
    except LocationError as e:
        raise LocationError(f"{e}; {hint}") from None
    except ValueError:
        raise LocationError(f"the backup signing key in Secret {name!r} must be 32 bytes (raw, 64 hex digits or "
                            f"base64); {hint}") from None


async def get_location(kube: Kube, namespace: str, name: str | None) -> Mapping[str, Any]:
    """The named location, or the default one (`spec.default: true`) when no name is given."""
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/backupstoragelocations"
    if name:
        try:
            return await kube.get(f"{path}/{name}")
        except ApiError as e:
            if e.not_found:
                raise LocationError(f"BackupStorageLocation {name!r} not found in namespace {namespace!r}") from None
            raise
    defaults = [item for item in await kube.list_all(path) if (item.get("spec") or {}).get("default")]
    if not defaults:
        raise LocationError(f"no storageLocation given and no default BackupStorageLocation in {namespace!r}")
    if len(defaults) > 1:
        names = ", ".join(sorted(d["metadata"]["name"] for d in defaults))
        raise LocationError(f"more than one default BackupStorageLocation ({names}); mark only one default")
    for item in defaults:
        item.setdefault("apiVersion", f"{GROUP}/{VERSION}")
        item.setdefault("kind", "BackupStorageLocation")
    return defaults[0]
