"""The backup tarball: Velero's layout, written as a stream, read back only after full verification.

Layout (Velero 1.17: pkg/archive/filesystem.go, pkg/backup/item_backupper.go, backup.go):

    metadata/version                                            "1.1.0\\n"
    resources/<resource>[.<group>]/namespaces/<ns>/<name>.json
    resources/<resource>[.<group>]/cluster/<name>.json
    resources/<resource>[.<group>]/<version>-preferredversion/namespaces/<ns>/<name>.json   (same bytes)

Core resources have no group suffix (`pods`, `deployments.apps`). Velero writes each item read at
its group's preferred version (the usual case) twice: without a version directory (what restores
read) and under `<version>-preferredversion`; other versions go under `<version>` only.

Beyond Velero, every backup gets a checksum manifest, stored as its own object: the sha256 and size
of each member and of the whole compressed tarball (before any encryption). Reading never trusts the
tarball: it is spooled to a temporary file and checked entirely (paths, member types and sizes,
counts, every checksum, each object against its path) before a single item is handed out. Checksums
detect corruption and tampering of the tarball; against someone who can rewrite both objects, turn
on encryption (crypto.py), whose authentication covers the manifest too.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import shutil
import sqlite3
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Any, BinaryIO, Protocol

from operators.backup.scratch import ScratchTable

FORMAT_VERSION = "1.1.0"  # Velero's BackupFormatVersion
RESOURCES_DIR = "resources"
METADATA_DIR = "metadata"
VERSION_FILE = f"{METADATA_DIR}/version"
CLUSTER_DIR = "cluster"
NAMESPACES_DIR = "namespaces"
PREFERRED_SUFFIX = "-preferredversion"
MANIFEST_FORMAT = "kubeplane.dev/backup-checksums/v1"

_CHUNK = 1 << 16


class ArchiveError(Exception):
    """The archive cannot be written or read as asked (a programming or input error)."""


class ArchiveRejected(ArchiveError):
    """The archive failed verification; `problems` lists every finding, for status and CLI."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        super().__init__(f"backup archive rejected: {shown}")


# --- object keys -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupKeys:
    """Object keys of one backup, relative to the location's prefix (object_store_layout.go)."""

    name: str

    @property
    def directory(self) -> str:
        return f"backups/{self.name}/"

    @property
    def metadata(self) -> str:  # the Backup object; written last, never rewritten
        return f"backups/{self.name}/kubeplane-backup.json"

    @property
    def contents(self) -> str:
        return f"backups/{self.name}/{self.name}.tar.gz"

    @property
    def checksums(self) -> str:
        return f"backups/{self.name}/{self.name}-checksums.json"

    @property
    def logs(self) -> str:
        return f"backups/{self.name}/{self.name}-logs.gz"

    @property
    def results(self) -> str:
        return f"backups/{self.name}/{self.name}-results.gz"

    @property
    def resource_list(self) -> str:
        return f"backups/{self.name}/{self.name}-resource-list.json.gz"


@dataclass(frozen=True)
class RestoreKeys:
    name: str

    @property
    def logs(self) -> str:
        return f"restores/{self.name}/restore-{self.name}-logs.gz"

    @property
    def results(self) -> str:
        return f"restores/{self.name}/restore-{self.name}-results.gz"

    @property
    def resource_list(self) -> str:
        return f"restores/{self.name}/restore-{self.name}-resource-list.json.gz"


