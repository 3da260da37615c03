"""Differential: the same HorizontalPodAutoscaler as autoscaling/v2 (kube-controller-manager's
horizontal-pod-autoscaler controller) and as kubeplane's, each scaling its own apps/v1 Deployment from
the same external metric sequence, both at once on the embedded cluster.

The metric comes from the project's external metrics API (`kubeplane external-metrics serve`, started by
`make up`): a labelled ConfigMap per side holds `queue_depth`. The steps, from 3 replicas: at target; a
scale-down held by the stabilization window (ScaleDownStabilized), then limited by a Pods policy
(ScaleDownLimit); scale-down disabled; a scale-up limited by a Pods policy counted from the replicas at
the start of its period (ScaleUpLimit), then by a Percent policy of the same period. Each policy's
period is longer than the test, so no step depends on where a 15 s sync falls.

Compared at each settled step: the Deployment's replica counts in the order the HPA set them (from a
watch), the HPA's desired and current replicas, its conditions (type, status, reason, message), the
current metric as status reports it, and the SuccessfulRescale messages. Never timestamps.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.integration import differential
from tests.integration.conftest import ENV, Operator
from tests.integration.differential import Flavour, Side
from tests.watch import Watch

UPSTREAM = Flavour("upstream", "autoscaling/v2", "horizontalpodautoscalers.autoscaling")
KUBEPLANE = Flavour("kubeplane", "autoscaling.kubeplane.dev/v1alpha1",
                    "horizontalpodautoscalers.autoscaling.kubeplane.dev")
STEP_TIMEOUT = 150  # a 15 s sync period, a 45 s window, and a busy machine


def metric(s: Side, value: str) -> None:
    s.apply({"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "queue", "labels": {"metrics.kubeplane.dev/external": "true", "queue": "jobs"}},
             "data": {"queue_depth": value}})


def hpa(scale_down_policy: str = "Max", scale_up: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    scale_up = scale_up or [{"type": "Pods", "value": 2, "periodSeconds": 1800}]
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "minReplicas": 1, "maxReplicas": 10,
                     "metrics": [{"type": "External", "external": {
                         "metric": {"name": "queue_depth", "selector": {"matchLabels": {"queue": "jobs"}}},
                         "target": {"type": "AverageValue", "averageValue": "10"}}}],
                     "behavior": {
                         "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                                     "policies": scale_up},
                         "scaleDown": {"stabilizationWindowSeconds": 45, "selectPolicy": scale_down_policy,
                                       "policies": [{"type": "Pods", "value": 1, "periodSeconds": 1800}]}}}}


DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
              "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                       "template": {"metadata": {"labels": {"app": "web"}},
                                    "spec": {"automountServiceAccountToken": False,
                                             "containers": [{"name": "web", "image": "registry.local/web:1"}]}}}}


def wait_rescale_events(s: Side, sizes: list[int]) -> None:
    """Until a SuccessfulRescale event names each of these new sizes. Events are recorded apart from the
    scale update they report (kube-controller-manager's broadcaster sends them a moment later), so the
    watch can show the new replicas before the event exists."""
    def seen() -> bool:
        messages = s.event_messages("web", "SuccessfulRescale")
        return all(any(m.startswith(f"New size: {n};") for m in messages) for n in sizes)
    s.wait(seen, f"SuccessfulRescale events for sizes {sizes}", timeout=60)


def replicas_in_order(deployments: Watch, since: int) -> list[int]:
    """The Deployment's replica counts in the order they were set, from the watch's events since `since`."""
    seen: list[int] = []
    for _, d in deployments.events[since:]:
        count = int((d.get("spec") or {}).get("replicas") or 0)
        if not seen or seen[-1] != count:
            seen.append(count)
    return seen


def scenario(s: Side) -> None:
    with Watch(ENV, f"/apis/apps/v1/namespaces/{s.namespace}/deployments") as deployments:
        metric(s, "30")
        s.apply(DEPLOYMENT)
        s.wait(lambda: (s.get("web", "deployments.apps").get("status") or {}).get("readyReplicas") == 3,
               "the Deployment's pods")
        s.apply_workload(hpa())

        def replicas_set(since: int) -> list[int]:
            return replicas_in_order(deployments, since)

        def step(name: str, done: Callable[[dict[str, Any]], bool], since: int) -> None:
            def settled() -> bool:
                current = s.get("web")
                status = current.get("status") or {}
                return (status.get("observedGeneration") == current["metadata"].get("generation")
                        and done(status))
            s.wait(settled, name, timeout=STEP_TIMEOUT)
            before = int(deployments.events[since - 1][1]["spec"]["replicas"]) if since else None
            wait_rescale_events(s, [n for n in replicas_set(since) if n != before])
            status = s.status("web")
            s.record(name, replicas=replicas_set(since),
                     spec_replicas=s.get("web", "deployments.apps")["spec"]["replicas"],
                     current=status.get("currentReplicas"), desired=status.get("desiredReplicas"),
                     conditions=s.conditions("web"),
                     metrics=[m.get("external", {}).get("current") for m in status.get("currentMetrics") or []],
                     rescales=s.event_messages("web", "SuccessfulRescale"))

        def reason(status: dict[str, Any], kind: str) -> str:
            return next((c.get("reason", "") for c in status.get("conditions") or [] if c.get("type") == kind), "")

        def average(st: dict[str, Any]) -> str:
            return next((str(m.get("external", {}).get("current", {}).get("averageValue"))
                         for m in st.get("currentMetrics") or []), "")

        # 30 over a 10 average with 3 replicas: nothing to do.
        mark = len(deployments.events)
        step("at target", lambda st: st.get("desiredReplicas") == 3 and average(st) == "10", mark)

        # 10: 1 wanted; the 45 s window holds the recent recommendations of 3 first ...
        mark = len(deployments.events)
        metric(s, "10")
        step("scale down held by the window",
             lambda st: reason(st, "AbleToScale") == "ScaleDownStabilized" and average(st) == "3334m", mark)
        # ... then the 1-pod scale-down policy (its period outlasts the test) lets one pod go: 2, ScaleDownLimit.
        mark = len(deployments.events)
        step("scale down limited by the Pods policy",
             lambda st: st.get("currentReplicas") == 2 and reason(st, "ScalingLimited") == "ScaleDownLimit", mark)

        # Scale-down disabled: still 2.
        mark = len(deployments.events)
        s.apply_workload(hpa(scale_down_policy="Disabled"))
        step("scale down disabled", lambda st: st.get("desiredReplicas") == 2 and average(st) == "5", mark)

        # 80: 8 wanted; the scale-up policy allows 2 pods over the replicas at the start of its period
        # (2 now + 1 removed within it = 3): 5, ScaleUpLimit.
        mark = len(deployments.events)
        metric(s, "80")
        step("scale up limited by the Pods policy",
             lambda st: st.get("currentReplicas") == 5 and reason(st, "ScalingLimited") == "ScaleUpLimit", mark)

        # A Percent policy instead: 100 % more than the replicas at the start of its period (5 now, 3 added
        # and 1 removed within it: 3) allows 6 of the 8 wanted: 6, ScaleUpLimit.
        mark = len(deployments.events)
        s.apply_workload(hpa(scale_down_policy="Disabled",
                             scale_up=[{"type": "Percent", "value": 100, "periodSeconds": 1800}]))
        step("scale up limited by the Percent policy",
             lambda st: st.get("currentReplicas") == 6 and reason(st, "ScalingLimited") == "ScaleUpLimit", mark)
        s.record("event reasons", reasons=s.event_reasons("web"))


def test_same_replicas_conditions_and_events_as_kube_controller_managers_hpa(controllers: Operator) -> None:
    results = differential.run_together(scenario, (UPSTREAM, KUBEPLANE))
    print(json.dumps(results, indent=1))
    differential.assert_same(results)


def cpu_scenario(s: Side) -> None:
    """4 pods using 400m of a 500m request (80%) against a 50% target, one pod turned unready on command.
    Upstream's calculation leaves the unready pod out of the utilization (80% on the 3 ready ones) and,
    since that is a scale-up, counts it at 0: 3·400m over 4·500m is 60%, 1.2 times the target, so the
    first rescale is to ceil(1.2·4) = 5 (6 without the unready rule). Metrics come from metrics-server,
    reading KWOK's usage emulation (the pods' kwok.x-k8s.io/usage-cpu). Compared: the first count set,
    its SuccessfulRescale message, the metric as status reported it then, ScalingActive."""
    with Watch(ENV, f"/apis/apps/v1/namespaces/{s.namespace}/deployments") as deployments:
        s.apply({**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "replicas": 4, "template": {
            "metadata": {"labels": {"app": "web"}, "annotations": {"kwok.x-k8s.io/usage-cpu": "400m"}},
            "spec": {"automountServiceAccountToken": False, "containers": [
                {"name": "web", "image": "registry.local/web:1", "resources": {"requests": {"cpu": "500m"}}}]}}}})
        s.wait(lambda: (s.get("web", "deployments.apps").get("status") or {}).get("readyReplicas") == 4,
               "the Deployment's pods")
        set_ready(s, sorted(s.live_pods())[0], False)
        s.apply_workload({**hpa(), "spec": {**hpa()["spec"], "metrics": [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]}})

        def counts() -> list[int]:
            return [int(d["spec"]["replicas"]) for _, d in deployments.events]

        s.wait(lambda: any(n != 4 for n in counts()), "the first rescale", timeout=STEP_TIMEOUT)
        first = next(n for n in counts() if n != 4)
        wait_rescale_events(s, [first])
        s.record("an unready pod counted at 0 on the way up", first=first,
                 message=sorted(m for m in s.event_messages("web", "SuccessfulRescale")
                                if m.startswith(f"New size: {first};")),
                 active=[c for c in s.conditions("web") if c[0] == "ScalingActive"])


def set_ready(s: Side, pod: str, ready: bool) -> None:
    conditions = s.get(pod, "pods")["status"]["conditions"]
    index = next(i for i, c in enumerate(conditions) if c["type"] == "Ready")
    value = {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": conditions[index].get(
        "lastTransitionTime")}
    s.kubectl("patch", "pod", pod, "--subresource=status", "--type=json", "-p",
              json.dumps([{"op": "replace", "path": f"/status/conditions/{index}", "value": value}]))


def test_cpu_utilization_with_an_unready_pod_as_kube_controller_managers_hpa(controllers: Operator) -> None:
    results = differential.run_together(cpu_scenario, (UPSTREAM, KUBEPLANE))
    print(json.dumps(results, indent=1))
    differential.assert_same(results)


def unreadable_scenario(s: Side) -> None:
    """Targets whose scale cannot be read: a Deployment that does not exist, and a kind no API serves.
    Compared: AbleToScale (FailedGetScale, the message naming the cause) and the Warning's message."""
    for name, ref in (("missing", {"apiVersion": "apps/v1", "kind": "Deployment", "name": "missing"}),
                      ("unserved", {"apiVersion": "example.com/v1", "kind": "Widget", "name": "w"})):
        s.apply_workload({**hpa(), "metadata": {"name": name}, "spec": {**hpa()["spec"], "scaleTargetRef": ref}})
    for name in ("missing", "unserved"):
        s.wait(lambda name=name: any(c[0] == "AbleToScale" for c in s.conditions(name))
               and s.event_messages(name, "FailedGetScale"), f"{name}: FailedGetScale", timeout=STEP_TIMEOUT)
        s.record(name, conditions=s.conditions(name), warnings=sorted(set(s.event_messages(name, "FailedGetScale"))))


