"""kubeplane's DaemonSet (apps.kubeplane.dev) on the embedded cluster: a pod on every fitting KWOK node,
bound by the cluster's scheduler through the matchFields term; nodes added, tainted NoExecute and
relabelled; a rolling update within maxUnavailable counted from a watch of every pod; a rollback that
reuses the old ControllerRevision without restarting a pod; refused specs."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.integration.conftest import ENV, Operator, apply, kubectl, kubectl_json, wait_for
from tests.watch import Watch

KPDS = "daemonsets.apps.kubeplane.dev"
HASH = "controller-revision-hash"


@pytest.fixture
def nodes() -> Iterator[Callable[..., str]]:
    """KWOK nodes carrying this test's label (the DaemonSet selects them by it); deleted after."""
    run = uuid.uuid4().hex[:6]
    created: list[str] = []

    def make(suffix: str) -> str:
        name = f"ds-{run}-{suffix}"
        apply({"apiVersion": "v1", "kind": "Node",
               "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"},
                            "labels": {"type": "kwok", "kubernetes.io/hostname": name, "kubeplane-test/ds": run}},
               "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                          "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}}})
        created.append(name)
        return name

    make.run = run  # type: ignore[attr-defined]
    yield make
    if created:
        kubectl("delete", "node", *created, "--wait=false", check=False)


def manifest(run: str, image: str = "agent:1", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps.kubeplane.dev/v1alpha1", "kind": "DaemonSet", "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "template": {"metadata": {"labels": {"app": "agent"}},
                                  "spec": {"nodeSelector": {"kubeplane-test/ds": run},
                                           "automountServiceAccountToken": False,
                                           "containers": [{"name": "agent", "image": image}]}},
                     **spec}}


def daemonset(namespace: str) -> Any:
    return kubectl_json("-n", namespace, "get", KPDS, "agent")


def live_pods(namespace: str) -> list[Any]:
    items: list[Any] = kubectl_json("-n", namespace, "get", "pods", "-l", "app=agent")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def settled(namespace: str, desired: int) -> Any:
    """Until every desired node runs one ready, updated pod and the status says so."""
    def check() -> Any:
        status = (d := daemonset(namespace)).get("status") or {}
        pods = live_pods(namespace)
        done = (status.get("observedGeneration") == d["metadata"]["generation"]
                and (status.get("desiredNumberScheduled"), status.get("numberReady"),
                     status.get("updatedNumberScheduled"), status.get("numberAvailable")) == (desired,) * 4
                and len(pods) == desired and all(p["spec"].get("nodeName") for p in pods))
        return d if done else None
    return wait_for(check, timeout=90, what=f"{desired} ready, updated daemon pods")


def revisions(namespace: str) -> list[Any]:
    items: list[Any] = kubectl_json("-n", namespace, "get", "controllerrevisions")["items"]
    return sorted(items, key=lambda r: r["revision"])


def test_a_pod_per_fitting_node_following_the_nodes(controllers: Operator, namespace: str,
                                                   nodes: Callable[..., str]) -> None:
    run = nodes.run  # type: ignore[attr-defined]
    first, second = nodes("a"), nodes("b")
    apply(manifest(run), namespace)
    d = settled(namespace, 2)
    by_node = {p["spec"]["nodeName"]: p for p in live_pods(namespace)}
    assert sorted(by_node) == [first, second]
    (revision,) = revisions(namespace)
    assert revision["revision"] == 1 and revision["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"]
    for name, pod in by_node.items():
        assert pod["metadata"]["generateName"] == "agent-"
        assert pod["metadata"]["labels"][HASH] == revision["metadata"]["labels"][HASH]
        assert pod["metadata"]["labels"]["pod-template-generation"] == str(d["metadata"]["generation"])
        term = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert term == {"nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": [name]}]}]}
        keys = {t["key"] for t in pod["spec"]["tolerations"]}
        assert {"node.kubernetes.io/not-ready", "node.kubernetes.io/unschedulable"} <= keys
    # A new node gets its pod; a NoExecute taint takes it away; a relabelled node loses it too.
    third = nodes("c")
    settled(namespace, 3)
    kubectl("taint", "node", third, "dedicated=db:NoExecute")
    settled(namespace, 2)
    assert third not in {p["spec"]["nodeName"] for p in live_pods(namespace)}
    kubectl("label", "node", second, "kubeplane-test/ds-")
    settled(namespace, 1)
    assert [p["spec"]["nodeName"] for p in live_pods(namespace)] == [first]

    # Why each node runs no pod: status per reason, `kubeplane explain` per node (every other node of the
    # cluster lacks the label too).
    def counted() -> bool:
        unlabelled = sum(1 for n in kubectl_json("get", "nodes")["items"]
                         if (n["metadata"].get("labels") or {}).get("kubeplane-test/ds") != run)
        excluded = daemonset(namespace)["status"].get("excludedNodes")
        return bool(excluded == {"nodeName": 0, "nodeSelector": unlabelled, "nodeAffinity": 0, "taints": 1})
    wait_for(counted, what="excludedNodes: every unlabelled node by its selector, the tainted one by taints")
    explained = json.loads(kubectl("kubeplane", "explain", "daemonset/agent", "-n", namespace, "-o", "json").stdout)
    ours = {n: e for n, e in explained["nodes"].items() if n in (first, second, third)}
    assert ours[first]["shouldRun"] and ours[first]["pods"] and ours[first]["reason"] == ""
    assert ours[second]["excludedBy"] == "nodeSelector" and ours[second]["reason"] == \
        f"node(s) didn't match Pod's node affinity/selector (nodeSelector kubeplane-test/ds={run})"
    assert ours[third]["excludedBy"] == "taints" and \
        ours[third]["reason"] == "node(s) had untolerated taint(s) (dedicated=db:NoExecute)", ours[third]
    table = kubectl("kubeplane", "explain", "daemonset/agent", "-n", namespace).stdout
    assert table.startswith(f"DaemonSet {namespace}/agent: ") and "taints 1" in table.splitlines()[0], table


