"""A work queue with client-go's guarantees, for asyncio.

- A key is queued at most once however often it is added (events coalesce).
- A key is never processed by two workers at once; added while processing, it runs again after.
- Failed keys come back with per-key exponential backoff; `add_after` schedules a later look.

Handlers only add keys; workers call one `sync(key)` that reads the current state from caches.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from operators.core import metrics

K = TypeVar("K", bound=Hashable)

logger = logging.getLogger(__name__)


class RetryLater(Exception):
    """An expected failure (already reported as an Event or condition): requeue with backoff,
    log one line, no traceback."""


class WorkQueue(Generic[K]):
    def __init__(self, name: str = "default", *, base_delay: float = 0.005, max_delay: float = 300.0) -> None:
        self.name = name
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._failures: dict[K, int] = {}
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._base_delay = base_delay
        self._max_delay = max_delay

    def __len__(self) -> int:
        return len(self._dirty)

    def add(self, key: K) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        metrics.QUEUE_ADDS.labels(self.name).inc()
        metrics.QUEUE_DEPTH.labels(self.name).set(len(self._dirty))
        if key not in self._processing:
            self._queue.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        """Queue the key after `delay` seconds (an earlier pending timer for it wins)."""
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        existing = self._timers.get(key)
        if existing is not None and existing.when() <= loop.time() + delay:
            return
        if existing is not None:
            existing.cancel()

        def fire() -> None:
            self._timers.pop(key, None)
            self.add(key)

        self._timers[key] = loop.call_later(delay, fire)

    def add_rate_limited(self, key: K) -> None:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        metrics.QUEUE_RETRIES.labels(self.name).inc()
        self.add_after(key, min(self._base_delay * 2**failures, self._max_delay))

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    async def get(self) -> K:
        key = await self._queue.get()
        self._dirty.discard(key)
        metrics.QUEUE_DEPTH.labels(self.name).set(len(self._dirty))
        self._processing.add(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:  # re-added while we worked on it
            self._queue.put_nowait(key)

    async def run_workers(self, sync: Callable[[K], Awaitable[float | None]], workers: int) -> None:
        """Run `workers` concurrent loops until cancelled.

        `sync` returns None when done, or a number of seconds after which to look again.
        An exception requeues the key with backoff.
        """
        await asyncio.gather(*(self._worker(sync) for _ in range(workers)))

    async def _worker(self, sync: Callable[[K], Awaitable[float | None]]) -> None:
        while True:
            key = await self.get()
            started = time.monotonic()
            try:
                again = await sync(key)
            except asyncio.CancelledError:
                raise  # `finally` marks the key done (once: a dirty key must not be queued twice)
            except RetryLater as e:
                metrics.SYNC_ERRORS.labels(self.name).inc()
                logger.warning("sync of %s: %s; retrying with backoff", key, e)
                self.add_rate_limited(key)
            except Exception:
                metrics.SYNC_ERRORS.labels(self.name).inc()
                logger.exception("sync of %s failed; retrying with backoff", key)
                self.add_rate_limited(key)
            else:
                self.forget(key)
                if again is not None:
                    self.add_after(key, again)
            finally:
                metrics.SYNC_SECONDS.labels(self.name).observe(time.monotonic() - started)
                self.done(key)
            # A sync that needed no I/O (all from caches) never yielded: give the loop a turn, or a key
            # that keeps coming back at once would starve every other task (watches, the Lease).
            await asyncio.sleep(0)
