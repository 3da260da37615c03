"""The cluster as one scheduling cycle sees it (framework.NodeInfo, the cache Snapshot).

A `NodeInfo` is a node's JSON plus the pods placed on it (bound or assumed), their summed
requests (actual and "non-zero"), the host ports they hold and the subsets of pods that carry
(anti-)affinity. A `Snapshot` holds every node's NodeInfo in a fixed order (node name), the
namespace labels that namespaceSelectors are evaluated against, the objects default topology
spreading reads (Services, ReplicationControllers, ReplicaSets, StatefulSets), the
PodDisruptionBudgets preemption weighs, and the pods nominated to nodes by earlier preemptions.

`assume`/`forget` add and remove a pod the scheduler has placed but the API server has not yet
confirmed, so the next cycle neither overcommits the node nor hands out its host ports twice.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from operators.core import pods as podutil
from operators.core.selectors import Selector, SelectorError, from_label_selector
from operators.scheduler import helpers
from operators.scheduler.helpers import HostPort, HostPortInfo
from operators.scheduler.resources import PodResource, Resource, calculate_pod_resource, resource_list

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class AffinityTerm:
    """A parsed PodAffinityTerm (fwk.AffinityTerm)."""

    namespaces: frozenset[str]
    selector: Selector
    topology_key: str
    namespace_selector: Selector

    def matches(self, pod: Obj, namespace_labels: Mapping[str, str] | None) -> bool:
        """The pod is in one of the term's namespaces (listed, or selected by label) and its
        labels match the term's selector."""
        if helpers.namespace_of(pod) in self.namespaces or self.namespace_selector.matches(namespace_labels):
            return self.selector.matches(helpers.labels_of(pod))
        return False


@dataclass(frozen=True)
class WeightedAffinityTerm:
    term: AffinityTerm
    weight: int


def affinity_term(pod: Obj, term: Obj) -> AffinityTerm:
    """Without namespaces and namespaceSelector a term means the pod's own namespace."""
    namespaces = term.get("namespaces") or []
    namespace_selector = term.get("namespaceSelector")
    if not namespaces and namespace_selector is None:
        names = frozenset({helpers.namespace_of(pod)})
    else:
        names = frozenset(namespaces)
    return AffinityTerm(
        namespaces=names,
        selector=from_label_selector(term.get("labelSelector")),
        topology_key=term.get("topologyKey") or "",
        namespace_selector=from_label_selector(namespace_selector),
    )


def _pod_affinity(pod: Obj, kind: str) -> Obj:
    section: Obj = ((helpers.spec(pod).get("affinity") or {}).get(kind)) or {}
    return section


@dataclass(frozen=True)
class PodInfo:
    """A pod with its affinity terms parsed and its resources summed once (framework.PodInfo)."""

    pod: Obj
    required_affinity_terms: tuple[AffinityTerm, ...]
    required_anti_affinity_terms: tuple[AffinityTerm, ...]
    preferred_affinity_terms: tuple[WeightedAffinityTerm, ...]
    preferred_anti_affinity_terms: tuple[WeightedAffinityTerm, ...]
    resource: PodResource
    host_ports: tuple[HostPort, ...]
    parse_errors: tuple[str, ...] = ()

    @classmethod
    def of(cls, pod: Obj) -> PodInfo:
        errors: list[str] = []

        def required(kind: str, label: str) -> tuple[AffinityTerm, ...]:
            terms = _pod_affinity(pod, kind).get("requiredDuringSchedulingIgnoredDuringExecution") or []
            try:
                return tuple(affinity_term(pod, t) for t in terms)
            except SelectorError as exc:
                errors.append(f"{label}: {exc}")
                return ()

        def preferred(kind: str, label: str) -> tuple[WeightedAffinityTerm, ...]:
            terms = _pod_affinity(pod, kind).get("preferredDuringSchedulingIgnoredDuringExecution") or []
            try:
                return tuple(
                    WeightedAffinityTerm(affinity_term(pod, t.get("podAffinityTerm") or {}), int(t.get("weight") or 0))
                    for t in terms
                )
            except SelectorError as exc:
                errors.append(f"{label}: {exc}")
                return ()

        return cls(
            pod=pod,
            required_affinity_terms=required("podAffinity", "requiredAffinityTerms"),
            required_anti_affinity_terms=required("podAntiAffinity", "requiredAntiAffinityTerms"),
            preferred_affinity_terms=preferred("podAffinity", "preferredAffinityTerms"),
            preferred_anti_affinity_terms=preferred("podAntiAffinity", "preferredAntiAffinityTerms"),
            resource=calculate_pod_resource(pod),
            host_ports=tuple(helpers.host_ports(pod)),
            parse_errors=tuple(errors),
        )

    @property
    def key(self) -> str:
        return helpers.pod_key(self.pod)

    @property
    def has_affinity(self) -> bool:
        affinity = helpers.spec(self.pod).get("affinity") or {}
        return affinity.get("podAffinity") is not None or affinity.get("podAntiAffinity") is not None

    @property
    def has_required_anti_affinity(self) -> bool:
        anti = (helpers.spec(self.pod).get("affinity") or {}).get("podAntiAffinity") or {}
        return bool(anti.get("requiredDuringSchedulingIgnoredDuringExecution"))


