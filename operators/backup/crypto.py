"""Client-side encryption of stored objects: AES-256-GCM in a chunked, streaming format.

Velero stores everything, Secrets included, in plaintext (its issue 434). With a key configured,
every object kubeplane writes is sealed before it leaves the operator:

    header   = magic "KPLENC" | version 2 (1 byte) | chunk size (4 bytes, big-endian) | nonce prefix (8 bytes)
               | key id (8 bytes) | context length (2 bytes) | context (the object's key: backups/<name>/<file>)
    chunk i  = AES-256-GCM(key, nonce = prefix | i (4 bytes), plaintext[i], aad = header | i (8 bytes) | final)

Each chunk holds `chunk size` bytes of plaintext, the last one 0 to `chunk size` bytes and the
final flag. The header is authenticated with every chunk, the index orders the chunks and the
flag marks the end, so a changed header, a reordered, dropped, duplicated or altered chunk, a
truncation (even at a chunk boundary) and appended data all fail to decrypt. A fresh random nonce
prefix per object keeps nonces unique under one key.

The key id (a hash of the key, not the key) says which key sealed an object, so a wrong or rotated key
is named as such before any decryption is tried. The context binds the object to the name it was
written under: an object copied to another backup's (or file's) key is refused when read under the
new one, even though the same key opens it. Version 1 objects (no key id, no context; written before
both existed) still open, without those two checks.

Needs the `cryptography` package.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
from collections.abc import Iterable, Iterator
from typing import IO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"KPLENC"
VERSION = 2
VERSIONS = (1, 2)  # what opens
KEY_BYTES = 32
PREFIX_BYTES = 8
KEY_ID_BYTES = 8
TAG_BYTES = 16
V1_HEADER_BYTES = len(MAGIC) + 1 + 4 + PREFIX_BYTES
HEADER_BYTES = V1_HEADER_BYTES + KEY_ID_BYTES + 2  # version 2, before its context
MAX_CONTEXT = 1024
DEFAULT_CHUNK = 64 * 1024
MIN_CHUNK = 1024
MAX_CHUNK = 16 * 1024 * 1024
_MAX_CHUNKS = 2**32
_READ = 1 << 16


class DecryptionError(Exception):
    """The data is not ours, was changed, truncated or extended, or the key is wrong."""


def parse_key(value: bytes | str) -> bytes:
    """A 256-bit key from a Secret value: 32 raw bytes, 64 hex digits or base64 of 32 bytes."""
    raw = value.encode() if isinstance(value, str) else bytes(value)
    if len(raw) == KEY_BYTES and not all(32 <= b < 127 for b in raw):
        return raw
    # 32 printable characters: a passphrase (random bytes are all printable once in 10^13), not a key.
    text = raw.strip()
    if len(text) == 2 * KEY_BYTES:
        try:
            return binascii.unhexlify(text)
        except binascii.Error:
            pass
    try:
        decoded = base64.b64decode(text, validate=True)
    except binascii.Error:
        decoded = b""
    if len(decoded) == KEY_BYTES:
        return decoded
    raise ValueError("an encryption key must be 32 bytes: raw, as 64 hex digits, or base64-encoded")


def generate_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def is_encrypted(head: bytes) -> bool:
    """Whether data starting with `head` is in this format (magic and a version that opens)."""
    return head[: len(MAGIC)] == MAGIC and len(head) > len(MAGIC) and head[len(MAGIC)] in VERSIONS


def key_id(key: bytes) -> bytes:
    """What the header names a key by: a hash of it, which does not reveal it."""
    return hashlib.sha256(b"kubeplane.dev encryption key id\x00" + key).digest()[:KEY_ID_BYTES]


def _aead(key: bytes) -> AESGCM:
    if len(key) != KEY_BYTES:
        raise ValueError(f"AES-256 needs a {KEY_BYTES}-byte key, got {len(key)} bytes")
    return AESGCM(key)


def _aad(header: bytes, index: int, final: bool) -> bytes:
    return header + index.to_bytes(8, "big") + (b"\x01" if final else b"\x00")


class _Sealer:
    def __init__(self, key: bytes, chunk_size: int, context: str = "", nonce_prefix: bytes | None = None) -> None:
        if not MIN_CHUNK <= chunk_size <= MAX_CHUNK:
            raise ValueError(f"chunk size must be between {MIN_CHUNK} and {MAX_CHUNK}")
        self._aead = _aead(key)
        self._chunk = chunk_size
        self._prefix = os.urandom(PREFIX_BYTES) if nonce_prefix is None else nonce_prefix
        if len(self._prefix) != PREFIX_BYTES:
            raise ValueError(f"nonce prefix must be {PREFIX_BYTES} bytes")
        bound = context.encode()
        if len(bound) > MAX_CONTEXT:
            raise ValueError(f"context longer than {MAX_CONTEXT} bytes")
        self.header = (MAGIC + bytes([VERSION]) + chunk_size.to_bytes(4, "big") + self._prefix + key_id(key)
                       + len(bound).to_bytes(2, "big") + bound)
        self._index = 0
        self._buffer = bytearray()
        self.finished = False

    def _seal(self, plaintext: bytes, final: bool) -> bytes:
        if self._index >= _MAX_CHUNKS:
            raise ValueError("too much data for one encrypted object")
        nonce = self._prefix + self._index.to_bytes(4, "big")
        sealed = self._aead.encrypt(nonce, plaintext, _aad(self.header, self._index, final))
        self._index += 1
        return sealed

    def feed(self, data: bytes) -> list[bytes]:
        if self.finished:
            raise ValueError("write after close")
        self._buffer += data
        out = []
        # A chunk is sealed only once more data follows it: only then is it certainly not the last.
        while len(self._buffer) > self._chunk:
            out.append(self._seal(bytes(self._buffer[: self._chunk]), final=False))
            del self._buffer[: self._chunk]
        return out

    def finish(self) -> bytes:
        if self.finished:
            return b""
        self.finished = True
        sealed = self._seal(bytes(self._buffer), final=True)
        self._buffer.clear()
        return sealed


class _Opener:
    def __init__(self, key: bytes, context: str | None = None) -> None:
        self._aead = _aead(key)
        self._key_id = key_id(key)
        self._context = context
        self._header: bytes | None = None
        self._prefix = b""
        self._record = 0
        self._index = 0
        self._buffer = bytearray()
        self.finished = False

    def _header_length(self) -> int | None:
        """How long the header at the buffer's start is; None until enough of it is there to say."""
        if len(self._buffer) <= len(MAGIC):
            return None
        if not is_encrypted(bytes(self._buffer[: len(MAGIC) + 1])):
            raise DecryptionError("not encrypted by kubeplane (unknown header)")
        if self._buffer[len(MAGIC)] == 1:
            return V1_HEADER_BYTES
        if len(self._buffer) < HEADER_BYTES:
            return None
        length = int.from_bytes(self._buffer[HEADER_BYTES - 2 : HEADER_BYTES], "big")
        if length > MAX_CONTEXT:
            raise DecryptionError(f"invalid context length {length} in header")
        return HEADER_BYTES + length

    def _parse_header(self, length: int) -> None:
        header = bytes(self._buffer[:length])
        chunk = int.from_bytes(header[len(MAGIC) + 1 : len(MAGIC) + 5], "big")
        if not MIN_CHUNK <= chunk <= MAX_CHUNK:
            raise DecryptionError(f"invalid chunk size {chunk} in header")
        if header[len(MAGIC)] != 1:
            sealed_by = header[V1_HEADER_BYTES:V1_HEADER_BYTES + KEY_ID_BYTES]
            if sealed_by != self._key_id:
                raise DecryptionError(f"encrypted with another key (key id {sealed_by.hex()}; this location's key "
                                      f"has id {self._key_id.hex()})")
            context = header[HEADER_BYTES:].decode(errors="replace")
            if self._context is not None and context != self._context:
                raise DecryptionError(f"written as {context!r}, read as {self._context!r}: an object copied from "
                                      "another name")
        self._header = header
        self._prefix = header[len(MAGIC) + 5 : V1_HEADER_BYTES]
        self._record = chunk + TAG_BYTES
        del self._buffer[:length]

    def _open(self, sealed: bytes, final: bool) -> bytes:
        assert self._header is not None
        if self._index >= _MAX_CHUNKS:
            raise DecryptionError("too many chunks")
        nonce = self._prefix + self._index.to_bytes(4, "big")
        try:
            plaintext = self._aead.decrypt(nonce, sealed, _aad(self._header, self._index, final))
        except InvalidTag as e:
            raise DecryptionError(
                f"chunk {self._index} fails authentication: wrong key, or the data was altered, "
                "reordered, truncated or extended") from e
        self._index += 1
        return plaintext

    def feed(self, data: bytes) -> list[bytes]:
        if self.finished:
            raise DecryptionError("data after the end")
        self._buffer += data
        if self._header is None:
            length = self._header_length()
            if length is None or len(self._buffer) < length:
                return []
            self._parse_header(length)
        out = []
        while len(self._buffer) > self._record:
            out.append(self._open(bytes(self._buffer[: self._record]), final=False))
            del self._buffer[: self._record]
        return out

    def finish(self) -> bytes:
        if self.finished:
            return b""
        self.finished = True
        if self._header is None:
            raise DecryptionError("truncated: no complete header")
        if len(self._buffer) < TAG_BYTES:
            raise DecryptionError("truncated: the final chunk is missing")
        plaintext = self._open(bytes(self._buffer), final=True)
        self._buffer.clear()
        return plaintext


