"""Expectations: what a controller asked the API server to do that its cache has not shown yet.

After creating or deleting pods the informer lags behind; a sync that ran before it caught up would
create (or delete) the same pods twice. Upstream (`controller_utils.go`,
UIDTrackingControllerExpectations) counts pending creates and remembers the keys of pending deletes
per controller; a sync manages replicas only when nothing is pending, or when the expectations are
older than five minutes (a lost watch event must not wedge a controller forever).

Here the owner is keyed by its UID (a ReplicaSet deleted and recreated under the same name starts
afresh), creations are remembered by name once the POST answered, and `observe` settles both against
the cache at the start of every sync, as a second line beside the watch events. Every outcome of a
create or delete call must be reported (`created`, `creation_failed`, `deletion_observed`): a call
that raises anything, a timeout or a reset connection included, is a failure, never left pending.

Empty after a restart, which is safe: the manager starts workers only once every informer has listed
(WaitForCacheSync), and a new leader waits for its Lease, by which time the previous leader's writes
are visible in the cache.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

EXPECTATIONS_TIMEOUT = 300.0  # upstream's ExpectationsTimeout


@dataclass
class _Pending:
    creates: set[str] = field(default_factory=set)  # names created, not yet seen
    deletes: set[str] = field(default_factory=set)  # names deleted, still seen active
    unnamed_creates: int = 0  # POSTs in flight: their names are not known yet
    since: float = field(default_factory=time.monotonic)

    def settled(self) -> bool:
        return not self.creates and not self.deletes and self.unnamed_creates == 0


class Expectations:
    def __init__(self, timeout: float = EXPECTATIONS_TIMEOUT) -> None:
        self._pending: dict[str, _Pending] = {}
        self._timeout = timeout

    def _entry(self, owner_uid: str) -> _Pending:
        entry = self._pending.get(owner_uid)
        if entry is None:
            entry = self._pending[owner_uid] = _Pending()
        return entry

    def expect_creations(self, owner_uid: str, count: int) -> None:
        entry = self._entry(owner_uid)
        entry.unnamed_creates += count
        entry.since = time.monotonic()

    def created(self, owner_uid: str, name: str) -> None:
        """A create call returned `name`: wait for the cache to show it."""
        entry = self._entry(owner_uid)
        entry.unnamed_creates = max(0, entry.unnamed_creates - 1)
        entry.creates.add(name)

    def creation_failed(self, owner_uid: str, count: int = 1) -> None:
        """Creates that failed or were never attempted: nothing will arrive for them."""
        entry = self._entry(owner_uid)
        entry.unnamed_creates = max(0, entry.unnamed_creates - count)

    def expect_deletions(self, owner_uid: str, names: Iterable[str]) -> None:
        entry = self._entry(owner_uid)
        entry.deletes.update(names)
        entry.since = time.monotonic()

    def deletion_observed(self, owner_uid: str, name: str) -> None:
        """The pod is gone or terminating (a watch event), or its delete failed: stop waiting for it."""
        entry = self._pending.get(owner_uid)
        if entry is not None:
            entry.deletes.discard(name)

    def creation_observed(self, owner_uid: str, name: str) -> None:
        """A watch event named this pod: its creation is observed even if it is already gone."""
        entry = self._pending.get(owner_uid)
        if entry is not None:
            entry.creates.discard(name)

    def observe(self, owner_uid: str, seen: set[str], active: set[str]) -> None:
        """Settle against the cache: a create is done once its pod is `seen`, a delete once its pod
        is no longer `active` (gone, or terminating)."""
        entry = self._pending.get(owner_uid)
        if entry is None:
            return
        entry.creates -= seen
        entry.deletes &= active

    def satisfied(self, owner_uid: str) -> bool:
        """Whether the owner may manage its replicas: nothing pending, or pending for too long."""
        entry = self._pending.get(owner_uid)
        if entry is None or entry.settled():
            return True
        return time.monotonic() - entry.since > self._timeout

    def pending(self, owner_uid: str) -> tuple[int, int]:
        """(creates, deletes) still awaited: for logs and tests."""
        entry = self._pending.get(owner_uid)
        if entry is None:
            return 0, 0
        return entry.unnamed_creates + len(entry.creates), len(entry.deletes)

    def forget(self, owner_uid: str) -> None:
        """The owner is gone (DeleteExpectations)."""
        self._pending.pop(owner_uid, None)
