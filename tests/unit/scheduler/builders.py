"""Small builders for scheduler tests: plain Kubernetes JSON, shaped like upstream's st.MakePod()
and st.MakeNode() wrappers so their test tables transcribe directly, plus helpers that run one
plugin the way upstream's plugin tests do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from operators.core.timeutil import format_time
from operators.scheduler.framework import CycleState, Framework, Profile
from operators.scheduler.snapshot import Snapshot
from operators.scheduler.status import Status

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 1, 1, tzinfo=UTC)
HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"


def node(
    name: str,
    *,
    capacity: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
    unschedulable: bool = False,
    pods: str | None = "32",
) -> dict[str, Any]:
    """st.MakeNode().Name(name).Capacity(capacity): allocatable = capacity, with 32 pods."""
    resources = dict(capacity or {})
    if pods is not None:
        resources.setdefault("pods", pods)
    spec: dict[str, Any] = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": dict(labels or {})},
        "spec": spec,
        "status": {"capacity": dict(resources), "allocatable": dict(resources)},
    }


def container(name: str, requests: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"name": name, "image": "pause"}
    if requests is not None:
        result["resources"] = {"requests": dict(requests)}
    result.update(extra)
    return result


def pod(
    name: str = "p",
    namespace: str = "default",
    *,
    uid: str | None = None,
    labels: dict[str, str] | None = None,
    requests: list[dict[str, str]] | tuple[dict[str, str], ...] = (),
    init_requests: list[dict[str, str]] | tuple[dict[str, str], ...] = (),
    sidecar_requests: list[dict[str, str]] | tuple[dict[str, str], ...] = (),
    overhead: dict[str, str] | None = None,
    pod_requests: dict[str, str] | None = None,
    node_name: str | None = None,
    priority: int | None = None,
    preemption_policy: str | None = None,
    tolerations: list[dict[str, str]] | None = None,
    node_selector: dict[str, str] | None = None,
    affinity: dict[str, Any] | None = None,
    spread: list[dict[str, Any]] | None = None,
    host_ports: list[str] | tuple[str, ...] = (),
    start_time: datetime | None = None,
    nominated_node: str | None = None,
    owner: dict[str, Any] | None = None,
    terminating: bool = False,
    phase: str | None = None,
    conditions: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """A pod; each `requests` entry is one container (upstream's .Req()), with none the pod has
    no containers at all (as st.MakePod().Obj()). `host_ports` are "PROTO/IP/PORT" strings."""
    containers = [container(f"con{i}", r) for i, r in enumerate(requests)]
    if host_ports:
        ports = []
        for spec in host_ports:
            protocol, ip, port = spec.split("/")
            ports.append({"containerPort": int(port), "hostPort": int(port), "hostIP": ip, "protocol": protocol})
        containers.append(container(f"con{len(containers)}", None, ports=ports))
    init = [container(f"init{i}", r) for i, r in enumerate(init_requests)]
    init += [container(f"sidecar{i}", r, restartPolicy="Always") for i, r in enumerate(sidecar_requests)]
    spec: dict[str, Any] = {"containers": containers}
    if init:
        spec["initContainers"] = init
    if overhead is not None:
        spec["overhead"] = dict(overhead)
    if pod_requests is not None:
        spec["resources"] = {"requests": dict(pod_requests)}
    if node_name:
        spec["nodeName"] = node_name
    if priority is not None:
        spec["priority"] = priority
    if preemption_policy is not None:
        spec["preemptionPolicy"] = preemption_policy
    if tolerations is not None:
        spec["tolerations"] = tolerations
    if node_selector is not None:
        spec["nodeSelector"] = dict(node_selector)
    if affinity is not None:
        spec["affinity"] = affinity
    if spread is not None:
        spec["topologySpreadConstraints"] = spread
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "uid": uid or f"uid-{namespace}-{name}"}
    if labels is not None:
        metadata["labels"] = dict(labels)
    if owner is not None:
        metadata["ownerReferences"] = [dict(owner, controller=True)]
    if terminating:
        metadata["deletionTimestamp"] = format_time(NOW)
    status: dict[str, Any] = {}
    if start_time is not None:
        status["startTime"] = format_time(start_time)
    if nominated_node:
        status["nominatedNodeName"] = nominated_node
    if phase:
        status["phase"] = phase
    if conditions:
        status["conditions"] = conditions
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": status}


def seconds(n: int) -> datetime:
    return EPOCH + timedelta(seconds=n)


def taint(key: str, value: str = "", effect: str = "NoSchedule") -> dict[str, str]:
    result = {"key": key, "effect": effect}
    if value:
        result["value"] = value
    return result


def toleration(key: str = "", value: str = "", effect: str = "", operator: str = "Equal") -> dict[str, str]:
    result = {"key": key, "operator": operator}
    if value:
        result["value"] = value
    if effect:
        result["effect"] = effect
    return result


def expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    """A NodeSelectorRequirement / LabelSelectorRequirement."""
    result: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        result["values"] = list(values)
    return result


def node_affinity(
    required: list[dict[str, Any]] | None = None, preferred: list[tuple[int, dict[str, Any]]] | None = None
) -> dict[str, Any]:
    """`required`: nodeSelectorTerms; `preferred`: (weight, term) pairs."""
    section: dict[str, Any] = {}
    if required is not None:
        section["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": required}
    if preferred is not None:
        section["preferredDuringSchedulingIgnoredDuringExecution"] = [
            {"weight": w, "preference": t} for w, t in preferred
        ]
    return {"nodeAffinity": section}


def term(
    selector: dict[str, Any] | None,
    topology_key: str,
    *,
    namespaces: list[str] | None = None,
    namespace_selector: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A PodAffinityTerm."""
    result: dict[str, Any] = {"topologyKey": topology_key}
    if selector is not None:
        result["labelSelector"] = selector
    if namespaces is not None:
        result["namespaces"] = namespaces
    if namespace_selector is not None:
        result["namespaceSelector"] = namespace_selector
    return result


def selector_in(key: str, *values: str) -> dict[str, Any]:
    return {"matchExpressions": [expr(key, "In", *values)]}


def selector_exists(key: str) -> dict[str, Any]:
    return {"matchExpressions": [expr(key, "Exists")]}


def pod_affinity(
    *,
    required: list[dict[str, Any]] | None = None,
    preferred: list[tuple[int, dict[str, Any]]] | None = None,
    anti_required: list[dict[str, Any]] | None = None,
    anti_preferred: list[tuple[int, dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if required is not None or preferred is not None:
        section: dict[str, Any] = {}
        if required is not None:
            section["requiredDuringSchedulingIgnoredDuringExecution"] = required
        if preferred is not None:
            section["preferredDuringSchedulingIgnoredDuringExecution"] = [
                {"weight": w, "podAffinityTerm": t} for w, t in preferred
            ]
        result["podAffinity"] = section
    if anti_required is not None or anti_preferred is not None:
        anti: dict[str, Any] = {}
        if anti_required is not None:
            anti["requiredDuringSchedulingIgnoredDuringExecution"] = anti_required
        if anti_preferred is not None:
            anti["preferredDuringSchedulingIgnoredDuringExecution"] = [
                {"weight": w, "podAffinityTerm": t} for w, t in anti_preferred
            ]
        result["podAntiAffinity"] = anti
    return result


def spread(
    max_skew: int,
    topology_key: str,
    when: str = "DoNotSchedule",
    selector: dict[str, Any] | None = None,
    *,
    min_domains: int | None = None,
    node_affinity_policy: str | None = None,
    node_taints_policy: str | None = None,
    match_label_keys: list[str] | None = None,
) -> dict[str, Any]:
    result: dict[str, Any] = {"maxSkew": max_skew, "topologyKey": topology_key, "whenUnsatisfiable": when}
    if selector is not None:
        result["labelSelector"] = selector
    if min_domains is not None:
        result["minDomains"] = min_domains
    if node_affinity_policy is not None:
        result["nodeAffinityPolicy"] = node_affinity_policy
    if node_taints_policy is not None:
        result["nodeTaintsPolicy"] = node_taints_policy
    if match_label_keys is not None:
        result["matchLabelKeys"] = match_label_keys
    return result


def pdb(
    name: str,
    match_labels: dict[str, str],
    disruptions_allowed: int,
    namespace: str = "default",
    disrupted: list[str] | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {"disruptionsAllowed": disruptions_allowed}
    if disrupted:
        status["disruptedPods"] = {p: format_time(NOW) for p in disrupted}
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"matchLabels": match_labels}},
        "status": status,
    }


def names(pods: list[dict[str, Any]] | list[Any]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


# Running one plugin the way upstream's plugin tests do.


def only(plugin: str, **profile: Any) -> Profile:
    return Profile(plugins=(plugin,), **profile)


def filter_statuses(
    plugin: str,
    pod_obj: dict[str, Any],
    snapshot: Snapshot,
    profile: Profile | None = None,
) -> tuple[Status | None, dict[str, Status | None]]:
    """(PreFilter status, node -> Filter status); Filter is not run when PreFilter did not pass
    (a skipped plugin's filter passes every node)."""
    framework = Framework(profile or only(plugin), snapshot)
    state = CycleState()
    pre_status: Status | None = None
    plugin_obj = framework.plugins[0]
    if hasattr(plugin_obj, "pre_filter"):
        _, pre_status = plugin_obj.pre_filter(state, pod_obj, snapshot.node_list())
        if pre_status is not None and not pre_status.is_success():
            return pre_status, {}
    return pre_status, {n.name: plugin_obj.filter(state, pod_obj, n) for n in snapshot.node_list()}


def filter_codes(
    plugin: str, pod_obj: dict[str, Any], snapshot: Snapshot, profile: Profile | None = None
) -> dict[str, str]:
    _, statuses = filter_statuses(plugin, pod_obj, snapshot, profile)
    return {name: "Success" if s is None else s.code.value for name, s in statuses.items()}


def scores(
    plugin: str,
    pod_obj: dict[str, Any],
    snapshot: Snapshot,
    candidates: list[str] | None = None,
    profile: Profile | None = None,
) -> dict[str, int] | Status:
    """PreScore, Score and NormalizeScore for one plugin over the candidate nodes (default all);
    the normalized (unweighted) scores, or the PreScore status if it did not succeed."""
    framework = Framework(profile or only(plugin), snapshot)
    state = CycleState()
    nodes = [snapshot.nodes[n] for n in candidates] if candidates is not None else snapshot.node_list()
    plugin_obj = framework.plugins[0]
    if hasattr(plugin_obj, "pre_score"):
        status = plugin_obj.pre_score(state, pod_obj, nodes)
        if status is not None and not status.is_success():
            return status
    scored, error = framework.run_score(state, pod_obj, nodes)
    if error is not None:
        return error
    return {node: s.plugins[0].normalized for node, s in scored.items()}