class ResourceList:
    """Velero's resource list, `apiVersion/Kind` -> sorted `namespace/name` (or `name`), gathered in a
    scratch table as items are backed up and written out as JSON in one pass."""

    def __init__(self) -> None:
        self._table = ScratchTable("CREATE TABLE r (type TEXT NOT NULL, entry TEXT NOT NULL)")

    def add(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        self._table.execute("INSERT INTO r VALUES (?, ?)",
                            (f"{api_version}/{kind}", f"{namespace}/{name}" if namespace else name))

    def write_json(self, out: IO[bytes]) -> None:
        """json.dumps of the dict (keys and lists sorted), written a line at a time."""
        out.write(b"{")
        current: str | None = None
        for kind, entry in self._table.rows("SELECT type, entry FROM r ORDER BY type, entry"):
            if kind != current:
                out.write(f"{'], ' if current is not None else ''}{json.dumps(kind)}: [{json.dumps(entry)}".encode())
                current = kind
            else:
                out.write(f", {json.dumps(entry)}".encode())
        out.write(b"]}" if current is not None else b"}")

    def close(self) -> None:
        self._table.close()


# --- paths -------------------------------------------------------------------------------------


def _check_segment(segment: str, what: str) -> None:
    if not segment or segment in (".", "..") or "/" in segment or "\\" in segment or "\x00" in segment:
        raise ArchiveError(f"invalid {what} {segment!r} for an archive path")


def item_path(group_resource: str, namespace: str, name: str, version_dir: str = "") -> str:
    """`resources/<gr>[/<version_dir>]/namespaces/<ns>/<name>.json` or `.../cluster/<name>.json`."""
    _check_segment(group_resource, "resource")
    _check_segment(name, "name")
    parts = [RESOURCES_DIR, group_resource]
    if version_dir:
        _check_segment(version_dir, "version directory")
        parts.append(version_dir)
    if namespace:
        _check_segment(namespace, "namespace")
        parts += [NAMESPACES_DIR, namespace]
    else:
        parts.append(CLUSTER_DIR)
    parts.append(f"{name}.json")
    return "/".join(parts)


@dataclass(frozen=True)
class ItemPath:
    group_resource: str
    namespace: str  # "" for cluster-scoped
    name: str
    version: str = ""  # "" for the copy without a version directory
    preferred: bool = False


def parse_item_path(path: str) -> ItemPath:
    """The item a `resources/...` member holds; ArchiveError when the path is not Velero's layout."""
    parts = path.split("/")
    if len(parts) < 4 or parts[0] != RESOURCES_DIR or not parts[-1].endswith(".json"):
        raise ArchiveError(f"{path!r} is not a resource path")
    group_resource, rest = parts[1], parts[2:]
    version, preferred = "", False
    if rest[0] not in (CLUSTER_DIR, NAMESPACES_DIR):
        version_dir, rest = rest[0], rest[1:]
        preferred = version_dir.endswith(PREFERRED_SUFFIX)
        version = version_dir[: -len(PREFERRED_SUFFIX)] if preferred else version_dir
        if not version:
            raise ArchiveError(f"{path!r} has an empty version directory")
    if rest[:1] == [CLUSTER_DIR] and len(rest) == 2:
        namespace, filename = "", rest[1]
    elif rest[:1] == [NAMESPACES_DIR] and len(rest) == 3:
        namespace, filename = rest[1], rest[2]
    else:
        raise ArchiveError(f"{path!r} is not resources/<resource>/(cluster|namespaces/<ns>)/<name>.json")
    name = filename[: -len(".json")]
    for segment in (group_resource, namespace or "x", name):
        _check_segment(segment, "path segment")
    return ItemPath(group_resource, namespace, name, version, preferred)


# --- manifest ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Digest:
    sha256: str
    size: int


class MemberTable(Mapping[str, Digest]):
    """A manifest's members, path -> Digest, in a scratch table on disk (scratch.py): the process holds
    a page cache, not the members (a 100,000-object backup has 200,000 members; in memory they took
    ~150 bytes each at best). `entry` gives a member's position (0..n-1 in path order)."""

    __slots__ = ("_count", "_table")
    _count: int
    _table: ScratchTable
    _SCHEMA = ("CREATE TABLE m (pos INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, sha BLOB NOT NULL, "
               "size INTEGER NOT NULL)")

    def __init__(self, members: Iterable[tuple[str, Digest]] | Mapping[str, Digest] = ()) -> None:
        pairs = members.items() if isinstance(members, Mapping) else members
        table = MemberTable.in_order((path, bytes.fromhex(digest.sha256), digest.size)
                                     for path, digest in sorted(pairs, key=lambda pair: pair[0]))
        self._table, self._count = table._table, table._count

    @classmethod
    def in_order(cls, entries: Iterable[tuple[str, bytes, int]]) -> MemberTable:
        """A table of (path, raw sha256, size) entries given in increasing path order, taken one at a
        time (no list of the entries is made)."""
        table = ScratchTable(cls._SCHEMA)
        count = 0
        last: str | None = None

        def checked() -> Iterator[tuple[int, str, bytes, int]]:
            nonlocal count, last
            for path, sha256, size in entries:
                if last is not None and path <= last:
                    raise ArchiveError(f"{path} listed twice" if path == last else f"{path} out of order")
                yield count, path, sha256, size
                count, last = count + 1, path

        try:
            table.executemany("INSERT INTO m VALUES (?, ?, ?, ?)", checked())
        except BaseException:
            table.close()
            raise
        made = cls.__new__(cls)
        made._table, made._count = table, count
        return made

    def entry(self, path: str) -> tuple[int, bytes, int] | None:
        """Member `path`'s position, raw sha256 and size, or None when it is not a member."""
        row = self._table.one("SELECT pos, sha, size FROM m WHERE path = ?", (path,))
        return None if row is None else (row[0], row[1], row[2])

    def path_at(self, i: int) -> str:
        row = self._table.one("SELECT path FROM m WHERE pos = ?", (i,))
        if row is None:
            raise IndexError(i)
        return str(row[0])

    def matches(self, path: str, sha256: bytes, size: int) -> bool:
        found = self.entry(path)
        return found is not None and found[1:] == (sha256, size)

    def rows(self) -> Iterator[tuple[str, bytes, int]]:
        """(path, raw sha256, size) of every member, in path order."""
        yield from self._table.rows("SELECT path, sha, size FROM m ORDER BY pos")

    def __getitem__(self, path: str) -> Digest:
        found = self.entry(path)
        if found is None:
            raise KeyError(path)
        return Digest(found[1].hex(), found[2])

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and self.entry(path) is not None

    def __iter__(self) -> Iterator[str]:
        return (path for path, _, _ in self.rows())

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        """Delete the table's file now (it goes with the table otherwise)."""
        self._table.close()


class Manifest:
    """Checksums of one backup tarball: its members and the compressed whole."""

    __slots__ = ("archive", "members")

    def __init__(self, archive: Digest, members: Mapping[str, Digest] | None = None) -> None:
        self.archive = archive
        self.members: MemberTable = members if isinstance(members, MemberTable) else MemberTable(members or {})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Manifest) and (self.archive, self.members) == (other.archive, other.members)

    def __repr__(self) -> str:
        return f"Manifest({self.archive!r}, {len(self.members)} members)"

    def write_json(self, out: IO[bytes]) -> None:
        """json.dumps(document, indent=1, sort_keys=True), byte for byte, written member by member to a
        file (the manifest of a 100,000-object backup is ~34 MiB: neither it nor the document is held)."""
        head = json.dumps({"algorithm": "sha256", "archive": {"sha256": self.archive.sha256, "size": self.archive.size},
                           "format": MANIFEST_FORMAT}, indent=1, sort_keys=True)
        out.write(head[: -len("\n}")].encode())  # "members" sorts last: the document continues after "format"
        if not self.members:
            out.write(b',\n "members": {}\n}')
            return
        out.write(b',\n "members": {')
        separator = "\n"
        for path, sha, size in self.members.rows():
            out.write(f'{separator}  {json.dumps(path)}: {{\n   "sha256": "{sha.hex()}",\n   "size": {size}\n  }}'
                      .encode())
            separator = ",\n"
        out.write(b"\n }\n}")

    def to_json(self) -> bytes:
        out = io.BytesIO()
        self.write_json(out)
        return out.getvalue()

    @classmethod
    def read(cls, source: IO[bytes]) -> Manifest:
        """Parses what `write_json` writes from a seekable file, a window at a time, straight into a
        MemberTable; a document in any other layout is read whole (json.loads), with the same checks."""
        fast = _parse_manifest_layout(source)
        if fast is not None:
            return fast
        source.seek(0)
        data = source.read()
        try:
            document = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ArchiveRejected([f"checksum manifest is not valid JSON: {e}"]) from e
        if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
            raise ArchiveRejected(["checksum manifest has an unknown format"])
        if document.get("algorithm") != "sha256":
            raise ArchiveRejected([f"checksum manifest uses unsupported algorithm {document.get('algorithm')!r}"])
        archive = _digest(document.get("archive"), "archive")
        members_raw = document.get("members")
        if not isinstance(members_raw, dict):
            raise ArchiveRejected(["checksum manifest has no member list"])
        return cls(archive, MemberTable((str(path), _digest(d, str(path))) for path, d in members_raw.items()))

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        return cls.read(io.BytesIO(data))


