"""Taints and tolerations, as k8s.io/api core/v1 (toleration.go, taint.go) and component-helpers
scheduling/corev1 define them. The scheduler's TaintToleration plugin and the DaemonSet's
NodeShouldRunDaemonPod both read them from here."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

Obj = Mapping[str, Any]

TAINT_NODE_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
NO_SCHEDULE = "NoSchedule"
NO_EXECUTE = "NoExecute"
PREFER_NO_SCHEDULE = "PreferNoSchedule"


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """Toleration.ToleratesTaint: empty effect matches all effects, empty key (with Exists) all
    keys; the operator defaults to Equal."""
    effect = toleration.get("effect") or ""
    if effect and effect != (taint.get("effect") or ""):
        return False
    key = toleration.get("key") or ""
    if key and key != (taint.get("key") or ""):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return operator == "Exists"


def tolerations_tolerate_taint(tolerations: Iterable[Obj], taint: Obj) -> bool:
    return any(tolerates(t, taint) for t in tolerations)


def tolerations_of(pod: Obj) -> list[Obj]:
    return list((pod.get("spec") or {}).get("tolerations") or [])


def taints_of(node: Obj) -> list[Obj]:
    return list((node.get("spec") or {}).get("taints") or [])


def does_not_schedule(taint: Obj) -> bool:
    """The taints that keep a pod off a node at filter time (NoSchedule, NoExecute)."""
    return taint.get("effect") in (NO_SCHEDULE, NO_EXECUTE)


def find_untolerated_taint(
    taints: Sequence[Obj], tolerations: Sequence[Obj], include: Callable[[Obj], bool] | None = None
) -> Obj | None:
    """The first taint (among those `include` selects) no toleration tolerates."""
    for taint in taints:
        if include is not None and not include(taint):
            continue
        if not tolerations_tolerate_taint(tolerations, taint):
            return taint
    return None


def taint_to_string(taint: Obj) -> str:
    """Taint.ToString: key=value:effect, key:effect, key=value: or key."""
    key, value, effect = taint.get("key") or "", taint.get("value") or "", taint.get("effect") or ""
    if not effect:
        return f"{key}={value}:" if value else key
    return f"{key}={value}:{effect}" if value else f"{key}:{effect}"
