"""A kubeplane Deployment of real containers behind a Service, rolled from v1 to v2 and back while a
client inside the cluster sends requests the whole time: with maxUnavailable 0, readiness probes and
a preStop pause (so kube-proxy drops a pod before it stops listening), not one request fails.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.e2e.conftest import (
    ENV,
    HTTP_PORT,
    ROOT,
    apply,
    fetch_until_ok,
    http_container,
    http_pod,
    http_service,
    is_ready,
    kubectl,
    pods_of,
    wait_for,
    wait_ready,
    wait_service_routed,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420), pytest.mark.usefixtures("kubeplane")]
KPDEPLOY = "deployments.apps.kubeplane.dev"


def deployment(version: str) -> dict[str, Any]:
    container = {**http_container(), "env": [*http_container()["env"], {"name": "VERSION", "value": version}],
                 # The endpoint goes before the server stops: a terminating pod keeps serving 5 s.
                 "lifecycle": {"preStop": {"sleep": {"seconds": 5}}}}
    return {
        "apiVersion": "apps.kubeplane.dev/v1alpha1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [container], "terminationGracePeriodSeconds": 15}},
        },
    }


def rollout(*args: str) -> str:
    result = subprocess.run([str(ROOT / ".venv/bin/kubeplane"), "rollout", *args], env=ENV, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def load(namespace: str, action: str, url: str = "") -> str:
    query = f"?url={url}" if url else ""
    path = f"/api/v1/namespaces/{namespace}/pods/client:{HTTP_PORT}/proxy/load/{action}{query}"
    return kubectl("get", "--raw", path, timeout=60).stdout


def serving(namespace: str, version: str) -> bool:
    pods = pods_of(namespace, "web")
    versions = {e["value"] for p in pods for e in p["spec"]["containers"][0]["env"] if e["name"] == "VERSION"}
    return len(pods) == 4 and all(is_ready(p) for p in pods) and versions == {version}


def roll_under_load(namespace: str, change: Any, version: str) -> dict[str, Any]:
    load(namespace, "start", "http://web/")
    try:
        change()
        rollout("status", "deployment/web", "-n", namespace, "--timeout=240")
        wait_for(lambda: serving(namespace, version), timeout=120, what=f"4 ready pods of {version} only")
    finally:
        counts: dict[str, Any] = json.loads(load(namespace, "stop"))
    print(f"{version}: {counts['ok']} requests answered, {counts['failed']} failed, by version {counts['versions']}")
    return counts


def test_rolling_update_and_undo_drop_no_request(namespace: str) -> None:
    apply(deployment("v1"), namespace)
    apply(http_service("web", app="web"), namespace)
    apply(http_pod("client"), namespace)
    wait_ready(namespace, "client")
    rollout("status", "deployment/web", "-n", namespace, "--timeout=240")
    wait_for(lambda: serving(namespace, "v1"), timeout=120, what="4 ready v1 pods")
    wait_service_routed(namespace, "web", "client")
    assert fetch_until_ok(namespace, "client", "http://web/").split()[2] == "v1"

    def to_v2() -> None:
        kubectl("patch", KPDEPLOY, "web", "-n", namespace, "--type=merge", "-p",
                json.dumps({"spec": {"template": deployment("v2")["spec"]["template"]}}))

    forward = roll_under_load(namespace, to_v2, "v2")
    assert forward["failed"] == 0, forward["errors"]
    assert forward["ok"] > 100 and set(forward["versions"]) == {"v1", "v2"}, forward

    back = roll_under_load(namespace, lambda: rollout("undo", "deployment/web", "-n", namespace), "v1")
    assert back["failed"] == 0, back["errors"]
    assert back["ok"] > 100 and set(back["versions"]) == {"v1", "v2"}, back
    history = rollout("history", "deployment/web", "-n", namespace)
    assert history.split("\n")[2:4] == ["2         <none>", "3         <none>"], history
