"""The HorizontalPodAutoscaler's arithmetic (operators/controllers/hpa) as facts: upstream's
replica_calculator_test.go (TestReplicaCalc*) and horizontal_test.go (TestConvertDesiredReplicasWithRules,
TestCalculateScaleUp/DownLimit*, TestScalingWithRules, stabilization) cases, with their numbers.

Upstream's pods have two containers and per-container metrics; here each pod has one container with the
same request and metric, which gives the same utilization and ratios (upstream's expected raw values are
twice ours)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from operators.controllers.hpa import behavior as b
from operators.controllers.hpa import logic
from operators.controllers.hpa import replicas as r

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
COOL = NOW - timedelta(minutes=3)  # coolCPUCreationTime
HOT = NOW  # hotCPUCreationTime


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def pods(requests: list[str], ready: list[bool] | None = None, started: list[datetime] | None = None,
         phase: list[str] | None = None, deleting: list[bool] | None = None) -> list[dict[str, Any]]:
    found = []
    for i, request in enumerate(requests):
        meta: dict[str, Any] = {"name": f"p-{i}"}
        if deleting and deleting[i]:
            meta["deletionTimestamp"] = iso(NOW)
        start = started[i] if started else datetime(2000, 1, 1, tzinfo=UTC)  # long started (Go: the zero time)
        status = {"phase": phase[i] if phase else "Running", "startTime": iso(start),
                  "conditions": [{"type": "Ready", "status": "True" if (ready[i] if ready else True) else "False"}]}
        found.append({"metadata": meta, "status": status,
                      "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": request}}}]}})
    return found


def samples(levels: list[int]) -> dict[str, r.Sample]:
    return {f"p-{i}": r.Sample(level, NOW) for i, level in enumerate(levels)}


@pytest.mark.parametrize(("name", "current", "requests", "levels", "target", "expected", "utilization", "extra"), [
    ("ScaleUp", 3, ["1.0"] * 3, [300, 500, 700], 30, 5, 50, {}),
    ("ScaleUpUnreadyLessScale", 3, ["1.0"] * 3, [300, 500, 700], 30, 4, 60, {"ready": [False, True, True]}),
    ("ScaleUpHotCpuLessScale", 3, ["1.0"] * 3, [300, 500, 700], 30, 4, 60, {"started": [HOT, COOL, COOL]}),
    ("ScaleUpUnreadyNoScale", 3, ["1.0"] * 3, [400, 500, 700], 30, 3, 40, {"ready": [True, False, False]}),
    ("ScaleHotCpuNoScale", 3, ["1.0"] * 3, [400, 500, 700], 30, 3, 40, {"started": [COOL, HOT, HOT]}),
    ("ScaleUpIgnoresFailedPods", 2, ["1.0"] * 4, [500, 700, 100, 100], 30, 4, 60,
     {"phase": ["Running", "Running", "Failed", "Failed"]}),
    ("ScaleUpIgnoresDeletionPods", 2, ["1.0"] * 4, [500, 700, 100, 100], 30, 4, 60,
     {"deleting": [False, False, True, True]}),
    ("ScaleDown", 5, ["1.0"] * 5, [100, 300, 500, 250, 250], 50, 3, 28, {}),
    ("ScaleDownExcludeUnreadyPods", 5, ["1.0"] * 5, [100, 300, 500, 250, 250], 50, 2, 30,
     {"ready": [True, True, True, False, False]}),
    ("ScaleDownExcludeUnscheduledPods", 5, ["1.0"] * 5, [100], 50, 1, 10,
     {"phase": ["Running", "Pending", "Pending", "Pending", "Pending"]}),
    ("ScaleDownIgnoreHotCpuPods", 5, ["1.0"] * 5, [100, 300, 500, 250, 250], 50, 2, 30,
     {"started": [COOL, COOL, COOL, HOT, HOT]}),
    ("Tolerance", 3, ["0.9", "1.0", "1.1"], [1010, 1030, 1020], 100, 3, 102, {}),
    ("SuperfluousMetrics", 4, ["1.0"] * 4, [4000, 9500, 3000, 7000, 3200, 2000], 100, 24, 587, {}),
    ("MissingMetrics", 4, ["1.0"] * 4, [400, 95], 100, 3, 24, {}),
    ("MissingMetricsNoChangeEq", 2, ["1.0"] * 2, [1000], 100, 2, 100, {}),
    ("MissingMetricsNoChangeGt", 2, ["1.0"] * 2, [1900], 100, 2, 190, {}),
    ("MissingMetricsNoChangeLt", 2, ["1.0"] * 2, [600], 100, 2, 60, {}),
    ("MissingMetricsUnreadyChange", 3, ["1.0"] * 3, [100, 450], 50, 3, 45, {"ready": [False, True, True]}),
    ("MissingMetricsHotCpuNoChange", 3, ["1.0"] * 3, [100, 450], 50, 3, 45, {"started": [HOT, COOL, COOL]}),
])
def test_resource_replicas(name: str, current: int, requests: list[str], levels: list[int], target: int,
                           expected: int, utilization: int, extra: dict[str, Any]) -> None:
    result = r.resource_replicas(current, target, pods(requests, **extra), samples(levels), "cpu", NOW)
    assert (result.replicas, result.utilization) == (expected, utilization), name


def test_resource_replicas_errors() -> None:
    with pytest.raises(r.MetricError, match="no pods returned by selector"):
        r.resource_replicas(1, 50, [], {}, "cpu", NOW)
    with pytest.raises(r.MetricError, match="did not receive metrics for targeted pods"):
        r.resource_replicas(1, 50, pods(["1.0"]), {}, "cpu", NOW)
    with pytest.raises(r.MetricError, match="missing request for cpu in container c of Pod p-0"):
        r.resource_replicas(1, 50, [{**pods(["1"])[0], "spec": {"containers": [{"name": "c"}]}}], samples([100]),
                            "cpu", NOW)


@pytest.mark.parametrize(("name", "current", "levels", "target", "expected", "usage", "extra"), [
    ("ScaleUpCM", 3, [20000, 10000, 30000], 15000, 4, 20000, {}),
    ("ScaleUpCMUnreadyHotCpuNoLessScale", 3, [50000, 10000, 30000], 15000, 6, 30000,
     {"ready": [False, True, False]}),
    ("ScaleUpCMUnreadyHotCpuScaleWouldScaleDown", 3, [50000, 15000, 30000], 15000, 7, 31666,
     {"ready": [False, True, False]}),
    ("ScaleDownCM", 5, [12000, 12000, 12000, 12000, 12000], 20000, 3, 12000, {}),
    ("ToleranceCM", 3, [20000, 21000, 21000], 20000, 3, 20666, {}),
])
def test_pods_metric_replicas(name: str, current: int, levels: list[int], target: int, expected: int, usage: int,
                              extra: dict[str, Any]) -> None:
    result = r.plain_replicas(current, target, pods(["1"] * len(levels), **extra), samples(levels), NOW)
    assert (result.replicas, result.value) == (expected, usage), name


def test_object_and_external_replicas() -> None:
    three = pods(["1"] * 3)
    assert r.value_replicas(3, 20000, 15000, three).replicas == 4  # ScaleUpCMObject
    assert r.value_replicas(1, 8600, 4400, pods(["1"])).replicas == 2  # ScaleUpCMExternal
    assert r.value_replicas(5, 8600, 14334, pods(["1"] * 5)).replicas == 3  # ScaleDownCMExternal
    assert r.value_replicas(3, 20666, 20000, three).replicas == 3  # ToleranceCMObject
    # Only Running and Ready pods count (ScaleUpCMObjectIgnoresUnreadyPods: 1 of 3 ready).
    assert r.value_replicas(3, 50000, 10000, pods(["1"] * 3, ready=[False, True, False])).replicas == 5
    assert r.value_replicas(0, 50000, 10000, []).replicas == 5  # from zero: ceil(ratio)
    per_pod = r.average_value_replicas(3, 8600, 2150)  # ScaleUpPerPodCMExternal
    assert (per_pod.replicas, per_pod.value) == (4, 2867)
    assert r.average_value_replicas(5, 8600, 2867).replicas == 3  # ScaleDownPerPodCMExternal
    assert r.average_value_replicas(3, 8600, 2900).replicas == 3  # TolerancePerPodCMExternal


# --- normalization ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("current", "desired", "min_", "max_", "want", "reason"), [
    (5, 7, 3, 8, 7, "DesiredWithinRange"),
    (3, 1, 2, 8, 2, "TooFewReplicas"),
    (1, 0, 0, 10, 0, "DesiredWithinRange"),
    (20, 1000, 1, 10, 10, "TooManyReplicas"),
    (3, 1000, 1, 2000, 6, "ScaleUpLimit"),  # calculateScaleUpLimit(3) = max(2*3, 4)
])
def test_convert_desired_replicas_with_rules(current: int, desired: int, min_: int, max_: int, want: int,
                                             reason: str) -> None:
    assert b.convert_with_rules(current, desired, min_, max_)[:2] == (want, reason)


def rules(pods_: int, pods_period: int, percent: int, percent_period: int, window: int,
          select: str = b.MAX) -> dict[str, Any]:
    """generateScalingRules."""
    policies = []
    if pods_:
        policies.append({"type": b.PODS, "value": pods_, "periodSeconds": pods_period})
    if percent:
        policies.append({"type": b.PERCENT, "value": percent, "periodSeconds": percent_period})
    return {"stabilizationWindowSeconds": window, "selectPolicy": select, "policies": policies}


def uniform(changes: list[int], period: int) -> list[b.ScaleEvent]:
    """generateEventsUniformDistribution: each event in the middle of its share of the last `period` s."""
    segment = period / len(changes)
    return [b.ScaleEvent(c, NOW - timedelta(seconds=period - segment * (i + 1) + segment / 2))
            for i, c in enumerate(changes)]


def test_scale_limits_with_min_select_policy() -> None:
    min_rules = {"stabilizationWindowSeconds": 300, "selectPolicy": b.MIN,
                 "policies": [{"type": b.PODS, "value": 2, "periodSeconds": 60},
                              {"type": b.PERCENT, "value": 50, "periodSeconds": 60}]}
    assert b.convert_with_behavior_rate(1, 100, 1, 100, [], [], min_rules, min_rules, NOW)[0] == 2
    assert b.convert_with_behavior_rate(5, 0, 0, 100, [], [], min_rules, min_rules, NOW)[0] == 3


SCALING_WITH_RULES = [
    # name, up events, down events, min, max, up rules, down rules, current, desired, want, reason
    ("within range", [], [], 3, 8, None, None, 5, 7, 7, "DesiredWithinRange"),
    ("< minReplicas", [], [], 2, 8, None, None, 3, 1, 2, "TooFewReplicas"),
    ("minReplicas 0", [], [], 0, 10, None, None, 1, 0, 0, "DesiredWithinRange"),
    ("maxReplicas < scaleUpLimit", [], [], 1, 10, None, None, 20, 1000, 10, "TooManyReplicas"),
    ("more than max", [], [], 100, 150, None, None, 100, 1000, 150, "TooManyReplicas"),
    ("user scale-up limit", [], [], 1, 2000, rules(0, 0, 1, 60, 0), None, 3, 1000, 4, "ScaleUpLimit"),
    ("user scale-down limit", [], [], 3, 2000, None, rules(20, 60, 0, 0, 0), 1000, 3, 980, "ScaleDownLimit"),
    ("default scale-up", [], [], 1, 1000, None, None, 10, 50, 20, "ScaleUpLimit"),
    ("pods larger than percent", [], [], 1, 1000, rules(100, 60, 100, 60, 0), None, 10, 500, 110, "ScaleUpLimit"),
    ("percent larger than pods", [], [], 1, 1000, rules(2, 60, 100, 60, 0), None, 10, 500, 20, "ScaleUpLimit"),
    ("large pods policy", [], [], 1, 1000, rules(100, 60, 0, 0, 0), None, 10, 50, 50, "DesiredWithinRange"),
    ("pod policy limit", [], [], 1, 1000, rules(30, 60, 0, 0, 0), None, 10, 50, 40, "ScaleUpLimit"),
    ("percent policy limit", [], [], 1, 1000, rules(0, 0, 200, 60, 0), None, 10, 50, 30, "ScaleUpLimit"),
    ("down percent larger", [], [], 1, 1000, None, rules(20, 60, 1, 60, 300), 100, 2, 80, "ScaleDownLimit"),
    ("down pods larger", [], [], 1, 1000, None, rules(2, 60, 1, 60, 300), 100, 2, 98, "ScaleDownLimit"),
    ("down to min", [], [], 1, 1000, None, rules(100, 60, 0, 0, 300), 10, 0, 1, "TooFewReplicas"),
    ("down percent to min", [], [], 5, 1000, None, rules(0, 0, 100, 60, 300), 10, 2, 5, "TooFewReplicas"),
    ("down pod limit", [], [], 1, 1000, None, rules(5, 60, 0, 0, 300), 10, 2, 5, "ScaleDownLimit"),
    ("down percent within", [], [], 1, 1000, None, rules(0, 0, 50, 60, 300), 10, 5, 5, "DesiredWithinRange"),
    ("up events, max", uniform([1, 5, 9], 120), [], 1, 200, rules(300, 60, 0, 0, 0), None, 100, 500, 200,
     "TooManyReplicas"),
    ("up events, current", uniform([1, 5, 9], 120), [], 1, 1000, rules(5, 120, 0, 0, 0), None, 100, 500, 100,
     "ScaleUpLimit"),
    ("up events, pods", uniform([1, 5, 9], 120), [], 1, 1000, rules(150, 120, 0, 0, 0), None, 100, 500, 235,
     "ScaleUpLimit"),
    ("up events, percent", uniform([1, 5, 9], 120), [], 1, 1000, rules(0, 0, 200, 120, 0), None, 100, 500, 255,
     "ScaleUpLimit"),
    ("up and down events", uniform([4], 120), uniform([2], 120), 1, 1000, rules(0, 0, 300, 300, 0), None, 6, 24,
     16, "ScaleUpLimit"),
    ("down events, default", [], uniform([1, 5, 9], 120), 1, 1000, None, None, 10, 5, 5, "DesiredWithinRange"),
    ("down events, to min", [], uniform([1, 5, 9], 120), 5, 1000, None, rules(130, 120, 0, 0, 300), 100, 0, 5,
     "TooFewReplicas"),
]


@pytest.mark.parametrize(("name", "up_events", "down_events", "min_", "max_", "up", "down", "current", "desired",
                          "want", "reason"), SCALING_WITH_RULES, ids=[c[0] for c in SCALING_WITH_RULES])
def test_scaling_with_rules(name: str, up_events: list[b.ScaleEvent], down_events: list[b.ScaleEvent], min_: int,
                            max_: int, up: dict[str, Any] | None, down: dict[str, Any] | None, current: int,
                            desired: int, want: int, reason: str) -> None:
    up_rules = b.scale_up_rules({"scaleUp": up} if up else None)
    down_rules = b.scale_down_rules({"scaleDown": down} if down else None)
    got = b.convert_with_behavior_rate(current, desired, min_, max_, up_events, down_events, up_rules, down_rules,
                                       NOW)
    assert got[:2] == (want, reason)


def test_legacy_stabilization_keeps_the_highest_recent_recommendation() -> None:
    recs = [b.Recommendation(8, NOW - timedelta(minutes=2)), b.Recommendation(10, NOW - timedelta(minutes=6))]
    result = b.normalize_legacy(8, 4, 1, 20, recs, NOW)
    assert result.replicas == 8 and result.able[0] == "ScaleDownStabilized"
    # The outdated sample is replaced by the new recommendation.
    assert [x.replicas for x in result.recommendations] == [8, 4]
    assert b.normalize_legacy(8, 9, 1, 20, [], NOW).able[0] == "ReadyForNewScale"


def test_behavior_stabilization_windows() -> None:
    up = {"stabilizationWindowSeconds": 60}
    down = {"stabilizationWindowSeconds": 300}
    recs = [b.Recommendation(3, NOW - timedelta(seconds=30)), b.Recommendation(9, NOW - timedelta(seconds=200))]
    # Up: the lowest within 60 s (3) caps a jump to 10 from 5 ... at the current count.
    assert b.stabilize_with_behavior(recs, 10, 5, up, down, NOW)[0] == 5
    # Down: the highest within 300 s (9) keeps a drop to 2 from 8 at 8 (never above current... it is clamped
    # between max(current, up) and down).
    rec, reason, _ = b.stabilize_with_behavior(recs, 2, 8, up, down, NOW)
    assert rec == 8 and reason[0] == "ScaleDownStabilized"


def test_scale_events_are_recorded_over_the_outdated_one() -> None:
    rule = {"policies": [{"type": b.PODS, "value": 4, "periodSeconds": 60}]}
    events = [b.ScaleEvent(1, NOW - timedelta(seconds=120)), b.ScaleEvent(2, NOW - timedelta(seconds=30))]
    kept = b.record_scale_event(events, 5, rule, NOW)
    assert [(e.change, e.outdated) for e in kept] == [(5, False), (2, False)]
    assert b.changed_within(60, kept, NOW + timedelta(seconds=1)) == 7


# --- the reconcile's decisions (hpa/logic.py) --------------------------------------------------------------


CPU = "cpu resource utilization (percentage of request)"


def hpa(min_: int | None = 1, max_: int = 10, behavior: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"maxReplicas": max_, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                                                  "name": "web"}}
    if min_ is not None:
        spec["minReplicas"] = min_
    if behavior is not None:
        spec["behavior"] = behavior
    return {"metadata": {"name": "web", "namespace": "ns", "generation": 1}, "spec": spec, "status": {}}


def test_scale_up_on_the_highest_metric() -> None:
    proposals = [logic.Proposal(CPU, 5), logic.Proposal("pods metric qps", 4)]
    d = logic.decide(hpa(), 3, proposals, logic.State(), NOW)
    assert (d.desired, d.rescale) == (5, True)
    assert [(e.type, e.reason, e.message) for e in d.events] == [
        ("Normal", "SuccessfulRescale", f"New size: 5; reason: {CPU} above target")]
    assert d.conditions == {
        "AbleToScale": ("True", "SucceededRescale", "the HPA controller was able to update the target scale to 5"),
        "ScalingActive": ("True", "ValidMetricFound",
                          f"the HPA was able to successfully calculate a replica count from {CPU}"),
        "ScalingLimited": ("False", "DesiredWithinRange", "the desired count is within the acceptable range")}
    status = logic.status(hpa(), 3, d, NOW)
    assert (status["currentReplicas"], status["desiredReplicas"], status["lastScaleTime"]) == (3, 5, iso(NOW))


def test_scaling_disabled_and_out_of_range_targets() -> None:
    off = logic.decide(hpa(), 0, [logic.Proposal(CPU, 5)], logic.State(), NOW)
    assert not off.rescale and off.conditions["ScalingActive"][1] == "ScalingDisabled"
    above = logic.decide(hpa(max_=10), 12, [], logic.State(), NOW)
    assert (above.desired, above.events[0].message) == (
        10, "New size: 10; reason: Current number of replicas above Spec.MaxReplicas")
    below = logic.decide(hpa(min_=3), 1, [], logic.State(), NOW)
    assert (below.desired, below.reason) == (3, "Current number of replicas below Spec.MinReplicas")
    # minReplicas 0 (a kubeplane opt-in later): a target at zero is scaled from the metrics.
    assert logic.decide(hpa(min_=0), 0, [logic.Proposal("External metric", 2)], logic.State(), NOW).desired == 2


def test_an_invalid_metric_blocks_scale_down_but_not_scale_up() -> None:
    bad = logic.Proposal("pods metric qps", error="unable to get metric qps: no metrics returned",
                         wrapped="failed to get pods metric value: unable to get metric qps: no metrics returned",
                         reason="FailedGetPodsMetric")
    up = logic.decide(hpa(), 3, [logic.Proposal(CPU, 5), bad], logic.State(), NOW)  # TestScaleUpOneMetricInvalid
    assert up.desired == 5 and up.conditions["ScalingActive"][:2] == ("True", "ValidMetricFound")
    assert [e.reason for e in up.events] == ["FailedGetPodsMetric", "SuccessfulRescale"]
    down = logic.decide(hpa(), 5, [logic.Proposal(CPU, 2), bad], logic.State(), NOW)
    assert not down.rescale and down.failed
    assert down.conditions["ScalingActive"] == (
        "False", "FailedGetPodsMetric", "the HPA was unable to compute the replica count: "
        "unable to get metric qps: no metrics returned")
    assert down.events[-1].message == ("invalid metrics (1 invalid out of 2), first error is: failed to get pods "
                                       "metric value: unable to get metric qps: no metrics returned")
    hpa_ = hpa()
    hpa_["status"] = {"desiredReplicas": 4}
    assert logic.status(hpa_, 5, down, NOW)["desiredReplicas"] == 4  # kept, as setCurrentReplicasAndMetricsInStatus


def test_legacy_scale_down_waits_for_the_window_and_behavior_limits_the_rate() -> None:
    state = logic.State((b.Recommendation(6, NOW - timedelta(minutes=1)),))
    held = logic.decide(hpa(), 6, [logic.Proposal(CPU, 2)], state, NOW)
    assert not held.rescale and held.conditions["AbleToScale"][1] == "ScaleDownStabilized"
    later = logic.decide(hpa(), 6, [logic.Proposal(CPU, 2)], state, NOW + timedelta(minutes=6))
    assert later.desired == 2 and later.reason == "All metrics below target"
    # With a behavior: at most 1 pod per minute up; the event counts against the next sync.
    one = {"scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}
    first = logic.decide(hpa(behavior=one), 2, [logic.Proposal(CPU, 8)], logic.State(), NOW)
    assert first.desired == 3 and first.conditions["ScalingLimited"][:2] == ("True", "ScaleUpLimit")
    again = logic.decide(hpa(behavior=one), 3, [logic.Proposal(CPU, 8)], first.state, NOW + timedelta(seconds=15))
    assert not again.rescale  # 1 already added within the minute
    later = logic.decide(hpa(behavior=one), 3, [logic.Proposal(CPU, 8)], first.state, NOW + timedelta(seconds=61))
    assert later.desired == 4


def test_conditions_keep_their_transition_time_while_status_stays() -> None:
    old = [{"type": "AbleToScale", "status": "True", "reason": "x", "lastTransitionTime": "2026-01-01T00:00:00Z"}]
    found = logic.conditions_list(old, {"AbleToScale": ("True", "SucceededRescale", "m"),
                                        "ScalingActive": ("False", "ScalingDisabled", "n")}, NOW)
    assert found[0] == {"type": "AbleToScale", "status": "True", "reason": "SucceededRescale", "message": "m",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}
    assert found[1]["lastTransitionTime"] == iso(NOW)


def test_metric_names_as_upstream_prints_them() -> None:
    assert logic.metric_name({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}}) \
        == CPU
    assert logic.metric_name({"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue"}}}) \
        == "memory resource"
    assert logic.metric_name({"type": "External", "external": {"metric": {"name": "qps"}}}) == \
        "external metric qps(nil)"
    assert logic.metric_name({"type": "External", "external": {"metric": {
        "name": "qps", "selector": {"matchLabels": {"queue": "jobs"}}}}}) == (
        "external metric qps(&LabelSelector{MatchLabels:map[string]string{queue: jobs,},"
        "MatchExpressions:[]LabelSelectorRequirement{},})")
    assert logic.metric_name({"type": "Object", "object": {"describedObject": {"kind": "Service"},
                                                           "metric": {"name": "rps"}}}) == "Service metric rps"
