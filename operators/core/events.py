"""Kubernetes Events about our objects, recorded the way client-go's event recorder records them.

Recording never blocks the caller: events go on a bounded queue that one background task posts.
When the queue is full (an event storm), new events are dropped with a log line, as upstream's
broadcaster drops them, rather than slowing the controller down.

Before posting, events pass client-go's EventCorrelator (tools/record/events_cache.go), so what
lands in the API is what kube-controller-manager's components would have written:

- aggregation: events about one object from one component with the same type and reason but
  different messages are kept apart until ten distinct messages were seen within ten minutes; from
  then on they are folded into one event "(combined from similar events): <latest message>";
- deduplication: an event identical to one already posted (same object, type, reason, message) is
  not posted again: the existing Event's count goes up and its lastTimestamp moves (a PATCH);
- spam filter: per component and object a token bucket of 25, refilled one per five minutes; an
  event without a token is dropped.

So a ReplicaSet scaling to 500 posts about 25 Event writes, not 500, exactly like upstream.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from operators.core.kube import ApiError, Kube
from operators.core.timeutil import format_time, now

logger = logging.getLogger(__name__)

MAX_SIMILAR_EVENTS = 10  # defaultAggregateMaxEvents
AGGREGATE_WINDOW = 600.0  # defaultAggregateIntervalInSeconds
SPAM_BURST = 25  # defaultSpamBurst
SPAM_QPS = 1.0 / 300  # defaultSpamQPS
CACHE_SIZE = 4096  # maxLruCacheEntries
COMBINED_PREFIX = "(combined from similar events): "


def _object_key(event: Mapping[str, Any]) -> tuple[str, ...]:
    involved = event["involvedObject"]
    return (str(event["source"]["component"]), str(involved.get("kind")), str(involved.get("namespace")),
            str(involved.get("name")), str(involved.get("uid")), str(involved.get("apiVersion")))


class _Lru(OrderedDict[Any, Any]):
    def remember(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > CACHE_SIZE:
            self.popitem(last=False)


@dataclass
class _Aggregate:
    messages: set[str] = field(default_factory=set)
    last: float = 0.0


@dataclass
class _Bucket:
    tokens: float = SPAM_BURST
    last: float = field(default_factory=time.monotonic)


@dataclass
class Correlated:
    """What to post: `create` a new Event, or `patch` the existing one named `name`; `skip` drops it."""

    event: dict[str, Any]
    skip: bool = False
    patch_name: str | None = None


class EventCorrelator:
    def __init__(self) -> None:
        self._aggregates = _Lru()  # (object, type, reason) -> _Aggregate
        self._posted = _Lru()  # full key -> (event name, count)
        self._spam = _Lru()  # object -> _Bucket

    def correlate(self, event: dict[str, Any], clock: float | None = None) -> Correlated:
        moment = time.monotonic() if clock is None else clock
        aggregate_key = (*_object_key(event), event["type"], event["reason"])
        record = self._aggregates.get(aggregate_key)
        if record is None or moment - record.last > AGGREGATE_WINDOW:
            record = _Aggregate()
        record.messages.add(event["message"])
        record.last = moment
        self._aggregates.remember(aggregate_key, record)
        key: tuple[str, ...] = (*aggregate_key, event["message"])
        if len(record.messages) >= MAX_SIMILAR_EVENTS:
            record.messages.pop()  # never grow past the limit
            event = {**event, "message": COMBINED_PREFIX + event["message"]}
            key = aggregate_key
        previous = self._posted.get(key)
        if not self._take_token(_object_key(event), moment):
            return Correlated(event, skip=True)
        if previous is not None:
            name, count = previous
            event = {**event, "count": count + 1}
            self._posted.remember(key, (name, count + 1))
            return Correlated(event, patch_name=name)
        self._posted.remember(key, (event["metadata"]["name"], 1))
        return Correlated(event)

    def _take_token(self, key: tuple[str, ...], moment: float) -> bool:
        bucket = self._spam.get(key)
        if bucket is None:
            bucket = _Bucket(last=moment)
        bucket.tokens = min(SPAM_BURST, bucket.tokens + (moment - bucket.last) * SPAM_QPS)
        bucket.last = moment
        self._spam.remember(key, bucket)
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True


@dataclass(frozen=True)
class Event:
    """An Event a controller's plan asks for (type Normal or Warning); `EventRecorder.emit` posts it."""
    type: str
    reason: str
    message: str


