"""The HorizontalPodAutoscaler's metric reads (hpa/metrics.py), the TARGETS text (formatHPAMetrics), the
state kept in status, and the external metrics API's series: pure parts, with a recorded `get`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from operators.controllers.hpa import behavior as b
from operators.controllers.hpa import logic
from operators.controllers.hpa.metrics import Metrics, propose
from operators.core.kube import ApiError
from operators.metricsapi import custom
from operators.metricsapi.external import series
from operators.scheduler.resources import milli_quantity

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
HPA = {"metadata": {"name": "web", "namespace": "demo", "generation": 1}, "spec": {"minReplicas": 1, "maxReplicas": 10}}


def external(target: dict[str, str]) -> dict[str, Any]:
    return {"type": "External", "external": {"metric": {"name": "queue_depth", "selector": {"matchLabels": {"q": "a"}}},
                                             "target": target}}


class Recorded:
    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, path: str, **params: Any) -> Any:
        self.calls.append((path, params))
        answer = self.answers[path]
        if isinstance(answer, Exception):
            raise answer
        return answer


SERVED = {("networking.k8s.io/v1", "Ingress"): "ingresses", ("v1", "Service"): "services",
          ("apps/v1", "Deployment"): "deployments"}


async def discovered(api_version: str, kind: str) -> str | None:
    """Discovery as the API server answers it (the controller's cached RESTMapper)."""
    return SERVED.get((api_version, kind))


def run_propose(get: Recorded, spec: dict[str, Any], current: int, pods: list[dict[str, Any]] | None = None,
                ) -> logic.Proposal:
    return asyncio.run(propose(Metrics(get, discovered), HPA, spec, current, current, pods or [], "app=web", NOW))


def object_metric(api_version: str, kind: str) -> dict[str, Any]:
    return {"type": "Object", "object": {"describedObject": {"apiVersion": api_version, "kind": kind, "name": "main"},
                                         "metric": {"name": "requests-per-second"},
                                         "target": {"type": "Value", "value": "10"}}}


def test_object_metric_names_the_object_by_its_discovered_resource() -> None:
    # "ingresses" (not a guessed "ingresss"/"ingressies"), qualified by group; the core group bare.
    path = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/demo/ingresses.networking.k8s.io/main/requests-per-second"
    ready = {"metadata": {"name": "p"},
             "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    pods = [ready, {**ready, "metadata": {"name": "q"}}]
    ingress = object_metric("networking.k8s.io/v1", "Ingress")
    found = run_propose(Recorded({path: {"items": [{"value": "25"}]}}), ingress, 2, pods)
    assert (found.replicas, found.error) == (5, None)  # ceil(25 / 10 * 2 ready pods)
    core = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/demo/services/main/requests-per-second"
    assert run_propose(Recorded({core: {"value": "10"}}), object_metric("v1", "Service"), 2, pods).replicas == 2
    unknown = run_propose(Recorded({}), object_metric("example.com/v1", "Widget"), 3)
    assert unknown.reason == "FailedGetObjectMetric"
    # replica_calculator.go's words, its Object arguments in its order.
    assert unknown.error == ('unable to get metric requests-per-second: Widget on demo main/unable to fetch metrics '
                             'from custom metrics API: no matches for kind "Widget" in group "example.com"')


@pytest.mark.parametrize(("milli", "text"), [(0, "0"), (1000, "1"), (1500, "1500m"), (10_000_000, "10k"),
                                              (250, "250m"), (2_000_000_000, "2M"), (-3000, "-3")])
def test_milli_quantity_is_gos_canonical_decimal_form(milli: int, text: str) -> None:
    assert milli_quantity(milli) == text


def test_external_average_value_sums_the_series_and_divides_by_the_replicas() -> None:
    path = "/apis/external.metrics.k8s.io/v1beta1/namespaces/demo/queue_depth"
    get = Recorded({path: {"items": [{"value": "20"}, {"value": "10500m"}]}})
    found = run_propose(get, external({"type": "AverageValue", "averageValue": "10"}), 2)
    assert get.calls == [(path, {"labelSelector": "q=a"})]
    assert found.replicas == 4  # ceil(30.5 / 10)
    assert found.status == {"type": "External", "external": {
        "metric": {"name": "queue_depth", "selector": {"matchLabels": {"q": "a"}}},
        "current": {"averageValue": "15250m"}}}  # ceil(30.5 / 2) in milli


def test_external_value_target_scales_on_the_ready_pods() -> None:
    path = "/apis/external.metrics.k8s.io/v1beta1/namespaces/demo/queue_depth"
    ready = {"metadata": {"name": "p"},
             "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    found = run_propose(Recorded({path: {"items": [{"value": "40"}]}}), external({"type": "Value", "value": "10"}),
                        3, [ready, {**ready, "metadata": {"name": "q"}}])
    assert found.replicas == 8  # ceil(4 * 2 ready pods)
    assert found.status is not None and found.status["external"]["current"] == {"value": "40"}


def test_a_failed_read_is_upstreams_failure_with_its_reason() -> None:
    path = "/apis/external.metrics.k8s.io/v1beta1/namespaces/demo/queue_depth"
    # The client's error (metrics/client.go), wrapped by the replica calculator (replica_calculator.go).
    empty = run_propose(Recorded({path: {"items": []}}), external({"type": "Value", "value": "10"}), 3)
    assert (empty.reason, empty.error) == ("FailedGetExternalMetric", "unable to get external metric demo/queue_depth/"
                                           "q=a: no metrics returned from external metrics API")
    assert empty.wrapped == f"failed to get external metric value: {empty.error}"
    refused = run_propose(Recorded({path: ApiError(503, {"message": "service unavailable"})}),
                          external({"type": "Value", "value": "10"}), 3)
    assert refused.reason == "FailedGetExternalMetric"
    assert refused.error == ("unable to get external metric demo/queue_depth/q=a: unable to fetch metrics from "
                             "external metrics API: service unavailable")


def test_resource_utilization_reads_metrics_k8s_io_and_reports_utilization() -> None:
    path = "/apis/metrics.k8s.io/v1beta1/namespaces/demo/pods"
    long_ago = "2026-12-04T10:00:00Z"
    pods = [{"metadata": {"name": n},
             "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]},
             "status": {"phase": "Running", "startTime": long_ago,
                        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": long_ago}]}}
            for n in ("a", "b")]
    samples = {"items": [{"metadata": {"name": n}, "timestamp": "2026-12-04T11:59:30Z", "window": "30s",
                          "containers": [{"name": "c", "usage": {"cpu": usage}}]}
                         for n, usage in (("a", "900m"), ("b", "700m"))]}
    target = {"type": "Utilization", "averageUtilization": 50}
    spec = {"type": "Resource", "resource": {"name": "cpu", "target": target}}
    found = run_propose(Recorded({path: samples}), spec, 2, pods)
    assert found.replicas == 4  # 80% of request against 50%: ceil(1.6 * 2)
    assert found.status == {"type": "Resource", "resource": {
        "name": "cpu", "current": {"averageUtilization": 80, "averageValue": "800m"}}}


@pytest.mark.parametrize(("specs", "statuses", "text"), [
    ([], [], "<none>"),
    ([external({"type": "AverageValue", "averageValue": "10"})],
     [{"external": {"current": {"averageValue": "5"}}}], "5/10 (avg)"),
    ([external({"type": "Value", "value": "1500m"})], [None], "<unknown>/1500m"),
    ([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}},
      {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "64Mi"}}},
      {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"averageValue": "1"}}}],
     [{"resource": {"current": {"averageUtilization": 40}}}, None, None],
     "cpu: 40%/80%, memory: <unknown>/64Mi + 1 more..."),
])
def test_targets_is_kubectls_column(specs: list[Any], statuses: list[Any], text: str) -> None:
    assert logic.targets(specs, statuses) == text


