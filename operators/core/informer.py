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

Handlers are plain functions called on the event loop, once per change, with the event type and
the new and old objects (after `transform`, which trims what the consumer does not read): they must
not block and should only record or enqueue. Several consumers share one informer (client-go's
shared informer): each adds its handler, and secondary indexes (`add_index`, client-go's Indexers)
answer "which objects have this value" (pods by controller UID, by node) without a scan. Indexes are
updated before any handler hears of a change, so a handler that looks something up sees it.

A change is what the transformed object shows: an update that `transform` trims away entirely (a
node's heartbeat, when the conditions are not kept) is not told, and the store keeps the object the
consumer already holds.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aiohttp

from operators.core.kube import JSON, ApiError, Kube

logger = logging.getLogger(__name__)

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"
Handler = Callable[[str, JSON, JSON | None], None]  # (event type, object, previous object or None)
IndexFunc = Callable[[JSON], "Sequence[str]"]  # the index values of one (transformed) object
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
    """Keep `store` (key -> transformed object) in step with a collection; tell the handlers of each change."""

    def __init__(
        self, kube: Kube, path: str | Sequence[str], handler: Handler | None = None, *,
        transform: Callable[[JSON], JSON] = _identity, name: str | None = None, page_size: int = 500,
    ) -> None:
        self.kube = kube
        # Several paths (one per namespace, for an operator limited to some namespaces) feed one
        # store; each is listed and watched on its own, and a relist compares only its own objects.
        self.paths = [path] if isinstance(path, str) else list(path)
        self.path = self.paths[0]
        self._origin: dict[str, str] = {}  # key -> the path it came from (several paths only)
        self._listed: set[str] = set()
        self.handlers: list[Handler] = [handler] if handler is not None else []
        self.transform = transform
        self.name = name or path
        self.page_size = page_size
        self.store: dict[str, JSON] = {}
        self.synced = asyncio.Event()  # set once the first list has been replayed
        self.lists = 0
        self._indexers: dict[str, IndexFunc] = {}
        self._indices: dict[str, dict[str, set[str]]] = {}  # index -> value -> keys
        self._index_values: dict[str, dict[str, tuple[str, ...]]] = {}  # index -> key -> values

    # --- consumers ---------------------------------------------------------------------------------

    def add_handler(self, handler: Handler) -> None:
        """Hear of every change from now on (add before `run`, so nothing is missed)."""
        self.handlers.append(handler)

    def add_index(self, name: str, index: IndexFunc) -> None:
        """Maintain `name`: each object is filed under the values `index` gives it. Adding an index
        that exists with the same function is a no-op; a different function is a programming error."""
        existing = self._indexers.get(name)
        if existing is not None:
            if existing is not index:
                raise ValueError(f"informer {self.name}: index {name!r} already exists with another function")
            return
        self._indexers[name] = index
        self._indices[name] = {}
        self._index_values[name] = {}
        for key, obj in self.store.items():
            self._file(name, key, obj)

    def get(self, key: str) -> JSON | None:
        """The object stored under `namespace/name` (or `name` for cluster-scoped kinds)."""
        return self.store.get(key)

    def by_index(self, name: str, value: str) -> list[JSON]:
        """Every object the index files under `value`."""
        keys = self._indices[name].get(value)
        if not keys:
            return []
        store = self.store
        return [store[k] for k in keys if k in store]

    def index_keys(self, name: str, value: str) -> set[str]:
        return set(self._indices[name].get(value) or ())

    def _file(self, name: str, key: str, obj: JSON | None) -> None:
        values = tuple(self._indexers[name](obj)) if obj is not None else ()
        previous = self._index_values[name].get(key, ())
        if values == previous:
            return
        index = self._indices[name]
        for value in previous:
            keys = index.get(value)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del index[value]
        for value in values:
            index.setdefault(value, set()).add(key)
        if values:
            self._index_values[name][key] = values
        else:
            self._index_values[name].pop(key, None)

    def _reindex(self, key: str, obj: JSON | None) -> None:
        for name in self._indexers:
            self._file(name, key, obj)

    async def run(self) -> None:
        if len(self.paths) == 1:
            await self._run(self.path)
        else:
            await asyncio.gather(*(self._run(p) for p in self.paths))

    async def _run(self, path: str) -> None:
        version = ""
        delay = BACKOFF_SECONDS[0]
        while True:
            try:
                if not version:
                    version = await self.relist(path)
                version = await self.watch(version, path)
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

    async def relist(self, path: str | None = None) -> str:
        """List everything; replay the difference from the store as events; return the list's version."""
        path = path or self.path
        items, version = await self.kube.list_versioned(path, limit=self.page_size)
        self.lists += 1
        fresh = {object_key(item): self.transform(item) for item in items}
        if len(self.paths) == 1:
            previous, self.store = self.store, fresh
        else:
            previous = {k: v for k, v in self.store.items() if self._origin.get(k) == path}
            for key in previous:
                if key not in fresh:
                    del self.store[key]
                    del self._origin[key]
            for key, obj in fresh.items():
                self.store[key] = obj
                self._origin[key] = path
        for key, gone in previous.items():
            if key not in fresh:
                self._reindex(key, None)
                self._tell(DELETED, gone, gone)
        for key, obj in fresh.items():
            old = previous.get(key)
            if old is None:
                self._reindex(key, obj)
                self._tell(ADDED, obj, None)
            elif old != obj:
                self._reindex(key, obj)
                self._tell(MODIFIED, obj, old)
            else:
                self.store[key] = old  # unchanged as the consumer sees it: keep the object it holds
        self._listed.add(path)
        if len(self._listed) == len(self.paths):
            self.synced.set()
        return version

    async def watch(self, version: str, path: str | None = None) -> str:
        """One watch request from `version`; return the last version seen ("" when it is gone)."""
        path = path or self.path
        seconds = random.randint(*WATCH_SECONDS)
        async for event in self.kube.watch(
            path, read_timeout=seconds + 30, resourceVersion=version, allowWatchBookmarks="true",
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
                old = self.store.pop(key, None)
                self._origin.pop(key, None)
                self._reindex(key, None)
                self._tell(DELETED, obj, old)
            elif kind in (ADDED, MODIFIED):
                old = self.store.get(key)
                if old == obj:
                    continue  # a change `transform` drops (a node's heartbeat): nothing to tell
                self.store[key] = obj
                if len(self.paths) > 1:
                    self._origin[key] = path
                self._reindex(key, obj)
                self._tell(MODIFIED if old is not None else ADDED, obj, old)
        return version

    def _tell(self, kind: str, obj: JSON, old: JSON | None) -> None:
        for handler in self.handlers:
            try:
                handler(kind, obj, old)
            except Exception:
                # One bad object (or consumer) must not stop the stream for every other one.
                logger.exception("informer %s: handling %s %s", self.name, kind, object_key(obj))
