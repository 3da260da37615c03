"""`custom.metrics.k8s.io/v1beta2` beside the external metrics API (external.py), values set by users the
same way: ConfigMaps, so an HPA's Pods and Object metrics can be driven exactly.

A ConfigMap labelled `metrics.kubeplane.dev/custom: "true"` holds metric values (key: the metric's name,
value: a quantity) for what its annotation `metrics.kubeplane.dev/describes` names:

    pods                        every pod of the namespace (a Pods metric: each pod an HPA's selector picks)
    pods/<name>                 one pod (wins over `pods`: one pod hotter than the others, or missing)
    <resource>/<name>           one object, as the API names it: `deployments.apps/web`, `services/front`

Its other labels are the series' labels, matched by an HPA's `metric.selector`; among several ConfigMaps
that match, the first by name wins. Served paths (what kube-controller-manager's custom metrics client
asks, and kubeplane's HPA too):

    /namespaces/<ns>/pods/*/<metric>?labelSelector=..&metricLabelSelector=..   one item per selected pod
    /namespaces/<ns>/<resource>/<name>/<metric>?metricLabelSelector=..         one item

A pod none of the ConfigMaps gives a value is left out, as an adapter leaves out a pod it has no sample of.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from operators.core.selectors import parse
from operators.core.timeutil import format_time, now

GROUP, VERSION = "custom.metrics.k8s.io", "v1beta2"
BASE = f"/apis/{GROUP}/{VERSION}"
APISERVICE = f"{VERSION}.{GROUP}"
SOURCE_LABEL = "metrics.kubeplane.dev/custom"
DESCRIBES = "metrics.kubeplane.dev/describes"
WINDOW_SECONDS = 60

Obj = Mapping[str, Any]


def _value(configmaps: Sequence[Obj], describes: str, metric: str, metric_selector: str) -> str | None:
    """The value of `metric` (case-insensitive) that the first matching ConfigMap describing `describes` holds."""
    chosen = parse(metric_selector) if metric_selector else None
    for cm in sorted(configmaps, key=lambda c: c["metadata"]["name"]):
        meta = cm["metadata"]
        if (meta.get("annotations") or {}).get(DESCRIBES) != describes:
            continue
        labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != SOURCE_LABEL}
        if chosen is not None and not chosen.matches(labels):
            continue
        for key, value in sorted((cm.get("data") or {}).items()):
            if key.lower() == metric.lower():
                return str(value).strip()
    return None


def _item(kind: str, api_version: str, namespace: str, name: str, metric: str, metric_selector: str,
          value: str, stamp: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "describedObject": {"kind": kind, "namespace": namespace, "name": name, "apiVersion": api_version},
        "metric": {"name": metric},
        "timestamp": stamp, "windowSeconds": WINDOW_SECONDS, "value": value,
    }
    if metric_selector:
        item["metric"]["selector"] = _label_selector(metric_selector)
    return item


def _label_selector(text: str) -> dict[str, Any]:
    """The metav1.LabelSelector of a selector string's equality terms (what the item echoes back)."""
    labels = {}
    for term in text.split(","):
        key, sep, value = term.partition("=")
        if sep and not key.endswith("!"):
            labels[key.strip()] = value.lstrip("=").strip()
    return {"matchLabels": labels} if labels else {}


def pod_values(configmaps: Sequence[Obj], pods: Sequence[Obj], metric: str,
               metric_selector: str) -> list[dict[str, Any]]:
    """The MetricValue items of `metric` for `pods` (those already chosen by the request's labelSelector)."""
    stamp = format_time(now())
    items = []
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        name, namespace = pod["metadata"]["name"], pod["metadata"].get("namespace") or ""
        value = _value(configmaps, f"pods/{name}", metric, metric_selector)
        if value is None:
            value = _value(configmaps, "pods", metric, metric_selector)
        if value is not None:
            items.append(_item("Pod", "/v1", namespace, name, metric, metric_selector, value, stamp))
    return items


def object_values(configmaps: Sequence[Obj], namespace: str, resource: str, name: str, metric: str,
                  metric_selector: str, kind: str, api_version: str) -> list[dict[str, Any]]:
    """The MetricValue item of `metric` for one object (`resource` as in the path: `deployments.apps`; its
    kind and apiVersion found by discovery)."""
    value = _value(configmaps, f"{resource}/{name}", metric, metric_selector)
    if value is None:
        return []
    return [_item(kind, api_version, namespace, name, metric, metric_selector, value, format_time(now()))]


def resource_list() -> dict[str, Any]:
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{GROUP}/{VERSION}",
            "resources": [{"name": "pods/*", "singularName": "", "namespaced": True, "kind": "MetricValueList",
                           "verbs": ["get"]}]}
