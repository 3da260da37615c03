"""The operators recover from losing their pods: with every kubeplane operator pod deleted, the
Deployments bring up new ones that become Ready, and work submitted while they were gone converges
once they are back: a kubeplane ReplicaSet gets exactly its replicas, and a pending pod that asks for
kubeplane-scheduler gets bound.

Kopf keeps no state in memory that matters across restarts: everything is re-read from the API.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.conftest import (
    KPRS,
    KUBEPLANE_SCHEDULER,
    OPERATORS,
    SYSTEM_NAMESPACE,
    apply,
    events_for,
    http_pod,
    is_active,
    is_ready,
    kubectl,
    kubectl_json,
    kubeplane_replicaset,
    pods_of,
    wait_for,
    wait_ready,
    wait_replicas_ready,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300), pytest.mark.usefixtures("kubeplane")]


def operator_pods(component: str) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = kubectl_json(
        "get", "pods", "-n", SYSTEM_NAMESPACE, "-l",
        f"app.kubernetes.io/part-of=kubeplane,app.kubernetes.io/component={component}")["items"]
    return pods


def rs_with_ready(namespace: str, name: str, ready: int) -> dict[str, Any] | None:
    replicaset: dict[str, Any] = kubectl_json("get", KPRS, name, "-n", namespace)
    return replicaset if (replicaset.get("status") or {}).get("readyReplicas") == ready else None


def test_work_submitted_during_a_restart_converges(namespace: str) -> None:
    old = {component: {p["metadata"]["name"] for p in operator_pods(component)} for component in OPERATORS}
    missing = [component for component, names in old.items() if not names]
    assert not missing, f"no running pods for operators {missing} in {SYSTEM_NAMESPACE}"
    # Waiting for the deletion means the old processes are gone (SIGTERM, graceful shutdown) before
    # anything is submitted, so none of them can act on it; their replacements are at most starting.
    everything = sorted(name for names in old.values() for name in names)
    kubectl("delete", "pod", *everything, "-n", SYSTEM_NAMESPACE, "--timeout=90s", timeout=120)

    # Submitted while the operators are down or starting: only the new processes can pick this up.
    apply(kubeplane_replicaset("web", 3), namespace)
    apply(http_pod("bound-later", schedulerName=KUBEPLANE_SCHEDULER), namespace)

    for component, names in old.items():
        def replaced(component: str = component, names: set[str] = names) -> list[str] | None:
            pods = operator_pods(component)
            fresh = [p["metadata"]["name"] for p in pods if p["metadata"]["name"] not in names and is_ready(p)]
            return fresh if fresh and all(p["metadata"]["name"] not in names for p in pods) else None
        wait_for(replaced, timeout=150, interval=2, what=f"a new Ready {component} pod (and the old one gone)")

    pods = wait_replicas_ready(namespace, "web", 3, timeout=120)
    replicaset = wait_for(lambda: rs_with_ready(namespace, "web", 3), timeout=60,
                          what="kubeplane RS status.readyReplicas 3")
    assert replicaset["status"]["replicas"] == 3, replicaset["status"]
    owners = {ref["uid"] for p in pods for ref in p["metadata"].get("ownerReferences") or [] if ref.get("controller")}
    assert owners == {replicaset["metadata"]["uid"]}, f"pods owned by {owners}, not the ReplicaSet"
    # Still exactly 3 a little later: a restarted controller that lost count would create extras.
    for _ in range(5):
        time.sleep(1)
        active = [p["metadata"]["name"] for p in pods_of(namespace, "web") if is_active(p)]
        assert len(active) == 3, f"{len(active)} pods for 3 replicas: {active}"

    pod = wait_ready(namespace, "bound-later", timeout=120)
    assert pod["spec"].get("nodeName"), pod["spec"]
    reporters = wait_for(lambda: {e.get("reportingComponent") for e in events_for(namespace, "bound-later")
                                  if e.get("reason") == "Scheduled"}, timeout=30, what="a Scheduled event")
    assert reporters == {KUBEPLANE_SCHEDULER}, f"bound-later's Scheduled event came from {reporters}"