def test_an_unreadable_target_is_reported_as_kube_controller_managers_hpa(controllers: Operator) -> None:
    results = differential.run_together(unreadable_scenario, (UPSTREAM, KUBEPLANE))
    print(json.dumps(results, indent=1))
    differential.assert_same(results)


def custom_metric(s: Side, name: str, describes: str, value: str) -> None:
    """A value of the project's custom metrics API (operators/metricsapi/custom.py) for `describes`."""
    s.apply({"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": name, "labels": {"metrics.kubeplane.dev/custom": "true", "source": "test"},
                          "annotations": {"metrics.kubeplane.dev/describes": describes}},
             "data": {"requests_per_second": value}})


def custom_hpa(metric: dict[str, Any]) -> dict[str, Any]:
    base = hpa()
    return {**base, "spec": {**base["spec"], "minReplicas": 1, "maxReplicas": 5, "metrics": [metric], "behavior": {
        "scaleUp": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Pods", "value": 10, "periodSeconds": 60}]},
        "scaleDown": {"stabilizationWindowSeconds": 0,
                      "policies": [{"type": "Pods", "value": 10, "periodSeconds": 60}]}}}}


OBJECT_METRIC = {"type": "Object", "object": {
    "describedObject": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
    "metric": {"name": "requests_per_second", "selector": {"matchLabels": {"source": "test"}}},
    "target": {"type": "AverageValue", "averageValue": "10"}}}
