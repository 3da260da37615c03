"""The HorizontalPodAutoscaler on real kubelets: metrics-server (hack/kind/metrics-server, built offline)
reads the CPU the pods really burn, and kubeplane's HPA scales a kubeplane Deployment up under load and back
down once the load is gone and the scale-down window has passed. The project's external metrics API, as the
chart deploys it (externalMetrics.enabled), serves ConfigMap values through the aggregator and drives a
second autoscaler exactly.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import (
    HTTP_PORT,
    SYSTEM_NAMESPACE,
    apply,
    events_for,
    http_pod_spec,
    kubectl,
    kubectl_json,
    pods_of,
    wait_for,
    wait_replicas_ready,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600), pytest.mark.usefixtures("kubeplane")]

KPDEPLOY = "deployments.apps.kubeplane.dev"
KPHPA = "horizontalpodautoscalers.autoscaling.kubeplane.dev"
SCALE_DOWN_WINDOW = 30


def deployment(name: str, cpu_request: str) -> dict[str, Any]:
    spec = http_pod_spec()
    spec["containers"][0]["resources"] = {"requests": {"cpu": cpu_request, "memory": "16Mi"}}
    return {"apiVersion": "apps.kubeplane.dev/v1alpha1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}


def autoscaler(name: str, metric: dict[str, Any], max_replicas: int, behavior: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "autoscaling.kubeplane.dev/v1alpha1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name},
            "spec": {"scaleTargetRef": {"apiVersion": "apps.kubeplane.dev/v1alpha1", "kind": "Deployment",
                                        "name": name},
                     "minReplicas": 1, "maxReplicas": max_replicas, "metrics": [metric], "behavior": behavior}}


def hpa_status(namespace: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = kubectl_json("get", KPHPA, name, "-n", namespace).get("status") or {}
    return status


def spec_replicas(namespace: str, name: str) -> int:
    return int(kubectl_json("get", KPDEPLOY, name, "-n", namespace)["spec"].get("replicas") or 0)


def burn(namespace: str, pod: str, millicores: int) -> None:
    query = urllib.parse.urlencode({"millicores": millicores})
    out = kubectl("get", "--raw", f"/api/v1/namespaces/{namespace}/pods/{pod}:{HTTP_PORT}/proxy/burn?{query}")
    assert f"burning {millicores}m" in out.stdout, out.stdout


def rescales(namespace: str, name: str) -> list[str]:
    return [e.get("message", "") for e in events_for(namespace, name, kind="HorizontalPodAutoscaler")
            if e.get("reason") == "SuccessfulRescale"]


def diagnose(namespace: str, name: str) -> str:
    top = kubectl("top", "pods", "-n", namespace, check=False)
    events = [(e.get("reason"), e.get("message")) for e in events_for(namespace, name, kind="HorizontalPodAutoscaler")]
    return f"\nHPA status: {hpa_status(namespace, name)}\nevents: {events}\nkubectl top pods: {top.stdout}{top.stderr}"


def wait_explained(namespace: str, name: str, predicate: Callable[[], Any], timeout: float, what: str) -> None:
    """wait_for, and on a timeout the autoscaler's status, events and `kubectl top pods` in the failure."""
    try:
        wait_for(predicate, timeout=timeout, interval=3, what=what)
    except AssertionError as e:
        raise AssertionError(f"{e}{diagnose(namespace, name)}") from None


