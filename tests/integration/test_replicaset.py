"""The kubeplane ReplicaSet against a real API server, with KWOK running the pods."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

from tests.faults.apirelay import ApiRelay
from tests.integration.conftest import ENV, KUBECONFIG, Operator, apply, kubectl, kubectl_json, wait_for
from tests.watch import Watch

API_VERSION = "apps.kubeplane.dev/v1alpha1"
RS = "replicasets.apps.kubeplane.dev"


def manifest(name: str = "web", replicas: int = 3, api_version: str = API_VERSION, **spec: Any) -> dict[str, Any]:
    """An upstream apps/v1 ReplicaSet manifest; only the apiVersion differs between the two."""
    return {
        "apiVersion": api_version,
        "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "tier": "web"}},
                "spec": {
                    "containers": [{
                        "name": "web", "image": "registry.local/web:1",
                        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                    }],
                },
            },
            **spec,
        },
    }


def pods_of(namespace: str, app: str) -> list[dict[str, Any]]:
    return kubectl_json("get", "pods", "-n", namespace, "-l", f"app={app}")["items"]


def active(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")
            and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")]


def status(namespace: str, name: str, resource: str = RS) -> dict[str, Any]:
    return kubectl_json("get", resource, name, "-n", namespace).get("status") or {}


def wait_status(namespace: str, name: str, replicas: int, resource: str = RS, timeout: float = 90) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        s = status(namespace, name, resource)
        want = {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
                "fullyLabeledReplicas": replicas}
        return s if all(s.get(k, 0) == v for k, v in want.items()) else None
    return wait_for(settled, timeout=timeout, what=f"{resource} {name} at {replicas} ready replicas")


def owner_uid(pod: dict[str, Any]) -> str | None:
    refs = [r for r in pod["metadata"].get("ownerReferences", []) if r.get("controller")]
    return refs[0]["uid"] if refs else None


def test_scale_up_down_and_status(controllers: Operator, namespace: str) -> None:
    apply(manifest(replicas=4), namespace)
    st = wait_status(namespace, "web", 4)
    rs = kubectl_json("get", RS, "web", "-n", namespace)
    assert st["observedGeneration"] == rs["metadata"]["generation"]
    assert st["selector"] == "app=web"
    pods = pods_of(namespace, "web")
    assert len(pods) == 4
    assert {owner_uid(p) for p in pods} == {rs["metadata"]["uid"]}
    assert all(p["metadata"]["name"].startswith("web-") for p in pods)

    kubectl("scale", RS, "web", "-n", namespace, "--replicas=1")  # the scale subresource
    wait_status(namespace, "web", 1)
    wait_for(lambda: len(active(pods_of(namespace, "web"))) == 1, what="scale down to 1 pod")

    # Printer columns, short name and category are what `kubectl get` users see.
    table = kubectl("get", "kprs", "-n", namespace).stdout
    assert table.split("\n")[0].split()[:5] == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert "web" in kubectl("get", "kubeplane", "-n", namespace).stdout


def _metric(port: int, name: str, labels: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(f"{name}{{{labels}}}"):
            return float(line.split()[-1])
    return 0.0


def test_metrics_endpoint(controllers: Operator, namespace: str) -> None:
    # Measured over this test's own window: the operator is shared by the session.
    created = ("kubeplane_controller_pods_created_total", 'controller="replicaset"')
    syncs = ("kubeplane_sync_duration_seconds_count", 'name="replicaset"')
    before = _metric(controllers.metrics_port, *created), _metric(controllers.metrics_port, *syncs)
    apply(manifest(replicas=2), namespace)
    wait_status(namespace, "web", 2)
    events = kubectl_json("get", "events", "-n", namespace, "--field-selector", "reason=SuccessfulCreate")["items"]
    assert len(events) == 2
    assert _metric(controllers.metrics_port, *created) - before[0] >= 2
    assert _metric(controllers.metrics_port, *syncs) > before[1]


def test_deleted_pod_is_replaced(controllers: Operator, namespace: str) -> None:
    apply(manifest(replicas=3), namespace)
    wait_status(namespace, "web", 3)
    victim = pods_of(namespace, "web")[0]["metadata"]["name"]
    kubectl("delete", "pod", victim, "-n", namespace, "--wait=false")
    wait_for(lambda: len(active(pods_of(namespace, "web"))) == 3
             and victim not in {p["metadata"]["name"] for p in active(pods_of(namespace, "web"))},
             what="replacement pod")
    wait_status(namespace, "web", 3)


def test_adopts_matching_orphans_and_releases_strays(controllers: Operator, namespace: str) -> None:
    orphan = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "orphan", "labels": {"app": "web", "tier": "web"}},
        "spec": {"containers": [{"name": "c", "image": "registry.local/web:1"}]},
    }
    apply(orphan, namespace)
    apply(manifest(replicas=2), namespace)
    wait_status(namespace, "web", 2)
    rs_uid = kubectl_json("get", RS, "web", "-n", namespace)["metadata"]["uid"]
    wait_for(lambda: owner_uid(kubectl_json("get", "pod", "orphan", "-n", namespace)) == rs_uid, what="adoption")
    assert len(pods_of(namespace, "web")) == 2, "adopting the orphan should leave only one pod to create"

    # A pod relabelled out of the selector is released, and replaced.
    stray = next(p["metadata"]["name"] for p in pods_of(namespace, "web") if p["metadata"]["name"] != "orphan")
    kubectl("label", "pod", stray, "-n", namespace, "app=elsewhere", "--overwrite")
    wait_for(lambda: owner_uid(kubectl_json("get", "pod", stray, "-n", namespace)) is None, what="release")
    wait_for(lambda: len(active(pods_of(namespace, "web"))) == 2, what="replacement after release")


def test_schema_rejects_bad_specs(cluster: Any, namespace: str) -> None:
    mismatched = manifest()
    mismatched["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    result = apply(mismatched, namespace, check=False)
    assert result.returncode != 0
    assert "must match" in result.stderr

    negative = manifest(replicas=-1)
    result = apply(negative, namespace, check=False)
    assert result.returncode != 0 and "replicas" in result.stderr

    no_selector = manifest()
    del no_selector["spec"]["selector"]
    result = apply(no_selector, namespace, check=False)
    assert result.returncode != 0 and "selector" in result.stderr

    # apps/v1: the selector cannot change once set (the template's labels may grow).
    apply(manifest(replicas=0), namespace)
    moved = manifest(replicas=0)
    moved["spec"]["selector"] = {"matchLabels": {"app": "web", "tier": "web"}}
    result = apply(moved, namespace, check=False)
    assert result.returncode != 0 and "field is immutable" in result.stderr, result.stderr


def test_replica_failure_condition_and_event(controllers: Operator, namespace: str) -> None:
    apply({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "two-pods"},
           "spec": {"hard": {"pods": "2"}}}, namespace)
    wait_for(lambda: status(namespace, "two-pods", "resourcequota").get("hard"), what="quota status")
    apply(manifest(replicas=4), namespace)

    def failure() -> dict[str, Any] | None:
        for c in status(namespace, "web").get("conditions", []):
            if c["type"] == "ReplicaFailure":
                return c
        return None

    condition = wait_for(failure, what="ReplicaFailure condition")
    assert condition["status"] == "True" and condition["reason"] == "FailedCreate"
    assert "exceeded quota" in condition["message"]
    events = kubectl_json("get", "events", "-n", namespace, "--field-selector", "reason=FailedCreate")["items"]
    assert events and events[0]["involvedObject"]["name"] == "web"
    assert len(pods_of(namespace, "web")) == 2

    kubectl("delete", "resourcequota", "two-pods", "-n", namespace)
    wait_status(namespace, "web", 4)
    wait_for(lambda: failure() is None, what="ReplicaFailure cleared")


def test_killed_mid_scale_converges_without_extra_pods(controllers: Operator, namespace: str) -> None:
    """SIGKILL the operator while it is creating pods: the relay holds every pod create after the
    tenth, so the kill lands with creates in flight by construction. The held creates then reach the
    API server (a dead process's last writes), a fresh operator takes over, and exactly `target` pods
    ever exist: every pod is counted from a watch, one deleted a moment after its creation included."""
    target = 60
    pods_path = f"/api/v1/namespaces/{namespace}/pods"
    with ApiRelay(KUBECONFIG) as relay, Watch(ENV, pods_path) as pods:
        controllers.stop()  # the session's operator releases the Lease; the relayed one takes it
        relayed = Operator("controllers", env={"KUBECONFIG": str(relay.kubeconfig)},
                           log_name="test-controllers-relayed")
        gate = relay.hold("POST", f"{pods_path}$", after=10)
        try:
            relayed.start()
            apply(manifest("bulk", replicas=target), namespace)
            gate.wait_held(1, timeout=120)
            relayed.kill()
            killed_at = time.monotonic()
            pods.wait(lambda w: len(w.ever_added) >= 10, what="the ten creates let through")
            assert len(pods.ever_added) < target, "the kill should land mid-scale"
            gate.release()  # the dead process's last creates reach the API server now
            wait_for(lambda: gate.held == 0, what="the held creates forwarded")
            landed = [s for s in relay.seen("POST", f"{pods_path}$") if s.status == 201]
            pods.wait(lambda w: len(w.ever_added) == len(landed), what="every created pod in the watch")
        finally:
            relayed.kill()
            controllers.start()
        wait_status(namespace, "bulk", target, timeout=180)
        assert not [s for s in relay.seen(since=killed_at) if s.method != "GET" and s.action == "forwarded"
                    and s.at > killed_at + 1], "the killed operator wrote after its death"
        # Settled: nothing more is created or deleted once the status says `target`.
        time_settled = time.monotonic()
        pods.wait(lambda w: len(w.current) == target, timeout=60, what=f"{target} pods")
    assert len(pods.ever_added) == target, f"{len(pods.ever_added)} distinct pods ever existed, wanted {target}"
    assert not [e for e in pods.log if e[0] == "DELETED"], "no pod was created and then deleted"
    assert time_settled


def test_expectations_keep_a_lagging_watch_from_doubling_creates(controllers: Operator, namespace: str) -> None:
    """The pod watch of the operator is held at the relay, so its cache shows none of the pods it
    creates; its own status write wakes the set again (a second sync on an empty cache). Expectations
    must keep that sync from creating the pods twice: counted from an independent watch."""
    target = 20
    pods_path = f"/api/v1/namespaces/{namespace}/pods"
    with ApiRelay(KUBECONFIG) as relay, Watch(ENV, pods_path) as pods:
        controllers.stop()
        relayed = Operator("controllers", env={"KUBECONFIG": str(relay.kubeconfig)},
                           log_name="test-controllers-lagging")
        watch_gate = relay.hold("GET", r"^/api/v1/pods$", query="watch=true")
        try:
            relayed.start()
            watch_gate.wait_held(1, timeout=60)  # listed, and its pod watch is now held
            apply(manifest("lag", replicas=target), namespace)
            status_writes = lambda: [s for s in relay.seen("PATCH", r"/replicasets/lag/status$")  # noqa: E731
                                     if s.status == 200]
            wait_for(lambda: len(status_writes()) >= 1, what="the set's status written after its creates")
            # The status write comes back as a watch event on the set: wait for the sync it causes.
            wait_for(lambda: relayed_syncs(relayed) >= 2, what="a second sync of the set")
            created = [s for s in relay.seen("POST", f"{pods_path}$") if s.status == 201]
            pods.wait(lambda w: len(w.ever_added) >= len(created), what="every created pod in the watch")
            assert len(created) == len(pods.ever_added) == target, f"{len(created)} pods while the watch lagged"
            watch_gate.release()
            wait_status(namespace, "lag", target)
        finally:
            watch_gate.release()
            relayed.stop()
            controllers.start()
    assert len(pods.ever_added) == target


def relayed_syncs(operator: Operator) -> float:
    return _metric(operator.metrics_port, "kubeplane_sync_duration_seconds_count", 'name="replicaset"')


def test_level_triggered_while_operator_down(controllers: Operator, namespace: str) -> None:
    apply(manifest(replicas=2), namespace)
    wait_status(namespace, "web", 2)
    controllers.stop()
    try:
        for pod in pods_of(namespace, "web"):
            kubectl("delete", "pod", pod["metadata"]["name"], "-n", namespace, "--wait=false")
        kubectl("scale", RS, "web", "-n", namespace, "--replicas=3")
    finally:
        controllers.start()
    wait_status(namespace, "web", 3)
    assert len(active(pods_of(namespace, "web"))) == 3