PODS_METRIC = {"type": "Pods", "pods": {
    "metric": {"name": "requests_per_second"}, "target": {"type": "AverageValue", "averageValue": "30"}}}


def custom_scenario(s: Side) -> None:
    """Object and Pods metrics from a live custom metrics API (custom.metrics.k8s.io/v1beta2, served by `make
    up`'s `kubeplane external-metrics serve`): an Object metric of the Deployment itself at 40 over an average
    of 10 (4 replicas), then 20 (2); a Pods metric of 30 per pod at a 30 target (no change), then one pod at 90
    (an average of 60: 4, then 45 over 4 pods: 6, capped at the maximum, 5: TooManyReplicas); an Object metric
    the API has no value for. Compared: the replica counts in the order set, conditions, current metrics,
    SuccessfulRescale messages, the warnings' messages."""
    with Watch(ENV, f"/apis/apps/v1/namespaces/{s.namespace}/deployments") as deployments:
        s.apply({**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "replicas": 1}})
        s.wait(lambda: (s.get("web", "deployments.apps").get("status") or {}).get("readyReplicas") == 1,
               "the Deployment's pod")

        def replicas_set(since: int) -> list[int]:
            return replicas_in_order(deployments, since)

        def current(st: dict[str, Any]) -> list[Any]:
            return [m.get("object", m.get("pods", {})).get("current") for m in st.get("currentMetrics") or []]

        def step(name: str, done: Callable[[dict[str, Any]], bool], since: int) -> None:
            def settled() -> bool:
                obj = s.get("web")
                st = obj.get("status") or {}
                return st.get("observedGeneration") == obj["metadata"].get("generation") and done(st)
            s.wait(settled, name, timeout=STEP_TIMEOUT)
            before = int(deployments.events[since - 1][1]["spec"]["replicas"]) if since else None
            wait_rescale_events(s, [n for n in replicas_set(since) if n != before])
            st = s.status("web")
            s.record(name, replicas=replicas_set(since), current=st.get("currentReplicas"),
                     desired=st.get("desiredReplicas"), conditions=s.conditions("web"), metrics=current(st),
                     rescales=sorted(s.event_messages("web", "SuccessfulRescale")))

        def value(st: dict[str, Any]) -> str:
            return str((current(st) or [{}])[0].get("averageValue"))

        custom_metric(s, "object", "deployments.apps/web", "40")
        mark = len(deployments.events)
        s.apply_workload(custom_hpa(OBJECT_METRIC))
        step("object metric: 40 over 10 per replica",
             lambda st: st.get("currentReplicas") == 4 and st.get("desiredReplicas") == 4, mark)
        mark = len(deployments.events)
        custom_metric(s, "object", "deployments.apps/web", "20")
        step("object metric: 20", lambda st: st.get("currentReplicas") == 2 and st.get("desiredReplicas") == 2, mark)

        custom_metric(s, "per-pod", "pods", "30")
        mark = len(deployments.events)
        s.apply_workload(custom_hpa(PODS_METRIC))
        step("pods metric at target", lambda st: st.get("desiredReplicas") == 2 and value(st) == "30", mark)
        hot = sorted(s.live_pods())[0]
        mark = len(deployments.events)
        custom_metric(s, "hot-pod", f"pods/{hot}", "90")
        step("pods metric: one pod at 90", lambda st: st.get("currentReplicas") == 5 and any(
            c[0] == "ScalingLimited" and c[2] == "TooManyReplicas" for c in s.conditions("web")), mark)

        # An Object metric the API has no value for: the errors as worded by each side.
        missing = {**OBJECT_METRIC["object"], "describedObject": {**OBJECT_METRIC["object"]["describedObject"],
                                                                  "name": "missing"}}
        s.apply_workload(custom_hpa({"type": "Object", "object": missing}))
        s.wait(lambda: any(c[0] == "ScalingActive" and c[1] == "False" for c in s.conditions("web"))
               and s.event_messages("web", "FailedGetObjectMetric")
               and s.event_messages("web", "FailedComputeMetricsReplicas"), "the missing metric reported",
               timeout=STEP_TIMEOUT)
        s.record("object metric unavailable", conditions=s.conditions("web"),
                 warnings=sorted(set(s.event_messages("web", "FailedGetObjectMetric"))),
                 computed=sorted(set(s.event_messages("web", "FailedComputeMetricsReplicas"))))
        s.record("event reasons", reasons=s.event_reasons("web"))


def test_pods_and_object_metrics_from_a_live_custom_metrics_api_as_kube_controller_managers_hpa(
        controllers: Operator) -> None:
    results = differential.run_together(custom_scenario, (UPSTREAM, KUBEPLANE))
    print(json.dumps(results, indent=1))
    differential.assert_same(results)