def _pieces(source: bytes | IO[bytes]) -> Iterator[bytes]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield bytes(source)
        return
    while piece := source.read(_READ):
        yield piece


def encrypt_iter(source: bytes | IO[bytes], key: bytes, chunk_size: int = DEFAULT_CHUNK,
                 context: str = "") -> Iterator[bytes]:
    """The encrypted form of `source` (bytes or a readable stream), piece by piece, bound to `context`
    (the object's key)."""
    sealer = _Sealer(key, chunk_size, context)
    yield sealer.header
    for piece in _pieces(source):
        yield from sealer.feed(piece)
    yield sealer.finish()


def decrypt_iter(source: bytes | IO[bytes], key: bytes, context: str | None = None) -> Iterator[bytes]:
    """The plaintext of `source`, piece by piece. Every piece yielded is authenticated, but only
    reaching the end proves nothing was cut off: consume it all before trusting the whole. With a
    `context`, an object sealed for another one is refused (version 2)."""
    opener = _Opener(key, context)
    for piece in _pieces(source):
        yield from opener.feed(piece)
    yield opener.finish()


def encrypt(data: bytes | IO[bytes], key: bytes, chunk_size: int = DEFAULT_CHUNK, context: str = "") -> bytes:
    return b"".join(encrypt_iter(data, key, chunk_size, context))