def test_cpu_burning_pods_scale_up_under_load_and_down_after_the_window(namespace: str) -> None:
    apply(deployment("burner", cpu_request="100m"), namespace)
    pods = wait_replicas_ready(namespace, "burner", 1)
    metric = {"type": "Resource",
              "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}
    behavior = {"scaleDown": {"stabilizationWindowSeconds": SCALE_DOWN_WINDOW}}
    apply(autoscaler("burner", metric, max_replicas=3, behavior=behavior), namespace)

    # metrics-server reports the idle pod first: the autoscaler is active and keeps one replica.
    wait_explained(namespace, "burner", lambda: any(c.get("type") == "ScalingActive" and c.get("status") == "True"
                                                    for c in hpa_status(namespace, "burner").get("conditions") or []),
                   180, "ScalingActive=True (pod metrics from metrics-server)")
    assert spec_replicas(namespace, "burner") == 1

    # 300m on a 100m request: 300 % against a 50 % target, so the maximum, 3.
    burn(namespace, pods[0]["metadata"]["name"], 300)
    wait_explained(namespace, "burner", lambda: spec_replicas(namespace, "burner") == 3, 240,
                   "the autoscaler scaling the burning Deployment to 3")
    wait_replicas_ready(namespace, "burner", 3, timeout=180)
    up = rescales(namespace, "burner")
    message = "New size: 3; reason: cpu resource utilization (percentage of request) above target"
    assert any(message in m for m in up), up

    # The load stops: the pods go idle, and the replicas come back to 1 only once every recommendation of
    # the last 30 s says so; until then status says when a scale-down may happen.
    for pod in pods_of(namespace, "burner"):
        burn(namespace, pod["metadata"]["name"], 0)
    stopped = time.monotonic()
    # The first sync that sees the idle pods comes at most one 15 s sync after the last high recommendation,
    # so the window holds at least that long, and the status written then names the hold.
    wait_explained(namespace, "burner", lambda: hpa_status(namespace, "burner").get("nextScaleDownTime"), 240,
                   "a scale-down held by the window (status.nextScaleDownTime)")
    wait_explained(namespace, "burner", lambda: spec_replicas(namespace, "burner") == 1, 300,
                   "the idle Deployment scaled back to 1")
    # Idle pods report near 0 % at once; the window, not the metric, held the scale-down back.
    assert time.monotonic() - stopped >= SCALE_DOWN_WINDOW
    wait_replicas_ready(namespace, "burner", 1, timeout=120)
    down = rescales(namespace, "burner")
    assert any("New size: 1; reason: All metrics below target" in m for m in down), down


def test_external_metrics_api_in_the_cluster_drives_an_autoscaler(namespace: str) -> None:
    served = kubectl_json("get", "deployment", "-n", SYSTEM_NAMESPACE,
                          "-l", "app.kubernetes.io/component=external-metrics")
    assert served["items"] and served["items"][0].get("status", {}).get("availableReplicas", 0) >= 1, \
        "the chart's external metrics server is not available (externalMetrics.enabled, make kind-deploy)"
    kubectl("create", "configmap", "queue", "-n", namespace, "--from-literal=queue_depth=30")
    kubectl("label", "configmap", "queue", "-n", namespace, "metrics.kubeplane.dev/external=true", "queue=jobs")

    # Through the aggregator: the API server authenticates the caller and proxies to the chart's server.
    def value() -> str | None:
        got = kubectl("get", "--raw", f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/queue_depth"
                      "?labelSelector=queue%3Djobs", check=False)
        if got.returncode != 0:
            return None
        items = json.loads(got.stdout)["items"]
        return str(items[0]["value"]) if items else None
    assert wait_for(value, timeout=60, interval=2, what="queue_depth through external.metrics.k8s.io") == "30"

    apply(deployment("worker", cpu_request="10m"), namespace)
    metric = {"type": "External",
              "external": {"metric": {"name": "queue_depth", "selector": {"matchLabels": {"queue": "jobs"}}},
                           "target": {"type": "AverageValue", "averageValue": "10"}}}
    apply(autoscaler("worker", metric, max_replicas=5, behavior={}), namespace)
    wait_explained(namespace, "worker", lambda: spec_replicas(namespace, "worker") == 3, 120,
                   "30 queued over 10 per replica: 3 replicas")
    wait_replicas_ready(namespace, "worker", 3, timeout=120)
    # The next sync averages the 30 over the 3 replicas now running: kubectl's TARGETS text, from status.
    wait_for(lambda: hpa_status(namespace, "worker").get("targets") == "10/10 (avg)", timeout=60, interval=2,
             what="status.targets 10/10 (avg)")