def test_state_survives_a_round_trip_through_status() -> None:
    state = logic.State((b.Recommendation(3, NOW - timedelta(seconds=30)), b.Recommendation(1, NOW)),
                        (b.ScaleEvent(2, NOW - timedelta(seconds=60), outdated=True),), (b.ScaleEvent(1, NOW),))
    assert logic.state_from_status({"status": logic.state_to_status(state)}) == state


def test_next_scale_down_is_when_the_window_lets_go_of_the_last_high_recommendation() -> None:
    hpa = {"spec": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}}
    state = logic.State((b.Recommendation(5, NOW - timedelta(seconds=50)),
                         b.Recommendation(3, NOW - timedelta(seconds=20)), b.Recommendation(1, NOW)))
    at, why = logic.next_scale_down(hpa, 3, state, NOW) or ("", "")
    assert at == "2026-12-04T12:00:40Z"  # the recommendation of 3, 20 s ago, leaves the 60 s window in 40 s
    assert "(60s)" in why and "3 replicas" in why
    assert logic.next_scale_down(hpa, 3, logic.State((b.Recommendation(4, NOW),)), NOW) is None  # not going down
    old = logic.State((b.Recommendation(5, NOW - timedelta(seconds=90)), b.Recommendation(1, NOW)))
    assert logic.next_scale_down(hpa, 3, old, NOW) is None  # the window is already clear
    assert logic.scale_down_window({"spec": {}}) == timedelta(minutes=5)  # the legacy path's 5 minutes
    # An outdated entry is overwritten in place (behavior._remember): the newest need not be the last.
    reordered = logic.State((b.Recommendation(1, NOW), b.Recommendation(5, NOW - timedelta(seconds=50)),
                             b.Recommendation(3, NOW - timedelta(seconds=20))))
    assert logic.next_scale_down(hpa, 3, reordered, NOW) == (at, why)


