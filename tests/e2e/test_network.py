"""The pod network works across nodes: a pod on one worker reaches a pod on the other by pod IP
(flannel's vxlan overlay), a Service by its ClusterIP (kube-proxy), and by its DNS names (CoreDNS).

Each answer names the pod that served it, so a reply from anything else fails the test.
"""

from __future__ import annotations

import ipaddress

import pytest

from tests.e2e.conftest import (
    HTTP_PORT,
    WORKERS,
    apply,
    fetch_until_ok,
    http_pod,
    http_service,
    kubectl_json,
    wait_ready,
    wait_service_routed,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]


def test_pod_to_pod_service_and_dns_across_nodes(namespace: str) -> None:
    client_node, server_node = WORKERS
    apply(http_pod("client", nodeSelector={"kubernetes.io/hostname": client_node}), namespace)
    apply(http_pod("server", labels={"app": "server"}, nodeSelector={"kubernetes.io/hostname": server_node}),
          namespace)
    apply(http_service("web", app="server"), namespace)
    client = wait_ready(namespace, "client")
    server = wait_ready(namespace, "server")
    assert client["spec"]["nodeName"] == client_node and server["spec"]["nodeName"] == server_node

    # Each pod's IP comes from its own node's flannel subnet: the two are on different subnets, so
    # the traffic below has to cross the overlay.
    for pod in (client, server):
        subnet = ipaddress.ip_network(kubectl_json("get", "node", pod["spec"]["nodeName"])["spec"]["podCIDR"])
        assert ipaddress.ip_address(pod["status"]["podIP"]) in subnet, (
            f"pod {pod['metadata']['name']} IP {pod['status']['podIP']} not in its node's podCIDR {subnet}")

    server_ip = server["status"]["podIP"]
    cluster_ip = wait_service_routed(namespace, "web", "client")
    expected = f"server {server_ip}"
    targets = {
        "pod IP across nodes": f"http://{server_ip}:{HTTP_PORT}/",
        "ClusterIP": f"http://{cluster_ip}/",
        "service FQDN": f"http://web.{namespace}.svc.cluster.local/",
        "service short name": "http://web/",
    }
    for what, url in targets.items():
        body = fetch_until_ok(namespace, "client", url)
        assert body.strip() == expected, f"{what} ({url}) answered {body!r}, expected {expected!r}"

    # And back the other way, so both directions of the vxlan tunnel are exercised.
    client_ip = client["status"]["podIP"]
    body = fetch_until_ok(namespace, "server", f"http://{client_ip}:{HTTP_PORT}/")
    assert body.strip() == f"client {client_ip}", body
