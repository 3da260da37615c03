"""The backup object store against the embedded MinIO (real S3 API, real boto3)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from operators.backup.storage import ObjectStore, StorageConfig, StorageError
from tests.faults.tcprelay import TcpRelay


def store_for(minio: dict[str, str], bucket: str, **overrides: str) -> ObjectStore:
    settings = {
        "access_key": minio["MINIO_ROOT_USER"], "secret_key": minio["MINIO_ROOT_PASSWORD"],
        "endpoint_url": minio["MINIO_ENDPOINT"], **overrides,
    }
    return ObjectStore(StorageConfig(bucket=bucket, prefix="kp", **settings))


async def test_round_trip_list_and_delete(minio: dict[str, str]) -> None:
    bucket = f"t-{uuid.uuid4().hex[:8]}"
    store = store_for(minio, bucket)
    await store.create_bucket()
    await store.check_bucket()
    big = bytes(range(256)) * 40_000  # ~10 MB: multipart
    await store.put_stream("backups/b1/b1.tar.gz", io.BytesIO(big))
    await store.put_bytes("backups/b1/kubeplane-backup.json", b"{}")
    await store.put_bytes("backups/b2/kubeplane-backup.json", b"{}")
    assert await store.get_bytes("backups/b1/b1.tar.gz") == big
    assert sorted(await store.list_dirs("backups/")) == ["b1", "b2"]
    assert await store.exists("backups/b1/kubeplane-backup.json")
    assert not await store.exists("backups/b3/kubeplane-backup.json")
    assert await store.delete_prefix("backups/b1/") == 2
    assert await store.list_keys("backups/") == ["backups/b2/kubeplane-backup.json"]


async def test_wrong_credentials_and_missing_bucket_are_explained(minio: dict[str, str]) -> None:
    with pytest.raises(StorageError, match=r"secret key is wrong|access denied"):
        await store_for(minio, "anything", secret_key="not-the-secret").check_bucket()
    with pytest.raises(StorageError, match="does not exist"):
        await store_for(minio, f"missing-{uuid.uuid4().hex[:8]}").check_bucket()


async def test_unreachable_endpoint(minio: dict[str, str]) -> None:
    store = store_for(minio, "x", endpoint_url="http://127.0.0.1:9")
    with pytest.raises(StorageError, match="unreachable"):
        await store.check_bucket()


def test_secret_key_never_in_repr() -> None:
    config = StorageConfig(bucket="b", access_key="AK", secret_key="very-secret")
    assert "very-secret" not in repr(config)


async def test_multipart_writer_streams_parts_and_an_abort_leaves_nothing(minio: dict[str, str]) -> None:
    from operators.backup.storage import MultipartWriter

    bucket = f"t-{uuid.uuid4().hex[:8]}"
    store = store_for(minio, bucket)
    await store.create_bucket()
    data = bytes(range(256)) * 50_000  # 12.8 MB: three 5 MiB parts (S3's minimum), the last smaller

    def write(writer: MultipartWriter, finish: bool) -> None:
        for start in range(0, len(data), 700_000):  # not a divisor of the part size: parts carry a tail over
            writer.write(data[start:start + 700_000])
        if finish:
            writer.close()
        else:
            writer.abort()

    complete = MultipartWriter(store, "backups/b/b.tar.gz", part_bytes=5 << 20)
    assert not await store.exists("backups/b/b.tar.gz")
    await asyncio.to_thread(write, complete, True)
    assert len(complete._parts) == 3
    stream = await store.open_stream("backups/b/b.tar.gz")
    try:
        assert await asyncio.to_thread(stream.read) == data
    finally:
        stream.close()

    abandoned = MultipartWriter(store, "backups/c/c.tar.gz", part_bytes=5 << 20)
    await asyncio.to_thread(write, abandoned, False)
    assert not await store.exists("backups/c/c.tar.gz"), "an aborted upload is no object"

    small = store.multipart_writer("backups/d/small.json")
    await asyncio.to_thread(lambda: (small.write(b"{}"), small.close()))
    assert await store.get_bytes("backups/d/small.json") == b"{}"


@contextlib.contextmanager
def cut_download(minio: dict[str, str], bucket: str) -> Iterator[tuple[TcpRelay, ObjectStore]]:
    """A store reaching MinIO through a relay that cuts the first connection after 1 MiB of answers:
    the store's first request, a GET, breaks there."""
    server = urlsplit(minio["MINIO_ENDPOINT"])
    with TcpRelay(server.hostname or "127.0.0.1", server.port or 80) as relay:
        relay.cut_after(1 << 20)
        yield relay, store_for(minio, bucket, endpoint_url=relay.url)


async def test_a_download_cut_midway_resumes_where_it_stopped(minio: dict[str, str]) -> None:
    """A server may drop a long download: MinIO dropped a 200,000-object restore's read of its tarball
    at 98 %. The relay cuts the download after 1 MiB on purpose: the stream goes on with a ranged GET
    from the byte where it stopped, and every byte is right."""
    bucket = f"t-{uuid.uuid4().hex[:8]}"
    direct = store_for(minio, bucket)
    await direct.create_bucket()
    data = uuid.uuid4().bytes * (5 << 16)  # 5 MiB that no shifted copy matches
    await direct.put_bytes("backups/b/b.tar.gz", data)
    with cut_download(minio, bucket) as (relay, store):
        stream = await store.open_stream("backups/b/b.tar.gz")
        try:
            read = await asyncio.to_thread(stream.read)
        finally:
            stream.close()
        assert relay.cuts == 1, "the fault did not land"
        assert relay.connections == 2  # the first GET, and the ranged one that resumed
        assert len(read) == len(data) and read == data


async def test_an_object_replaced_while_read_is_an_error_not_a_splice(minio: dict[str, str]) -> None:
    """The resume asks for the same object (If-Match on its ETag): when it was replaced between the
    cut and the resume, the read fails with a reason instead of joining two objects."""
    bucket = f"t-{uuid.uuid4().hex[:8]}"
    direct = store_for(minio, bucket)
    await direct.create_bucket()
    await direct.put_bytes("backups/b/b.tar.gz", b"a" * (4 << 20))
    with cut_download(minio, bucket) as (relay, store):
        stream = await store.open_stream("backups/b/b.tar.gz")
        try:
            assert await asyncio.to_thread(stream.read, 512 << 10) == b"a" * (512 << 10)  # before the cut
            await direct.put_bytes("backups/b/b.tar.gz", b"b" * (4 << 20))  # replaced, not through the relay
            with pytest.raises(StorageError, match="changed while it was read"):
                await asyncio.to_thread(stream.read)
        finally:
            stream.close()
        assert relay.cuts == 1
