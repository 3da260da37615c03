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


def is_terminating(pod: Pod) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def is_active(pod: Pod) -> bool:
    """Neither finished nor being deleted: the pods that count towards a controller's replicas."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not is_terminating(pod)


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
    """Ready for at least minReadySeconds."""
    if not is_ready(pod):
        return False
    if min_ready_seconds == 0:
        return True
    since = ready_since(pod)
    return since is not None and (now - since).total_seconds() >= min_ready_seconds


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


def rank_for_deletion(pods: Sequence[Pod], related: Iterable[Pod], now: datetime) -> list[Pod]:
    """Pods ordered from the first to delete to the last, as ActivePodsWithRanks sorts them.

    `related` are all the active pods of the owner's family (for a ReplicaSet, its own pods);
    a pod whose node holds more of them is "doubled up" and goes first.
    """
    on_node = Counter(_node(p) for p in related if is_active(p))
    rank = {id(p): on_node[_node(p)] for p in pods}

    def before(a: Pod, b: Pod) -> bool:
        node_a, node_b = _node(a), _node(b)
        if node_a != node_b and (not node_a or not node_b):
            return not node_a  # 1. unassigned first
        phase_a = _PHASE_ORDINAL.get((a.get("status") or {}).get("phase", ""), 0)
        phase_b = _PHASE_ORDINAL.get((b.get("status") or {}).get("phase", ""), 0)
        if phase_a != phase_b:
            return phase_a < phase_b  # 2. Pending < Unknown < Running
        if is_ready(a) != is_ready(b):
            return not is_ready(a)  # 3. not ready first
        if deletion_cost(a) != deletion_cost(b):
            return deletion_cost(a) < deletion_cost(b)  # 4. cheaper to delete first
        if rank[id(a)] != rank[id(b)]:
            return rank[id(a)] > rank[id(b)]  # 5. doubled up first
        if is_ready(a) and is_ready(b):  # 6. ready for less time first
            result = _newer_first(ready_since(a), ready_since(b), a, b, now)
            if result is not None:
                return result
        restarts_a, restarts_b = max_restarts(a), max_restarts(b)
        if restarts_a != restarts_b:
            return restarts_a > restarts_b  # 7. more restarts first
        created_a = parse_time(a["metadata"].get("creationTimestamp"))
        created_b = parse_time(b["metadata"].get("creationTimestamp"))
        result = _newer_first(created_a, created_b, a, b, now)  # 8. newer first
        return bool(result)

    def compare(a: Pod, b: Pod) -> int:
        if before(a, b):
            return -1
        if before(b, a):
            return 1
        return 0

    return sorted(pods, key=functools.cmp_to_key(compare))


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


def controller_ref(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref  # type: ignore[no-any-return]
    return None
