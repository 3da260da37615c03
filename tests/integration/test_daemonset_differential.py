"""Differential: the same DaemonSet manifest as apps/v1 (kube-controller-manager) and as kubeplane, each on
nodes of its own (KWOK, the same shapes), compared step by step.

Compared: which of the side's nodes run a pod, the status counters, the pods' label keys, tolerations and
node-affinity shape, the revision numbers, how many pods were ever created and on which nodes pods were
deleted (from a watch), the worst number of nodes without a ready pod during a rolling update (replayed from
the watch's events), and the Events' reasons. Never uids, hashes or timestamps.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.integration import differential
from tests.integration.conftest import Operator, apply, kubectl, kubectl_json
from tests.integration.differential import Flavour, Side

UPSTREAM = Flavour("upstream", "apps/v1", "daemonsets.apps")
KUBEPLANE = Flavour("kubeplane", "apps.kubeplane.dev/v1alpha1", "daemonsets.apps.kubeplane.dev")
FLAVOURS = (UPSTREAM, KUBEPLANE)
COUNTERS = ("desiredNumberScheduled", "currentNumberScheduled", "numberMisscheduled", "numberReady",
            "updatedNumberScheduled", "numberAvailable", "numberUnavailable")


@contextmanager
def own_nodes(run: str) -> Iterator[dict[str, str]]:
    """Nodes a, b, c carry the run's label (c is also tainted NoSchedule); d does not."""
    names = {s: f"dsd-{run}-{s}" for s in "abcd"}
    try:
        for suffix, name in names.items():
            labels = {"type": "kwok", "kubernetes.io/hostname": name}
            if suffix != "d":
                labels["kubeplane-test/dsd"] = run
            taints = [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}] if suffix == "c" else []
            apply({"apiVersion": "v1", "kind": "Node",
                   "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"}, "labels": labels},
                   "spec": {"taints": taints},
                   "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                              "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}}})
        yield names
    finally:
        kubectl("delete", "node", *names.values(), "--wait=false", check=False)


def manifest(run: str, image: str, surge: bool = False) -> dict[str, Any]:
    strategy = {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}} \
        if surge else {}
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
            "spec": {**strategy, "selector": {"matchLabels": {"app": "agent"}},
                     "template": {"metadata": {"labels": {"app": "agent"}},
                                  "spec": {"nodeSelector": {"kubeplane-test/dsd": run},
                                           "automountServiceAccountToken": False,
                                           "containers": [{"name": "agent", "image": image}]}}}}


def settled(s: Side, desired: int, image: str) -> None:
    def done() -> bool:
        d = s.get("agent")
        status = d.get("status") or {}
        pods = [p for p in s.live_pods().values() if p["spec"].get("nodeName")]
        return (status.get("observedGeneration") == d["metadata"]["generation"]
                and all(status.get(k, 0) == desired for k in ("desiredNumberScheduled", "numberReady",
                                                             "updatedNumberScheduled", "numberAvailable"))
                and len(pods) == desired and all(p["spec"]["containers"][0]["image"] == image for p in pods))
    s.wait(done, f"{desired} updated pods on {image}")


def facts(s: Side, nodes: dict[str, str]) -> dict[str, Any]:
    role = {name: suffix for suffix, name in nodes.items()}
    status = s.status("agent")
    live = list(s.live_pods().values())
    revisions = kubectl_json("get", "controllerrevisions", "-n", s.namespace)["items"]
    went = gone(s, role)
    terms = [p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] for p in live]
    return {
        "status": {k: int(status.get(k) or 0) for k in COUNTERS},
        "nodes": sorted(role.get(p["spec"].get("nodeName", ""), "?") for p in live),
        "label_keys": sorted({k for p in live for k in p["metadata"]["labels"]}),
        "tolerations": sorted({(t.get("key", ""), t.get("effect", "")) for p in live
                               for t in p["spec"].get("tolerations") or []}),
        "affinity": sorted({str([[(r["key"], r["operator"], role.get(r["values"][0], "?")) for r in t["matchFields"]]
                                 for t in term["nodeSelectorTerms"]]) for term in terms}),
        "revisions": sorted(int(r["revision"]) for r in revisions),
        "created": s.created_count(),
        "gone": went,
        "events": events_settled(s, len(went)),
    }


