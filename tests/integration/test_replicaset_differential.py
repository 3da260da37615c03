"""The kubeplane ReplicaSet against kube-controller-manager's, scenario by scenario (differential.py).

Each scenario runs once as apps/v1 and once as apps.kubeplane.dev/v1alpha1, in namespaces of their
own, and what could differ is compared step by step: which pods survive a scale-down of adopted
orphans that differ in node, readiness, restarts, deletion cost and ready time; the condition and
events under an exhausted quota; what a relabelled pod's release leaves; the ownerReferences after
an orphaning delete; and how many pods were ever created (from a watch).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.integration import differential
from tests.integration.conftest import Operator
from tests.integration.differential import KUBEPLANE_RS, UPSTREAM_RS, Side

FLAVOURS = (UPSTREAM_RS, KUBEPLANE_RS)
COST = "controller.kubernetes.io/pod-deletion-cost"


def replicaset(replicas: int, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "registry.local/web:1"}]}},
            **spec,
        },
    }


def settled(s: Side, replicas: int) -> bool:
    """The set's status is current and counts `replicas`, and exactly that many active pods are its own."""
    rs = s.get("web")
    status = rs.get("status") or {}
    owned = [n for n, o in s.owners().items() if o == ["ReplicaSet/web"] and n in s.active_pods()]
    return (status.get("observedGeneration") == rs["metadata"]["generation"]
            and status.get("replicas", 0) == replicas and len(owned) == replicas)


def wait_settled(s: Side, replicas: int) -> None:
    s.wait(lambda: settled(s, replicas), what=f"the set settled at {replicas}")


# --- adoption, then ranked scale-downs -----------------------------------------------------------

def _ago(hours: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


# name: (node, ready, ready for hours, restarts, deletion cost). Ready ages are powers of 4 hours,
# two log2 buckets apart, so no pair falls to upstream's uid tie-break (uids differ between the runs);
# not-ready pairs differ in restarts. The node column differs from what rank-by-node-sharing would
# pick: kube-controller-manager does not rank a bare ReplicaSet's pods by node.
ORPHANS: dict[str, tuple[str, bool, float, int, int]] = {
    "not-ready": ("kwok-node-0", False, 4, 0, 0),
    "not-ready-restarts": ("kwok-node-0", False, 4, 4, 0),
    "cheap": ("kwok-node-1", True, 16, 0, -5),
    "young": ("kwok-node-1", True, 1, 0, 0),
    "doubled-a": ("kwok-node-2", True, 4, 0, 0),
    "old": ("kwok-node-2", True, 64, 0, 0),
    "doubled-b": ("kwok-node-2", True, 256, 0, 0),
}


def make_orphans(s: Side) -> None:
    # One pod no scheduler will place: unassigned pods go first.
    s.apply({"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": "unbound", "labels": {"app": "web"}},
             "spec": {"schedulerName": "nobody", "containers": [{"name": "c", "image": "registry.local/web:1"}]}})
    for name, (node, _, _, _, cost) in ORPHANS.items():
        meta: dict[str, Any] = {"name": name, "labels": {"app": "web"}}
        if cost:
            meta["annotations"] = {COST: str(cost)}
        s.apply({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                 "spec": {"nodeName": node, "containers": [{"name": "c", "image": "registry.local/web:1"}]}})
    s.wait(lambda: all((p.get("status") or {}).get("phase") == "Running"
                       for n, p in s.live_pods().items() if n in ORPHANS) and len(s.live_pods()) == 8,
           what="the orphans running")
    for name, (_, ready, hours, restarts, _) in ORPHANS.items():
        since = _ago(hours)
        patch = {"status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": since}],
            "containerStatuses": [{"name": "c", "restartCount": restarts, "ready": ready, "started": True,
                                   "image": "registry.local/web:1", "imageID": "",
                                   "state": {"running": {"startedAt": since}}}],
        }}
        s.kubectl("patch", "pod", name, "--subresource=status", "--type=strategic", "-p", json.dumps(patch))
    def patched(name: str) -> bool:
        _, ready, _, restarts, _ = ORPHANS[name]
        status = s.live_pods()[name].get("status") or {}
        condition = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        counts = [c.get("restartCount") for c in status.get("containerStatuses") or []]
        return condition.get("status") == ("True" if ready else "False") and counts == [restarts]
    s.wait(lambda: all(patched(n) for n in ORPHANS), what="the orphans' status as patched")


