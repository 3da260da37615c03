"""Scratch tables (operators/backup/scratch.py): on disk, not in memory; errors a human can act on."""

from __future__ import annotations

import sqlite3

import pytest

from operators.backup.scratch import ScratchError, ScratchTable


def table() -> ScratchTable:
    return ScratchTable("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")


def test_rows_come_in_batches_while_other_statements_run() -> None:
    t = table()
    t.executemany("INSERT INTO t VALUES (?, ?)", ((f"k{i:05d}", i) for i in range(2000)))
    seen = 0
    for key, value in t.rows("SELECT k, v FROM t ORDER BY k"):  # more rows than one batch
        assert t.one("SELECT v FROM t WHERE k = ?", (key,)) == (value,)
        seen += 1
    assert seen == 2000
    assert t.one("SELECT v FROM t WHERE k = 'missing'") is None


def test_the_database_is_a_file_with_a_bounded_page_cache() -> None:
    t = table()
    assert t.one("PRAGMA cache_size") == (-1024,)
    assert t.one("PRAGMA temp_store") == (1,)  # FILE
    [(_, name, path)] = t.db.execute("PRAGMA database_list").fetchall()
    assert name == "main" and path == ""  # a private temporary database, deleted with the connection


def test_a_duplicate_key_stays_an_integrity_error_for_the_caller() -> None:
    t = table()
    t.execute("INSERT INTO t VALUES ('a', 1)")
    with pytest.raises(sqlite3.IntegrityError):
        t.execute("INSERT INTO t VALUES ('a', 2)")


def test_a_full_disk_is_a_scratch_error_that_says_what_to_raise() -> None:
    t = table()
    t.execute("PRAGMA max_page_count = 4")  # what a full /tmp looks like to SQLite: SQLITE_FULL
    with pytest.raises(ScratchError, match=r"database or disk is full.*operators\.backup\.tmpSize") as caught:
        t.executemany("INSERT INTO t VALUES (?, ?)", ((f"{i:08d}" * 20, i) for i in range(5000)))
    assert isinstance(caught.value, OSError)  # what a Backup's run turns into phase Failed with the reason


def test_a_closed_table_refuses_use() -> None:
    t = table()
    t.close()
    t.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        t.execute("SELECT 1")
