"""Scratch tables on disk: what a backup or a restore must remember about every object, kept off the heap.

A run's bookkeeping grows with the backup (every member's path and checksum, every restored item's
name and owners): ~1 KiB an object held in memory would be 1 GiB at a million objects. Each table here
is a private temporary SQLite database (the empty file name: SQLite creates it in the temporary directory,
`TMPDIR` or /tmp, and deletes it when the connection closes), with a small page cache, no journal and no
syncing (nothing in it outlives the run), all writes in one transaction that is never committed. What
the process holds for a table is its page cache (CACHE_KIB) whatever the number of rows; the rest is in
the file, read back through the operating system's page cache (which is not the process's memory).

The chart gives /tmp an emptyDir sized by `operators.backup.tmpSize`; a 100,000-object backup or restore takes
~72 MiB there at its peak (docs/backup.md).

Tables are used from worker threads, one statement at a time: a lock serialises them. A full or
unwritable temporary directory raises ScratchError (an OSError): a Backup or Restore then ends Failed
with that reason.
"""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

CACHE_KIB = 1024  # each table's page cache
_BATCH = 512  # rows fetched at a time when iterating


class ScratchError(OSError):
    """A scratch table could not be written or read: the temporary directory is full or unwritable."""


@contextlib.contextmanager
def _explained() -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as e:  # IntegrityError (a duplicate key) is the caller's to handle
        where = tempfile.gettempdir()
        raise ScratchError(f"scratch space in {where} failed: {e} (in the chart, raise operators.backup.tmpSize)"
                           ) from e


class ScratchTable:
    """One temporary database with the given schema (SQL statements separated by `;`)."""

    def __init__(self, schema: str) -> None:
        self._db: sqlite3.Connection | None = sqlite3.connect("", check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with _explained():
            self._setup(schema)

    def _setup(self, schema: str) -> None:
        assert self._db is not None
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "temp_store=FILE", f"cache_size=-{CACHE_KIB}",
                       "locking_mode=EXCLUSIVE"):
            self._db.execute(f"PRAGMA {pragma}")
        for statement in filter(str.strip, schema.split(";")):
            self._db.execute(statement)
        self._db.execute("BEGIN")  # never committed: the file goes with the connection

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise ValueError("scratch table already closed")
        return self._db

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self._lock, _explained():
            self.db.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._lock, _explained():
            self.db.executemany(sql, rows)

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """The first row of a query, or None."""
        with self._lock, _explained():
            row: tuple[Any, ...] | None = self.db.execute(sql, params).fetchone()
            return row

    def rows(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """Every row of a query, fetched a batch at a time (other statements may run in between)."""
        with self._lock, _explained():
            cursor = self.db.execute(sql, params)
        try:
            while True:
                with self._lock, _explained():
                    batch: list[tuple[Any, ...]] = cursor.fetchmany(_BATCH)
                if not batch:
                    return
                yield from batch
        finally:
            with self._lock:
                cursor.close()

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()  # the file is deleted with it
                self._db = None

    def __del__(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            db.close()