_MANIFEST_HEAD = re.compile(rb'\{\n "algorithm": "sha256",\n "archive": \{\n  "sha256": "([0-9a-f]{64})",\n  "size": '
                            rb'(0|[1-9][0-9]{0,18})\n \},\n "format": "' + re.escape(MANIFEST_FORMAT.encode())
                            + rb'",\n "members": \{')
_MANIFEST_MEMBER = re.compile(rb'(?:\n|,\n)  ("(?:[^"\\\x00-\x1f]|\\.)*"): \{\n   "sha256": "([0-9a-f]{64})",'
                              rb'\n   "size": (0|[1-9][0-9]{0,18})\n  \}')
_MANIFEST_WINDOW = 1 << 20  # bytes read at a time
_MANIFEST_MEMBER_TEXT = 16 << 10  # the longest member entry: a 1,024-character path, escaped (6 bytes a character)


class _OtherLayout(Exception):
    """The manifest is not in `write_json`'s exact layout."""


class _Window:
    """A file read a window at a time: `buffer[pos:]` is what is not parsed yet."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source, self.buffer, self.pos, self.eof = source, b"", 0, False

    def ensure(self, n: int) -> int:
        """Read until `n` bytes are there past `pos` (or the file ended); how many are."""
        while len(self.buffer) - self.pos < n and not self.eof:
            chunk = self.source.read(max(_MANIFEST_WINDOW, n))
            if chunk:
                self.buffer, self.pos = self.buffer[self.pos:] + chunk, 0
            else:
                self.eof = True
        return len(self.buffer) - self.pos

    def rest_is(self, tail: bytes) -> bool:
        """Whether exactly `tail` is left."""
        return self.ensure(len(tail) + 1) == len(tail) and self.buffer.endswith(tail)


def _parse_manifest_layout(source: IO[bytes]) -> Manifest | None:
    """The manifest in `write_json`'s exact layout, or None when it is laid out otherwise. Members must
    come in strictly increasing path order (as written), so none can be listed twice."""
    window = _Window(source)
    window.ensure(4096)
    head = _MANIFEST_HEAD.match(window.buffer)
    if head is None:
        return None
    archive = Digest(head.group(1).decode(), int(head.group(2)))
    window.pos = head.end()
    if window.rest_is(b"}\n}"):
        return Manifest(archive, MemberTable())

    def entries() -> Iterator[tuple[str, bytes, int]]:
        first = True
        while True:
            window.ensure(_MANIFEST_MEMBER_TEXT)
            member = _MANIFEST_MEMBER.match(window.buffer, window.pos)
            if member is None or member.group(0).startswith(b",") == first:
                raise _OtherLayout
            quoted = member.group(1)
            try:
                path = json.loads(quoted) if b"\\" in quoted else quoted[1:-1].decode()
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise _OtherLayout from None
            size = int(member.group(3))
            if size >= 1 << 63:
                raise _OtherLayout  # read whole, and refused there as malformed
            yield path, bytes.fromhex(member.group(2).decode()), size
            window.pos, first = member.end(), False
            if window.rest_is(b"\n }\n}"):
                return

    try:
        return Manifest(archive, MemberTable.in_order(entries()))
    except (_OtherLayout, ArchiveError):  # ArchiveError: paths not increasing
        return None


def _digest(raw: Any, where: str) -> Digest:
    if not isinstance(raw, dict):
        raise ArchiveRejected([f"checksum manifest: entry {where!r} is malformed"])
    sha, size = raw.get("sha256"), raw.get("size")
    if (not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)
            or not isinstance(size, int) or isinstance(size, bool) or not 0 <= size < 1 << 63):
        raise ArchiveRejected([f"checksum manifest: entry {where!r} is malformed"])
    return Digest(sha, size)


# --- writing -----------------------------------------------------------------------------------


class _HashingSink:
    """A write-only file object that hashes and counts what passes through to `sink`."""

    def __init__(self, sink: IO[bytes]) -> None:
        self._sink = sink
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        self._sink.write(data)
        return len(data)

    def flush(self) -> None:
        self._sink.flush()


def serialize(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class ArchiveWriter:
    """Writes a gzip tarball to a writable file object as items arrive; nothing is buffered whole.

    `close()` finishes the stream (it does not close `sink`) and returns the checksum manifest.
    """

    def __init__(
        self,
        sink: IO[bytes],
        *,
        preferred_version_copies: bool = True,
        compresslevel: int = 6,
        mtime: float | None = None,
    ) -> None:
        self._sink = _HashingSink(sink)
        self._gzip = gzip.GzipFile(fileobj=self._sink, mode="wb", compresslevel=compresslevel, mtime=0)
        self._tar = tarfile.open(fileobj=self._gzip, mode="w|", format=tarfile.PAX_FORMAT)
        self._copies = preferred_version_copies
        self._mtime = time.time() if mtime is None else mtime
        # Each member's path, sha256 and size until close() orders them into the manifest's table.
        self._members: ScratchTable | None = ScratchTable(
            "CREATE TABLE w (path TEXT PRIMARY KEY, sha BLOB NOT NULL, size INTEGER NOT NULL) WITHOUT ROWID")
        self._table: MemberTable | None = None  # the members, once closed
        self._closed = False
        self.add_bytes(VERSION_FILE, f"{FORMAT_VERSION}\n".encode())

    def add_bytes(self, path: str, data: bytes) -> None:
        if self._closed:
            raise ArchiveError("archive already closed")
        problem = path_problem(path)
        if problem:
            raise ArchiveError(problem)
        assert self._members is not None
        try:
            self._members.execute("INSERT INTO w VALUES (?, ?, ?)", (path, hashlib.sha256(data).digest(), len(data)))
        except sqlite3.IntegrityError:
            raise ArchiveError(f"{path} written twice") from None
        info = tarfile.TarInfo(path)
        info.size = len(data)
        info.mode = 0o644
        info.mtime = int(self._mtime)
        info.type = tarfile.REGTYPE
        self._tar.addfile(info, io.BytesIO(data))
        self._tar.members.clear()  # type: ignore[attr-defined]  # TarFile keeps every TarInfo it wrote (~0.8 KB a member); nothing reads them

    def add_item(
        self,
        obj: Mapping[str, Any],
        group_resource: str,
        *,
        preferred_version: str | None = None,
        data: bytes | None = None,
    ) -> list[str]:
        """Add one object; returns the member paths written.

        The version comes from the object's apiVersion. At the preferred version (or when none is
        given) the object goes in the plain path and, with copies on, under
        `<version>-preferredversion`; at another version only under `<version>`, as in Velero
        (such copies are kept in the archive but not restored).
        """
        metadata = obj.get("metadata") or {}
        namespace, name = metadata.get("namespace") or "", metadata.get("name") or ""
        payload = serialize(obj) if data is None else data
        version = str(obj.get("apiVersion") or "").rpartition("/")[2]
        if version and preferred_version is not None and preferred_version != version:
            paths = [item_path(group_resource, namespace, name, version)]
        else:
            paths = [item_path(group_resource, namespace, name)]
            if self._copies and version:
                paths.append(item_path(group_resource, namespace, name, f"{version}{PREFERRED_SUFFIX}"))
        for path in paths:
            self.add_bytes(path, payload)
        return paths

    def close(self) -> Manifest:
        if not self._closed:
            self._closed = True
            self._tar.close()
            self._gzip.close()
            self._sink.flush()
            assert self._members is not None
            self._table = MemberTable.in_order(self._members.rows("SELECT path, sha, size FROM w ORDER BY path"))
            self._members.close()
            self._members = None
        assert self._table is not None
        return Manifest(Digest(self._sink.sha.hexdigest(), self._sink.size), self._table)

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()


# --- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    max_member_bytes: int = 16 << 20  # Kubernetes objects stay under ~1.5 MiB in etcd
    max_total_bytes: int = 8 << 30  # all members, uncompressed
    max_archive_bytes: int = 4 << 30  # the compressed tarball
    max_members: int = 2_000_000
    max_path_length: int = 1024


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...
    def seek(self, offset: int, /) -> object: ...


class _BoundedReader:
    """Reads from `source`, failing once more than `limit` bytes came through (gzip bombs, giant
    PAX headers); optionally hashes what it reads. A read of n bytes returns n unless the source ended:
    gzip and tarfile take a short read for the end of the stream (a network body may return less than
    asked; found by tests/unit/test_properties.py, where 1-byte reads failed the gzip magic check)."""

    def __init__(self, source: _Readable, limit: int, what: str, sha: Any = None) -> None:
        self._source = source
        self._limit = limit
        self._what = what
        self.sha = sha
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        remaining = self._limit - self.count
        want = remaining + 1 if size is None or size < 0 else min(size, remaining + 1)
        data = self._source.read(want) if want > 0 else b""
        if size is not None and size >= 0:
            while data and len(data) < want:  # short read: ask again until `want` bytes or the end
                more = self._source.read(want - len(data))
                if not more:
                    break
                data += more
        self.count += len(data)
        if self.count > self._limit:
            raise ArchiveRejected([f"{self._what} exceeds the limit of {self._limit} bytes"])
        if self.sha is not None:
            self.sha.update(data)
        return data

    def seek(self, offset: int, /) -> object:
        raise io.UnsupportedOperation("a verified stream is read once, front to back")


MAX_EXTENDED_HEADER = 64 << 10  # a PAX or GNU long-name header: path and attributes, never more
_BLOCK = 512
_EXTENDED_TYPES = frozenset(b"xgLK")  # PAX (per member, global), GNU long name, GNU long link


class _HeaderGuard:
    """Watches the tar stream's 512-byte header blocks go by and refuses an extended header (PAX
    `x`/`g`, GNU `L`/`K`) larger than `limit` *before* tarfile reads it: CPython's tarfile reads such
    a header whole into memory before any size check, so a ~1 MB gzip holding a 200 MiB PAX header
    costs hundreds of MiB (reliability audit H5). Member data streams through untouched."""

    def __init__(self, source: _Readable, limit: int = MAX_EXTENDED_HEADER) -> None:
        self._source = source
        self._limit = limit
        self._buffer = b""
        self._position = 0  # bytes handed out so far
        self._next_header = 0  # where the next header block starts
        self._eof = False

    def _fill(self, wanted: int) -> None:
        while len(self._buffer) < wanted and not self._eof:
            data = self._source.read(max(wanted - len(self._buffer), 65536))
            if not data:
                self._eof = True
            self._buffer += data

    def _inspect_header(self) -> None:
        self._fill(_BLOCK)
        header = self._buffer[:_BLOCK]
        if len(header) < _BLOCK or header == bytes(_BLOCK):
            self._next_header += _BLOCK  # end-of-archive blocks (or a truncated stream: tarfile says so)
            return
        try:
            size = tarfile.nti(header[124:136])  # type: ignore[attr-defined]
        except (tarfile.HeaderError, ValueError) as e:
            raise ArchiveRejected([f"a tar header at byte {self._position} is malformed: {e}"]) from e
        kind = header[156]
        if kind in _EXTENDED_TYPES and size > self._limit:
            raise ArchiveRejected([f"an extended tar header of {size} bytes at byte {self._position}, over the "
                                   f"limit of {self._limit}"])
        self._next_header += _BLOCK + (size + _BLOCK - 1) // _BLOCK * _BLOCK

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = 1 << 20
        out = bytearray()
        while len(out) < size:
            if self._position == self._next_header:
                self._inspect_header()
            # Hand out at most up to the next header, so each header is seen before it passes.
            want = min(size - len(out), self._next_header - self._position)
            self._fill(want)
            chunk, self._buffer = self._buffer[:want], self._buffer[want:]
            if not chunk:
                break
            out += chunk
            self._position += len(chunk)
        return bytes(out)

    def seek(self, offset: int, /) -> object:
        raise io.UnsupportedOperation("a verified stream is read once, front to back")


def path_problem(path: str, limits: Limits | None = None) -> str | None:
    """Why a member path is unacceptable, or None. Only `metadata/version` and Velero's resource
    paths are accepted: nothing absolute, no `..`, `.` or empty segments, no backslashes."""
    max_length = (limits or Limits()).max_path_length
    if not path:
        return "a member has an empty name"
    if len(path) > max_length:
        return f"{path[:80]!r}...: path longer than {max_length} characters"
    if path.startswith("/"):
        return f"{path!r}: absolute path"
    if "\x00" in path or "\\" in path:
        return f"{path!r}: NUL or backslash in path"
    if not path.isascii():
        try:
            path.encode()
        except UnicodeEncodeError:  # tarfile hands out bytes that are not UTF-8 as lone surrogates
            return f"{path!r}: not valid UTF-8"
    segments = path.split("/")
    if any(s in ("", ".", "..") for s in segments):
        return f"{path!r}: empty, '.' or '..' path segment"
    if segments[0] not in (RESOURCES_DIR, METADATA_DIR):
        return f"{path!r}: unknown top-level directory {segments[0]!r}"
    if segments[0] == METADATA_DIR:
        return None if path == VERSION_FILE else f"{path!r}: unknown metadata file"
    try:
        parse_item_path(path)
    except ArchiveError as e:
        return str(e)
    return None


def _directory_problem(name: str) -> str | None:
    segments = name.rstrip("/").split("/")
    if name.startswith("/") or "\x00" in name or "\\" in name or any(s in ("", ".", "..") for s in segments):
        return f"directory {name!r}: unsafe path"
    if segments[0] not in (RESOURCES_DIR, METADATA_DIR):
        return f"directory {name!r}: unknown top-level directory"
    return None


def _member_kind(info: tarfile.TarInfo) -> str:
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hard link"
    if info.ischr() or info.isblk():
        return "device"
    if info.isfifo():
        return "FIFO"
    if info.issparse():
        return "sparse file"
    return f"type {info.type!r}"


@dataclass
class _ScanResult:
    problems: list[str] = field(default_factory=list)
    version: str = ""


def _check_object(path: str, data: bytes, item: ItemPath) -> str | None:
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return f"{path}: not valid JSON ({e})"
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(metadata, dict):
        return f"{path}: not a Kubernetes object"
    if metadata.get("name") != item.name or (metadata.get("namespace") or "") != item.namespace:
        return f"{path}: holds {metadata.get('namespace') or ''}/{metadata.get('name')}, not what its path says"
    return None


def _scan(source: _Readable, manifest: Manifest, limits: Limits, check_objects: bool,
          on_member: Callable[[str, bytes], None] | None = None) -> _ScanResult:
    """One streaming pass: safety checks fail at once; checksum findings are collected; each resource
    member's path and data go to `on_member` (when objects are checked: their data is read anyway)."""
    result = _ScanResult()
    try:
        gz = gzip.GzipFile(fileobj=source, mode="rb")
        bounded = _BoundedReader(gz, limits.max_total_bytes + limits.max_members * 1536 + (1 << 20),
                                 "uncompressed archive")
        tar = tarfile.open(fileobj=_HeaderGuard(bounded), mode="r|")  # type: ignore[call-overload]
        # Which manifest members came by, one byte each; names the manifest lacks (each a problem) apart.
        seen = bytearray(len(manifest.members))
        unknown: set[str] = set()
        count = 0
        version_seen = False
        total = 0
        for info in tar:
            tar.members.clear()  # a streamed TarFile keeps every TarInfo it read: ~0.8 KB a member
            name = info.name
            if info.issparse():
                raise ArchiveRejected([f"{name!r}: sparse members are not allowed"])
            if info.isdir():
                problem = _directory_problem(name)
                if problem:
                    raise ArchiveRejected([problem])
                continue
            if not info.isreg():
                raise ArchiveRejected([f"{name!r}: {_member_kind(info)} members are not allowed"])
            problem = path_problem(name, limits)
            if problem:
                raise ArchiveRejected([problem])
            if count + 1 > limits.max_members:
                raise ArchiveRejected([f"more than {limits.max_members} members"])
            if info.size > limits.max_member_bytes:
                raise ArchiveRejected([f"{name}: {info.size} bytes, over the member limit of "
                                       f"{limits.max_member_bytes}"])
            total += info.size
            if total > limits.max_total_bytes:
                raise ArchiveRejected([f"members add up to more than {limits.max_total_bytes} bytes"])
            found = manifest.members.entry(name)
            position = found[0] if found is not None else None
            if (seen[position] if position is not None else name in unknown):
                raise ArchiveRejected([f"{name}: appears twice"])
            if position is None:
                unknown.add(name)
            else:
                seen[position] = 1
            count += 1
            version_seen = version_seen or name == VERSION_FILE
            handle = tar.extractfile(info)
            if handle is None:
                raise ArchiveRejected([f"{name}: unreadable member"])
            sha = hashlib.sha256()
            keep = check_objects or name == VERSION_FILE
            chunks: list[bytes] = []
            while chunk := handle.read(_CHUNK):
                sha.update(chunk)
                if keep:
                    chunks.append(chunk)
            if found is None:
                result.problems.append(f"{name}: not in the checksum manifest")
            elif found[1:] != (sha.digest(), info.size):
                result.problems.append(f"{name}: checksum mismatch")
            data = b"".join(chunks)
            if name == VERSION_FILE:
                result.version = data.decode(errors="replace").strip()
                continue
            item = parse_item_path(name)
            if check_objects:
                problem = _check_object(name, data, item)
                if problem:
                    result.problems.append(problem)
                elif on_member is not None:
                    on_member(name, data)
        tar.close()
    except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as e:
        raise ArchiveRejected([f"not a readable gzip tarball: {e}"]) from e
    for position in range(len(seen)):
        if not seen[position]:
            result.problems.append(f"{manifest.members.path_at(position)}: in the checksum manifest but missing "
                                   "from the archive")
    if not version_seen:
        result.problems.append(f"{VERSION_FILE} is missing")
    elif not result.version.startswith("1."):
        result.problems.append(f"unsupported backup format version {result.version!r}")
    return result


