"""What a controller needs to know about a pod, read from its JSON.

The predicates and the deletion ranking follow pkg/api/v1/pod and pkg/controller's
controller_utils.go (Kubernetes 1.34, with the PodDeletionCost and LogarithmicScaleDown
gates on, as they are by default).
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from operators.core.timeutil import parse_time

Pod = Mapping[str, Any]

DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
_PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}


def is_terminal(pod: Pod) -> bool:
    """Finished (Succeeded or Failed): its containers will not run again (podutil.IsPodTerminal)."""
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def is_being_deleted(obj: Mapping[str, Any]) -> bool:
    """Has a deletionTimestamp (any object)."""
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def is_terminating(pod: Pod) -> bool:
    """Being deleted and not finished yet: its containers may still run (controller.IsPodTerminating)."""
    return is_being_deleted(pod) and not is_terminal(pod)


def is_active(pod: Pod) -> bool:
    """Neither finished nor being deleted: the pods that count towards a controller's replicas
    (controller.FilterActivePods)."""
    return not is_terminal(pod) and not is_being_deleted(pod)


def ready_condition(pod: Pod) -> Mapping[str, Any] | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition  # type: ignore[no-any-return]
    return None


def is_ready(pod: Pod) -> bool:
    condition = ready_condition(pod)
    return condition is not None and condition.get("status") == "True"


def ready_since(pod: Pod) -> datetime | None:
    condition = ready_condition(pod)
    if condition is None or condition.get("status") != "True":
        return None
    return parse_time(condition.get("lastTransitionTime"))


def is_available(pod: Pod, min_ready_seconds: int, now: datetime) -> bool:
    """podutil.IsPodAvailable: ready, and ready for more than minReadySeconds (strictly: a pod ready
    for exactly minReadySeconds is not available yet)."""
    if not is_ready(pod):
        return False
    if min_ready_seconds == 0:
        return True
    since = ready_since(pod)
    return since is not None and (now - since).total_seconds() > min_ready_seconds


def deletion_cost(pod: Pod) -> int:
    """The pod-deletion-cost annotation; unparsable or missing values count as 0, as upstream."""
    raw = (pod["metadata"].get("annotations") or {}).get(DELETION_COST_ANNOTATION)
    try:
        return int(raw) if raw is not None else 0
    except ValueError:
        return 0


def max_restarts(pod: Pod) -> tuple[int, int]:
    """(highest restart count of regular containers, highest of restartable init 'sidecars')."""
    status = pod.get("status") or {}
    regular = max((c.get("restartCount", 0) for c in status.get("containerStatuses") or []), default=0)
    init_containers = (pod.get("spec") or {}).get("initContainers") or []
    sidecars = {c["name"] for c in init_containers if c.get("restartPolicy") == "Always"}
    init_statuses = status.get("initContainerStatuses") or []
    sidecar = max((c.get("restartCount", 0) for c in init_statuses if c["name"] in sidecars), default=0)
    return regular, sidecar


def _log_rank(t: datetime, now: datetime) -> int:
    """Upstream's base-2 logarithmic age bucket, computed over nanoseconds like Go's Duration."""
    age_ns = (now - t).total_seconds() * 1e9
    return int(math.log2(age_ns)) if age_ns > 0 else -1


def _node(pod: Pod) -> str:
    return (pod.get("spec") or {}).get("nodeName") or ""


def before(a: Pod, rank_a: int, b: Pod, rank_b: int, now: datetime) -> bool:
    """ActivePodsWithRanks.Less: whether `a` (with `rank_a` related pods on its node) goes before `b`."""
    node_a, node_b = _node(a), _node(b)
    if node_a != node_b and (not node_a or not node_b):
        return not node_a  # 1. unassigned first
    phase_a = _PHASE_ORDINAL.get((a.get("status") or {}).get("phase", ""), 0)
    phase_b = _PHASE_ORDINAL.get((b.get("status") or {}).get("phase", ""), 0)
    if phase_a != phase_b:
        return phase_a < phase_b  # 2. Pending < Unknown < Running
    ready_a, ready_b = is_ready(a), is_ready(b)
    if ready_a != ready_b:
        return not ready_a  # 3. not ready first
    cost_a, cost_b = deletion_cost(a), deletion_cost(b)
    if cost_a != cost_b:
        return cost_a < cost_b  # 4. cheaper to delete first
    if rank_a != rank_b:
        return rank_a > rank_b  # 5. doubled up first
    if ready_a and ready_b:  # 6. ready for less time first
        result = _newer_first(ready_since(a), ready_since(b), a, b, now)
        if result is not None:
            return result
    restarts_a, restarts_b = max_restarts(a), max_restarts(b)
    if restarts_a != restarts_b:
        return restarts_a > restarts_b  # 7. more restarts first
    created_a = parse_time(a["metadata"].get("creationTimestamp"))
    created_b = parse_time(b["metadata"].get("creationTimestamp"))
    return bool(_newer_first(created_a, created_b, a, b, now))  # 8. newer first


def ranks_on_nodes(pods: Sequence[Pod], related: Iterable[Pod]) -> list[int]:
    """getPodsRankedByRelatedPodsOnSameNode: for each pod, how many active related pods share its node."""
    on_node = Counter(_node(p) for p in related if is_active(p))
    return [on_node[_node(p)] for p in pods]


def rank_for_deletion(pods: Sequence[Pod], related: Iterable[Pod], now: datetime) -> list[Pod]:
    """Pods ordered from the first to delete to the last, as ActivePodsWithRanks sorts them.

    `related` are the active pods of the owner's family: for a ReplicaSet controlled by a Deployment,
    the pods of every ReplicaSet of that Deployment; for a bare ReplicaSet, none (upstream's
    getIndirectlyRelatedPods), so that every rank is 0. A pod whose node holds more of them is
    "doubled up" and goes first.
    """
    ranked = list(zip(pods, ranks_on_nodes(pods, related), strict=True))

    def compare(x: tuple[Pod, int], y: tuple[Pod, int]) -> int:
        if before(x[0], x[1], y[0], y[1], now):
            return -1
        if before(y[0], y[1], x[0], x[1], now):
            return 1
        return 0

    return [pod for pod, _ in sorted(ranked, key=functools.cmp_to_key(compare))]


def _newer_first(t_a: datetime | None, t_b: datetime | None, a: Pod, b: Pod, now: datetime) -> bool | None:
    """Rules 6 and 8: missing time first, then the younger log-scale bucket, then by UID."""
    if t_a == t_b:
        return None
    if t_a is None or t_b is None:
        return t_a is None
    diff = _log_rank(t_a, now) - _log_rank(t_b, now)
    if diff == 0:
        return str(a["metadata"].get("uid", "")) < str(b["metadata"].get("uid", ""))
    return diff < 0
