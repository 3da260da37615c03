"""Writes a controller knows its cache has not caught up with.

A controller writes an object's status with the resourceVersion it planned from as a precondition;
the API server answers with a new resourceVersion, and the informer shows it a moment later. A sync
that runs in between (another event queued the key) would plan from the replaced version and only
meet a 409. `Superseded` remembers, by object uid, the versions this controller's own writes
replaced, so such a sync returns at once: the write's own watch event queues the key again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class Superseded:
    def __init__(self) -> None:
        self._replaced: dict[str, set[str]] = {}

    def behind(self, obj: Mapping[str, Any]) -> bool:
        """Whether the cached `obj` is a version one of our writes replaced (then forget nothing);
        once the cache shows a newer version, the record is dropped."""
        meta = obj["metadata"]
        replaced = self._replaced.get(meta["uid"])
        if not replaced:
            return False
        if str(meta.get("resourceVersion")) in replaced:
            return True
        self._replaced.pop(meta["uid"])
        return False

    def wrote(self, uid: str, planned: str, written: str) -> None:
        """A write made from version `planned` produced version `written`."""
        if planned and written and planned != written:
            self._replaced.setdefault(uid, set()).add(planned)

    def forget(self, uid: str) -> None:
        self._replaced.pop(uid, None)
