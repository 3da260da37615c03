"""A kubeplane DaemonSet of real containers on kind: one Ready pod on each worker that carries the label
its nodeSelector asks for, none on the control plane (its NoSchedule taint is not tolerated); the label
taken off a worker takes its pod away, put back brings a new one.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import WORKERS, apply, http_container, is_ready, kubectl, kubectl_json, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300), pytest.mark.usefixtures("kubeplane")]
LABEL = "kubeplane-e2e/agent"


def daemonset() -> dict[str, Any]:
    return {"apiVersion": "apps.kubeplane.dev/v1alpha1", "kind": "DaemonSet", "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "template": {"metadata": {"labels": {"app": "agent"}},
                                  "spec": {"nodeSelector": {LABEL: "yes"}, "containers": [http_container()],
                                           "terminationGracePeriodSeconds": 5}}}}


def ready_by_node(namespace: str) -> dict[str, int]:
    pods = kubectl_json("get", "pods", "-n", namespace, "-l", "app=agent")["items"]
    found: dict[str, int] = {}
    for pod in pods:
        if is_ready(pod):
            found[pod["spec"]["nodeName"]] = found.get(pod["spec"]["nodeName"], 0) + 1
    return found


def live_count(namespace: str) -> int:
    pods = kubectl_json("get", "pods", "-n", namespace, "-l", "app=agent")["items"]
    return len(pods)


def test_one_ready_pod_per_labelled_worker_following_the_label(namespace: str) -> None:
    try:
        for worker in WORKERS:
            kubectl("label", "node", worker, f"{LABEL}=yes", "--overwrite")
        apply(daemonset(), namespace)
        wait_for(lambda: ready_by_node(namespace) == {w: 1 for w in WORKERS} and live_count(namespace) == 2,
                 timeout=120, what="one ready pod on each worker, none elsewhere")
        status = kubectl_json("get", "daemonsets.apps.kubeplane.dev", "agent", "-n", namespace)["status"]
        assert (status["desiredNumberScheduled"], status["numberReady"], status["numberAvailable"]) == (2, 2, 2), status

        kubectl("label", "node", WORKERS[1], f"{LABEL}-")
        wait_for(lambda: ready_by_node(namespace) == {WORKERS[0]: 1} and live_count(namespace) == 1,
                 timeout=120, what=f"the pod on {WORKERS[1]} gone")
        kubectl("label", "node", WORKERS[1], f"{LABEL}=yes")
        wait_for(lambda: ready_by_node(namespace) == {w: 1 for w in WORKERS} and live_count(namespace) == 2,
                 timeout=120, what=f"a pod on {WORKERS[1]} again")
    finally:
        for worker in WORKERS:
            kubectl("label", "node", worker, f"{LABEL}-", check=False)
