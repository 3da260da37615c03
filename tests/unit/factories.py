"""Small builders for pod and ReplicaSet JSON used across unit tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from operators.core.timeutil import format_time

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def ago(seconds: float) -> str:
    return format_time(NOW - timedelta(seconds=seconds))


def pod(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    node: str = "",
    phase: str = "Running",
    ready: bool | None = None,
    ready_for: float = 600,
    created_ago: float = 600,
    restarts: int = 0,
    owner_uid: str | None = None,
    cost: int | None = None,
    deleting: bool = False,
    uid: str | None = None,
) -> dict[str, Any]:
    ready = (phase == "Running") if ready is None else ready
    meta: dict[str, Any] = {
        "name": name, "namespace": "ns", "uid": uid or f"uid-{name}",
        "labels": {"app": "web"} if labels is None else labels,
        "creationTimestamp": ago(created_ago),
    }
    if owner_uid:
        meta["ownerReferences"] = [{
            "apiVersion": "apps.kubeplane.dev/v1alpha1", "kind": "ReplicaSet", "name": "web",
            "uid": owner_uid, "controller": True,
        }]
    if cost is not None:
        meta["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": str(cost)}
    if deleting:
        meta["deletionTimestamp"] = ago(1)
    conditions = [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": ago(ready_for)}]
    return {
        "metadata": meta,
        "spec": {"nodeName": node},
        "status": {"phase": phase, "conditions": conditions,
                   "containerStatuses": [{"name": "c", "restartCount": restarts}]},
    }


def replicaset(replicas: int = 3, *, min_ready: int = 0, selector: dict[str, Any] | None = None,
               template_labels: dict[str, str] | None = None, status: dict[str, Any] | None = None,
               deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web", "namespace": "ns", "uid": "rs-uid", "generation": 2}
    if deleting:
        meta["deletionTimestamp"] = ago(1)
    return {
        "apiVersion": "apps.kubeplane.dev/v1alpha1", "kind": "ReplicaSet", "metadata": meta,
        "spec": {
            "replicas": replicas, "minReadySeconds": min_ready,
            "selector": selector if selector is not None else {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": template_labels or {"app": "web", "tier": "fe"},
                                      "annotations": {"a": "b"}},
                         "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
        },
        "status": status or {},
    }