def test_external_series_come_from_labelled_configmaps_matched_by_selector() -> None:
    def cm(name: str, labels: dict[str, str], data: dict[str, str]) -> dict[str, Any]:
        marked = {"metrics.kubeplane.dev/external": "true", **labels}
        return {"metadata": {"name": name, "labels": marked}, "data": data}
    found = series([cm("b", {"q": "a"}, {"Queue_Depth": "7"}), cm("a", {"q": "a"}, {"queue_depth": " 3 ", "x": "1"}),
                    cm("c", {"q": "b"}, {"queue_depth": "100"})], "queue_depth", "q=a")
    assert [(i["metricName"], i["metricLabels"], i["value"]) for i in found] == [
        ("queue_depth", {"q": "a"}, "3"), ("Queue_Depth", {"q": "a"}, "7")]
    assert len(series([cm("c", {"q": "b"}, {"queue_depth": "1"})], "queue_depth", "")) == 1


def custom_cm(name: str, describes: str, data: dict[str, str], **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"metrics.kubeplane.dev/custom": "true", **labels},
                         "annotations": {"metrics.kubeplane.dev/describes": describes}}, "data": data}


def test_custom_pod_values_one_pod_over_every_pod_and_the_metric_selector() -> None:
    pods = [{"metadata": {"name": n, "namespace": "shop"}} for n in ("web-b", "web-a", "web-c")]
    configmaps = [custom_cm("all", "pods", {"rps": "30"}, tier="front"),
                  custom_cm("hot", "pods/web-b", {"RPS": "90"}, tier="front"),
                  custom_cm("other", "pods", {"rps": "1"}, tier="back")]
    items = custom.pod_values(configmaps, pods, "rps", "tier=front")
    assert [(i["describedObject"]["name"], i["value"]) for i in items] == [("web-a", "30"), ("web-b", "90"),
                                                                           ("web-c", "30")]
    assert items[0]["describedObject"] == {"kind": "Pod", "namespace": "shop", "name": "web-a", "apiVersion": "/v1"}
    assert items[0]["metric"] == {"name": "rps", "selector": {"matchLabels": {"tier": "front"}}}
    # Without a selector the first ConfigMap by name wins; a pod no ConfigMap covers is left out.
    assert [i["value"] for i in custom.pod_values(configmaps[:1] + configmaps[2:], pods[:1], "rps", "")] == ["30"]
    only = custom.pod_values([custom_cm("hot", "pods/web-b", {"rps": "9"})], pods, "rps", "")
    assert [(i["describedObject"]["name"], i["value"]) for i in only] == [("web-b", "9")]
    assert custom.pod_values(configmaps, pods, "latency", "") == []


def test_custom_object_value_names_the_object_as_the_path_does() -> None:
    configmaps = [custom_cm("web", "deployments.apps/web", {"hits": "40"}),
                  custom_cm("svc", "services/web", {"hits": "5"})]
    [item] = custom.object_values(configmaps, "shop", "deployments.apps", "web", "hits", "", "Deployment", "apps/v1")
    assert item["value"] == "40" and item["describedObject"] == {
        "kind": "Deployment", "namespace": "shop", "name": "web", "apiVersion": "apps/v1"}
    assert custom.object_values(configmaps, "shop", "deployments.apps", "api", "hits", "", "Deployment",
                                "apps/v1") == []


def test_each_metrics_apis_failure_is_worded_as_upstreams_calculator_wraps_it() -> None:
    """replica_calculator.go's wrapping of the metrics client's errors, per source, word for word."""
    cpu = {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}
    resource_path = "/apis/metrics.k8s.io/v1beta1/namespaces/demo/pods"
    empty = run_propose(Recorded({resource_path: {"items": []}}), cpu, 3)
    assert empty.error == "unable to get metrics for resource cpu: no metrics returned from resource metrics API"
    assert empty.wrapped == f"failed to get cpu resource metric value: {empty.error}"
    pods = {"type": "Pods",
            "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1"}}}
    pods_path = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/demo/pods/*/qps"
    down = run_propose(Recorded({pods_path: ApiError(503, {"message": "adapter down"})}), pods, 3)
    assert (down.reason, down.error) == ("FailedGetPodsMetric",
                                         "unable to get metric qps: unable to fetch metrics from custom metrics API: "
                                         "adapter down")
    # An Object metric with an AverageValue target: named like an external one, its error wrapped once more.
    spec = object_metric("apps/v1", "Deployment")
    spec["object"]["target"] = {"type": "AverageValue", "averageValue": "10"}
    spec["object"]["metric"]["selector"] = {"matchLabels": {"q": "a"}}
    object_path = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/demo/deployments.apps/main/requests-per-second"
    found = run_propose(Recorded({object_path: {"items": [{"value": "40"}]}}), spec, 2)
    assert (found.replicas, found.error) == (4, None)
    assert found.name == ("external metric requests-per-second(&LabelSelector{MatchLabels:map[string]string{q: a,},"
                          "MatchExpressions:[]LabelSelectorRequirement{},})")
    gone = run_propose(Recorded({object_path: ApiError(404, {"message": "not found"})}), spec, 2)
    assert gone.error == ("unable to get metric requests-per-second: Deployment on demo main/unable to fetch metrics "
                          "from custom metrics API: not found")
    assert gone.wrapped == f"failed to get object metric value: failed to get requests-per-second object metric: " \
                           f"{gone.error}"