def gone(s: Side, role: dict[str, str]) -> list[str]:
    """The nodes (a, b, c, d) of every pod deleted so far, from the watch: which pods went, exactly."""
    last: dict[str, dict[str, Any]] = {}
    deleted: set[str] = set()
    for kind, pod in list(s.pods.events):
        uid = pod["metadata"]["uid"]
        last[uid] = pod
        if kind == "DELETED" or pod["metadata"].get("deletionTimestamp"):
            deleted.add(uid)
    return sorted(role.get(last[uid]["spec"].get("nodeName", ""), "?") for uid in deleted)


def events_settled(s: Side, deleted: int) -> dict[str, int]:
    """The Events' reasons once there is a SuccessfulCreate for every pod the watch saw created (an Event is
    posted after the action it reports, so the pods can settle before it arrives).

    SuccessfulDelete is not compared as a count: kube-controller-manager's taint-eviction controller also
    deletes the pod on the NoExecute-tainted node, racing the DaemonSet controller, and a CI run recorded 8
    upstream for 7 pods gone. Compared instead: which pods went (`gone`, from the watch); and checked on each
    side: every one of the `deleted` pods gone is accounted for by an Event, the controller's SuccessfulDelete or the
    taint-eviction controller's TaintManagerEviction on the pod."""
    s.wait(lambda: s.event_reasons("agent")["SuccessfulCreate"] >= s.created_count(),
           "a SuccessfulCreate Event for every pod created")

    def accounted() -> bool:
        evicted = sum(1 for e in s.events.snapshot().values() if e.get("reason") == "TaintManagerEviction")
        return s.event_reasons("agent")["SuccessfulDelete"] + evicted >= deleted
    s.wait(accounted, f"a SuccessfulDelete or TaintManagerEviction Event for each of the {deleted} pods gone")
    return {r: n for r, n in s.event_reasons("agent").items() if r != "SuccessfulDelete"}


def worst_unavailable(s: Side, nodes: list[str], since: int) -> int:
    """Replay the pod events from index `since`: the most nodes without a ready pod at once."""
    state: dict[str, Any] = {}
    worst = 0
    for index, (kind, pod) in enumerate(list(s.pods.events)):
        if kind == "DELETED":
            state.pop(pod["metadata"]["uid"], None)
        else:
            state[pod["metadata"]["uid"]] = pod
        if index < since:
            continue
        ready = {p["spec"].get("nodeName") for p in state.values() if not p["metadata"].get("deletionTimestamp")
                 and any(c["type"] == "Ready" and c["status"] == "True"
                         for c in (p.get("status") or {}).get("conditions") or [])}
        worst = max(worst, sum(1 for n in nodes if n not in ready))
    return worst


def test_placement_rolling_update_rollback_and_taints(controllers: Operator) -> None:
    def scenario(s: Side) -> None:
        run = uuid.uuid4().hex[:6]
        with own_nodes(run) as nodes:
            s.apply_workload(manifest(run, "agent:1"))
            settled(s, 2, "agent:1")
            s.record("created", **facts(s, nodes))
            mark = len(s.pods.events)
            s.apply_workload(manifest(run, "agent:2"))
            settled(s, 2, "agent:2")
            s.record("rolled", worst=worst_unavailable(s, [nodes["a"], nodes["b"]], mark), **facts(s, nodes))
            s.apply_workload(manifest(run, "agent:1"))
            settled(s, 2, "agent:1")
            s.record("rolled back", **facts(s, nodes))
            # The taint that keeps new pods off c now also evicts: no NoExecute is tolerated.
            kubectl("taint", "node", nodes["b"], "dedicated=db:NoExecute")
            settled(s, 1, "agent:1")
            s.record("tainted", **facts(s, nodes))
            # A new label on d brings it in.
            kubectl("label", "node", nodes["d"], f"kubeplane-test/dsd={run}")
            settled(s, 2, "agent:1")
            s.record("labelled", **facts(s, nodes))
            # A rolling update with surge (maxSurge 1, maxUnavailable 0): a new pod beside each old one, the
            # old one gone once the new is available; no node is ever without a ready pod.
            mark = len(s.pods.events)
            s.apply_workload(manifest(run, "agent:3", surge=True))
            settled(s, 2, "agent:3")
            s.record("surged", worst=worst_unavailable(s, [nodes["a"], nodes["d"]], mark), **facts(s, nodes))
    differential.assert_same(differential.run(scenario, FLAVOURS))