def verify_archive(source: IO[bytes], manifest: Manifest, limits: Limits | None = None,
                   on_member: Callable[[str, bytes], None] | None = None) -> _ScanResult:
    """Check a tarball against its manifest in one streaming pass (no temporary file); raises
    ArchiveRejected listing every problem. What `kubeplane backup verify` runs, and a restore's first
    pass (`index_archive`)."""
    limits = limits or Limits()
    outer = _BoundedReader(source, limits.max_archive_bytes, "compressed archive", hashlib.sha256())
    result = _scan(outer, manifest, limits, check_objects=True, on_member=on_member)
    while outer.read(_CHUNK):  # the gzip trailer and anything after it count for the whole-file checksum
        pass
    problems = _archive_problems(outer.sha.hexdigest(), outer.count, manifest) + result.problems
    if problems:
        raise ArchiveRejected(problems)
    return result


def _archive_problems(sha: str, size: int, manifest: Manifest) -> list[str]:
    if sha != manifest.archive.sha256 or size != manifest.archive.size:
        return [f"the tarball's checksum does not match the manifest ({size} bytes, sha256 {sha[:12]}...)"]
    return []


@dataclass(frozen=True, slots=True)
class ArchiveItem:
    """One backed-up object. `obj` is the whole object, or None in an index past its budget: then the
    fields below it are what a restore plans with (they are filled either way) until it streams the
    object again (an index keeps these fields on disk: ItemTable)."""

    group_resource: str
    namespace: str
    name: str
    obj: dict[str, Any] | None
    path: str
    api_version: str = ""
    kind: str = ""
    uid: str = ""
    owner_references: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def of(cls, group_resource: str, namespace: str, name: str, obj: dict[str, Any], path: str,
           *, keep_object: bool = True) -> ArchiveItem:
        """An item with its planning fields read from `obj` (shared strings interned)."""
        metadata = obj.get("metadata") or {}
        refs = metadata.get("ownerReferences")
        return cls(sys.intern(group_resource), sys.intern(namespace), name, obj if keep_object else None,
                   path, sys.intern(str(obj.get("apiVersion") or "")), sys.intern(str(obj.get("kind") or "")),
                   str(metadata.get("uid") or ""),
                   tuple(r for r in refs if isinstance(r, Mapping)) if isinstance(refs, list) else ())


