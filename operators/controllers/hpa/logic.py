"""The HorizontalPodAutoscaler's decisions for one sync: from the target's scale and each metric's
proposal to the replica count to set, the conditions, the Events and the status, as reconcileAutoscaler
and computeReplicasForMetrics (pkg/controller/podautoscaler/horizontal.go, Kubernetes 1.34) make them.

- The target at 0 replicas with minReplicas > 0: scaling is disabled (ScalingActive False
  `ScalingDisabled`), nothing changes.
- Outside [minReplicas, maxReplicas]: brought back, with upstream's reasons ("Current number of replicas
  above Spec.MaxReplicas").
- Otherwise the highest proposal over the metrics wins; when every metric failed, or some failed and the
  others would scale down, nothing is scaled (ScalingActive False with the first failure's reason, a
  `FailedComputeMetricsReplicas` Warning); else ScalingActive True `ValidMetricFound`. The count is then
  normalized (`behavior.py`), and set if it differs: AbleToScale `SucceededRescale`, a
  `SuccessfulRescale` Event "New size: N; reason: ...", lastScaleTime now.

The metric proposals come from `replicas.py` (the controller gathers the metrics); the recommendation
and scale-event history is passed in and returned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from operators.controllers.hpa import behavior as b
from operators.core.events import Event
from operators.core.timeutil import format_time, parse_time
from operators.scheduler.resources import milli_quantity, milli_value_of, parse_quantity

Obj = Mapping[str, Any]
ABLE_TO_SCALE, SCALING_ACTIVE, SCALING_LIMITED = "AbleToScale", "ScalingActive", "ScalingLimited"


def metric_name(spec: Obj) -> str:
    """The name upstream gives a metric in conditions and rescale reasons."""
    kind = spec.get("type")
    if kind == "Resource":
        source = spec.get("resource") or {}
        if (source.get("target") or {}).get("type") == "AverageValue":
            return f"{source.get('name')} resource"
        return f"{source.get('name')} resource utilization (percentage of request)"
    if kind == "ContainerResource":
        source = spec.get("containerResource") or {}
        if (source.get("target") or {}).get("type") == "AverageValue":
            return f"{source.get('name')} resource"
        return f"{source.get('name')} container resource utilization (percentage of request)"
    if kind == "Pods":
        return f"pods metric {((spec.get('pods') or {}).get('metric') or {}).get('name')}"
    if kind == "Object":
        source = spec.get("object") or {}
        metric = source.get("metric") or {}
        if (source.get("target") or {}).get("type") == "AverageValue":
            # Upstream names an Object metric with an AverageValue target as an external one
            # (computeStatusForObjectMetric): a fact the differential found, kept.
            return f"external metric {metric.get('name')}({_go_selector(metric.get('selector'))})"
        return f"{(source.get('describedObject') or {}).get('kind')} metric {metric.get('name')}"
    if kind == "External":
        metric = (spec.get("external") or {}).get("metric") or {}
        return f"external metric {metric.get('name')}({_go_selector(metric.get('selector'))})"
    return str(kind)


def _go_selector(selector: Obj | None) -> str:
    """A *metav1.LabelSelector as Go's %+v prints it (its generated String()): nil, or
    &LabelSelector{MatchLabels:map[string]string{k: v,},MatchExpressions:[]LabelSelectorRequirement{...},}."""
    if selector is None:
        return "nil"
    labels = "".join(f"{k}: {v}," for k, v in sorted((selector.get("matchLabels") or {}).items()))
    expressions = "".join(
        f"LabelSelectorRequirement{{Key:{e.get('key')},Operator:{e.get('operator')},"
        f"Values:[{' '.join(e.get('values') or [])}],}},"
        for e in selector.get("matchExpressions") or [])
    return (f"&LabelSelector{{MatchLabels:map[string]string{{{labels}}},"
            f"MatchExpressions:[]LabelSelectorRequirement{{{expressions}}},}}")


@dataclass(frozen=True)
class Proposal:
    """One metric's outcome: a replica count and its status entry, or the failure: `error` the metrics
    error (the Warning's message and the condition's), `wrapped` as computeReplicasForMetric wraps it
    ("failed to get cpu resource metric value: ..."), `reason` the ScalingActive reason
    (FailedGetResourceMetric, ...)."""
    name: str
    replicas: int = 0
    status: Obj | None = None
    error: str | None = None
    wrapped: str = ""
    reason: str = ""


@dataclass(frozen=True)
class State:
    """What upstream keeps in memory per HPA."""
    recommendations: tuple[b.Recommendation, ...] = ()
    up_events: tuple[b.ScaleEvent, ...] = ()
    down_events: tuple[b.ScaleEvent, ...] = ()


@dataclass(frozen=True)
class Decision:
    desired: int
    rescale: bool
    reason: str  # the rescale reason of the event
    conditions: dict[str, tuple[str, str, str]]  # type -> (status, reason, message)
    events: tuple[Event, ...] = ()
    metrics: tuple[Obj, ...] = ()  # status.currentMetrics
    state: State = field(default_factory=State)
    failed: bool = False  # no count could be computed (status keeps its desired replicas)


def min_replicas(hpa: Obj) -> int:
    value = (hpa.get("spec") or {}).get("minReplicas")
    return 1 if value is None else int(value)


def combine(proposals: Sequence[Proposal], spec_replicas: int,
            ) -> tuple[int, str, str | None, tuple[str, str, str]]:
    """computeReplicasForMetrics' tail: (replicas or -1, the winning metric, the error, the ScalingActive
    condition)."""
    replicas, metric = 0, ""
    invalid: list[Proposal] = []
    for p in proposals:
        if p.error is not None:
            invalid.append(p)
            continue
        if replicas == 0 or p.replicas > replicas:
            replicas, metric = p.replicas, p.name
    error = None
    if invalid:
        text = invalid[0].wrapped or invalid[0].error
        error = f"invalid metrics ({len(invalid)} invalid out of {len(proposals)}), first error is: {text}"
    if len(invalid) >= len(proposals) or (invalid and replicas < spec_replicas):
        failed = invalid[0]
        return -1, "", error, ("False", failed.reason,
                               f"the HPA was unable to compute the replica count: {failed.error}")
    return replicas, metric, error, ("True", "ValidMetricFound",
                                     f"the HPA was able to successfully calculate a replica count from {metric}")


def decide(hpa: Obj, current: int, proposals: Sequence[Proposal], state: State, now: datetime) -> Decision:
    """reconcileAutoscaler, after the target's scale was read (AbleToScale SucceededGetScale)."""
    spec = hpa.get("spec") or {}
    max_replicas = int(spec.get("maxReplicas") or 0)
    minimum = min_replicas(hpa)
    conditions: dict[str, tuple[str, str, str]] = {
        ABLE_TO_SCALE: ("True", "SucceededGetScale", "the HPA controller was able to get the target's current scale")}
    events: list[Event] = []
    # recordInitialRecommendation: the first sync remembers the current size.
    if not state.recommendations:
        state = State((b.Recommendation(current, now),), state.up_events, state.down_events)
    statuses = tuple(p.status for p in proposals if p.status is not None)
    desired, reason, rescale = 0, "", True
    if current == 0 and minimum != 0:
        conditions[SCALING_ACTIVE] = ("False", "ScalingDisabled",
                                      "scaling is disabled since the replica count of the target is zero")
        desired, rescale = 0, False
    elif current > max_replicas:
        desired, reason = max_replicas, "Current number of replicas above Spec.MaxReplicas"
    elif current < minimum:
        desired, reason = minimum, "Current number of replicas below Spec.MinReplicas"
    else:
        proposed, metric, error, active = combine(proposals, current)
        conditions[SCALING_ACTIVE] = active
        if proposed == -1:
            for p in proposals:
                if p.error is not None:
                    events.append(Event("Warning", p.reason, p.error))
            events.append(Event("Warning", "FailedComputeMetricsReplicas", error or ""))
            return Decision(current, False, "", conditions, tuple(events), statuses, state, failed=True)
        for p in proposals:
            if p.error is not None:  # getUnableComputeReplicaCountCondition's event, for each failing metric
                events.append(Event("Warning", p.reason, p.error))
        rescale_metric = ""
        if proposed > desired:
            desired, rescale_metric = proposed, metric
        if desired > current:
            reason = f"{rescale_metric} above target"
        if desired < current:
            reason = "All metrics below target"
        if spec.get("behavior") is None:
            normalized = b.normalize_legacy(current, desired, minimum, max_replicas, state.recommendations, now)
        else:
            normalized = b.normalize_with_behavior(current, desired, minimum, max_replicas, spec["behavior"],
                                                   state.recommendations, state.up_events, state.down_events, now)
        state = State(normalized.recommendations, state.up_events, state.down_events)
        conditions[ABLE_TO_SCALE] = ("True", *normalized.able)
        conditions[SCALING_LIMITED] = normalized.limited
        desired = normalized.replicas
        rescale = desired != current
    if not rescale:
        return Decision(current, False, reason, conditions, tuple(events), statuses, state)
    conditions[ABLE_TO_SCALE] = ("True", "SucceededRescale",
                                 f"the HPA controller was able to update the target scale to {desired}")
    events.append(Event("Normal", "SuccessfulRescale", f"New size: {desired}; reason: {reason}"))
    return Decision(desired, True, reason, conditions, tuple(events), statuses,
                    record_scale(spec.get("behavior"), state, current, desired, now))


