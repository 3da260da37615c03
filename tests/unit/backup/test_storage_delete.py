"""Batch deletes: S3 answers 200 and lists the keys it could not delete (M3). A pure unit test over a
stub client (the integration tests use real MinIO)."""

from __future__ import annotations

from typing import Any

import pytest

from operators.backup.storage import ObjectStore, StorageConfig, StorageError

KEYS = ["backups/b/b.tar.gz", "backups/b/kubeplane-backup.json", "backups/b/b-logs.gz"]


class Paginator:
    def __init__(self, keys: list[str]) -> None:
        self.keys = keys

    def paginate(self, **_: Any) -> list[dict[str, Any]]:
        return [{"Contents": [{"Key": f"p/{k}"} for k in self.keys]}]


class Client:
    def __init__(self, locked: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.locked = locked
        self.calls: list[list[str]] = []

    def get_paginator(self, _: str) -> Paginator:
        return Paginator(KEYS)

    def delete_objects(self, Bucket: str, Delete: dict[str, Any]) -> dict[str, Any]:
        keys = [o["Key"] for o in Delete["Objects"]]
        self.calls.append(keys)
        errors = [{"Key": k, "Code": "AccessDenied", "Message": "object is WORM protected"}
                  for k in keys if k in self.locked]
        return {"Errors": errors} if errors else {}


def store(client: Client) -> ObjectStore:
    s = ObjectStore(StorageConfig(bucket="b", prefix="p", endpoint_url="http://127.0.0.1:1"))
    s._client = client
    return s


async def test_the_first_key_goes_alone_and_first():
    client = Client()
    assert await store(client).delete_prefix("backups/b/", first="backups/b/kubeplane-backup.json") == 3
    assert client.calls == [["p/backups/b/kubeplane-backup.json"], ["p/backups/b/b.tar.gz", "p/backups/b/b-logs.gz"]]


async def test_keys_the_server_refused_to_delete_raise_and_stop_the_rest():
    client = Client(locked={"p/backups/b/kubeplane-backup.json"})
    with pytest.raises(StorageError, match=r"1 object\(s\) could not be deleted .*AccessDenied"):
        await store(client).delete_prefix("backups/b/", first="backups/b/kubeplane-backup.json")
    assert client.calls == [["p/backups/b/kubeplane-backup.json"]], "nothing else deleted: the backup stays whole"