def test_rolling_update_within_max_unavailable_then_a_rollback_restarts_nothing(
        controllers: Operator, namespace: str, nodes: Callable[..., str]) -> None:
    """Three nodes, maxUnavailable 1: from a watch of every pod, at no moment were two nodes without a
    ready pod of either template; `kubeplane rollout status` says it rolled out. Then OnDelete, a new
    template, and `kubeplane rollout undo --to-revision=2`: the old revision is renumbered and reused,
    and no pod was deleted."""
    run = nodes.run  # type: ignore[attr-defined]
    names = [nodes(s) for s in "abc"]
    apply(manifest(run), namespace)
    settled(namespace, 3)
    with Watch(ENV, f"/api/v1/namespaces/{namespace}/pods") as pods:
        before = {p["metadata"]["uid"] for p in live_pods(namespace)}
        apply(manifest(run, image="agent:2"), namespace)
        pods.wait(lambda w: [p["spec"]["containers"][0]["image"] for p in w.current.values()
                             if not p["metadata"].get("deletionTimestamp")] == ["agent:2"] * 3,
                  timeout=120, what="every pod on agent:2")
        settled(namespace, 3)
        events = list(pods.events)
        done = kubectl("kubeplane", "rollout", "status", "daemonset/agent", "-n", namespace, "--timeout=30")
        assert done.stdout.strip() == 'daemon set "agent" successfully rolled out', done.stdout
        assert len(pods.ever_added) == 6, "three replaced pods, no more"
    assert not before & {p["metadata"]["uid"] for p in live_pods(namespace)}
    # Replay every pod event: after each, how many of the nodes had no ready pod that is not being deleted
    # (from the moment the watch's initial list has shown the three ready pods).
    state: dict[str, Any] = {}
    worst = 0
    for kind, pod in events:
        if kind == "DELETED":
            state.pop(pod["metadata"]["uid"], None)
        else:
            state[pod["metadata"]["uid"]] = pod
        if not before <= set(state):
            continue
        ready = {p["spec"].get("nodeName") for p in state.values() if not p["metadata"].get("deletionTimestamp")
                 and any(c["type"] == "Ready" and c["status"] == "True"
                         for c in (p.get("status") or {}).get("conditions") or [])}
        worst = max(worst, sum(1 for n in names if n not in ready))
    assert worst == 1, f"{worst} nodes were without a ready pod at once (maxUnavailable 1)"
    assert [r["revision"] for r in revisions(namespace)] == [1, 2]

    # OnDelete: a new template changes no pod; going back to it reuses revision 2 as revision 4.
    kubectl("-n", namespace, "patch", KPDS, "agent", "--type=merge",
            "-p", '{"spec":{"updateStrategy":{"type":"OnDelete","rollingUpdate":null}}}')
    current = {p["metadata"]["uid"] for p in live_pods(namespace)}
    apply(manifest(run, image="agent:3", updateStrategy={"type": "OnDelete"}), namespace)
    wait_for(lambda: len(revisions(namespace)) == 3
             and daemonset(namespace)["status"].get("updatedNumberScheduled") == 0, what="revision 3, no pod updated")
    history = kubectl("kubeplane", "rollout", "history", "daemonset/agent", "-n", namespace).stdout.splitlines()
    assert [line.split()[0] for line in history[2:] if line.strip()] == ["1", "2", "3"], history
    undo = kubectl("kubeplane", "rollout", "undo", "daemonset/agent", "--to-revision=2", "-n", namespace)
    assert undo.stdout.strip() == "daemonset.apps.kubeplane.dev/agent rolled back"
    settled(namespace, 3)
    assert {p["metadata"]["uid"] for p in live_pods(namespace)} == current, "a pod was restarted"
    by_image = {r["data"]["spec"]["template"]["spec"]["containers"][0]["image"]: r["revision"]
                for r in revisions(namespace)}
    assert by_image == {"agent:1": 1, "agent:3": 3, "agent:2": 4}


def test_bad_specs_are_refused(cluster: Any, namespace: str) -> None:
    mismatch = manifest("x")
    mismatch["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    out = apply(mismatch, namespace, check=False)
    assert out.returncode != 0 and "must match spec.template.metadata.labels" in out.stderr, out.stderr
    zero = manifest("x", updateStrategy={"type": "RollingUpdate",
                                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}})
    out = apply(zero, namespace, check=False)
    assert out.returncode != 0 and "may not be 0 when `maxSurge` is 0" in out.stderr, out.stderr
    never = manifest("x")
    never["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    out = apply(never, namespace, check=False)
    assert out.returncode != 0 and 'only "Always" is supported' in out.stderr, out.stderr
