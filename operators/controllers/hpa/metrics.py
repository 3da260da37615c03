"""The HorizontalPodAutoscaler's metric reads and each metric's proposal, as computeReplicasForMetric and
the REST metrics client (pkg/controller/podautoscaler/horizontal.go, metrics/client.go, Kubernetes 1.34)
make them:

- Resource and ContainerResource: the pods' samples from `metrics.k8s.io/v1beta1` (summed over the
  containers, or the one container), against utilization (percent of request) or AverageValue targets;
- Pods: `custom.metrics.k8s.io/v1beta2` per-pod values against an AverageValue target;
- Object: `custom.metrics.k8s.io/v1beta2` for the described object, Value or AverageValue;
- External: `external.metrics.k8s.io/v1beta1`, the series matching the selector summed, Value or
  AverageValue.

`propose` turns one metric spec into a `logic.Proposal`: a count and its status entry, or the failure
with upstream's reason (FailedGetResourceMetric, FailedGetPodsMetric, ...) and messages. The arithmetic
is `replicas.py`'s; this module only reads and formats.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from operators.controllers.hpa import replicas as r
from operators.controllers.hpa.logic import Proposal, metric_name
from operators.core import gotime
from operators.core.kube import ApiError
from operators.core.selectors import label_selector_string
from operators.core.timeutil import parse_time
from operators.scheduler.resources import milli_quantity, milli_value_of, parse_quantity

Obj = Mapping[str, Any]
Get = Callable[..., Awaitable[Any]]
PluralOf = Callable[[str, str], Awaitable[str | None]]

RESOURCE_METRICS = "/apis/metrics.k8s.io/v1beta1"
CUSTOM_METRICS = "/apis/custom.metrics.k8s.io/v1beta2"
EXTERNAL_METRICS = "/apis/external.metrics.k8s.io/v1beta1"
# The default when an HPA names no metric (autoscaling/v2's SetDefaults): 80% average CPU utilization.
DEFAULT_METRICS: tuple[Obj, ...] = (
    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}},)

def _milli(value: Any) -> int:
    return milli_value_of(parse_quantity(str(value)))


class Metrics:
    """Reads metrics through the API server (`get(path, **params)`: the kube client's get; `plural(apiVersion,
    kind)`: the resource a kind is served as, by discovery, or None: a RESTMapper's job)."""

    def __init__(self, get: Get, plural: PluralOf) -> None:
        self.get = get
        self.plural = plural

    async def pod_resource(self, namespace: str, selector: str, resource: str, container: str = "",
                           ) -> dict[str, r.Sample]:
        """GetResourceMetric: each pod's usage of `resource` (all containers, or one)."""
        body = await _fetch(self.get, "resource", f"{RESOURCE_METRICS}/namespaces/{namespace}/pods",
                            labelSelector=selector)
        samples: dict[str, r.Sample] = {}
        for item in body.get("items") or []:
            total, found = 0, False
            for c in item.get("containers") or []:
                if container and c.get("name") != container:
                    continue
                usage = (c.get("usage") or {}).get(resource)
                if usage is None:
                    continue
                total += _milli(usage)
                found = True
            if not found:
                continue  # upstream skips a pod missing the resource in a container
            samples[item["metadata"]["name"]] = r.Sample(
                total, parse_time(item.get("timestamp")), _window(item.get("window")))
        if not samples:
            raise r.FetchError("no metrics returned from resource metrics API")
        return samples

    async def pods_metric(self, namespace: str, name: str, selector: str, metric_selector: str,
                          ) -> dict[str, r.Sample]:
        """GetRawMetric: a custom per-pod metric."""
        params = {"labelSelector": selector}
        if metric_selector:
            params["metricLabelSelector"] = metric_selector
        path = f"{CUSTOM_METRICS}/namespaces/{namespace}/pods/*/{quote(name, safe='')}"
        body = await _fetch(self.get, "custom", path, **params)
        items = body.get("items") or []
        if not items:
            raise r.FetchError("no metrics returned from custom metrics API")
        return {i["describedObject"]["name"]: r.Sample(_milli(i["value"]), parse_time(i.get("timestamp")),
                                                       _window(i.get("windowSeconds")))
                for i in items}

    async def object_metric(self, namespace: str, described: Obj, name: str, metric_selector: str) -> int:
        """GetObjectMetric: one object's custom metric."""
        api_version = str(described.get("apiVersion") or "")
        group = api_version.rpartition("/")[0]
        kind = str(described.get("kind") or "")
        plural = await self.plural(api_version, kind)
        if plural is None:
            raise r.FetchError(f"unable to fetch metrics from custom metrics API: no matches for kind \"{kind}\" in "
                               f"group \"{group}\"")
        resource = f"{plural}.{group}" if group else plural
        path = f"{CUSTOM_METRICS}/namespaces/{namespace}/{resource}/{described.get('name')}/{quote(name, safe='')}"
        params = {"metricLabelSelector": metric_selector} if metric_selector else {}
        body = await _fetch(self.get, "custom", path, **params)
        items = body["items"] if "items" in body else [body]
        if not items or "value" not in items[0]:
            raise r.FetchError("no metrics returned from custom metrics API")
        return _milli(items[0]["value"])

    async def external(self, namespace: str, name: str, selector: str) -> int:
        """GetExternalMetric: the sum of the matching series."""
        params = {"labelSelector": selector} if selector else {}
        body = await _fetch(self.get, "external", f"{EXTERNAL_METRICS}/namespaces/{namespace}/{quote(name, safe='')}",
                            **params)
        items = body.get("items") or []
        if not items:
            raise r.FetchError("no metrics returned from external metrics API")
        return sum(_milli(i["value"]) for i in items)


def _window(value: Any) -> timedelta:
    """A sample's window: metrics.k8s.io's Go duration ("30s", "1m0.5s"), custom metrics' seconds; 60 s
    when absent or unreadable."""
    if value is None:
        return timedelta(seconds=60)
    if isinstance(value, (int, float)):
        return timedelta(seconds=value)
    try:
        return gotime.parse_duration(str(value))
    except (ValueError, OverflowError):
        return timedelta(seconds=60)


async def _fetch(get: Get, api: str, path: str, **params: Any) -> Any:
    """One read of a metrics API; its failure as the metrics client words it."""
    try:
        return await get(path, **params)
    except ApiError as e:
        raise r.FetchError(f"unable to fetch metrics from {api} metrics API: {_error_text(e)}") from e


def _error_text(err: Exception) -> str:
    if isinstance(err, ApiError):
        return str(err.body.get("message") if isinstance(err.body, Mapping) and err.body.get("message") else err)
    return str(err)


async def propose(metrics: Metrics, hpa: Obj, spec: Obj, current: int, status_replicas: int, pods: Sequence[Obj],
                  selector: str, now: datetime, tolerances: r.Tolerances = r.DEFAULT_TOLERANCES) -> Proposal:
    """computeReplicasForMetric for one metric spec."""
    namespace = hpa["metadata"]["namespace"]
    kind = spec.get("type")
    name = metric_name(spec)
    try:
        if kind in ("Resource", "ContainerResource"):
            return await _resource(metrics, spec, kind, namespace, current, pods, selector, now, tolerances, name)
        if kind == "Pods":
            source = spec.get("pods") or {}
            metric = source.get("metric") or {}
            samples = await metrics.pods_metric(namespace, metric.get("name", ""), selector,
                                                label_selector_string(metric.get("selector")) if metric.get("selector")
                                                else "")
            target = _milli(source["target"]["averageValue"])
            result = r.plain_replicas(current, target, pods, samples, now, tolerances=tolerances)
            return Proposal(name, result.replicas, {"type": "Pods", "pods": {
                "metric": dict(metric), "current": {"averageValue": milli_quantity(result.value)}}})
        if kind == "Object":
            source = spec.get("object") or {}
            metric = source.get("metric") or {}
            value = await metrics.object_metric(namespace, source.get("describedObject") or {}, metric.get("name", ""),
                                                label_selector_string(metric.get("selector"))
                                                if metric.get("selector") else "")
            return _valued("Object", source, value, current, status_replicas, pods, tolerances, name,
                           {"describedObject": dict(source.get("describedObject") or {})})
        if kind == "External":
            source = spec.get("external") or {}
            metric = source.get("metric") or {}
            value = await metrics.external(namespace, metric.get("name", ""),
                                           label_selector_string(metric.get("selector"))
                                           if metric.get("selector") else "")
            return _valued("External", source, value, current, status_replicas, pods, tolerances, name, {})
    except (r.MetricError, ApiError, KeyError, ValueError, ArithmeticError) as err:
        return _failed(kind, spec, err, name, namespace)
    return Proposal(name, error=f"unknown metric source type {kind!r}", wrapped=f"unknown metric source type {kind!r}",
                    reason="InvalidMetricSourceType")


async def _resource(metrics: Metrics, spec: Obj, kind: str, namespace: str, current: int, pods: Sequence[Obj],
                    selector: str, now: datetime, tolerances: r.Tolerances, name: str) -> Proposal:
    source = spec.get("resource" if kind == "Resource" else "containerResource") or {}
    resource = str(source.get("name"))
    container = str(source.get("container") or "")
    samples = await metrics.pod_resource(namespace, selector, resource, container)
    target = source.get("target") or {}
    field = "resource" if kind == "Resource" else "containerResource"
    head = {"name": resource, **({"container": container} if container else {})}
    if target.get("type") == "AverageValue":
        result = r.plain_replicas(current, _milli(target["averageValue"]), pods, samples, now, resource=resource,
                                  tolerances=tolerances)
        return Proposal(name, result.replicas, {"type": kind, field: {
            **head, "current": {"averageValue": milli_quantity(result.value)}}})
    if target.get("averageUtilization") is None:
        raise r.MetricError("invalid resource metric source: neither a utilization target nor a value target was set")
    result = r.resource_replicas(current, int(target["averageUtilization"]), pods, samples, resource, now,
                                 container, tolerances)
    return Proposal(name, result.replicas, {"type": kind, field: {
        **head, "current": {"averageUtilization": result.utilization, "averageValue": milli_quantity(result.value)}}})


def _valued(kind: str, source: Obj, value: int, current: int, status_replicas: int, pods: Sequence[Obj],
            tolerances: r.Tolerances, name: str, extra: Obj) -> Proposal:
    target = source.get("target") or {}
    field = kind.lower()
    metric = dict(source.get("metric") or {})
    if target.get("type") == "Value" or (target.get("value") is not None and target.get("averageValue") is None):
        result = r.value_replicas(current, value, _milli(target["value"]), pods, tolerances)
        return Proposal(name, result.replicas, {"type": kind, field: {
            **extra, "metric": metric, "current": {"value": milli_quantity(result.value)}}})
    if target.get("averageValue") is None:
        raise r.MetricError(f"invalid {field} metric source: neither a value target nor an average value target "
                            "was set")
    result = r.average_value_replicas(status_replicas, value, _milli(target["averageValue"]), tolerances)
    return Proposal(name, result.replicas, {"type": kind, field: {
        **extra, "metric": metric, "current": {"averageValue": milli_quantity(result.value)}}})


_REASONS = {"Resource": ("FailedGetResourceMetric", "failed to get {} resource metric value"),
            "ContainerResource": ("FailedGetContainerResourceMetric",
                                  "failed to get {} container resource metric value"),
            "Pods": ("FailedGetPodsMetric", "failed to get pods metric value"),
            "Object": ("FailedGetObjectMetric", "failed to get object metric value"),
            "External": ("FailedGetExternalMetric", "failed to get external metric value")}


def _failed(kind: Any, spec: Obj, err: Exception, name: str, namespace: str) -> Proposal:
    reason, prefix = _REASONS.get(str(kind), ("FailedGetMetric", "failed to get metric value"))
    if kind in ("Resource", "ContainerResource"):
        prefix = prefix.format((spec.get("resource" if kind == "Resource" else "containerResource") or {}).get("name"))
    text = _error_text(err)
    if isinstance(err, r.FetchError):
        text = _calculation_error(kind, spec, text, namespace)
    wrapped = text
    source = spec.get("object") or {}
    if kind == "Object" and (source.get("target") or {}).get("type") == "AverageValue":
        # computeStatusForObjectMetric wraps this one error once more.
        wrapped = f"failed to get {(source.get('metric') or {}).get('name')} object metric: {text}"
    return Proposal(name, error=text, wrapped=f"{prefix}: {wrapped}", reason=reason)


def _calculation_error(kind: Any, spec: Obj, fetch: str, namespace: str) -> str:
    """How the replica calculator (replica_calculator.go) wraps the metrics client's error, word for word
    (the Object form's arguments are in upstream's order)."""
    if kind in ("Resource", "ContainerResource"):
        return f"unable to get metrics for resource {_short(kind, spec)}: {fetch}"
    if kind == "Object":
        described = (spec.get("object") or {}).get("describedObject") or {}
        return (f"unable to get metric {_short(kind, spec)}: {described.get('kind')} on {namespace} "
                f"{described.get('name')}/{fetch}")
    if kind == "External":
        selector = ((spec.get("external") or {}).get("metric") or {}).get("selector")
        return (f"unable to get external metric {namespace}/{_short(kind, spec)}/"
                f"{label_selector_string(selector) if selector else ''}: {fetch}")
    return f"unable to get metric {_short(kind, spec)}: {fetch}"


def _short(kind: Any, spec: Obj) -> str:
    for field in ("resource", "containerResource"):
        if spec.get(field):
            return str(spec[field].get("name"))
    for field in ("pods", "object", "external"):
        if spec.get(field):
            return str((spec[field].get("metric") or {}).get("name"))
    return str(kind)