def decrypt(data: bytes | IO[bytes], key: bytes, context: str | None = None) -> bytes:
    return b"".join(decrypt_iter(data, key, context))


def seal(data: bytes, key: bytes | None, object_key: str) -> bytes:
    """What a small object is stored as: encrypted and bound to `object_key` when the location has a key,
    as it is otherwise."""
    return encrypt(data, key, context=object_key) if key is not None else data


class EncryptingWriter(io.RawIOBase):
    """A writable file object that encrypts into `sink`; `close()` seals the final chunk (and does
    not close `sink`). Lets the archive writer stream straight into an encrypted upload.

    Only an explicit `close()` seals: `abort()`, or a writer dropped without closing, leaves the
    output without its final chunk, so a half-written stream can never decrypt as complete.
    """

    def __init__(self, sink: IO[bytes], key: bytes, chunk_size: int = DEFAULT_CHUNK, context: str = "") -> None:
        super().__init__()
        self._sink = sink
        self._sealer = _Sealer(key, chunk_size, context)
        self._aborted = False
        sink.write(self._sealer.header)

    def abort(self) -> None:
        self._aborted = True
        super().close()

    def __del__(self) -> None:
        if not self.closed:
            self.abort()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        for sealed in self._sealer.feed(bytes(data)):
            self._sink.write(sealed)
        return len(data)

    def close(self) -> None:
        if not self.closed and not self._aborted:
            self._sink.write(self._sealer.finish())
            self._sink.flush()
        super().close()


class DecryptingWriter(io.RawIOBase):
    """A writable file object taking ciphertext and writing plaintext into `sink` (for downloads
    that write into a file object). `close()` raises DecryptionError if the data was truncated."""

    def __init__(self, sink: IO[bytes], key: bytes, context: str | None = None) -> None:
        super().__init__()
        self._sink = sink
        self._opener = _Opener(key, context)

    def __del__(self) -> None:
        if not self.closed:  # dropped without close(): nothing to verify or raise
            super().close()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        for plaintext in self._opener.feed(bytes(data)):
            self._sink.write(plaintext)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                self._sink.write(self._opener.finish())
                self._sink.flush()
            finally:
                super().close()


class IteratorReader(io.RawIOBase):
    """A readable file object over an iterator of byte strings (e.g. `encrypt_iter(...)` handed
    to a multipart upload)."""

    def __init__(self, pieces: Iterable[bytes]) -> None:
        super().__init__()
        self._pieces = iter(pieces)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = next(self._pieces)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size