# Counts every pod with (anti-)affinity added to or removed from any NodeInfo: a Snapshot's lists of
# the nodes holding such pods stay valid while it does not move and those NodeInfos are still its own.
_affinity_changes = [0]


@dataclass(slots=True)
class NodeInfo:
    """A node and what is placed on it."""

    node: Obj
    pods: list[PodInfo] = field(default_factory=list)
    pods_with_affinity: list[PodInfo] = field(default_factory=list)
    pods_with_required_anti_affinity: list[PodInfo] = field(default_factory=list)
    used_ports: HostPortInfo = field(default_factory=HostPortInfo)
    requested: Resource = field(default_factory=Resource)
    non_zero_requested: Resource = field(default_factory=Resource)
    allocatable: Resource = field(default_factory=Resource)
    name: str = field(init=False)
    labels: Mapping[str, str] = field(init=False)
    # Scores computed from this node's totals alone (see resource_allocation.score), remembered
    # until a pod is added or removed: between two cycles most nodes do not change.
    score_memo: dict[Hashable, int] = field(default_factory=dict, init=False, repr=False, compare=False)
    # Filter verdicts and raw score rows of alike pods (framework.NodeLocal), as long as score_memo.
    alike_memo: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.name = helpers.name_of(self.node)
        self.labels = helpers.labels_of(self.node)

    @classmethod
    def of(cls, node: Obj, pods: Iterable[Obj | PodInfo] = ()) -> NodeInfo:
        allocatable = resource_list((node.get("status") or {}).get("allocatable"))
        info = cls(node=node, allocatable=Resource.from_list(allocatable))
        for pod in pods:
            info.add_pod(pod)
        return info

    def add_pod(self, pod: Obj | PodInfo) -> PodInfo:
        info = pod if isinstance(pod, PodInfo) else PodInfo.of(pod)
        self.pods.append(info)
        if info.has_affinity:
            self.pods_with_affinity.append(info)
            _affinity_changes[0] += 1
        if info.has_required_anti_affinity:
            self.pods_with_required_anti_affinity.append(info)
            _affinity_changes[0] += 1
        self._update(info, 1)
        return info

    def remove_pod(self, pod: Obj | PodInfo) -> PodInfo:
        """Removes the pod with the same key; KeyError when it is not on this node."""
        key = pod.key if isinstance(pod, PodInfo) else helpers.pod_key(pod)
        for index, info in enumerate(self.pods):
            if info.key == key:
                del self.pods[index]
                break
        else:
            raise KeyError(f"no pod {key} on node {self.name}")
        if info.has_affinity or info.has_required_anti_affinity:
            _affinity_changes[0] += 1
        self.pods_with_affinity = [p for p in self.pods_with_affinity if p.key != key]
        self.pods_with_required_anti_affinity = [p for p in self.pods_with_required_anti_affinity if p.key != key]
        self._update(info, -1)
        return info

    def _update(self, info: PodInfo, sign: int) -> None:
        self.score_memo.clear()
        self.alike_memo.clear()
        res = info.resource.resource
        self.requested.milli_cpu += sign * res.milli_cpu
        self.requested.memory += sign * res.memory
        self.requested.ephemeral_storage += sign * res.ephemeral_storage
        for name, quantity in res.scalar.items():
            self.requested.scalar[name] = self.requested.scalar.get(name, 0) + sign * quantity
        self.non_zero_requested.milli_cpu += sign * info.resource.non0_cpu
        self.non_zero_requested.memory += sign * info.resource.non0_mem
        for ip, protocol, port in info.host_ports:
            if sign > 0:
                self.used_ports.add(ip, protocol, port)
            else:
                self.used_ports.remove(ip, protocol, port)

    def clone(self) -> NodeInfo:
        """A copy whose pod lists and totals can change without touching this one (PodInfos
        themselves are immutable and shared)."""
        return NodeInfo(
            node=self.node,
            pods=list(self.pods),
            pods_with_affinity=list(self.pods_with_affinity),
            pods_with_required_anti_affinity=list(self.pods_with_required_anti_affinity),
            used_ports=self.used_ports.clone(),
            requested=self.requested.clone(),
            non_zero_requested=self.non_zero_requested.clone(),
            allocatable=self.allocatable.clone(),
        )


