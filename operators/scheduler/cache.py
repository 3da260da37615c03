"""The scheduler cache: a `Snapshot` kept up to date from the informers' views, plus assumed pods.

The views (nodes by name, assigned pods by node name, nominated pods by node name, namespace
labels; see informers.py) are the watch-fed truth. Event handlers only mark nodes dirty; at the start of each
scheduling cycle `refresh()` rebuilds the NodeInfo of the dirty nodes alone, so a cycle costs
what changed, not the cluster size.

A pod the scheduler placed but whose binding the watch has not confirmed yet is *assumed*: it
counts on its node in every later cycle (no overcommit, no host port handed out twice). The
assumption ends when the pod shows up on the node in the index (confirmed), when the binding
fails (`forget`), or when the pod is deleted.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from operators.scheduler import helpers
from operators.scheduler.snapshot import NodeInfo, PodInfo, Snapshot

Obj = Mapping[str, Any]


class Index(Protocol):
    """What we read of a view (informers.Buckets, or a kopf.Index): key -> a store of values."""

    def get(self, key: Any, default: Any = None) -> Any: ...

    def keys(self) -> Any: ...

    def __contains__(self, key: object) -> bool: ...


def first(store: Any) -> Any:
    return next(iter(store), None) if store is not None else None


@dataclass
class Assumed:
    pod: dict[str, Any]
    node: str
    since: float
    bound: bool = False
    # The assumed pod parsed once: its node's NodeInfo is rebuilt after every event on that node
    # until the watch confirms the binding, and parsing (requests, affinity terms) is not cheap.
    info: PodInfo | None = None


class SchedulerCache:
    def __init__(self, nodes: Index, pods_by_node: Index, nominated: Index, namespaces: Index) -> None:
        self.nodes = nodes
        self.pods_by_node = pods_by_node
        self.nominated = nominated
        self.namespaces = namespaces
        self.snapshot = Snapshot()
        self.assumed: dict[str, Assumed] = {}  # pod uid -> assumption
        self._assumed_on: dict[str, dict[str, None]] = {}  # node -> uids assumed there, in assumption order
        self._dirty: set[str] = set()
        self._all_dirty = True
        self._pod_infos: dict[tuple[str, str], PodInfo] = {}  # (uid, resourceVersion) -> parsed pod

    # --- from event handlers ------------------------------------------------------------------

    def node_changed(self, name: str) -> None:
        self._dirty.add(name)

    def pod_deleted(self, uid: str) -> None:
        assumed = self._drop(uid)
        if assumed is not None:
            self._dirty.add(assumed.node)

    def invalidate(self) -> None:
        self._all_dirty = True

    # --- assume / forget ----------------------------------------------------------------------

    def assume(self, pod: Obj, node_name: str) -> dict[str, Any]:
        # A new pod object and spec with the node; the rest is shared with the informer's copy, which
        # nobody changes in place (a deep copy of a typical pod took ~54 us per placed pod).
        assumed = {**pod, "spec": {**(pod.get("spec") or {}), "nodeName": node_name}}
        uid = helpers.pod_key(pod)
        pod_info = PodInfo.of(assumed)
        self._drop(uid)
        self.assumed[uid] = Assumed(assumed, node_name, time.monotonic(), info=pod_info)
        self._assumed_on.setdefault(node_name, {})[uid] = None
        info = self.snapshot.nodes.get(node_name)
        if info is not None:
            info.add_pod(pod_info)
        return assumed

    def finish_binding(self, uid: str) -> None:
        entry = self.assumed.get(uid)
        if entry is not None:
            entry.bound = True
            self._dirty.add(entry.node)  # drop the assumption once the index shows the pod there

    def forget(self, uid: str) -> None:
        entry = self._drop(uid)
        if entry is not None:
            self._dirty.add(entry.node)

    def _drop(self, uid: str) -> Assumed | None:
        entry = self.assumed.pop(uid, None)
        if entry is not None:
            on_node = self._assumed_on.get(entry.node)
            if on_node is not None:
                on_node.pop(uid, None)
                if not on_node:
                    del self._assumed_on[entry.node]
        return entry

    def is_assumed(self, uid: str) -> bool:
        return uid in self.assumed

    # --- per cycle ----------------------------------------------------------------------------

    def refresh(self) -> Snapshot:
        """Bring the snapshot up to date with the indexes and the assumptions."""
        if self._all_dirty:
            self._all_dirty = False
            self._dirty.clear()
            names = sorted(self.nodes.keys())
            self.snapshot.nodes = {name: self._node_info(name) for name in names if first(self.nodes.get(name))}
        elif self._dirty:
            dirty, self._dirty = self._dirty, set()
            reorder = False
            for name in dirty:
                if first(self.nodes.get(name)) is None:
                    reorder = self.snapshot.nodes.pop(name, None) is not None or reorder
                    continue
                reorder = reorder or name not in self.snapshot.nodes
                self.snapshot.nodes[name] = self._node_info(name)
            if reorder:
                self.snapshot.nodes = dict(sorted(self.snapshot.nodes.items()))
        self._refresh_nominated()
        self.snapshot.namespace_labels = {
            name: dict(first(self.namespaces.get(name)) or {}) for name in self.namespaces.keys()
        }
        return self.snapshot

    def _refresh_nominated(self) -> None:
        nominated: dict[str, list[PodInfo]] = {}
        for node_name in self.nominated.keys():
            for pod in self.nominated.get(node_name) or ():
                if helpers.pod_key(pod) in self.assumed:
                    continue
                nominated.setdefault(node_name, []).append(self._pod_info(pod))
        self.snapshot.nominated = nominated

    def _node_info(self, name: str) -> NodeInfo:
        node = first(self.nodes.get(name))
        previous = self.snapshot.nodes.get(name)
        if previous is not None and previous.node is node:
            # Only its pods changed: keep the node's parsed allocatable instead of parsing it again.
            info = NodeInfo(node=node, allocatable=previous.allocatable.clone())
        else:
            info = NodeInfo.of(node)
        seen: set[str] = set()
        for pod in self.pods_by_node.get(name) or ():
            uid = helpers.pod_key(pod)
            seen.add(uid)
            info.add_pod(self._pod_info(pod))
        for uid in list(self._assumed_on.get(name, ())):
            entry = self.assumed[uid]
            if uid in seen:
                # The watch confirmed the binding: the index has the pod now.
                if entry.bound:
                    self._drop(uid)
                continue
            info.add_pod(entry.info if entry.info is not None else entry.pod)
        return info

    def _pod_info(self, pod: Obj) -> PodInfo:
        meta = pod.get("metadata") or {}
        key = (str(meta.get("uid") or helpers.pod_key(pod)), str(meta.get("resourceVersion") or ""))
        info = self._pod_infos.get(key)
        if info is None:
            if len(self._pod_infos) > 200_000:
                self._pod_infos.clear()
            info = self._pod_infos[key] = PodInfo.of(pod)
        return info

    def pods_on(self, name: str) -> Iterable[Obj]:
        return self.pods_by_node.get(name) or ()
