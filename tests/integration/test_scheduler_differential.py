"""Differential: kubeplane-scheduler and kube-scheduler on the same cluster state, scenario by scenario.

One pool of four KWOK nodes for the module (only our test pods tolerate its isolation taint):

    node  zone  labels              taint
    n0    a     disk=ssd            -
    n1    a     -                   -
    n2    b     -                   -
    n3    b     special=true        dedicated=special:NoSchedule

Each scenario runs in a fresh namespace: "anchor" pods are put on given nodes directly (spec.nodeName,
no scheduler involved), then two identical candidate pods are created, one per scheduler. They
must agree on feasibility; where the scenario's choice is determined (one best node by a wide
margin) they must pick that node; where no node fits, their messages must agree on the filter part.
The candidates never select each other (selectors match `role`, candidates carry none), so the
two placements are independent.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pytest

from tests.integration.conftest import Operator, apply, kubectl, kubectl_json, wait_for

ISOLATION_TAINT = "kubeplane-test/differential"
HOSTNAME, ZONE = "kubernetes.io/hostname", "topology.kubernetes.io/zone"
OURS, THEIRS = "kubeplane-scheduler", "default-scheduler"
NODES = {
    "n0": ({ZONE: "a", "disk": "ssd"}, []),
    "n1": ({ZONE: "a"}, []),
    "n2": ({ZONE: "b"}, []),
    "n3": ({ZONE: "b", "special": "true"}, [{"key": "dedicated", "value": "special", "effect": "NoSchedule"}]),
}
TOLERATE_SPECIAL = [{"key": "dedicated", "operator": "Equal", "value": "special", "effect": "NoSchedule"}]


@dataclass
class Pool:
    run: str
    names: dict[str, str]  # n0 -> the node's real name

    def node(self, short: str) -> str:
        return self.names[short]


@pytest.fixture(scope="module")
def scheduler(cluster: Any) -> Iterator[Operator]:
    operator = Operator("scheduler", log_name="test-scheduler-differential")
    operator.start()
    yield operator
    operator.stop()


@pytest.fixture(scope="module")
def pool(cluster: Any) -> Iterator[Pool]:
    run = uuid.uuid4().hex[:6]
    names = {short: f"diff-{run}-{short}" for short in NODES}
    resources = {"cpu": "64", "memory": "256Gi", "pods": "110"}
    for short, (labels, taints) in NODES.items():
        apply({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": names[short], "annotations": {"kwok.x-k8s.io/node": "fake"},
                         "labels": {"type": "kwok", HOSTNAME: names[short], "kubeplane-test/diff": run, **labels}},
            "spec": {"taints": [{"key": ISOLATION_TAINT, "value": run, "effect": "NoSchedule"}, *taints]},
            "status": {"allocatable": resources, "capacity": resources},
        })
    for name in names.values():
        wait_for(lambda name=name: _ready(name), timeout=30, what=f"node {name} Ready")
    yield Pool(run, names)
    kubectl("delete", "node", *names.values(), "--wait=false", check=False)


def _ready(node: str) -> bool:
    conditions = kubectl_json("get", "node", node).get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


class Anchor(NamedTuple):
    node: str
    labels: dict[str, str]
    ports: tuple[int, ...] = ()
    cpu: str | None = None


@dataclass
class Scenario:
    anchors: list[Anchor]
    spec: dict[str, Any]  # merged into both candidates' spec
    expect: str | None  # the node both must choose; None: no node fits
    own_ports: bool = False  # each candidate asks a different host port (ours 8080, theirs 8081)
    also: list[str] = field(default_factory=list)  # words the unschedulable message must contain


def selector(role: str) -> dict[str, Any]:
    return {"matchLabels": {"role": role}}


def pod_affinity(kind: str, role: str, topology: str, *, preferred: bool = False) -> dict[str, Any]:
    term = {"labelSelector": selector(role), "topologyKey": topology}
    if preferred:
        return {kind: {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": term}]}}
    return {kind: {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}


def node_affinity(*expressions: dict[str, Any], preferred: bool = False) -> dict[str, Any]:
    term = {"matchExpressions": list(expressions)}
    if preferred:
        return {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "preference": term}]}}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


def spread(topology: str, when: str, role: str = "spread") -> list[dict[str, Any]]:
    return [{"maxSkew": 1, "topologyKey": topology, "whenUnsatisfiable": when, "labelSelector": selector(role)}]


SCENARIOS: dict[str, Scenario] = {
    "node affinity In": Scenario([], {"affinity": node_affinity({"key": "disk", "operator": "In", "values": ["ssd"]})},
                                 "n0"),
    "node affinity NotIn, and a taint": Scenario(
        [], {"affinity": node_affinity({"key": ZONE, "operator": "NotIn", "values": ["a"]})}, "n2"),
    "preferred node affinity": Scenario(
        [], {"affinity": node_affinity({"key": "disk", "operator": "In", "values": ["ssd"]}, preferred=True)}, "n0"),
    "toleration and preference open the tainted node": Scenario(
        [], {"tolerations": TOLERATE_SPECIAL,
             "affinity": node_affinity({"key": "special", "operator": "Exists"}, preferred=True)}, "n3"),
    "host port taken on one node of the zone": Scenario(
        [Anchor("n0", {"role": "ports"}, (8080, 8081))],
        {"affinity": node_affinity({"key": ZONE, "operator": "In", "values": ["a"]})}, "n1", own_ports=True),
    "host port taken where the pod must go": Scenario(
        [Anchor("n0", {"role": "ports"}, (8080, 8081))],
        {"affinity": node_affinity({"key": "disk", "operator": "In", "values": ["ssd"]})}, None, own_ports=True,
        also=["didn't have free ports"]),
    "required pod affinity, by host": Scenario(
        [Anchor("n1", {"role": "db"})], {"affinity": pod_affinity("podAffinity", "db", HOSTNAME)}, "n1"),
    "required pod affinity, by zone": Scenario(
        [Anchor("n2", {"role": "db"})], {"affinity": pod_affinity("podAffinity", "db", ZONE)}, "n2"),
    "required anti-affinity leaves the tolerated node": Scenario(
        [Anchor(n, {"role": "web"}) for n in ("n0", "n1", "n2")],
        {"tolerations": TOLERATE_SPECIAL, "affinity": pod_affinity("podAntiAffinity", "web", HOSTNAME)}, "n3"),
    "preferred anti-affinity": Scenario(
        [Anchor(n, {"role": "web"}) for n in ("n0", "n1")],
        {"affinity": pod_affinity("podAntiAffinity", "web", HOSTNAME, preferred=True)}, "n2"),
    "required anti-affinity everywhere": Scenario(
        [Anchor(n, {"role": "web"}) for n in ("n0", "n1", "n2")],
        {"affinity": pod_affinity("podAntiAffinity", "web", HOSTNAME)}, None, also=["anti-affinity"]),
    "topology spread DoNotSchedule, by zone": Scenario(
        [Anchor("n0", {"role": "spread"}), Anchor("n1", {"role": "spread"})],
        {"topologySpreadConstraints": spread(ZONE, "DoNotSchedule")}, "n2"),
    "topology spread ScheduleAnyway, by host": Scenario(
        [Anchor("n0", {"role": "spread"}), Anchor("n1", {"role": "spread"})],
        {"topologySpreadConstraints": spread(HOSTNAME, "ScheduleAnyway")}, "n2"),
    # n3 counts as an empty domain (taints are ignored when counting), yet the pod may not go there.
    "topology spread DoNotSchedule with no room": Scenario(
        [Anchor("n2", {"role": "spread"}), Anchor("n2", {"role": "spread"})],
        {"topologySpreadConstraints": spread(HOSTNAME, "DoNotSchedule"),
         "affinity": node_affinity({"key": ZONE, "operator": "In", "values": ["b"]})}, None,
        also=["topology spread constraints", "untolerated taint"]),
    # Last: these anchors' requests would tilt the resource scores of the scenarios after them.
    "least allocated": Scenario([Anchor("n0", {"role": "busy"}, cpu="48"), Anchor("n1", {"role": "busy"}, cpu="40")],
                                {}, "n2"),
    "too big for every node": Scenario([], {"containers": [{
        "name": "app", "image": "registry.k8s.io/pause:3.10", "resources": {"requests": {"cpu": "100"}}}]}, None,
        also=["Insufficient cpu"]),
}


def anchor(pool: Pool, index: int, spec: Anchor) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "registry.k8s.io/pause:3.10"}
    if spec.ports:
        container["ports"] = [{"containerPort": p, "hostPort": p} for p in spec.ports]
    if spec.cpu:
        container["resources"] = {"requests": {"cpu": spec.cpu}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"anchor-{index}", "labels": spec.labels},
            "spec": {"nodeName": pool.node(spec.node), "containers": [container],
                     "tolerations": [{"operator": "Exists"}]}}


def candidate(pool: Pool, scheduler_name: str, scenario: Scenario) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "registry.k8s.io/pause:3.10",
                                 "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}
    if scenario.own_ports:
        port = 8080 if scheduler_name == OURS else 8081
        container["ports"] = [{"containerPort": port, "hostPort": port}]
    spec: dict[str, Any] = {
        "schedulerName": scheduler_name,
        "nodeSelector": {"kubeplane-test/diff": pool.run},
        "containers": [container],
        **scenario.spec,
        "tolerations": [{"key": ISOLATION_TAINT, "operator": "Equal", "value": pool.run, "effect": "NoSchedule"},
                        *scenario.spec.get("tolerations", [])],
    }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ours" if scheduler_name == OURS else "theirs",
                                                             "labels": {"candidate": "yes"}}, "spec": spec}


def outcome(namespace: str, name: str) -> tuple[str, str] | None:
    """("bound", node) or ("unschedulable", message) once the scheduler decided; None before."""
    pod = kubectl_json("get", "pod", name, "-n", namespace)
    if pod["spec"].get("nodeName"):
        return "bound", pod["spec"]["nodeName"]
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "Unschedulable":
            return "unschedulable", condition.get("message") or ""
    return None


def filter_part(message: str) -> str:
    """The filter verdicts with counts blanked (the cluster's other nodes come and go with other
    tests); preemption's part differs by design (this kube-scheduler also runs DRA's PostFilter)."""
    return re.sub(r"\d+", "N", message.split(". ")[0])


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_same_decision_as_kube_scheduler(scheduler: Operator, pool: Pool, namespace: str, name: str) -> None:
    scenario = SCENARIOS[name]
    if scenario.anchors:
        apply({"apiVersion": "v1", "kind": "List",
               "items": [anchor(pool, i, a) for i, a in enumerate(scenario.anchors)]}, namespace)
    apply({"apiVersion": "v1", "kind": "List",
           "items": [candidate(pool, OURS, scenario), candidate(pool, THEIRS, scenario)]}, namespace)
    ours = wait_for(lambda: outcome(namespace, "ours"), timeout=30, what="our decision")
    theirs = wait_for(lambda: outcome(namespace, "theirs"), timeout=30, what="kube-scheduler's decision")
    if scenario.expect is not None:
        expected = ("bound", pool.node(scenario.expect))
        assert (ours, theirs) == (expected, expected), name
        return
    assert ours[0] == theirs[0] == "unschedulable", (ours, theirs)
    assert filter_part(ours[1]) == filter_part(theirs[1]), (ours[1], theirs[1])
    for words in scenario.also:
        assert words in ours[1], ours[1]