def _controller_key(kind: str, namespace: str, name: str) -> tuple[str, str, str]:
    return (kind, namespace, name)


@dataclass
class Snapshot:
    """Every node (in name order) with its pods, plus the cluster objects plugins consult."""

    nodes: dict[str, NodeInfo] = field(default_factory=dict)
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    services: list[Obj] = field(default_factory=list)
    controllers: dict[tuple[str, str, str], Obj] = field(default_factory=dict)
    pdbs: list[Obj] = field(default_factory=list)
    nominated: dict[str, list[PodInfo]] = field(default_factory=dict)
    # Verdicts and scores of the plugins that read only the pod's spec and the Node object, by
    # node name: (the Node object they were computed on, the profile, {pod key: result}). See
    # Framework's "node-static" plugins; a new Node object or profile starts the entry afresh.
    static_memo: dict[str, tuple[Any, Any, dict[Any, Any]]] = field(default_factory=dict)
    # The profile whose results NodeInfo.alike_memo holds for alike pods, and a number that changes
    # with it (part of every key there, so another profile never reads them).
    # framework.Framework per profile bound to this snapshot (its plugins are built once, as upstream's
    # are per profile), keyed by id(profile) with the profile kept to check it.
    frameworks: dict[int, tuple[Any, Any]] = field(default_factory=dict, repr=False, compare=False)
    alike_profile: Any = None
    alike_epoch: int = 0
    _affinity_cache: tuple[int, Any, list[NodeInfo], list[NodeInfo]] | None = field(default=None, repr=False)

    @classmethod
    def build(
        cls,
        nodes: Iterable[Obj],
        pods: Iterable[Obj] = (),
        *,
        namespaces: Iterable[Obj] | Mapping[str, Mapping[str, str]] = (),
        services: Iterable[Obj] = (),
        controllers: Iterable[Obj] = (),
        pdbs: Iterable[Obj] = (),
    ) -> Snapshot:
        """A snapshot from API objects.

        Pods bound to a listed node are placed on it; finished pods (Succeeded/Failed) are left
        out as the scheduler's informer leaves them out; unbound pods carrying
        status.nominatedNodeName are recorded as nominated. `namespaces` are Namespace objects
        or a name -> labels mapping; `controllers` are ReplicationControllers, ReplicaSets and
        StatefulSets (default topology spreading reads their selectors).
        """
        snapshot = cls()
        for node in sorted(nodes, key=helpers.name_of):
            snapshot.nodes[helpers.name_of(node)] = NodeInfo.of(node)
        for pod in pods:
            if podutil.is_terminal(pod):
                continue
            node_name = helpers.spec(pod).get("nodeName") or ""
            if node_name:
                if node_name in snapshot.nodes:
                    snapshot.nodes[node_name].add_pod(pod)
                continue
            nominated = (pod.get("status") or {}).get("nominatedNodeName") or ""
            if nominated:
                snapshot.add_nominated_pod(pod, nominated)
        if isinstance(namespaces, Mapping):
            snapshot.namespace_labels = {name: dict(labels) for name, labels in namespaces.items()}
        else:
            snapshot.namespace_labels = {helpers.name_of(ns): dict(helpers.labels_of(ns)) for ns in namespaces}
        snapshot.services = list(services)
        for controller in controllers:
            kind, namespace = controller.get("kind", ""), helpers.namespace_of(controller)
            snapshot.controllers[_controller_key(kind, namespace, helpers.name_of(controller))] = controller
        snapshot.pdbs = list(pdbs)
        return snapshot

    def node_list(self) -> list[NodeInfo]:
        return list(self.nodes.values())

    def get(self, name: str) -> NodeInfo | None:
        return self.nodes.get(name)

    def __len__(self) -> int:
        return len(self.nodes)

    def have_pods_with_affinity(self) -> list[NodeInfo]:
        return list(self._affinity_lists()[0])

    def have_pods_with_required_anti_affinity(self) -> list[NodeInfo]:
        return list(self._affinity_lists()[1])

    def _affinity_lists(self) -> tuple[list[NodeInfo], list[NodeInfo]]:
        """The nodes holding pods with affinity, and with required anti-affinity, in node order; kept
        between cycles (InterPodAffinity asks every cycle) while no such pod moved anywhere, the nodes
        dict is the same and those NodeInfos are still in it."""
        cached = self._affinity_cache
        if (cached is not None and cached[0] == _affinity_changes[0] and cached[1] is self.nodes
                and all(self.nodes.get(n.name) is n for n in cached[2])
                and all(self.nodes.get(n.name) is n for n in cached[3])):
            return cached[2], cached[3]
        with_affinity = [n for n in self.nodes.values() if n.pods_with_affinity]
        with_anti = [n for n in self.nodes.values() if n.pods_with_required_anti_affinity]
        self._affinity_cache = (_affinity_changes[0], self.nodes, with_affinity, with_anti)
        return with_affinity, with_anti

    def controller(self, kind: str, namespace: str, name: str) -> Obj | None:
        return self.controllers.get(_controller_key(kind, namespace, name))

    def namespace_labels_of(self, namespace: str) -> dict[str, str] | None:
        """The namespace's labels, or None when the namespace is unknown (upstream then assumes
        an empty label set)."""
        return self.namespace_labels.get(namespace)

    # Nominated pods (the scheduling queue's nominator).

    def add_nominated_pod(self, pod: Obj, node_name: str) -> None:
        self.remove_nominated_pod(pod)
        self.nominated.setdefault(node_name, []).append(PodInfo.of(pod))

    def remove_nominated_pod(self, pod: Obj) -> None:
        key = helpers.pod_key(pod)
        for node_name in list(self.nominated):
            remaining = [p for p in self.nominated[node_name] if p.key != key]
            if remaining:
                self.nominated[node_name] = remaining
            else:
                del self.nominated[node_name]

    def nominated_pods_for(self, node_name: str) -> list[PodInfo]:
        return list(self.nominated.get(node_name, ()))

    # Assumed pods.

    def assume(self, pod: Obj, node_name: str) -> dict[str, Any]:
        """Places `pod` on `node_name` ahead of the binding; returns the assumed copy (with
        spec.nodeName set). Raises KeyError for an unknown node and ValueError if the pod is
        already placed."""
        node = self.nodes[node_name]
        key = helpers.pod_key(pod)
        if any(p.key == key for info in self.nodes.values() for p in info.pods):
            raise ValueError(f"pod {key} is already placed")
        assumed = copy.deepcopy(dict(pod))
        assumed.setdefault("spec", {})["nodeName"] = node_name
        node.add_pod(assumed)
        self.remove_nominated_pod(pod)
        return assumed

    def forget(self, pod: Obj) -> None:
        """Undoes `assume` (or removes a deleted pod); a pod that is not placed is ignored."""
        key = helpers.pod_key(pod)
        for info in self.nodes.values():
            if any(p.key == key for p in info.pods):
                info.remove_pod(pod)
                return

    def clone(self) -> Snapshot:
        return Snapshot(
            nodes={name: info.clone() for name, info in self.nodes.items()},
            namespace_labels=self.namespace_labels,
            services=self.services,
            controllers=self.controllers,
            pdbs=self.pdbs,
            nominated={name: list(pods) for name, pods in self.nominated.items()},
        )
