"""Shared informers: one list+watch per resource for every controller in the process.

client-go's SharedInformerFactory in small. `SharedInformers.informer(resource)` returns the one
`core.informer.Informer` for that resource (created on first use, with the trimmed form the cache
keeps), to which each controller adds its handlers (they receive the old and the new object) and the
indexes it reads. The manager runs them all and waits until every one has listed before any worker
runs (WaitForCacheSync).

The indexes every controller shares are defined here once:

- `namespace`: objects by namespace;
- `controller`: objects by the UID of their controller (ownerReference with controller: true): a
  ReplicaSet's pods, a Deployment's ReplicaSets, a DaemonSet's ControllerRevisions;
- `orphan`: objects without a controller, by namespace (the ones a controller may adopt);
- `node`: pods by spec.nodeName.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Sequence

from operators.core import trim
from operators.core.apis import NODES, PODS, Resource
from operators.core.informer import Informer
from operators.core.kube import JSON, Kube
from operators.core.owners import controller_uid

logger = logging.getLogger(__name__)

NAMESPACE, CONTROLLER, ORPHAN, NODE = "namespace", "controller", "orphan", "node"


def by_namespace(obj: JSON) -> Sequence[str]:
    return ((obj.get("metadata") or {}).get("namespace") or "",)


def by_controller(obj: JSON) -> Sequence[str]:
    uid = controller_uid(obj)
    return (uid,) if uid else ()


def orphans_by_namespace(obj: JSON) -> Sequence[str]:
    return () if controller_uid(obj) else by_namespace(obj)


def pods_by_node(obj: JSON) -> Sequence[str]:
    node = (obj.get("spec") or {}).get("nodeName")
    return (node,) if node else ()


def _transform_for(resource: Resource) -> Callable[[JSON], JSON]:
    if resource == PODS:
        return trim.trim_pod
    if resource == NODES:
        return trim.trim_node

    def transform(body: JSON) -> JSON:
        # Items of a list carry no apiVersion and kind; Events and ownerReferences need them.
        trimmed = trim.trim_object(body)
        trimmed["apiVersion"], trimmed["kind"] = resource.api_version, resource.kind
        return trimmed

    return transform


class SharedInformers:
    """`namespaces` limits every namespaced informer to those namespaces (`kubeplane run -n`)."""

    def __init__(self, kube: Kube, namespaces: Sequence[str] = ()) -> None:
        self.kube = kube
        self.namespaces = list(namespaces)
        self._informers: dict[Resource, Informer] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def informer(self, resource: Resource) -> Informer:
        """The informer of `resource`, with the shared indexes (namespaced kinds) already added."""
        informer = self._informers.get(resource)
        if informer is None:
            if self._tasks:
                raise RuntimeError(f"informer for {resource} requested after the informers started")
            paths = [resource.path(ns) for ns in self.namespaces] if resource.namespaced and self.namespaces else \
                resource.path()
            informer = Informer(self.kube, paths, transform=_transform_for(resource), name=str(resource))
            if resource.namespaced:
                informer.add_index(NAMESPACE, by_namespace)
                informer.add_index(CONTROLLER, by_controller)
                informer.add_index(ORPHAN, orphans_by_namespace)
            if resource == PODS:
                informer.add_index(NODE, pods_by_node)
            self._informers[resource] = informer
        return informer

    def __iter__(self) -> Iterator[Informer]:
        return iter(self._informers.values())

    def start(self) -> list[asyncio.Task[None]]:
        self._tasks = [asyncio.create_task(i.run(), name=f"informer {i.name}") for i in self._informers.values()]
        return self._tasks

    @property
    def synced(self) -> bool:
        return all(i.synced.is_set() for i in self._informers.values())

    async def wait_synced(self) -> None:
        """WaitForCacheSync: every informer has listed once."""
        await asyncio.gather(*(i.synced.wait() for i in self._informers.values()))
        logger.info("caches synced: %s", ", ".join(f"{i.name} ({len(i.store)})" for i in self._informers.values()))
