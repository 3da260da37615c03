"""The HorizontalPodAutoscaler's replica calculation: pure functions from metrics and pods to a replica
count, as pkg/controller/podautoscaler/replica_calculator.go (Kubernetes 1.34) computes it.

- Resource utilization (`resource_replicas`): pods are grouped first (`group_pods`): deleted or Failed
  pods are ignored; Pending pods are unready; pods without a sample are missing; for CPU, a pod within
  the CPU initialization period (5 min from its start) is unready while not Ready or while its sample
  predates its Ready transition plus the sample's window, and after that only if it never turned Ready
  within the initial readiness delay (30 s). Utilization is Σusage·100/Σrequest over the ready pods,
  truncated; ratio = utilization / target. Without unready or missing pods, a ratio within the tolerance
  (0.1 either way) keeps the current count, else ceil(ratio · ready pods). Otherwise missing pods count
  as max(100%, target) of their request when scaling down and 0 when scaling up, unready pods count as 0
  when scaling up, and the count only changes if the new ratio is outside the tolerance, points the same
  way as before, and the change goes that way.
- Pods metrics (`plain_replicas`, AverageValue per pod): the same, with the target average in place of
  the request-based utilization (missing pods count as the target when scaling down).
- Object and External metrics: Value targets give ceil(ratio · ready pods) (ceil(ratio) at zero
  replicas); AverageValue targets ceil(total / target) against the current replicas, tolerance on
  total / (target · replicas). No readiness logic.

Quantities are in milli-units (CPU millicores, memory in milli-bytes, as MilliValue gives them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from operators.core.timeutil import parse_time
from operators.scheduler.resources import milli_value_of, parse_quantity

Pod = Mapping[str, Any]

TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance
CPU_INITIALIZATION_PERIOD = timedelta(minutes=5)  # --horizontal-pod-autoscaler-cpu-initialization-period
INITIAL_READINESS_DELAY = timedelta(seconds=30)  # --horizontal-pod-autoscaler-initial-readiness-delay
MAX_INT32 = 2**31 - 1


class MetricError(Exception):
    """The replica count cannot be computed; the message is upstream's."""


class FetchError(MetricError):
    """The metrics client's own failure (metrics/client.go): the replica calculation wraps it with the metric."""


@dataclass(frozen=True)
class Sample:
    """One pod's metric: its value (milli-units), when it was taken and over which window."""
    value: int
    timestamp: datetime | None = None
    window: timedelta = timedelta(seconds=60)


@dataclass(frozen=True)
class Tolerances:
    scale_down: float = TOLERANCE
    scale_up: float = TOLERANCE

    def within(self, ratio: float) -> bool:
        return (1.0 - self.scale_down) <= ratio <= (1.0 + self.scale_up)


DEFAULT_TOLERANCES = Tolerances()


def _name(pod: Pod) -> str:
    return str(pod["metadata"]["name"])