def is_restored_copy(path: str, members: Mapping[str, Any]) -> bool:
    """Whether this member is the copy of its object a restore takes: the one without a version
    directory, or, for archives that only have versioned copies, the preferred-version one.
    `members` are the verified archive's (its manifest's: after verification they are the same)."""
    return _restored(parse_item_path(path), members)


def _restored(item: ItemPath, members: Mapping[str, Any]) -> bool:
    return not item.version or (item.preferred and
                                item_path(item.group_resource, item.namespace, item.name) not in members)


class ItemTable:
    """The items a restore takes (Namespaces apart), in archive order, in a scratch table: name, path and
    the fields a restore plans with (ArchiveItem's, without the object). Objects are held beside it
    while they fit the index's budget (`objects`), and dropped past it."""

    _SCHEMA = ("CREATE TABLE i (pos INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, group_resource TEXT NOT NULL, "
               "namespace TEXT NOT NULL, name TEXT NOT NULL, api_version TEXT NOT NULL, kind TEXT NOT NULL, "
               "uid TEXT NOT NULL, refs TEXT)")
    _COLUMNS = "group_resource, namespace, name, path, api_version, kind, uid, refs"

    def __init__(self) -> None:
        self._table = ScratchTable(self._SCHEMA)
        self._count = 0
        self.objects: dict[str, dict[str, Any]] | None = {}  # path -> object, while under the budget

    def add(self, item: ArchiveItem) -> None:
        refs = json.dumps(list(item.owner_references), separators=(",", ":")) if item.owner_references else None
        self._table.execute("INSERT INTO i VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (self._count, item.path, item.group_resource, item.namespace, item.name,
                             item.api_version, item.kind, item.uid, refs))
        self._count += 1
        if self.objects is not None and item.obj is not None:
            self.objects[item.path] = item.obj

    def drop_objects(self) -> None:
        self.objects = None

    def __len__(self) -> int:
        return self._count

    def _item(self, row: tuple[Any, ...]) -> ArchiveItem:
        group_resource, namespace, name, path, api_version, kind, uid, refs = row
        obj = self.objects.get(path) if self.objects is not None else None
        return ArchiveItem(sys.intern(group_resource), sys.intern(namespace), name, obj, path,
                           sys.intern(api_version), sys.intern(kind), uid, tuple(json.loads(refs)) if refs else ())

    def __iter__(self) -> Iterator[ArchiveItem]:
        return (self._item(row) for row in self._table.rows(f"SELECT {self._COLUMNS} FROM i ORDER BY pos"))

    def in_types(self, group_resources: Iterable[str]) -> Iterator[ArchiveItem]:
        """The items of these types, in archive order."""
        wanted = sorted(set(group_resources))
        marks = ", ".join("?" * len(wanted))
        query = f"SELECT {self._COLUMNS} FROM i WHERE group_resource IN ({marks}) ORDER BY pos"
        return (self._item(row) for row in self._table.rows(query, wanted))

    def with_references(self, uids: set[str]) -> Iterator[ArchiveItem]:
        """The items that have ownerReferences or whose uid is in `uids` (those of owners)."""
        for row in self._table.rows(f"SELECT {self._COLUMNS} FROM i ORDER BY pos"):
            if row[7] is not None or row[6] in uids:
                yield self._item(row)

    def referenced_uids(self) -> set[str]:
        """Every uid some item's ownerReferences name."""
        return {str(ref["uid"]) for (refs,) in self._table.rows("SELECT refs FROM i WHERE refs IS NOT NULL")
                for ref in json.loads(refs) if isinstance(ref, dict) and ref.get("uid")}

    def distinct(self, column: str) -> set[str]:
        """The values one of the text columns takes (`namespace`, `group_resource`)."""
        if column not in ("namespace", "group_resource"):
            raise ValueError(column)
        return {value for (value,) in self._table.rows(f"SELECT DISTINCT {column} FROM i")}

    def type_spans(self) -> dict[str, tuple[int, int]]:
        """Each type's first and last position in the archive."""
        return {gr: (lo, hi) for gr, lo, hi in
                self._table.rows("SELECT group_resource, MIN(pos), MAX(pos) FROM i GROUP BY group_resource")}

    def names(self, group_resource: str) -> list[str]:
        return [name for (name,) in self._table.rows("SELECT name FROM i WHERE group_resource = ? ORDER BY pos",
                                                     (group_resource,))]

    def wanted(self, group_resources: Iterable[str]) -> Callable[[str], bool]:
        """Whether a member path is one of these items of these types (for `stream_items`)."""
        types = frozenset(group_resources)

        def check(path: str) -> bool:
            row = self._table.one("SELECT group_resource FROM i WHERE path = ?", (path,))
            return row is not None and row[0] in types
        return check

    def close(self) -> None:
        self._table.close()
        self.objects = None


