"""Object storage for backups: an S3 bucket (MinIO or any S3 API) through boto3.

boto3 is synchronous, so every call runs in a worker thread (`asyncio.to_thread`): the operator's
event loop never waits on the network. Nothing is ever held whole, in memory or on disk: a tarball is
written straight into a multipart upload (`MultipartWriter`, one part in memory at a time), and read
back as a stream (`open_stream`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import boto3
import urllib3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger(__name__)


class StorageError(Exception):
    """A storage problem phrased for a human: what failed, and the likely cause."""


@dataclass(frozen=True)
class StorageConfig:
    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None  # e.g. http://127.0.0.1:19000 for MinIO; None = AWS
    region: str = "us-east-1"
    force_path_style: bool = True  # MinIO needs path-style addressing
    insecure_skip_tls_verify: bool = False
    ca_bundle: bytes | None = None  # PEM: the CAs a TLS endpoint is verified against (objectStorage.caCert)
    access_key: str = field(default="", repr=False)
    secret_key: str = field(default="", repr=False)  # never in repr, logs or status


def _explain(error: Exception, action: str, bucket: str) -> StorageError:
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        hints = {
            "NoSuchBucket": f"bucket {bucket!r} does not exist",
            "InvalidAccessKeyId": "the access key is not known to the storage server (check the credential Secret)",
            "SignatureDoesNotMatch": "the secret key is wrong (check the credential Secret)",
            "AccessDenied": f"the credentials may not access bucket {bucket!r}",
            "403": "access denied: wrong credentials or no permission on the bucket",
            "404": f"bucket {bucket!r} or the object does not exist",
            "PreconditionFailed": "the object changed while it was read; it was not read to its end",
            "412": "the object changed while it was read; it was not read to its end",
        }
        return StorageError(f"{action}: {hints.get(code, code or str(error))}")
    return StorageError(f"{action}: storage unreachable ({error})")


class _Body(io.RawIOBase):
    """A GET's body as a raw stream whose failures are StorageError. A read that breaks midway (the
    server dropped the connection: MinIO did, 98 % into a slow 200,000-object restore) goes on with
    a ranged GET from the first byte not yet read, of the same object (If-Match on its ETag: a changed
    object is an error, never a splice), up to RESUMES times in a row without a byte read between."""

    RESUMES = 3

    def __init__(self, client: Any, bucket: str, key: str, action: str) -> None:
        super().__init__()
        self._client, self._bucket, self._key, self._action = client, bucket, key, action
        response = client.get_object(Bucket=bucket, Key=key)
        self._body, self._etag = response["Body"], response.get("ETag")
        self._position = 0  # bytes handed out
        self._failures = 0  # broken reads since the last byte read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while True:
            try:
                data = self._body.read(len(buffer))
            except (ClientError, BotoCoreError, urllib3.exceptions.HTTPError) as e:
                self._resume(e)
                continue
            if data:
                self._position += len(data)
                self._failures = 0
            buffer[: len(data)] = data
            return len(data)

    def _resume(self, error: Exception) -> None:
        self._failures += 1
        if self._failures > self.RESUMES:
            raise StorageError(f"{self._action}: the connection failed midway {self._failures} times in a row "
                               f"at byte {self._position}: {error}") from error
        logger.warning("%s: the connection failed at byte %d (%s); resuming there",
                       self._action, self._position, error)
        with contextlib.suppress(Exception):
            self._body.close()
        time.sleep(0.2 * self._failures)  # a worker thread reads this stream, never the event loop
        extra = {"IfMatch": self._etag} if self._etag else {}
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=self._key, Range=f"bytes={self._position}-",
                                               **extra)
        except (ClientError, BotoCoreError) as e:  # a replaced object: PreconditionFailed
            raise _explain(e, self._action, self._bucket) from e
        self._body = response["Body"]

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


_ca_files: dict[str, str] = {}


def ca_file(bundle: bytes) -> str:
    """A file holding `bundle` (botocore verifies against a path), written once per content."""
    digest = hashlib.sha256(bundle).hexdigest()[:16]
    if digest not in _ca_files:
        # A few kilobytes, once per CA bundle per process: not worth a thread.
        path = os.path.join(tempfile.gettempdir(), f"kubeplane-ca-{os.getpid()}-{digest}.pem")
        with open(path, "wb") as out:
            out.write(bundle)
        _ca_files[digest] = path
    return _ca_files[digest]


class ObjectStore:
    """Keys are relative to the location's prefix: `backups/<name>/...`."""

    def __init__(self, config: StorageConfig) -> None:
        self.config = config
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=config.endpoint_url,
            region_name=config.region,
            aws_access_key_id=config.access_key or None,
            aws_secret_access_key=config.secret_key or None,
            verify=False if config.insecure_skip_tls_verify else (
                ca_file(config.ca_bundle) if config.ca_bundle else True),
            config=Config(
                s3={"addressing_style": "path" if config.force_path_style else "auto"},
                connect_timeout=5,
                read_timeout=60,
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        )

    def _key(self, key: str) -> str:
        prefix = self.config.prefix.strip("/")
        return f"{prefix}/{key}" if prefix else key

    async def _call(self, action: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except (ClientError, BotoCoreError) as e:
            raise _explain(e, action, self.config.bucket) from e

    async def check_bucket(self) -> None:
        """Raise StorageError unless the bucket exists and these credentials can read it."""
        await self._call(f"checking bucket {self.config.bucket!r}", self._client.head_bucket, Bucket=self.config.bucket)

    async def create_bucket(self) -> None:
        await self._call(f"creating bucket {self.config.bucket!r}", self._client.create_bucket,
                         Bucket=self.config.bucket)

    async def put_stream(self, key: str, stream: IO[bytes]) -> None:
        """Upload from a file object through a `MultipartWriter`: one part in memory at a time. (boto3's
        `upload_fileobj` reads every part of a file object into memory before its threads send them: the
        whole ~70 MB checksum manifest of a 200,000-object backup at once.)"""
        def copy() -> None:
            writer = self.multipart_writer(key)
            try:
                while chunk := stream.read(1 << 20):
                    writer.write(chunk)
            except BaseException:
                writer.abort()
                raise
            writer.close()
        await self._call(f"uploading {key}", copy)

    async def put_bytes(self, key: str, data: bytes) -> None:
        await self._call(f"uploading {key}", self._client.put_object, Bucket=self.config.bucket,
                         Key=self._key(key), Body=data)

    async def get_bytes(self, key: str) -> bytes:
        def read() -> bytes:
            body = self._client.get_object(Bucket=self.config.bucket, Key=self._key(key))["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()
        result: bytes = await self._call(f"downloading {key}", read)
        return result

    def multipart_writer(self, key: str) -> MultipartWriter:
        return MultipartWriter(self, key)

    async def open_stream(self, key: str) -> IO[bytes]:
        """The object as a readable stream (read it in a worker thread; close it when done). A read
        that breaks midway resumes where it stopped (`_Body`); one that cannot raises StorageError,
        as every other call here does."""
        action = f"downloading {key}"
        body = await self._call(action, _Body, self._client, self.config.bucket, self._key(key), action)
        return io.BufferedReader(body, buffer_size=1 << 20)

    async def get_to_file(self, key: str, target: IO[bytes]) -> None:
        """Download into a file object in chunks."""
        await self._call(f"downloading {key}", self._client.download_fileobj, self.config.bucket, self._key(key),
                         target)

    async def exists(self, key: str) -> bool:
        try:
            await self._call(f"looking up {key}", self._client.head_object, Bucket=self.config.bucket,
                             Key=self._key(key))
        except StorageError as e:
            if isinstance(e.__cause__, ClientError) and e.__cause__.response.get("Error", {}).get("Code") in (
                "404", "NoSuchKey", "NotFound",
            ):
                return False
            raise
        return True

    async def list_keys(self, prefix: str) -> list[str]:
        """Every key under `prefix` (relative to the location's prefix), across pages."""
        def collect() -> list[str]:
            keys: list[str] = []
            strip = len(self._key(""))
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.config.bucket, Prefix=self._key(prefix)):
                keys.extend(item["Key"][strip:] for item in page.get("Contents", []))
            return keys
        result: list[str] = await self._call(f"listing {prefix}", collect)
        return result

    async def list_dirs(self, prefix: str) -> list[str]:
        """The immediate 'subdirectories' under `prefix` (e.g. backup names under `backups/`)."""
        def collect() -> list[str]:
            names: list[str] = []
            base = self._key(prefix)
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.config.bucket, Prefix=base, Delimiter="/"):
                names.extend(p["Prefix"][len(base):].rstrip("/") for p in page.get("CommonPrefixes", []))
            return names
        result: list[str] = await self._call(f"listing {prefix}", collect)
        return result

    async def delete_prefix(self, prefix: str, *, first: str | None = None) -> int:
        """Delete every object under `prefix`, `first` (if there) before the others; return how many.

        S3 answers a batch delete with 200 and lists the keys it could not delete (object lock, a
        partial outage): any such key raises StorageError, and nothing after it is deleted. With the
        metadata object as `first`, a backup that could not be deleted stays whole."""
        keys = await self.list_keys(prefix)
        ordered = [k for k in keys if k == first] + [k for k in keys if k != first]

        def delete() -> None:
            batches = [ordered[:1], ordered[1:]] if first in keys else [ordered]
            for group in batches:
                for batch in _chunks([self._key(k) for k in group], 1000):
                    answer = self._client.delete_objects(
                        Bucket=self.config.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
                    )
                    errors = answer.get("Errors") or []
                    if errors:
                        shown = "; ".join(f"{e.get('Key')}: {e.get('Code')} {e.get('Message', '')}".strip()
                                          for e in errors[:3])
                        raise StorageError(f"deleting {prefix}: {len(errors)} object(s) could not be deleted "
                                           f"({shown})")
        await self._call(f"deleting {prefix}", delete)
        return len(keys)