def record_scale(behavior_spec: Obj | None, state: State, before: int, after: int, now: datetime) -> State:
    """storeScaleEvent: only with a behavior (the legacy path has no rate policies to count against)."""
    if behavior_spec is None:
        return state
    if after > before:
        up = b.record_scale_event(state.up_events, after - before, b.scale_up_rules(behavior_spec), now)
        return State(state.recommendations, up, state.down_events)
    down = b.record_scale_event(state.down_events, before - after, b.scale_down_rules(behavior_spec), now)
    return State(state.recommendations, state.up_events, down)


def conditions_list(old: Sequence[Obj], wanted: Mapping[str, tuple[str, str, str]], now: datetime,
                    ) -> list[dict[str, Any]]:
    """setConditionInList for each wanted condition: the transition time moves only when the status does."""
    found = [dict(c) for c in old]
    for kind, (status, reason, message) in wanted.items():
        existing = next((c for c in found if c.get("type") == kind), None)
        if existing is None:
            existing = {"type": kind}
            found.append(existing)
        if existing.get("status") != status:
            existing["lastTransitionTime"] = format_time(now)
        existing.update(status=status, reason=reason, message=message)
    return found


def status(hpa: Obj, current: int, decision: Decision, now: datetime) -> dict[str, Any]:
    """setStatus (or setCurrentReplicasAndMetricsInStatus when no count could be computed)."""
    old = hpa.get("status") or {}
    desired = int(old.get("desiredReplicas") or 0) if decision.failed else decision.desired
    result: dict[str, Any] = {"currentReplicas": current, "desiredReplicas": desired,
                              "currentMetrics": list(decision.metrics) or None,
                              "conditions": conditions_list(old.get("conditions") or [], decision.conditions, now)}
    last = format_time(now) if decision.rescale else old.get("lastScaleTime")
    if last:
        result["lastScaleTime"] = last
    if (hpa.get("metadata") or {}).get("generation") is not None:
        result["observedGeneration"] = hpa["metadata"]["generation"]
    return {k: v for k, v in result.items() if v is not None}