def adoption_then_scale_down(s: Side) -> None:
    make_orphans(s)
    s.apply_workload(replicaset(8))
    s.wait(lambda: all(o == ["ReplicaSet/web"] for o in s.owners().values()) and settled(s, 8),
           what="all eight orphans adopted")
    s.record("adopted", owners=s.owners(), created=s.created_count(), events=s.event_reasons("web"))
    for replicas in (3, 1):
        s.kubectl("scale", s.flavour.resource, "web", f"--replicas={replicas}")
        wait_settled(s, replicas)
        # Events are posted after the deletes, asynchronously: one per deleted pod, on both sides.
        s.wait(lambda r=replicas: s.event_reasons("web")["SuccessfulDelete"] >= 8 - r, what="the delete events")
        s.record(f"scaled to {replicas}", survivors=sorted(s.active_pods()), created=s.created_count(),
                 events=s.event_reasons("web"))


def test_adoption_and_scale_down_keep_the_same_pods(controllers: Operator) -> None:
    results = differential.run(adoption_then_scale_down, FLAVOURS)
    differential.assert_same(results)
    # Not vacuous: the ranking decided, as upstream documents it.
    facts = dict(results["upstream"])
    assert facts["scaled to 3"]["survivors"] == ["doubled-a", "doubled-b", "old"]
    assert facts["scaled to 1"]["survivors"] == ["doubled-b"]
    assert facts["adopted"]["created"] == 8  # the eight orphans; the set created none


# --- quota -----------------------------------------------------------------------------------------

def exhausted_quota(s: Side) -> None:
    s.apply({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "two-pods"},
             "spec": {"hard": {"pods": "2"}}})
    s.wait(lambda: (s.get("two-pods", "resourcequota").get("status") or {}).get("hard"), what="quota ready")
    s.apply_workload(replicaset(4))
    s.wait(lambda: any(c[0] == "ReplicaFailure" for c in s.conditions("web")) and len(s.active_pods()) == 2,
           what="ReplicaFailure with two pods")
    s.wait(lambda: s.event_reasons("web")["FailedCreate"] >= 1 and s.event_reasons("web")["SuccessfulCreate"] >= 2,
           what="the create and FailedCreate events")
    s.record("quota exhausted", conditions=s.conditions("web"), pods=len(s.active_pods()),
             created=s.created_count(), event_kinds=sorted(s.event_reasons("web")),
             failed_create_messages=s.event_messages("web", "FailedCreate"),
             status={k: s.status("web").get(k, 0) for k in ("replicas", "readyReplicas", "availableReplicas")})
    s.kubectl("delete", "resourcequota", "two-pods")
    s.wait(lambda: settled(s, 4) and not s.conditions("web"), what="four pods and no condition", timeout=180)
    s.record("quota removed", conditions=s.conditions("web"), pods=len(s.active_pods()), created=s.created_count())


def test_quota_exhaustion_reports_the_same_failure(controllers: Operator) -> None:
    results = differential.run(exhausted_quota, FLAVOURS)
    differential.assert_same(results)
    [condition] = dict(results["upstream"])["quota exhausted"]["conditions"]
    assert condition[:3] == ["ReplicaFailure", "True", "FailedCreate"]
    assert "exceeded quota" in condition[3]


# --- release --------------------------------------------------------------------------------------

def relabel_releases(s: Side) -> None:
    s.apply_workload(replicaset(2))
    wait_settled(s, 2)
    stray = sorted(s.active_pods())[0]
    s.kubectl("label", "pod", stray, "app=elsewhere", "--overwrite")
    s.wait(lambda: stray in s.live_pods() and not s.owners()[stray] and settled(s, 2)
           and len(s.active_pods()) == 3, what="the stray released and replaced")
    s.wait(lambda: s.event_reasons("web")["SuccessfulCreate"] >= 3, what="the create events")
    s.record("released", stray_owner=s.owners()[stray], created=s.created_count(),
             owned=sum(1 for o in s.owners().values() if o == ["ReplicaSet/web"]),
             events=s.event_reasons("web"))


def test_a_relabelled_pod_is_released_and_replaced(controllers: Operator) -> None:
    results = differential.run(relabel_releases, FLAVOURS)
    differential.assert_same(results)
    assert dict(results["upstream"])["released"]["created"] == 3


# --- orphaning delete -----------------------------------------------------------------------------

def orphaning_delete(s: Side) -> None:
    s.apply_workload(replicaset(3))
    wait_settled(s, 3)
    s.kubectl("delete", s.flavour.resource, "web", "--cascade=orphan", "--wait=true")
    s.wait(lambda: len(s.live_pods()) == 3 and not any(s.owners().values()), what="pods orphaned")
    s.record("orphaned", owners=s.ownership(), pods=len(s.live_pods()), created=s.created_count())
    # Recreated, the set adopts them again rather than creating any.
    s.apply_workload(replicaset(3))
    s.wait(lambda: all(o == ["ReplicaSet/web"] for o in s.owners().values()) and settled(s, 3),
           what="readopted")
    s.record("readopted", owners=s.ownership(), created=s.created_count())


def test_an_orphaning_delete_leaves_the_same_pods(controllers: Operator) -> None:
    differential.assert_same(differential.run(orphaning_delete, FLAVOURS))