@dataclass
class ArchiveIndex:
    """A verified archive, indexed: every object a restore takes. Namespaces are held whole (a restore
    needs their labels and spec before anything else); the other items are in `items` (an ItemTable
    on disk), with their objects while these fit the memory budget; past it `whole` is False: read the
    objects again with `stream_items`."""

    format_version: str
    namespaces: list[ArchiveItem]
    items: ItemTable
    whole: bool = True

    def all_items(self) -> list[ArchiveItem]:
        """Namespaces and items (a list: for small archives and tests)."""
        return [*self.namespaces, *self.items]


NAMESPACES_RESOURCE = "namespaces"
INDEX_BUDGET = 2 << 20  # bytes of JSON a restore holds whole (parsed: up to ~10 times more) before it drops objects


def index_archive(source: IO[bytes], manifest: Manifest, limits: Limits | None = None,
                  budget: int = INDEX_BUDGET,
                  select: Callable[[str, Mapping[str, Any]], bool] | None = None) -> ArchiveIndex:
    """A restore's first pass: verify the whole stream (as `verify_archive`) and index what a restore
    takes: each object's restored copy (`is_restored_copy`), Namespaces always, other objects when
    `select(group_resource, obj)` allows (all without it). Past `budget` bytes of JSON, objects are
    dropped: what is held then does not grow with the archive (the items are on disk)."""
    namespaces: list[ArchiveItem] = []
    table = ItemTable()
    held = 0

    def keep(path: str, data: bytes) -> None:
        nonlocal held
        item = parse_item_path(path)
        if not _restored(item, manifest.members):
            return  # a versioned copy: never restored, not parsed
        obj = json.loads(data)
        if item.group_resource == NAMESPACES_RESOURCE:
            namespaces.append(ArchiveItem.of(NAMESPACES_RESOURCE, "", item.name, obj, path))
            return
        if select is not None and not select(item.group_resource, obj):
            return
        held += len(data)
        if table.objects is not None and held > budget:
            table.drop_objects()
        table.add(ArchiveItem.of(item.group_resource, item.namespace, item.name, obj, path,
                                 keep_object=table.objects is not None))

    try:
        result = verify_archive(source, manifest, limits, on_member=keep)
    except BaseException:
        table.close()
        raise
    return ArchiveIndex(result.version, namespaces, table, whole=table.objects is not None)


