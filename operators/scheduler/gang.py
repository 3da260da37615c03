"""Gang scheduling: PodGroups placed all or nothing, as scheduler-plugins' Coscheduling plugin.

A PodGroup (scheduling.kubeplane.dev/v1alpha1) names `minMember`; pods join it with the label
`scheduling.kubeplane.dev/pod-group: <name>` in the group's namespace. The decisions here are pure;
the scheduler operator drives them around its scheduling cycle:

- PreFilter (before the filters): a member is rejected while its PodGroup does not exist, while the
  group has fewer (non-terminal) members than minMember, or while the free allocatable resources of
  all nodes together, plus what the group already holds, cannot cover `minResources`.
- Permit (after a node was found and the pod assumed, i.e. reserved, in the cache): the pod is allowed
  to bind only once `minMember` members are placed (bound, binding or reserved); until then it waits,
  holding its reservation. The member that completes the quorum releases every waiting member to bind.
- Timeout: when the group's first waiting member has waited `scheduleTimeoutSeconds`, every waiting
  member is unreserved and retried with backoff, and the group reports why (phase Unschedulable).

The status the scheduler writes (`desired_status`): scheduled (bound members), running (Running
members), and the phase Pending -> Scheduling (members placed, waiting for the rest) -> Scheduled
(minMember bound) -> Running (minMember running); Unschedulable while the last attempt failed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from operators.core import pods as podutil
from operators.scheduler.resources import (
    CPU,
    EPHEMERAL_STORAGE,
    MEMORY,
    Resource,
    is_scalar_resource_name,
    milli_value_of,
    parse_quantity,
    pod_requests,
    value_of,
)
from operators.scheduler.snapshot import NodeInfo

Obj = Mapping[str, Any]
GroupKey = tuple[str, str]  # (namespace, PodGroup name)

GROUP = "scheduling.kubeplane.dev"
VERSION = "v1alpha1"
PLURAL = "podgroups"
POD_GROUP_LABEL = "scheduling.kubeplane.dev/pod-group"
DEFAULT_TIMEOUT_SECONDS = 60

PENDING = "Pending"
SCHEDULING = "Scheduling"
SCHEDULED = "Scheduled"
RUNNING = "Running"
UNSCHEDULABLE = "Unschedulable"


def group_key(pod: Obj) -> GroupKey | None:
    """The PodGroup a pod belongs to, by its label (None: not a gang member)."""
    meta = pod.get("metadata") or {}
    name = (meta.get("labels") or {}).get(POD_GROUP_LABEL)
    return (meta.get("namespace") or "", name) if name else None


def pod_group_path(namespace: str, name: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}"


@dataclass(frozen=True)
class PodGroup:
    namespace: str
    name: str
    min_member: int
    min_resources: Mapping[str, Decimal] = field(default_factory=dict)
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    status: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, body: Obj) -> PodGroup:
        meta = body.get("metadata") or {}
        spec = body.get("spec") or {}
        min_resources: dict[str, Decimal] = {}
        for name, quantity in (spec.get("minResources") or {}).items():
            try:
                min_resources[name] = parse_quantity(quantity)
            except ValueError:
                continue  # the CRD's pattern keeps these out; an unparsable one asks for nothing
        return cls(
            namespace=meta.get("namespace") or "",
            name=meta.get("name") or "",
            min_member=max(int(spec.get("minMember") or 1), 1),
            min_resources=min_resources,
            timeout_seconds=float(spec.get("scheduleTimeoutSeconds") or DEFAULT_TIMEOUT_SECONDS),
            status=dict(body.get("status") or {}),
        )


def trim_pod_group(body: Obj) -> dict[str, Any]:
    """What the index keeps of a PodGroup."""
    meta = body.get("metadata") or {}
    return {
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid") if k in meta},
        "spec": dict(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }


@dataclass(frozen=True)
class Member:
    """A non-terminal pod of a group, as the index keeps it."""

    uid: str
    name: str
    node: str = ""
    phase: str = ""

    @classmethod
    def of(cls, pod: Obj) -> Member:
        meta = pod.get("metadata") or {}
        return cls(
            uid=str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}"),
            name=meta.get("name") or "",
            node=(pod.get("spec") or {}).get("nodeName") or "",
            phase=(pod.get("status") or {}).get("phase") or "",
        )


def is_member(pod: Obj) -> bool:
    """Counts towards its group: labelled, not finished and not being deleted."""
    if group_key(pod) is None:
        return False
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return not podutil.is_terminal(pod)


# --- PreFilter --------------------------------------------------------------------------------


def free_resources(nodes: Iterable[NodeInfo]) -> Resource:
    """Allocatable minus requested, summed over the nodes (a node's overcommit counts as 0)."""
    total = Resource()
    for node in nodes:
        total.milli_cpu += max(node.allocatable.milli_cpu - node.requested.milli_cpu, 0)
        total.memory += max(node.allocatable.memory - node.requested.memory, 0)
        total.ephemeral_storage += max(node.allocatable.ephemeral_storage - node.requested.ephemeral_storage, 0)
        for name, amount in node.allocatable.scalar.items():
            free = max(amount - node.requested.scalar.get(name, 0), 0)
            total.scalar[name] = total.scalar.get(name, 0) + free
    return total


def held_resources(pods: Iterable[Obj]) -> Resource:
    """What the group's placed members request (they count as free for their own group)."""
    total = Resource()
    for pod in pods:
        total.add(pod_requests(pod))
    return total


def _amount(resource: Resource, name: str) -> int:
    if name == CPU:
        return resource.milli_cpu
    if name == MEMORY:
        return resource.memory
    if name == EPHEMERAL_STORAGE:
        return resource.ephemeral_storage
    return resource.scalar.get(name, 0)


def _needed(name: str, quantity: Decimal) -> int:
    return milli_value_of(quantity) if name == CPU else value_of(quantity)


def insufficient_resources(min_resources: Mapping[str, Decimal], available: Resource) -> list[str]:
    """The resources of minResources that `available` does not cover, sorted."""
    missing = []
    for name, quantity in min_resources.items():
        if name not in (CPU, MEMORY, EPHEMERAL_STORAGE) and not is_scalar_resource_name(name):
            continue  # pods, or a name the scheduler does not track: nothing to compare with
        if _amount(available, name) < _needed(name, quantity):
            missing.append(name)
    return sorted(missing)


def pre_filter(
    name: str, group: PodGroup | None, members: int, available: Resource | None = None,
) -> str | None:
    """Why a member of the group `name` cannot be scheduled now, or None. `members` counts the
    group's non-terminal pods (this one included); `available` is the cluster's free resources plus
    what the group holds (None: minResources is not checked)."""
    if group is None:
        return f'pod group "{name}" not found'
    if members < group.min_member:
        return f'pod group "{name}" has {members} pods, fewer than minMember {group.min_member}'
    if group.min_resources and available is not None:
        missing = insufficient_resources(group.min_resources, available)
        if missing:
            return (
                f'pod group "{name}" needs minResources the cluster\'s free resources cannot cover: '
                f"insufficient {', '.join(missing)}"
            )
    return None


# --- Permit -----------------------------------------------------------------------------------


def count_placed(members: Iterable[Member], reserved: Iterable[str]) -> int:
    """Members bound to a node (by the index) or reserved in the cache (assumed: waiting or binding),
    each counted once."""
    placed = {m.uid for m in members if m.node}
    placed.update(reserved)
    return len(placed)


def permit(min_member: int, placed: int) -> bool:
    """Allow (bind now, with every waiting member) or wait: `placed` includes the pod asking."""
    return placed >= min_member


def timed_out(since: float, now: float, timeout_seconds: float) -> bool:
    return now - since >= timeout_seconds


def timeout_message(name: str, placed: int, min_member: int, timeout_seconds: float) -> str:
    return (
        f'pod group "{name}": only {placed} of minMember {min_member} pods could be placed within '
        f"{timeout_seconds:g}s; reservations released"
    )


# --- status -----------------------------------------------------------------------------------


def phase_of(min_member: int, scheduled: int, running: int, waiting: int, failure: str | None) -> str:
    if running >= min_member:
        return RUNNING
    if scheduled >= min_member:
        return SCHEDULED
    if failure:
        return UNSCHEDULABLE
    if waiting or scheduled:
        return SCHEDULING
    return PENDING


def desired_status(
    group: PodGroup, members: Iterable[Member], waiting: int, failure: str | None,
) -> dict[str, Any]:
    """The status the scheduler writes: counts, phase and (when it says something) a message."""
    members = list(members)
    scheduled = sum(1 for m in members if m.node)
    running = sum(1 for m in members if m.node and m.phase == "Running")
    phase = phase_of(group.min_member, scheduled, running, waiting, failure)
    if phase == UNSCHEDULABLE:
        message = failure or ""
    elif phase == SCHEDULING:
        message = (
            f"{scheduled + waiting} of minMember {group.min_member} pods placed "
            f"({scheduled} bound, {waiting} waiting)"
        )
    else:
        message = ""
    return {"phase": phase, "scheduled": scheduled, "running": running, "message": message}


def status_patch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any] | None:
    """The merge patch taking `current` to `desired` (None: nothing changes). An empty message is
    removed rather than written."""
    patch: dict[str, Any] = {}
    for key, value in desired.items():
        if key == "message" and not value:
            if current.get("message"):
                patch["message"] = None
            continue
        if current.get(key) != value:
            patch[key] = value
    return patch or None
