"""The scheduler's view of pods, nodes and namespaces, kept by raw informers (operators.core.informer).

One pod watch feeds every pod index the scheduler reads, so each pod event is decoded and trimmed
once and costs a few dictionary operations; under Kopf each pod event went through four indexes and
a handler, and that bookkeeping cost more CPU than the scheduling decisions themselves.

A `Buckets` holds objects under a key (a node name, a pod's namespace/name, a PodGroup), each
bucket keyed by uid; it reads like a kopf.Index (`get(key)` gives the bucket's objects), which is
what the scheduler cache was written against.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from operators.core import pods as podutil
from operators.core.informer import DELETED
from operators.scheduler import gang, helpers

JSON = dict[str, Any]


class Buckets:
    """key -> {uid: object}, read as key -> objects."""

    def __init__(self) -> None:
        self._buckets: dict[Hashable, dict[str, JSON]] = {}

    def put(self, key: Hashable, uid: str, obj: JSON) -> None:
        self._buckets.setdefault(key, {})[uid] = obj

    def remove(self, key: Hashable, uid: str) -> None:
        bucket = self._buckets.get(key)
        if bucket is not None and bucket.pop(uid, None) is not None and not bucket:
            del self._buckets[key]

    def get(self, key: Any, default: Any = None) -> Any:
        bucket = self._buckets.get(key)
        return bucket.values() if bucket else default

    def keys(self) -> Iterable[Hashable]:
        return self._buckets.keys()

    def __contains__(self, key: object) -> bool:
        return key in self._buckets

    def __len__(self) -> int:
        return len(self._buckets)


class PodViews:
    """Every view of pods the scheduler reads, from one stream of pod events.

    - by_node: assigned, unfinished pods by node name (what occupies each node);
    - nominated: unassigned pods nominated to a node by preemption (upstream's nominator);
    - pending: the pods this scheduler should place, by (namespace, name);
    - group_members: unfinished pods of each PodGroup, bound or not.
    """

    def __init__(self, is_pending: Callable[[Mapping[str, Any]], bool]) -> None:
        self.is_pending = is_pending
        self.by_node = Buckets()
        self.nominated = Buckets()
        self.pending = Buckets()
        self.group_members = Buckets()

    def apply(self, kind: str, pod: JSON, old: JSON | None) -> None:
        if old is not None:
            self._remove(old)
        if kind != DELETED:
            self._add(pod)

    def _places(self, pod: Mapping[str, Any]) -> list[tuple[Buckets, Hashable]]:
        spec = pod.get("spec") or {}
        node = spec.get("nodeName")
        terminal = podutil.is_terminal(pod)
        places: list[tuple[Buckets, Hashable]] = []
        if node and not terminal:
            places.append((self.by_node, node))
        nominated = (pod.get("status") or {}).get("nominatedNodeName")
        if nominated and not node and not terminal:
            places.append((self.nominated, nominated))
        if self.is_pending(pod):
            places.append((self.pending, helpers.namespaced_name(pod)))
        group = gang.group_key(pod)
        if group is not None and gang.is_member(pod):
            places.append((self.group_members, group))
        return places

    def _add(self, pod: JSON) -> None:
        uid = helpers.pod_key(pod)
        for buckets, key in self._places(pod):
            buckets.put(key, uid, pod)

    def _remove(self, pod: JSON) -> None:
        uid = helpers.pod_key(pod)
        for buckets, key in self._places(pod):
            buckets.remove(key, uid)


class ByName(Buckets):
    """name -> [value] for cluster-scoped objects (nodes, namespace labels): one-object buckets."""

    def __init__(self, value: Callable[[JSON], Any] = lambda obj: obj) -> None:
        super().__init__()
        self.value = value

    def apply(self, kind: str, obj: JSON, old: JSON | None) -> None:
        name = (obj.get("metadata") or {}).get("name") or ""
        if kind == DELETED:
            self.remove(name, name)
        else:
            self.put(name, name, self.value(obj))