def stream_items(source: IO[bytes], manifest: Manifest, wanted: Callable[[str], bool],
                 limits: Limits | None = None) -> Iterator[ArchiveItem]:
    """A later pass over an archive `index_archive` verified: the members `wanted` (by path), each
    checked against the manifest again as it is read (the object could have been replaced since)."""
    limits = limits or Limits()
    gz = gzip.GzipFile(fileobj=source, mode="rb")
    bounded = _BoundedReader(gz, limits.max_total_bytes + limits.max_members * 1536 + (1 << 20),
                             "uncompressed archive")
    try:
        with tarfile.open(fileobj=_HeaderGuard(bounded), mode="r|") as tar:  # type: ignore[call-overload]
            for info in tar:
                tar.members.clear()  # a streamed TarFile keeps every TarInfo it read: ~0.8 KB a member
                if not info.isreg():
                    continue
                problem = path_problem(info.name, limits)  # the object may have been replaced since
                if problem:
                    raise ArchiveRejected([problem])
                if not wanted(info.name):
                    continue
                if info.size > limits.max_member_bytes:
                    raise ArchiveRejected([f"{info.name}: {info.size} bytes, over the member limit"])
                handle = tar.extractfile(info)
                if handle is None:
                    raise ArchiveRejected([f"{info.name}: unreadable member"])
                data = handle.read()
                if not manifest.members.matches(info.name, hashlib.sha256(data).digest(), len(data)):
                    raise ArchiveRejected([f"{info.name}: changed after verification"])
                item = parse_item_path(info.name)
                yield ArchiveItem(item.group_resource, item.namespace, item.name, json.loads(data), info.name)
    except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile) as e:
        raise ArchiveRejected([f"not a readable gzip tarball: {e}"]) from e


