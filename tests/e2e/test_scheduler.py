"""kubeplane-scheduler binds pods to real nodes, where the kubelet runs them: a pod that asks for
kubeplane-scheduler is bound by it (not by kube-scheduler) to the node its selector names and Runs;
a taint keeps an intolerant pod Pending with upstream's "untolerated taint" reason, while a pod that
tolerates it is bound to the tainted node and Runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import (
    KUBEPLANE_SCHEDULER,
    WORKERS,
    apply,
    events_for,
    get_pod,
    http_pod,
    kubectl,
    kubectl_json,
    wait_for,
    wait_ready,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240), pytest.mark.usefixtures("kubeplane")]

TAINT_KEY = "e2e-taint"


def scheduled_by(namespace: str, pod: str) -> set[str]:
    """The components that reported a Scheduled event for `pod`."""
    return {e.get("reportingComponent") or (e.get("source") or {}).get("component") or "?"
            for e in events_for(namespace, pod) if e.get("reason") == "Scheduled"}


def pod_scheduled_condition(pod: dict[str, Any]) -> dict[str, Any] | None:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == "PodScheduled"), None)


def test_binds_to_the_selected_node(namespace: str) -> None:
    node = WORKERS[1]
    apply(http_pod("pinned", schedulerName=KUBEPLANE_SCHEDULER, nodeSelector={"kubernetes.io/hostname": node}),
          namespace)
    pod = wait_ready(namespace, "pinned")
    assert pod["spec"]["nodeName"] == node
    reporters = wait_for(lambda: scheduled_by(namespace, "pinned"), timeout=30, what="a Scheduled event")
    assert reporters == {KUBEPLANE_SCHEDULER}, f"Scheduled reported by {reporters}, expected only kubeplane"


@pytest.fixture
def tainted_worker(namespace: str) -> Iterator[tuple[str, str]]:
    """WORKERS[0] tainted e2e-taint=<namespace>:NoSchedule for the test; the taint is always removed."""
    node = WORKERS[0]
    kubectl("taint", "node", node, f"{TAINT_KEY}={namespace}:NoSchedule", "--overwrite")
    try:
        # The scheduler learns of the taint from its node watch; give the event time to arrive, so
        # an intolerant pod is judged against the tainted node, not a cache a moment out of date.
        time.sleep(2)
        yield node, namespace
    finally:
        kubectl("taint", "node", node, f"{TAINT_KEY}-", check=False)


def test_taint_keeps_intolerant_pods_off_and_admits_tolerant_ones(namespace: str,
                                                                  tainted_worker: tuple[str, str]) -> None:
    node, value = tainted_worker
    selector = {"kubernetes.io/hostname": node}
    apply(http_pod("intolerant", schedulerName=KUBEPLANE_SCHEDULER, nodeSelector=selector), namespace)
    toleration = {"key": TAINT_KEY, "operator": "Equal", "value": value, "effect": "NoSchedule"}
    apply(http_pod("tolerant", schedulerName=KUBEPLANE_SCHEDULER, nodeSelector=selector, tolerations=[toleration]),
          namespace)

    pod = wait_ready(namespace, "tolerant")
    assert pod["spec"]["nodeName"] == node

    def unschedulable() -> dict[str, Any] | None:
        condition = pod_scheduled_condition(get_pod(namespace, "intolerant"))
        return condition if condition and condition.get("status") == "False" else None
    condition = wait_for(unschedulable, timeout=30, what="PodScheduled=False on the intolerant pod")
    assert condition.get("reason") == "Unschedulable", condition
    assert "untolerated taint" in condition.get("message", ""), condition
    failures = wait_for(lambda: [e["message"] for e in events_for(namespace, "intolerant")
                                 if e.get("reason") == "FailedScheduling"], timeout=30, what="a FailedScheduling event")
    assert any("untolerated taint" in message for message in failures), failures

    # Still Pending a while later: the failure is not a transient on the way to a binding.
    time.sleep(5)
    intolerant = get_pod(namespace, "intolerant")
    assert not intolerant["spec"].get("nodeName"), f"bound to {intolerant['spec']['nodeName']} despite the taint"
    assert intolerant["status"]["phase"] == "Pending"


@pytest.fixture
def slotted_worker(namespace: str) -> Iterator[str]:
    """WORKERS[1] advertises two `kubeplane.dev/slot-<namespace>` (an extended resource, patched into the
    node's status as Kubernetes documents it): pods asking for slots fill the node exactly."""
    node = WORKERS[1]
    resource = f"kubeplane.dev~1slot-{namespace}"  # JSON pointer: "/" is "~1"
    kubectl("patch", "node", node, "--subresource=status", "--type=json",
            "-p", f'[{{"op": "add", "path": "/status/capacity/{resource}", "value": "2"}}]')
    try:
        yield node
    finally:
        kubectl("patch", "node", node, "--subresource=status", "--type=json",
                "-p", f'[{{"op": "remove", "path": "/status/capacity/{resource}"}}]', check=False)


def test_preemption_under_the_charts_service_account(namespace: str, slotted_worker: str) -> None:
    """The scheduler the chart installs (its ServiceAccount, its RBAC) evicts the one low-priority pod a
    high-priority pod needs, nominates the node, and the kubelet runs the preemptor there."""
    low, high = f"{namespace}-low", f"{namespace}-high"
    for name, value in ((low, 10), (high, 1000)):
        apply({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
               "value": value})
    try:
        resource = f"kubeplane.dev/slot-{namespace}"
        slot = {"requests": {resource: "1"}, "limits": {resource: "1"}}
        pinned = {"kubernetes.io/hostname": slotted_worker}

        def slotted(name: str, priority: str) -> dict[str, Any]:
            pod = http_pod(name, schedulerName=KUBEPLANE_SCHEDULER, nodeSelector=pinned, priorityClassName=priority,
                           terminationGracePeriodSeconds=1)
            pod["spec"]["containers"][0]["resources"] = slot
            return pod

        for i in range(2):
            apply(slotted(f"low-{i}", low), namespace)
        for i in range(2):
            wait_ready(namespace, f"low-{i}")
        apply(slotted("urgent", high), namespace)
        pod = wait_ready(namespace, "urgent", timeout=120)
        assert pod["spec"]["nodeName"] == slotted_worker
        low_pods = [p for p in kubectl_json("get", "pods", "-n", namespace)["items"]
                    if p["metadata"]["name"].startswith("low-") and not p["metadata"].get("deletionTimestamp")]
        assert len(low_pods) == 1, "one victim is enough: the fewest that make room"
        preempted = wait_for(lambda: [e for n in ("low-0", "low-1") for e in events_for(namespace, n)
                                      if e.get("reason") == "Preempted"], timeout=30, what="a Preempted event")
        assert len(preempted) == 1 and f"on node {slotted_worker}" in preempted[0]["message"]
    finally:
        kubectl("delete", "priorityclass", low, high, "--ignore-not-found", check=False)
