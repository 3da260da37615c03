"""What writing and indexing an archive holds per object: the slope between two sizes is what grows with
a backup. Objects are never held (past the index budget); the bookkeeping (each member's path and
checksum, each restored item's name and owners, the resource list) lives in scratch tables on disk
(scratch.py), so the slope is about zero.

Two counts: tracemalloc sees Python's allocations (a list or dict of members creeping back); the peak
RSS of a child process sees everything, SQLite's page cache included (a table kept in memory, or one
whose cache is not bounded). Regressions either catches: tarfile keeping every TarInfo (~0.8 KB a
member, two members an object), the members or the index held in memory (~150-450 bytes a member,
~350 an item), the manifest's JSON held whole while it is written or read (~340 bytes an object).
"""

from __future__ import annotations

import gc
import io
import json
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from operators.backup import archive

SMALL, LARGE = 1000, 3000


def configmap(i: int) -> dict[str, Any]:
    metadata = {"name": f"obj-{i % 100:05d}", "namespace": f"ns-{i // 100:04d}",
                "uid": f"{i:08d}-0000-4000-8000-000000000000", "resourceVersion": str(i), "labels": {"app": "x"}}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"key": "v" * 200}}


def written(n: int) -> tuple[bytes, archive.Manifest]:
    sink = io.BytesIO()
    with archive.ArchiveWriter(sink) as writer:
        for i in range(n):
            writer.add_item(configmap(i), "configmaps", preferred_version="v1")
    return sink.getvalue(), writer.close()


def peak_bytes(action: Callable[[], object]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        kept = action()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del kept
    return peak


def per_object(measure: Callable[[int], int]) -> float:
    measure(SMALL)  # warm-up: one-off growth of interpreter-wide tables (interned strings) lands here
    return (measure(LARGE) - measure(SMALL)) / (LARGE - SMALL)


def test_writing_holds_no_python_object_per_member() -> None:
    def measure(n: int) -> int:
        return peak_bytes(lambda: written(n)[1])

    # today ~35 bytes an object (the written tarball's BytesIO grows too, but before tracing starts
    # it is not there: this counts the writer's own growth); members in a list or dict cost 300+
    assert per_object(measure) < 120


def test_reading_the_manifest_and_indexing_hold_no_python_object_per_item(monkeypatch: Any) -> None:
    monkeypatch.setattr(archive, "_MANIFEST_WINDOW", 1 << 14)  # the manifest read in many windows

    def measure(n: int) -> int:
        data, manifest = written(n)
        raw = manifest.to_json()
        del manifest

        def index() -> object:
            parsed = archive.Manifest.from_json(raw)
            return parsed, archive.index_archive(io.BytesIO(data), parsed, budget=0)

        return peak_bytes(index)

    # today ~2 bytes an object (the scan's byte a member); an item in memory costs ~350
    assert per_object(measure) < 120


# --- the whole process -----------------------------------------------------------------------------

_CHILD = """
import json, sys
from pathlib import Path
from tests.unit.backup.test_archive_memory import child
print(json.dumps(child(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))))
"""


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


def child(phase: str, n: int, directory: Path) -> int:
    """Run in a fresh interpreter: one phase at `n` objects; the growth of its peak RSS, in KiB."""
    base = _rss_kib("VmRSS")
    if phase == "write":  # the tarball, its manifest and the resource list to files, as a backup does
        listed = archive.ResourceList()
        with (directory / "tarball").open("wb") as sink:
            writer = archive.ArchiveWriter(sink)
            for i in range(n):
                obj = configmap(i)
                writer.add_item(obj, "configmaps", preferred_version="v1")
                listed.add("v1", "ConfigMap", obj["metadata"]["namespace"], obj["metadata"]["name"])
            manifest = writer.close()
        with (directory / "manifest").open("wb") as out:
            manifest.write_json(out)
        with (directory / "resource-list").open("wb") as out:
            listed.write_json(out)
    else:  # the manifest read back and the tarball verified and indexed, as a restore does
        with (directory / "manifest").open("rb") as source:
            manifest = archive.Manifest.read(source)
        with (directory / "tarball").open("rb") as source:
            index = archive.index_archive(source, manifest, budget=0)
        assert len(index.items) == n
    return _rss_kib("VmHWM") - base


def rss_growth(phase: str, n: int, directory: Path) -> int:
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(root), "TMPDIR": str(directory)}
    out = subprocess.run([sys.executable, "-c", _CHILD, phase, str(n), str(directory)], check=True,
                         capture_output=True, text=True, env=env, cwd=root, timeout=600).stdout
    return int(json.loads(out.splitlines()[-1]))


def test_peak_rss_does_not_grow_with_the_number_of_objects(tmp_path: Path) -> None:
    small, large = 10_000, 40_000  # SQLite's page caches (1 MiB a table) are full at either size
    growth: dict[tuple[str, int], int] = {}
    for n in (small, large):
        directory = tmp_path / str(n)
        directory.mkdir()
        for phase in ("write", "read"):
            growth[phase, n] = rss_growth(phase, n, directory)
    for phase in ("write", "read"):
        slope = (growth[phase, large] - growth[phase, small]) * 1024 / (large - small)
        # today ~30 bytes an object (10k -> 100k: writing 2.7 -> 4.0 MiB over the interpreter, reading
        # 4.5 -> 5.4); with bookkeeping in memory ~1,000 (and with a page cache left unbounded ~800)
        assert slope < 150, (phase, growth)
