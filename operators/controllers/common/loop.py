"""The controller loop every workload controller runs (client-go's worker pattern).

A `Controller` owns a work queue of object keys (`namespace/name`). Informer handlers only add keys;
`workers` coroutines take a key at a time and call `sync(key)`, which reads the caches, decides,
acts and writes status. A key is never synced by two workers at once, failures come back with
per-key backoff, and `sync` may ask to be called again after some seconds (upstream's AddAfter).
Every `resync_seconds` all keys are queued again: a level-triggered safety net.

The manager (`operators/controllers/manager.py`) starts the workers only once every informer has
listed and this process leads; until then handlers keep the queue filling.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from operators.core.events import EventRecorder
from operators.core.workqueue import WorkQueue

logger = logging.getLogger(__name__)


class Controller:
    """Subclasses set `name`, implement `keys` and `sync`, and register handlers in `__init__`."""

    name: str = "controller"
    workers: int = 5
    resync_seconds: float | None = 60.0

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            self.name = name
        self.queue: WorkQueue[str] = WorkQueue(self.name)
        self.recorders: list[EventRecorder] = []

    def keys(self) -> Iterable[str]:
        """Every key this controller is responsible for (for the periodic resync)."""
        raise NotImplementedError

    async def sync(self, key: str) -> float | None:
        raise NotImplementedError

    async def run(self) -> None:
        """The workers and the resync, until cancelled (the manager calls this while leading)."""
        logger.info("controller %s: starting %d workers", self.name, self.workers)
        tasks = [asyncio.create_task(self.queue.run_workers(self.sync, self.workers), name=f"{self.name} workers")]
        if self.resync_seconds:
            tasks.append(asyncio.create_task(self._resync_forever(self.resync_seconds), name=f"{self.name} resync"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _resync_forever(self, period: float) -> None:
        while True:
            for key in list(self.keys()):
                self.queue.add(key)
            await asyncio.sleep(period)
