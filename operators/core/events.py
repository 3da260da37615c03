"""Kubernetes Events about our objects, as kube-controller-manager's event recorder posts them.

Recording never blocks the caller: events go on a bounded queue that one background task posts.
When the queue is full (an event storm), new events are dropped with a log line, as upstream's
broadcaster drops them, rather than slowing the controller down.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from operators.core.kube import ApiError, Kube
from operators.core.timeutil import format_time, now

logger = logging.getLogger(__name__)


class EventRecorder:
    def __init__(self, kube: Kube, component: str, *, capacity: int = 1000) -> None:
        self._kube = kube
        self._component = component
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=capacity)

    def normal(self, obj: Mapping[str, Any], reason: str, message: str) -> None:
        self._record(obj, "Normal", reason, message)

    def warning(self, obj: Mapping[str, Any], reason: str, message: str) -> None:
        self._record(obj, "Warning", reason, message)

    def _record(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        meta = obj["metadata"]
        namespace = meta.get("namespace") or "default"
        timestamp = format_time(now())
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
            "firstTimestamp": timestamp,
            "lastTimestamp": timestamp,
            "count": 1,
        }
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            logger.warning("event queue full; dropped %s event %s for %s", type_, reason, meta["name"])

    async def run(self) -> None:
        """Post queued events until cancelled."""
        while True:
            event = await self._queue.get()
            path = f"/api/v1/namespaces/{event['metadata']['namespace']}/events"
            try:
                await self._kube.create(path, event)
            except ApiError as e:
                # The namespace may be going away; an event is never worth a retry storm.
                logger.debug("could not post event %s: %s", event["reason"], e)
            except Exception:
                logger.exception("could not post event %s", event["reason"])