PART_BYTES = 8 << 20  # S3's minimum part is 5 MiB (except the last); 10,000 parts make 80 GiB


class MultipartWriter(io.RawIOBase):
    """A synchronous, write-only file that streams into an S3 multipart upload.

    Written from worker threads (the archive writer runs off the event loop), one part buffered at a
    time. `close()` completes the upload: only then does the object exist, so a run cut short leaves
    nothing that looks like a tarball. `abort()` drops the parts uploaded so far; a process killed
    before either leaves an incomplete upload, which the bucket's lifecycle rules (or `mc` / the S3
    API's AbortIncompleteMultipartUpload) clean up, and which is never listed as an object."""

    def __init__(self, store: ObjectStore, key: str, part_bytes: int = PART_BYTES) -> None:
        super().__init__()
        self._store = store
        self._key = store._key(key)
        self._part_bytes = part_bytes
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._upload_id: str | None = None
        self._done = False
        self.written = 0

    def writable(self) -> bool:
        return True

    def _call(self, action: str, fn: Any, **kwargs: Any) -> Any:
        try:
            return fn(Bucket=self._store.config.bucket, Key=self._key, **kwargs)
        except (ClientError, BotoCoreError) as e:
            raise _explain(e, action, self._store.config.bucket) from e

    def _flush_part(self, data: bytes | bytearray) -> None:
        client = self._store._client
        if self._upload_id is None:
            self._upload_id = self._call(f"starting the upload of {self._key}",
                                         client.create_multipart_upload)["UploadId"]
        number = len(self._parts) + 1
        answer = self._call(f"uploading part {number} of {self._key}", client.upload_part,
                            UploadId=self._upload_id, PartNumber=number, Body=data)
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if self._done:
            raise ValueError("write to a finished upload")
        self._buffer += data
        self.written += len(data)
        while len(self._buffer) >= self._part_bytes:
            # The full buffer becomes the part and only the tail past it is copied out: slicing the part
            # would hold it twice more (the slice and its bytes) on top of the buffer.
            part, self._buffer = self._buffer, self._buffer[self._part_bytes:]
            del part[self._part_bytes:]
            self._flush_part(part)
        return len(data)

    def close(self) -> None:
        """Upload what is left and complete the upload (a small object is one plain PUT)."""
        if self._done or self.closed:
            super().close()
            return
        self._done = True
        client = self._store._client
        if self._upload_id is None:
            self._call(f"uploading {self._key}", client.put_object, Body=self._buffer)
        else:
            if self._buffer:
                self._flush_part(self._buffer)
            self._call(f"completing the upload of {self._key}", client.complete_multipart_upload,
                       UploadId=self._upload_id, MultipartUpload={"Parts": self._parts})
        self._buffer.clear()
        super().close()

    def abort(self) -> None:
        """Drop the upload: no object appears."""
        self._done = True
        self._buffer.clear()
        if self._upload_id is not None:
            try:
                self._call(f"aborting the upload of {self._key}", self._store._client.abort_multipart_upload,
                           UploadId=self._upload_id)
            except StorageError:
                pass  # an incomplete upload is never an object; lifecycle rules clean it up
        super().close()


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
