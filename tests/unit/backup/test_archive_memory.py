"""What writing and indexing an archive holds per object, counted by tracemalloc (allocations, not time).

The slope between two sizes is what grows with a backup: objects themselves are never held (past the
index budget a restore keeps a skeleton), but some bookkeeping is, per member and per object. The
bounds are ~1.5x what is held today; the regressions they catch cost more than that: tarfile keeping
every TarInfo (~0.8 KB a member, two members an object), a manifest as a dict of Digest objects
(~430 bytes a member, +600 an object), labels or whole objects in the index, a skeleton of dicts (+350).
"""

from __future__ import annotations

import gc
import io
import tracemalloc
from collections.abc import Callable
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
    return (measure(LARGE) - measure(SMALL)) / (LARGE - SMALL)


def test_writing_holds_under_800_bytes_an_object_and_no_object() -> None:
    def measure(n: int) -> int:
        return peak_bytes(lambda: written(n)[1])

    # today ~530 at the peak, when close() sorts the members into the manifest's table (~440 before):
    # each member's path and digest, two members an object
    assert per_object(measure) < 800


def test_reading_the_manifest_and_indexing_hold_under_1000_bytes_an_object() -> None:
    def measure(n: int) -> int:
        data, manifest = written(n)
        raw = manifest.to_json()
        del manifest

        def index() -> object:
            parsed = archive.Manifest.from_json(raw)
            return parsed, archive.index_archive(io.BytesIO(data), parsed, budget=0)

        return peak_bytes(index)

    # today ~690: the manifest (~150 bytes a member) and an item without its object (~350 bytes: kind,
    # identity, owners)
    assert per_object(measure) < 1000