# --- beyond upstream: the in-memory state kept in status, and when a scale-down may come --------------------

def state_to_status(state: State) -> dict[str, Any]:
    """The recommendations and scale events as status fields (upstream keeps them in memory only)."""
    return {
        "recommendations": [{"replicas": rec.replicas, "timestamp": format_time(rec.at)}
                            for rec in state.recommendations],
        "scaleUpEvents": [_event_to_status(e) for e in state.up_events],
        "scaleDownEvents": [_event_to_status(e) for e in state.down_events],
    }


def _event_to_status(event: b.ScaleEvent) -> dict[str, Any]:
    found: dict[str, Any] = {"replicaChange": event.change, "timestamp": format_time(event.at)}
    if event.outdated:
        found["outdated"] = True
    return found


def state_from_status(hpa: Obj) -> State:
    """What an earlier process (or leader) left in status: the windows survive a restart."""
    status = hpa.get("status") or {}
    recs = tuple(b.Recommendation(int(r["replicas"]), at) for r in status.get("recommendations") or []
                 if (at := parse_time(r.get("timestamp"))) is not None)

    def events(key: str) -> tuple[b.ScaleEvent, ...]:
        return tuple(b.ScaleEvent(int(e["replicaChange"]), at, bool(e.get("outdated")))
                     for e in status.get(key) or [] if (at := parse_time(e.get("timestamp"))) is not None)

    return State(recs, events("scaleUpEvents"), events("scaleDownEvents"))


