"""A kubeplane ReplicaSet runs real containers on both workers: 4 replicas spread by a topology
constraint, all Running and Ready (the readiness probe passed in the kubelet), counted as ready in
the ReplicaSet's status, each one serving through a Service; scaling down through the scale
subresource leaves exactly the desired pods, and a deleted pod is replaced.
"""

from __future__ import annotations

import collections
import random
import time

import pytest

from tests.e2e.conftest import (
    KPRS,
    WORKERS,
    apply,
    fetch_until_ok,
    http_pod,
    http_service,
    is_active,
    kubectl,
    kubectl_json,
    kubeplane_replicaset,
    pods_of,
    wait_for,
    wait_ready,
    wait_replicas_ready,
    wait_service_routed,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300), pytest.mark.usefixtures("kubeplane")]

SPREAD = {
    "maxSkew": 1,
    "topologyKey": "kubernetes.io/hostname",
    "whenUnsatisfiable": "DoNotSchedule",
    "labelSelector": {"matchLabels": {"app": "web"}},
    # The control plane's NoSchedule taint keeps it out of the spread's domains; with the default
    # (Ignore) its empty domain would cap each worker at one pod.
    "nodeTaintsPolicy": "Honor",
}


def ready_replicas(namespace: str, name: str) -> int:
    return int((kubectl_json("get", KPRS, name, "-n", namespace).get("status") or {}).get("readyReplicas") or 0)


def mixed_case(host: str) -> str:
    """`host` with a random capitalisation: the same name to DNS, a new connection to Go's HTTP client."""
    return "".join(c.upper() if random.random() < 0.5 else c.lower() for c in host)


def test_replicaset_runs_spreads_serves_scales_and_heals(namespace: str) -> None:
    apply(kubeplane_replicaset("web", 4, topologySpreadConstraints=[SPREAD]), namespace)
    apply(http_service("web", app="web"), namespace)
    apply(http_pod("client"), namespace)

    pods = wait_replicas_ready(namespace, "web", 4)
    per_node = collections.Counter(p["spec"]["nodeName"] for p in pods)
    assert per_node == {WORKERS[0]: 2, WORKERS[1]: 2}, f"maxSkew 1 over two workers means 2 + 2, got {per_node}"
    wait_for(lambda: ready_replicas(namespace, "web") == 4, timeout=30, what="kubeplane RS status.readyReplicas 4")

    # Every replica answers through the Service. kube-proxy balances per connection, and the client's
    # Go transport keeps its connection alive, so one URL would keep reaching one replica; Go pools
    # connections by the host name as written while DNS ignores case, so a fresh capitalisation of the
    # Service's name per request opens a new connection that kube-proxy balances anew.
    wait_ready(namespace, "client")
    wait_service_routed(namespace, "web", "client")
    replicas = {p["metadata"]["name"] for p in pods}
    seen: set[str] = set()
    for _ in range(60):
        url = f"http://{mixed_case(f'web.{namespace}.svc.cluster.local')}/"
        name = fetch_until_ok(namespace, "client", url).split()[0]
        assert name in replicas, f"the Service answered from {name!r}, not one of its replicas {sorted(replicas)}"
        seen.add(name)
        if seen == replicas:
            break
    assert seen == replicas, f"replicas never answering through the Service: {sorted(replicas - seen)}"

    # Scale down through the scale subresource: exactly 2 pods remain, and stay 2.
    kubectl("scale", f"{KPRS}/web", "-n", namespace, "--replicas=2")
    wait_replicas_ready(namespace, "web", 2)
    wait_for(lambda: ready_replicas(namespace, "web") == 2, timeout=30, what="kubeplane RS status.readyReplicas 2")
    for _ in range(5):
        counts = len([p for p in pods_of(namespace, "web") if is_active(p)])
        assert counts == 2, f"{counts} pods after settling at 2 replicas"
        time.sleep(1)

    # A deleted pod is replaced by a new one, back to 2 Running and Ready.
    victim = pods_of(namespace, "web")[0]["metadata"]["name"]
    kubectl("delete", "pod", victim, "-n", namespace, "--wait=false")
    pods = wait_replicas_ready(namespace, "web", 2)
    assert victim not in {p["metadata"]["name"] for p in pods}
    wait_for(lambda: ready_replicas(namespace, "web") == 2, timeout=30, what="kubeplane RS status.readyReplicas 2")
