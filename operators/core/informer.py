"""A list+watch informer on the raw API, for collections where Kopf's per-event machinery costs too much.

Kopf gives every event of a watched resource its full treatment (per-object queues, a deep copy
per index and handler, progress bookkeeping). That is what the controllers want for the objects
they own, but the scheduler sees several events per pod it places, and on a busy cluster that
treatment alone took more CPU than the scheduling decisions. An `Informer` is client-go's
reflector and store in miniature:

- list the collection page by page, and remember the resourceVersion the list was served at;
- watch from that resourceVersion, with bookmarks, and apply each event to a local store;
- when the watch ends (the server's timeoutSeconds, a dropped connection), watch again from the
  last resourceVersion seen; when the server answers 410 Gone (that version was compacted away),
  list again and replay the difference between the store and the new list as events, so a
  consumer sees a DELETED for every object that vanished while nobody was watching.

The handler is a plain function called on the event loop, once per change, with the event type and
the new and old objects (after `transform`, which trims what the consumer does not read): it must
not block and should only record or enqueue. A change is what the transformed object shows: an
update that `transform` trims away entirely (a node's heartbeat, when the conditions are not kept)
is not told, and the store keeps the object the consumer already holds.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from operators.core.kube import JSON, ApiError, Kube

logger = logging.getLogger(__name__)

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"
Handler = Callable[[str, JSON, JSON | None], None]  # (event type, object, previous object or None)
# client-go's reflector asks for watches of 5 to 10 minutes, so that many clients do not all
# reconnect at once.
WATCH_SECONDS = (300, 600)
BACKOFF_SECONDS = (0.8, 30.0)


def object_key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{namespace}/{meta.get('name')}" if namespace else str(meta.get("name"))


def _resource_version(obj: Mapping[str, Any]) -> str:  # of a raw object: transform may drop it
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _identity(obj: JSON) -> JSON:
    return obj


class Informer:
    """Keep `store` (key -> transformed object) in step with a collection; tell `handler` of each change."""

    def __init__(
        self, kube: Kube, path: str, handler: Handler, *, transform: Callable[[JSON], JSON] = _identity,
        name: str | None = None, page_size: int = 500,
    ) -> None:
        self.kube = kube
        self.path = path
        self.handler = handler
        self.transform = transform
        self.name = name or path
        self.page_size = page_size
        self.store: dict[str, JSON] = {}
        self.synced = asyncio.Event()  # set once the first list has been replayed
        self.lists = 0

    async def run(self) -> None:
        version = ""
        delay = BACKOFF_SECONDS[0]
        while True:
            try:
                if not version:
                    version = await self.relist()
                version = await self.watch(version)
                delay = BACKOFF_SECONDS[0]
            except asyncio.CancelledError:
                raise
            except ApiError as e:
                if e.status == 410:
                    version = ""
                    continue
                logger.warning("informer %s: %s; retrying in %.1fs", self.name, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_SECONDS[1])
            except (aiohttp.ClientError, TimeoutError, ValueError, OSError) as e:
                # Keep the version: the next watch resumes from it (or learns it is gone: 410).
                logger.warning("informer %s: %r; retrying in %.1fs", self.name, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_SECONDS[1])

    async def relist(self) -> str:
        """List everything; replay the difference from the store as events; return the list's version."""
        items, version = await self.kube.list_versioned(self.path, limit=self.page_size)
        self.lists += 1
        fresh = {object_key(item): self.transform(item) for item in items}
        previous, self.store = self.store, fresh
        for key, gone in previous.items():
            if key not in fresh:
                self._tell(DELETED, gone, gone)
        for key, obj in fresh.items():
            old = previous.get(key)
            if old is None:
                self._tell(ADDED, obj, None)
            elif old != obj:
                self._tell(MODIFIED, obj, old)
            else:
                self.store[key] = old  # unchanged as the consumer sees it: keep the object it holds
        self.synced.set()
        return version

    async def watch(self, version: str) -> str:
        """One watch request from `version`; return the last version seen ("" when it is gone)."""
        seconds = random.randint(*WATCH_SECONDS)
        async for event in self.kube.watch(
            self.path, read_timeout=seconds + 30, resourceVersion=version, allowWatchBookmarks="true",
            timeoutSeconds=seconds,
        ):
            kind, raw = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if raw.get("code") == 410:
                    logger.info("informer %s: version %s is gone; listing again", self.name, version)
                    return ""
                raise ApiError(int(raw.get("code") or 500), raw, str(raw.get("message") or ""))
            version = _resource_version(raw) or version
            if kind == "BOOKMARK":
                continue
            key = object_key(raw)
            obj = self.transform(raw)
            if kind == DELETED:
                self._tell(DELETED, obj, self.store.pop(key, None))
            elif kind in (ADDED, MODIFIED):
                old = self.store.get(key)
                if old == obj:
                    continue  # a change `transform` drops (a node's heartbeat): nothing to tell
                self.store[key] = obj
                self._tell(MODIFIED if old is not None else ADDED, obj, old)
        return version

    def _tell(self, kind: str, obj: JSON, old: JSON | None) -> None:
        try:
            self.handler(kind, obj, old)
        except Exception:
            # One bad object must not stop the stream for every other object.
            logger.exception("informer %s: handling %s %s", self.name, kind, object_key(obj))
