"""The kind cluster itself is sound before anything of kubeplane's is tested on it: three Ready nodes,
flannel Running on each with a pod subnet out of 10.244.0.0/16, and CoreDNS serving.

A failure here points at the cluster (hack/kind), not at kubeplane.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pykube  # type: ignore[import-untyped]
import pytest
from pytest_kind import KindCluster  # type: ignore[import-untyped]

from tests.e2e.conftest import CONTROL_PLANE, WORKERS, is_ready, kubectl_json

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

POD_NETWORK = ipaddress.IPv4Network("10.244.0.0/16")  # hack/kind/cluster.yaml's podSubnet, flannel's Network
NODES = {CONTROL_PLANE, *WORKERS}


def _ready_condition(node: dict[str, Any]) -> str | None:
    conditions = node.get("status", {}).get("conditions") or []
    return next((c.get("status") for c in conditions if c.get("type") == "Ready"), None)


def test_three_nodes_ready(kind: KindCluster) -> None:
    # Through the pytest-kind handle's API client, so the handle itself is proven to work.
    nodes = {node.name: node.obj for node in pykube.Node.objects(kind.api)}
    assert set(nodes) == NODES, f"expected nodes {sorted(NODES)}, found {sorted(nodes)}"
    not_ready = {name: _ready_condition(node) for name, node in nodes.items() if _ready_condition(node) != "True"}
    assert not not_ready, f"nodes not Ready (Ready condition status): {not_ready}"


def test_flannel_runs_on_every_node() -> None:
    daemonset = kubectl_json("get", "daemonset", "kube-flannel-ds", "-n", "kube-flannel")
    selector = ",".join(f"{k}={v}" for k, v in daemonset["spec"]["selector"]["matchLabels"].items())
    pods = kubectl_json("get", "pods", "-n", "kube-flannel", "-l", selector)["items"]
    ready_nodes = sorted(p["spec"].get("nodeName") for p in pods if is_ready(p))
    assert ready_nodes == sorted(NODES), (
        f"flannel should have one Running+Ready pod per node; Ready on {ready_nodes}, pods: "
        f"{[(p['metadata']['name'], p['spec'].get('nodeName'), p.get('status', {}).get('phase')) for p in pods]}")
    status = daemonset["status"]
    assert status["numberReady"] == status["desiredNumberScheduled"] == len(NODES), status


def test_coredns_ready() -> None:
    pods = kubectl_json("get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns")["items"]
    assert pods, "no CoreDNS pods (k8s-app=kube-dns) in kube-system"
    not_ready = [(p["metadata"]["name"], p.get("status", {}).get("phase")) for p in pods if not is_ready(p)]
    assert not not_ready, f"CoreDNS pods not Running+Ready: {not_ready}"
    service = kubectl_json("get", "service", "kube-dns", "-n", "kube-system")
    ready_endpoints = [
        address for slice_ in kubectl_json("get", "endpointslices", "-n", "kube-system",
                                           "-l", "kubernetes.io/service-name=kube-dns")["items"]
        for endpoint in slice_.get("endpoints") or [] if (endpoint.get("conditions") or {}).get("ready")
        for address in endpoint["addresses"]
    ]
    assert service["spec"]["clusterIP"] and ready_endpoints, "the kube-dns Service has no ready endpoints"


def test_every_node_has_a_pod_subnet_of_the_pod_network() -> None:
    cidrs = {node["metadata"]["name"]: node["spec"].get("podCIDR") for node in kubectl_json("get", "nodes")["items"]}
    assert set(cidrs) == NODES
    subnets: dict[str, ipaddress.IPv4Network] = {}
    for name, cidr in cidrs.items():
        assert cidr, f"node {name} has no podCIDR"
        subnets[name] = ipaddress.IPv4Network(cidr)
        assert subnets[name].subnet_of(POD_NETWORK), f"node {name}'s podCIDR {cidr} is outside {POD_NETWORK}"
    ranges = list(subnets.values())
    overlapping = [(a, b) for i, a in enumerate(ranges) for b in ranges[i + 1:] if a.overlaps(b)]
    assert not overlapping, f"nodes share pod subnets: {overlapping}"