def _ready_condition(pod: Pod) -> Mapping[str, Any] | None:
    return next((c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None)


def group_pods(pods: Sequence[Pod], metrics: Mapping[str, Sample], cpu: bool, now: datetime,
               cpu_initialization: timedelta = CPU_INITIALIZATION_PERIOD,
               readiness_delay: timedelta = INITIAL_READINESS_DELAY) -> tuple[int, set[str], set[str], set[str]]:
    """groupPods: (ready count, unready, missing, ignored)."""
    ready = 0
    unready: set[str] = set()
    missing: set[str] = set()
    ignored: set[str] = set()
    for pod in pods:
        name = _name(pod)
        phase = (pod.get("status") or {}).get("phase")
        if pod["metadata"].get("deletionTimestamp") or phase == "Failed":
            ignored.add(name)
            continue
        if phase == "Pending":
            unready.add(name)
            continue
        sample = metrics.get(name)
        if sample is None:
            missing.add(name)
            continue
        if cpu:
            condition = _ready_condition(pod)
            started = parse_time((pod.get("status") or {}).get("startTime"))
            if condition is None or started is None:
                not_ready = True
            else:
                changed = parse_time(condition.get("lastTransitionTime")) or started
                if started + cpu_initialization > now:
                    not_ready = condition.get("status") == "False" or (
                        sample.timestamp is not None and sample.timestamp < changed + sample.window)
                else:
                    not_ready = condition.get("status") == "False" and started + readiness_delay > changed
            if not_ready:
                unready.add(name)
                continue
        ready += 1
    return ready, unready, missing, ignored


def pod_request(pod: Pod, resource: str, container: str = "") -> int:
    """calculatePodRequestsFromContainers: the milli-request of `resource` over the containers (and the
    restartable init containers, sidecars), or of the one named `container`."""
    body = pod.get("spec") or {}
    containers = [*(body.get("containers") or []),
                  *(c for c in body.get("initContainers") or [] if c.get("restartPolicy") == "Always")]
    total = 0
    for c in containers:
        if container and c.get("name") != container:
            continue
        requests = (c.get("resources") or {}).get("requests") or {}
        if resource not in requests:
            raise MetricError(f"missing request for {resource} in container {c.get('name')} of Pod {_name(pod)}")
        total += milli_value_of(parse_quantity(requests[resource]))
    return total


def utilization_ratio(metrics: Mapping[str, int], requests: Mapping[str, int], target: int) -> tuple[float, int, int]:
    """GetResourceUtilizationRatio: (ratio, utilization percent truncated, raw average)."""
    total = requested = entries = 0
    for name, value in metrics.items():
        if name not in requests:
            continue
        total += value
        requested += requests[name]
        entries += 1
    if requested == 0:
        raise MetricError("no metrics returned matched known pods")
    utilization = (total * 100) // requested
    return utilization / target, utilization, total // entries


def usage_ratio(metrics: Mapping[str, int], target: int) -> tuple[float, int]:
    """GetMetricUsageRatio: (ratio, average usage)."""
    average = sum(metrics.values()) // len(metrics)
    return average / target, average


@dataclass(frozen=True)
class Result:
    replicas: int
    utilization: int | None  # percent, for Resource utilization targets
    value: int  # the average (or total, for Object/External Value targets) in milli-units


def _grouped(pods: Sequence[Pod], samples: Mapping[str, Sample], cpu: bool, now: datetime,
             ) -> tuple[int, set[str], set[str], dict[str, int]]:
    """The shared start of both: (ready count, unready, missing, the usable samples' values)."""
    if not pods:
        raise MetricError("no pods returned by selector while calculating replica count")
    ready, unready, missing, ignored = group_pods(pods, samples, cpu, now)
    metrics = {n: s.value for n, s in samples.items() if n not in ignored and n not in unready}
    if not metrics:
        raise MetricError("did not receive metrics for targeted pods (pods might be unready)")
    return ready, unready, missing, metrics


def _adjusted(current: int, ratio: float, new_ratio: float, count: int, tolerances: Tolerances) -> int:
    """The shared tail of GetResourceReplicas and calcPlainMetricReplicas once pods were filled in."""
    if tolerances.within(new_ratio) or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return current
    replicas = math.ceil(new_ratio * count)
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return current
    return replicas


def resource_replicas(current: int, target_utilization: int, pods: Sequence[Pod], samples: Mapping[str, Sample],
                      resource: str, now: datetime, container: str = "",
                      tolerances: Tolerances = DEFAULT_TOLERANCES) -> Result:
    """GetResourceReplicas."""
    ready, unready, missing, metrics = _grouped(pods, samples, resource == "cpu", now)
    requests = {_name(p): pod_request(p, resource, container) for p in pods}
    ratio, utilization, raw = utilization_ratio(metrics, requests, target_utilization)
    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        if tolerances.within(ratio):
            return Result(current, utilization, raw)
        return Result(math.ceil(ratio * ready), utilization, raw)
    if missing:
        if ratio < 1.0:
            fallback = max(100, target_utilization)
            metrics.update({n: requests[n] * fallback // 100 for n in missing})
        elif ratio > 1.0:
            metrics.update(dict.fromkeys(missing, 0))
    if scale_up_with_unready:
        metrics.update(dict.fromkeys(unready, 0))
    new_ratio, _, _ = utilization_ratio(metrics, requests, target_utilization)
    return Result(_adjusted(current, ratio, new_ratio, len(metrics), tolerances), utilization, raw)


def plain_replicas(current: int, target: int, pods: Sequence[Pod], samples: Mapping[str, Sample], now: datetime,
                   resource: str = "", tolerances: Tolerances = DEFAULT_TOLERANCES) -> Result:
    """calcPlainMetricReplicas: a Pods metric (or a Resource AverageValue target) against a per-pod
    average."""
    ready, unready, missing, metrics = _grouped(pods, samples, resource == "cpu", now)
    ratio, usage = usage_ratio(metrics, target)
    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        if tolerances.within(ratio):
            return Result(current, None, usage)
        return Result(math.ceil(ratio * ready), None, usage)
    if missing:
        if ratio < 1.0:
            metrics.update(dict.fromkeys(missing, target))
        elif ratio > 1.0:
            metrics.update(dict.fromkeys(missing, 0))
    if scale_up_with_unready:
        metrics.update(dict.fromkeys(unready, 0))
    new_ratio, _ = usage_ratio(metrics, target)
    return Result(_adjusted(current, ratio, new_ratio, len(metrics), tolerances), None, usage)


def ready_pod_count(pods: Sequence[Pod]) -> int:
    """getReadyPodsCount: Running and Ready."""
    if not pods:
        raise MetricError("no pods returned by selector while calculating replica count")
    return sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Running"
               and (_ready_condition(p) or {}).get("status") == "True")


def value_replicas(current: int, usage: int, target: int, pods: Sequence[Pod],
                   tolerances: Tolerances = DEFAULT_TOLERANCES) -> Result:
    """GetObjectMetricReplicas / GetExternalMetricReplicas (Value targets; External sums its series
    first): getUsageRatioReplicaCount."""
    ratio = usage / target
    if current == 0:
        return Result(math.ceil(ratio), None, usage)
    if tolerances.within(ratio):
        return Result(current, None, usage)
    return Result(math.ceil(ratio * ready_pod_count(pods)), None, usage)


def average_value_replicas(status_replicas: int, usage: int, target_average: int,
                           tolerances: Tolerances = DEFAULT_TOLERANCES) -> Result:
    """GetObjectPerPodMetricReplicas / GetExternalPerPodMetricReplicas (AverageValue targets)."""
    replicas = status_replicas
    ratio = usage / (target_average * replicas) if replicas else math.inf
    if not tolerances.within(ratio):
        replicas = min(math.ceil(usage / target_average), MAX_INT32)
    average = math.ceil(usage / status_replicas) if status_replicas else usage
    return Result(replicas, None, average)
