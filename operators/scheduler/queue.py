"""The scheduling queue (pkg/scheduler/backend/queue's PriorityQueue), for asyncio.

Three places a pending pod can be, as upstream:
- activeQ: a heap ordered by priority (higher first), then by when the pod was added (FIFO);
- backoffQ: pods that failed with an error, back after 1 s doubling to 10 s per attempt;
- unschedulablePods: pods no node fitted; they come back when a cluster event may have made
  room (`move_all_to_active`) or after at most 5 minutes.

A pod is in at most one place, or "in flight" between `pop` and `done`/`unschedulable`/
`backoff`. A move request that arrives while a pod is in flight sends it to the backoffQ instead
of the unschedulable pods (upstream's moveRequestCycle), so an event during its cycle is not lost.
Adding a pod the queue already knows is a no-op: the scheduler's own status writes on a pod must
not retry it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 10.0
MAX_UNSCHEDULABLE_SECONDS = 300.0


@dataclass
class _Entry:
    priority: int
    attempts: int = 0
    cycle: int = 0  # the scheduling cycle it was popped in


class SchedulingQueue(Generic[K]):
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[K, _Entry] = {}
        self._heap: list[tuple[int, int, K]] = []
        self._active: set[K] = set()
        self._backoff: dict[K, float] = {}  # key -> when it may run again
        self._unschedulable: dict[K, float] = {}  # key -> since when
        self._in_flight: set[K] = set()
        self._seq = itertools.count()
        self._cycle = 0
        self._move_request_cycle = -1
        self._wakeup = asyncio.Event()

    # --- sizes (metrics, tests) ---------------------------------------------------------------

    def sizes(self) -> dict[str, int]:
        return {
            "active": len(self._active),
            "backoff": len(self._backoff),
            "unschedulable": len(self._unschedulable),
        }

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    # --- producers (event handlers) -----------------------------------------------------------

    def add(self, key: K, priority: int) -> None:
        """A new pending pod goes to the activeQ; a known one stays where it is."""
        if key in self._entries:
            return
        self._entries[key] = _Entry(priority)
        self._push(key)

    def delete(self, key: K) -> None:
        """The pod is gone or no longer ours to schedule."""
        if self._entries.pop(key, None) is None:
            return
        self._active.discard(key)  # its heap entry is skipped when popped
        self._backoff.pop(key, None)
        self._unschedulable.pop(key, None)

    def move_all_to_active(self) -> None:
        """A cluster event may have made unschedulable pods schedulable: retry them (those still
        backing off stay in the backoffQ until their time)."""
        self._move_request_cycle = self._cycle
        now = self._clock()
        for key in list(self._unschedulable):
            del self._unschedulable[key]
            entry = self._entries[key]
            ready = self._backoff_until(entry, now)
            if ready > now:
                self._backoff[key] = ready
            else:
                self._push(key)
        self._wakeup.set()

    # --- the scheduling loop ------------------------------------------------------------------

    async def pop(self) -> K:
        """The next pod to schedule, waiting for one."""
        while True:
            self._flush()
            while self._heap:
                _, _, key = heapq.heappop(self._heap)
                if key in self._active:
                    self._active.discard(key)
                    self._in_flight.add(key)
                    self._cycle += 1
                    entry = self._entries[key]
                    entry.attempts += 1
                    entry.cycle = self._cycle
                    return key
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=self._next_timer())
            except TimeoutError:
                pass

    def done(self, key: K) -> None:
        """Scheduled (assumed): the queue forgets the pod."""
        self._in_flight.discard(key)
        self._entries.pop(key, None)

    def unschedulable(self, key: K) -> None:
        """No node fits: park it (or back it off, if a move request came during its cycle)."""
        self._in_flight.discard(key)
        entry = self._entries.get(key)
        if entry is None:
            return
        if self._move_request_cycle >= entry.cycle:
            self._backoff[key] = self._backoff_until(entry, self._clock())
        else:
            self._unschedulable[key] = self._clock()
        self._wakeup.set()

    def backoff(self, key: K) -> None:
        """An error (API failure, binding failure): back after 1 s doubling to 10 s per attempt."""
        self._in_flight.discard(key)
        entry = self._entries.get(key)
        if entry is None:
            return
        self._backoff[key] = self._backoff_until(entry, self._clock())
        self._wakeup.set()

    def requeue(self, key: K, priority: int) -> None:
        """Back into the queue from outside a cycle (a failed binding), with backoff."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(priority, attempts=1)
        elif key in self._active or key in self._in_flight:
            return
        self._unschedulable.pop(key, None)
        self._backoff[key] = self._backoff_until(entry, self._clock())
        self._wakeup.set()

    # --- internals ----------------------------------------------------------------------------

    def _push(self, key: K) -> None:
        entry = self._entries[key]
        self._active.add(key)
        heapq.heappush(self._heap, (-entry.priority, next(self._seq), key))
        self._wakeup.set()

    @staticmethod
    def _backoff_until(entry: _Entry, now: float) -> float:
        if entry.attempts <= 0:
            return now
        delay: float = min(INITIAL_BACKOFF * 2.0 ** (entry.attempts - 1), MAX_BACKOFF)
        return now + delay

    def _flush(self) -> None:
        """Backoff pods whose time has come, and pods unschedulable for too long, to activeQ."""
        now = self._clock()
        for key, ready in list(self._backoff.items()):
            if ready <= now:
                del self._backoff[key]
                self._push(key)
        for key, since in list(self._unschedulable.items()):
            if now - since >= MAX_UNSCHEDULABLE_SECONDS:
                del self._unschedulable[key]
                self._push(key)

    def _next_timer(self) -> float | None:
        now = self._clock()
        times = [ready - now for ready in self._backoff.values()]
        times += [since + MAX_UNSCHEDULABLE_SECONDS - now for since in self._unschedulable.values()]
        return max(min(times), 0.01) if times else None