class EventRecorder:
    """Records Events for one component. `concurrency` is how many posts may be in flight: 1 is
    client-go's tools/record (kube-controller-manager's recorder posts one event after the other);
    kube-scheduler's recorder (tools/events) posts every event on a goroutine of its own, so a burst
    of bindings never fills its queue, and kubeplane's scheduler passes a higher bound for the same reason."""

    def __init__(self, kube: Kube, component: str, *, capacity: int = 1000, concurrency: int = 1) -> None:
        self._kube = kube
        self._component = component
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=capacity)
        self._concurrency = max(1, concurrency)
        self.correlator = EventCorrelator()

    def normal(self, obj: Mapping[str, Any], reason: str, message: str) -> None:
        self._record(obj, "Normal", reason, message)

    def warning(self, obj: Mapping[str, Any], reason: str, message: str) -> None:
        self._record(obj, "Warning", reason, message)

    def emit(self, obj: Mapping[str, Any], event: Event) -> None:
        """A planned Event about `obj`."""
        self._record(obj, event.type, event.reason, event.message)

    def _record(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        meta = obj["metadata"]
        namespace = meta.get("namespace") or "default"
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": namespace},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": meta["name"],
                "namespace": meta.get("namespace"), "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": self._component},
            "reportingComponent": self._component,
            "count": 1,
        }
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            logger.warning("event queue full; dropped %s event %s for %s", type_, reason, meta["name"])

    async def run(self) -> None:
        """Post queued events until cancelled, correlated in the order they were recorded, at most
        `concurrency` posts in flight. A count patch waits for the create of the Event it patches."""
        slots = asyncio.Semaphore(self._concurrency)
        creating: dict[tuple[str, str], asyncio.Task[None]] = {}  # Events whose create is in flight
        posting: set[asyncio.Task[None]] = set()
        try:
            while True:
                event = await self._queue.get()
                correlated = self.correlator.correlate(event)
                if correlated.skip:
                    continue
                await slots.acquire()
                namespace = correlated.event["metadata"]["namespace"]
                if correlated.patch_name is None:
                    ref = (namespace, correlated.event["metadata"]["name"])
                    task = asyncio.create_task(self._post(correlated, None))
                    creating[ref] = task
                    task.add_done_callback(functools.partial(_forget, creating, ref))
                else:
                    before = creating.get((namespace, correlated.patch_name))
                    task = asyncio.create_task(self._post(correlated, before))
                posting.add(task)
                task.add_done_callback(posting.discard)
                task.add_done_callback(functools.partial(_release, slots))
        finally:
            for task in posting:
                task.cancel()

    async def _post(self, correlated: Correlated, after: asyncio.Task[None] | None) -> None:
        if after is not None:
            await asyncio.wait([after])  # the Event must exist before its count is patched
        event = correlated.event
        timestamp = format_time(now())
        path = f"/api/v1/namespaces/{event['metadata']['namespace']}/events"
        try:
            if correlated.patch_name is None:
                await self._kube.create(path, {**event, "firstTimestamp": timestamp, "lastTimestamp": timestamp})
            else:
                await self._kube.patch(f"{path}/{correlated.patch_name}", {
                    "count": event["count"], "lastTimestamp": timestamp, "message": event["message"]})
        except ApiError as e:
            # The namespace may be going away; an event is never worth a retry storm.
            logger.debug("could not post event %s: %s", event["reason"], e)
        except Exception:
            logger.exception("could not post event %s", event["reason"])


def _forget(creating: dict[tuple[str, str], asyncio.Task[None]], ref: tuple[str, str],
            done: asyncio.Task[None]) -> None:
    if creating.get(ref) is done:
        del creating[ref]


def _release(slots: asyncio.Semaphore, _: asyncio.Task[None]) -> None:
    slots.release()
