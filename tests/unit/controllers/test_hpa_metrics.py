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


SERVED = {("networking.k8s.io/v1", "Ingress"): "ingresses", ("v1", "Service"): "services"}


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
    assert unknown.error == 'no matches for kind "Widget" in group "example.com"'


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
    empty = run_propose(Recorded({path: {"items": []}}), external({"type": "Value", "value": "10"}), 3)
    assert (empty.reason, empty.error) == ("FailedGetExternalMetric", "no metrics returned from external metrics API")
    assert empty.wrapped == "failed to get external metric value: no metrics returned from external metrics API"
    refused = run_propose(Recorded({path: ApiError(503, {"message": "service unavailable"})}),
                          external({"type": "Value", "value": "10"}), 3)
    assert refused.reason == "FailedGetExternalMetric"
    assert refused.error == "unable to get metric queue_depth: service unavailable"


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
