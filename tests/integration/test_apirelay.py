"""The fault relay (tests/faults/apirelay.py) against the real API server: it forwards requests and
streams watches, and each rule lands exactly where it says (after N matches, for M requests)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.faults.apirelay import ApiRelay
from tests.integration.conftest import BIN, ENV, KUBECONFIG
from tests.watch import Watch


def kubectl_via(relay: ApiRelay, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "kubectl"), *args], capture_output=True, text=True, timeout=timeout,
                          env={**ENV, "KUBECONFIG": str(relay.kubeconfig)}, check=False)


def configmap(name: str, namespace: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}})


def test_forwards_and_streams_watches(cluster: Path, namespace: str) -> None:
    with ApiRelay(KUBECONFIG) as relay:
        env = {**ENV, "KUBECONFIG": str(relay.kubeconfig)}
        assert kubectl_via(relay, "get", "--raw", "/readyz").stdout == "ok"
        with Watch(env, f"/api/v1/namespaces/{namespace}/configmaps") as watch:
            subprocess.run([str(BIN / "kubectl"), "apply", "-f", "-"], input=configmap("streamed", namespace),
                           text=True, env=env, check=True, capture_output=True)
            watch.wait(lambda w: "streamed" in w.current, timeout=30, what="the ConfigMap through the relay")
        assert relay.seen("GET", "/configmaps$") and relay.seen("POST", "/configmaps$")


def test_rules_land_where_they_say(cluster: Path, namespace: str) -> None:
    with ApiRelay(KUBECONFIG) as relay:
        path = f"/api/v1/namespaces/{namespace}/configmaps"
        relay.fail("POST", f"{path}$", status=500, after=1, times=1)
        results = [subprocess.run([str(BIN / "kubectl"), "create", "configmap", f"c{i}", "-n", namespace],
                                  capture_output=True, text=True, env={**ENV, "KUBECONFIG": str(relay.kubeconfig)})
                   for i in range(3)]
        assert [r.returncode == 0 for r in results] == [True, False, True]
        assert "injected by the test relay" in results[1].stderr
        gate = relay.hold("POST", f"{path}$")
        held = subprocess.Popen([str(BIN / "kubectl"), "create", "configmap", "held", "-n", namespace],
                                env={**ENV, "KUBECONFIG": str(relay.kubeconfig)}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        gate.wait_held(1)
        assert held.poll() is None
        gate.drain()  # returns once the API server answered the held create: it exists now
        assert gate.unanswered == 0 and gate.held == 0
        assert subprocess.run([str(BIN / "kubectl"), "get", "configmap", "held", "-n", namespace], env=ENV,
                              capture_output=True).returncode == 0
        assert held.wait(timeout=30) == 0
        assert [s.action for s in relay.seen("POST", f"{path}$")] == ["forwarded", "fail", "forwarded", "hold"]
