"""kubeplane's HorizontalPodAutoscaler beyond upstream, on the embedded cluster with the project's external
metrics API: the stabilization window survives a restart of the controllers (upstream forgets it and
scales down at its first sync), scale to zero and back, and the schema's refusals."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.integration.conftest import ENV, Operator, apply, kubectl, kubectl_json, wait_for
from tests.watch import Watch

HPA_API = "autoscaling.kubeplane.dev/v1alpha1"


def metric(namespace: str, value: str) -> None:
    apply({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "queue", "labels": {"metrics.kubeplane.dev/external": "true", "queue": "jobs"}},
           "data": {"queue_depth": value}}, namespace)


def deployment(namespace: str, replicas: int) -> None:
    apply({"apiVersion": "apps.kubeplane.dev/v1alpha1", "kind": "Deployment", "metadata": {"name": "worker"},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "worker"}},
                    "template": {"metadata": {"labels": {"app": "worker"}},
                                 "spec": {"containers": [{"name": "w", "image": "registry.local/worker:1"}]}}}},
          namespace)


def hpa(window: int, min_replicas: int = 1, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": HPA_API, "kind": "HorizontalPodAutoscaler", "metadata": {"name": "worker"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps.kubeplane.dev/v1alpha1", "kind": "Deployment",
                                        "name": "worker"},
                     "minReplicas": min_replicas, "maxReplicas": 10,
                     "metrics": [{"type": "External", "external": {
                         "metric": {"name": "queue_depth", "selector": {"matchLabels": {"queue": "jobs"}}},
                         "target": {"type": "AverageValue", "averageValue": "10"}}}],
                     "behavior": {"scaleDown": {"stabilizationWindowSeconds": window}}, **spec}}


def status(namespace: str) -> dict[str, Any]:
    return dict(kubectl_json("get", "horizontalpodautoscalers.autoscaling.kubeplane.dev", "worker",
                             "-n", namespace).get("status") or {})


def reason(st: dict[str, Any], kind: str) -> str:
    return next((c.get("reason", "") for c in st.get("conditions") or [] if c.get("type") == kind), "")


def replicas(namespace: str) -> int:
    found = kubectl_json("get", "deployments.apps.kubeplane.dev", "worker", "-n", namespace)
    return int(found["spec"].get("replicas") or 0)


def test_the_stabilization_window_survives_a_restart(controllers: Operator, namespace: str) -> None:
    """Held by a 60 s window at 3 replicas, the controllers operator is SIGKILLed 10 s before the window
    lets go (status.nextScaleDownTime) and started again. The new process reads the recommendations back
    from status, so the scale-down comes about when nextScaleDownTime said. Without them (upstream keeps
    them in memory) the new process records the current 3 replicas as its first recommendation and holds
    a whole window more: the scale-down would come ~60 s after the restart."""
    metric(namespace, "30")
    deployment(namespace, 3)
    apply(hpa(window=60), namespace)
    wait_for(lambda: status(namespace).get("desiredReplicas") == 3 and reason(status(namespace), "ScalingActive")
             == "ValidMetricFound", timeout=90, what="the HPA at 3 replicas")
    with Watch(ENV, f"/apis/apps.kubeplane.dev/v1alpha1/namespaces/{namespace}/deployments") as deployments:
        metric(namespace, "10")
        held = wait_for(lambda: (st := status(namespace)).get("nextScaleDownTime")
                        and reason(st, "AbleToScale") == "ScaleDownStabilized" and st, timeout=90,
                        what="the scale-down held by the window")
        not_before = datetime.fromisoformat(held["nextScaleDownTime"])
        print(f"held: {held['nextScaleDownReason']}; not before {not_before}")
        time.sleep(max(0.0, (not_before - timedelta(seconds=10) - datetime.now(UTC)).total_seconds()))
        assert replicas(namespace) == 3 and reason(status(namespace), "AbleToScale") == "ScaleDownStabilized"
        controllers.kill()  # lands while the window still holds the scale-down
        restarted = datetime.now(UTC)
        controllers.start()
        wait_for(lambda: replicas(namespace) == 1, timeout=150, what="the scale-down after the window")
        after = status(namespace)
        scaled_at = datetime.fromisoformat(after["lastScaleTime"])
        print(f"restarted at {restarted}, scaled down at {scaled_at}")
        assert scaled_at >= not_before - timedelta(seconds=1), \
            f"scaled down at {scaled_at}, before the window let go at {not_before}"
        # A window started afresh at the restart cannot let go before restarted + 60 s: any scale-down
        # earlier proves the window was read back, however slow the restart was (not a time bound).
        assert scaled_at < restarted + timedelta(seconds=60), \
            f"scaled down at {scaled_at}: the restarted controller started a new window at {restarted}"
        seen = [int(d["spec"]["replicas"]) for _, d in deployments.events]
        assert seen[0] == 3 and seen[-1] == 1 and 2 not in seen, seen  # one step, 3 -> 1
    assert after.get("recommendations"), "the recommendations are kept in status"


def test_scale_to_zero_and_back(controllers: Operator, namespace: str) -> None:
    """spec.scaleToZero with an External metric: 0 queued items take the target to 0 replicas, 25 bring
    it back to 3 (AverageValue 10)."""
    refused = kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(hpa(0, 0)),
                      check=False)
    assert refused.returncode != 0 and "0 needs spec.scaleToZero: true" in refused.stderr, refused.stderr
    cpu = {**hpa(0, 0, scaleToZero=True)}
    cpu["spec"]["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 50}}}]
    refused = kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(cpu), check=False)
    assert refused.returncode != 0 and "Object or External" in refused.stderr, refused.stderr

    metric(namespace, "20")
    deployment(namespace, 2)
    apply(hpa(0, 0, scaleToZero=True), namespace)
    wait_for(lambda: status(namespace).get("desiredReplicas") == 2, timeout=90, what="the HPA at 2 replicas")
    metric(namespace, "0")
    wait_for(lambda: replicas(namespace) == 0, timeout=90, what="scaled to zero")
    wait_for(lambda: not kubectl_json("get", "pods", "-n", namespace, "-l", "app=worker")["items"], timeout=90,
             what="no worker pods")
    metric(namespace, "25")
    wait_for(lambda: replicas(namespace) == 3, timeout=90, what="back to 3 from zero")
    assert reason(status(namespace), "ScalingActive") == "ValidMetricFound"
