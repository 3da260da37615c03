"""Expectations: remember what we asked the API server to do until the watch shows it done.

After creating or deleting pods, the controller's cache lags behind; syncing again before it catches
up would create (or delete) the same pods twice. Upstream counts pending adds and deletes per
controller; we record the pod names, which also tells us *which* ones are still in flight.
Expectations expire after a timeout so a lost watch event cannot wedge a controller forever.
After a restart they are empty, which is safe: the operator's caches are fully listed before any
sync runs (Kopf populates indexes first), so there is nothing in flight that the cache cannot see.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from dataclasses import dataclass, field

EXPECTATIONS_TIMEOUT = 300.0  # upstream's ExpectationsTimeout


@dataclass
class _Pending:
    creates: set[str] = field(default_factory=set)
    deletes: set[str] = field(default_factory=set)
    # Creations we asked for whose names we do not know yet (the POST is still in flight).
    unnamed_creates: int = 0
    since: float = field(default_factory=time.monotonic)


class Expectations:
    def __init__(self, timeout: float = EXPECTATIONS_TIMEOUT) -> None:
        self._pending: dict[Hashable, _Pending] = {}
        self._timeout = timeout

    def _entry(self, owner: Hashable) -> _Pending:
        entry = self._pending.get(owner)
        if entry is None:
            entry = self._pending[owner] = _Pending()
        return entry

    def expect_creations(self, owner: Hashable, count: int) -> None:
        entry = self._entry(owner)
        entry.unnamed_creates += count
        entry.since = time.monotonic()

    def created(self, owner: Hashable, name: str) -> None:
        """A create call returned `name`: wait for the watch to show it."""
        entry = self._entry(owner)
        entry.unnamed_creates = max(0, entry.unnamed_creates - 1)
        entry.creates.add(name)

    def creation_failed(self, owner: Hashable) -> None:
        entry = self._entry(owner)
        entry.unnamed_creates = max(0, entry.unnamed_creates - 1)

    def expect_deletions(self, owner: Hashable, names: list[str]) -> None:
        entry = self._entry(owner)
        entry.deletes.update(names)
        entry.since = time.monotonic()

    def deletion_failed(self, owner: Hashable, name: str) -> None:
        self._entry(owner).deletes.discard(name)

    def observe(self, owner: Hashable, seen: set[str], active: set[str]) -> None:
        """Settle against the cache: a create is done once its pod is `seen`, a delete once its
        pod is no longer `active` (gone, or terminating with a deletionTimestamp)."""
        entry = self._pending.get(owner)
        if entry is None:
            return
        entry.creates -= seen
        entry.deletes &= active

    def pod_seen(self, owner: Hashable, name: str) -> None:
        """A watch event named this pod: its creation is observed even if it is already gone."""
        entry = self._pending.get(owner)
        if entry is not None:
            entry.creates.discard(name)

    def satisfied(self, owner: Hashable) -> bool:
        entry = self._pending.get(owner)
        if entry is None:
            return True
        if not entry.creates and not entry.deletes and entry.unnamed_creates == 0:
            del self._pending[owner]
            return True
        if time.monotonic() - entry.since > self._timeout:
            del self._pending[owner]
            return True
        return False

    def forget(self, owner: Hashable) -> None:
        self._pending.pop(owner, None)
