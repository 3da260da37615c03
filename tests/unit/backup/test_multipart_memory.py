"""The multipart writer holds about one part, not three: the part handed to the client is the buffer itself,
and only the tail written past it is copied out. A pure unit test over a stub client (the integration test
in tests/integration/test_storage.py streams parts into real MinIO)."""

from __future__ import annotations

import hashlib
import tracemalloc
from typing import Any

from operators.backup.storage import MultipartWriter, ObjectStore, StorageConfig

PART = 4 << 20


class Client:
    """Hashes each part as it arrives (keeping no copy) and remembers the sizes."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.digest = hashlib.sha256()

    def create_multipart_upload(self, **_: Any) -> dict[str, Any]:
        return {"UploadId": "u"}

    def upload_part(self, Body: bytes | bytearray, PartNumber: int, **_: Any) -> dict[str, Any]:
        self.sizes.append(len(Body))
        self.digest.update(Body)
        return {"ETag": f"e{PartNumber}"}

    def complete_multipart_upload(self, MultipartUpload: dict[str, Any], **_: Any) -> dict[str, Any]:
        assert [p["PartNumber"] for p in MultipartUpload["Parts"]] == list(range(1, len(self.sizes) + 1))
        return {}


def test_parts_carry_tails_over_in_order_and_the_writer_holds_about_one_part() -> None:
    client = Client()
    store = ObjectStore(StorageConfig(bucket="b", prefix="p", endpoint_url="http://127.0.0.1:1"))
    store._client = client
    data = bytes(range(256)) * ((3 * PART + PART // 3) // 256)
    view = memoryview(data)
    step = 300_007  # no divisor of the part size: every part ends inside a write
    writer = MultipartWriter(store, "backups/b/b.tar.gz", part_bytes=PART)
    tracemalloc.start()
    try:
        for start in range(0, len(data), step):
            writer.write(view[start:start + step])
        peak = tracemalloc.get_traced_memory()[1]
        writer.close()
    finally:
        tracemalloc.stop()
    assert client.sizes == [PART, PART, PART, len(data) - 3 * PART]
    assert client.digest.digest() == hashlib.sha256(data).digest()
    # One part plus the write that filled it; copying the part out (slice, then bytes) peaked near 3 parts.
    assert peak < PART + 2 * step, f"the writer peaked at {peak / PART:.2f} parts"