def scale_down_window(hpa: Obj, default: timedelta = b.DOWNSCALE_STABILIZATION) -> timedelta:
    behavior = (hpa.get("spec") or {}).get("behavior")
    if behavior is None:
        return default
    return timedelta(seconds=int(b.scale_down_rules(behavior, default)["stabilizationWindowSeconds"]))


def next_scale_down(hpa: Obj, replicas: int, state: State, now: datetime,
                    default: timedelta = b.DOWNSCALE_STABILIZATION) -> tuple[str, str] | None:
    """When the stabilization window lets the replicas go below `replicas` at the earliest (assuming no
    higher recommendation comes), and why not before: None when nothing holds a scale-down back (the
    newest recommendation is not below `replicas`, or the window is already clear)."""
    # The newest by time: an outdated entry is overwritten in place, so the list is not in time order.
    if not state.recommendations or max(state.recommendations, key=lambda rec: rec.at).replicas >= replicas:
        return None
    window = scale_down_window(hpa, default)
    holding = [rec for rec in state.recommendations if rec.replicas >= replicas and rec.at + window > now]
    if not holding:
        return None
    last = max(holding, key=lambda rec: rec.at)
    at = last.at + window
    return format_time(at), (f"the scale-down stabilization window ({int(window.total_seconds())}s) holds "
                             f"a recommendation of {last.replicas} replicas from {format_time(last.at)}")


def targets(specs: Sequence[Obj], statuses: Sequence[Obj | None]) -> str:
    """The TARGETS column of `kubectl get hpa` (formatHPAMetrics in pkg/printers): "current/target" per
    metric ("(avg)" for AverageValue targets of Object and External metrics, "name: " before resource
    metrics, percentages for utilization), at most two, then "+ N more...". `statuses` is aligned with
    `specs` (None: no value)."""
    if not specs:
        return "<none>"
    shown = []
    for i, spec in enumerate(specs):
        kind = spec.get("type")
        field = {"External": "external", "Pods": "pods", "Object": "object", "Resource": "resource",
                 "ContainerResource": "containerResource"}.get(str(kind))
        if field is None:
            shown.append("<unknown type>")
            continue
        source = spec.get(field) or {}
        target = source.get("target") or {}
        found = (statuses[i] or {}).get(field) if i < len(statuses) else None
        current = (found or {}).get("current") or {}
        if kind in ("External", "Object"):
            if target.get("averageValue") is not None:
                shown.append(f"{_q(current.get('averageValue'))}/{_q(target['averageValue'])} (avg)")
            else:
                shown.append(f"{_q(current.get('value'))}/{_q(target.get('value'))}")
        elif kind == "Pods":
            shown.append(f"{_q(current.get('averageValue'))}/{_q(target.get('averageValue'))}")
        elif target.get("averageValue") is not None:
            shown.append(f"{source.get('name')}: {_q(current.get('averageValue'))}/{_q(target['averageValue'])}")
        else:
            utilization = current.get("averageUtilization")
            wanted = target.get("averageUtilization")
            shown.append(f"{source.get('name')}: {'<unknown>' if utilization is None else f'{utilization}%'}/"
                         f"{'<auto>' if wanted is None else f'{wanted}%'}")
    if len(shown) > 2:
        return f"{', '.join(shown[:2])} + {len(shown) - 2} more..."
    return ", ".join(shown)


def _q(value: Any) -> str:
    """A quantity as Go's Quantity.String() prints it (decimal ones canonical; binary ones as given)."""
    if value is None:
        return "<unknown>"
    text = str(value)
    if text.endswith("i"):
        return text
    return milli_quantity(milli_value_of(parse_quantity(text)))