class VerifiedArchive:
    """A tarball copied to a temporary file and verified in full on entry; items only afterwards.

        with VerifiedArchive(stream, manifest) as archive:   # raises ArchiveRejected
            for item in archive.items(): ...
    """

    def __init__(self, source: IO[bytes], manifest: Manifest, limits: Limits | None = None,
                 tmpdir: str | None = None) -> None:
        self._source = source
        self._manifest = manifest
        self._limits = limits or Limits()
        self._tmpdir = tmpdir
        self._file: BinaryIO | None = None
        self.format_version = ""

    def __enter__(self) -> VerifiedArchive:
        self._file = tempfile.TemporaryFile(dir=self._tmpdir)  # closed in __exit__
        try:
            outer = _BoundedReader(self._source, self._limits.max_archive_bytes, "compressed archive",
                                   hashlib.sha256())
            shutil.copyfileobj(outer, self._file, _CHUNK)
            self._file.seek(0)
            result = _scan(self._file, self._manifest, self._limits, check_objects=True)
            problems = _archive_problems(outer.sha.hexdigest(), outer.count, self._manifest) + result.problems
            if problems:
                raise ArchiveRejected(problems)
        except BaseException:
            self._file.close()
            self._file = None
            raise
        self.format_version = result.version
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def members(self) -> Iterator[tuple[str, bytes]]:
        """Every regular member, checked against the manifest again as it is read."""
        if self._file is None:
            raise ArchiveError("use VerifiedArchive as a context manager")
        self._file.seek(0)
        with gzip.GzipFile(fileobj=self._file, mode="rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
            for info in tar:
                tar.members.clear()  # type: ignore[attr-defined]  # a streamed TarFile keeps every TarInfo it read: ~0.8 KB a member
                if not info.isreg():
                    continue
                problem = path_problem(info.name, self._limits)
                if problem:
                    raise ArchiveRejected([problem])
                handle = tar.extractfile(info)
                if handle is None:
                    raise ArchiveRejected([f"{info.name}: unreadable member"])
                data = handle.read()
                if not self._manifest.members.matches(info.name, hashlib.sha256(data).digest(), len(data)):
                    raise ArchiveRejected([f"{info.name}: changed after verification"])
                yield info.name, data

    def items(self) -> Iterator[ArchiveItem]:
        """Each backed-up object once: the copy without a version directory, or, for archives
        that only have versioned copies, the preferred-version one."""
        for path, data in self.members():
            if path == VERSION_FILE:
                continue
            if not is_restored_copy(path, self._manifest.members):
                continue
            item = parse_item_path(path)
            yield ArchiveItem(item.group_resource, item.namespace, item.name, json.loads(data), path)
