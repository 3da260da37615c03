"""The DaemonSet's decisions (operators/controllers/daemonset/logic.py), as facts from upstream's
daemon_controller.go, update.go and util/daemonset_util.go (Kubernetes 1.34) and their tests
(TestNodeShouldRunDaemonPod, TestReplaceDaemonSetPodNodeNameNodeAffinity, the rolling-update cases)."""

from __future__ import annotations

from typing import Any

import pytest

from operators.controllers.daemonset import logic
from operators.core.apis import DAEMONSETS
from tests.unit.factories import NOW, ago

UID = "ds-uid"
HASH = "new"


def ds(*, strategy: dict[str, Any] | None = None, min_ready: int = 0, generation: int = 2,
       **pod_spec: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "agent"}},
        "template": {"metadata": {"labels": {"app": "agent"}},
                     "spec": {"containers": [{"name": "c", "image": "agent:1"}], **pod_spec}},
        "minReadySeconds": min_ready,
    }
    if strategy is not None:
        spec["updateStrategy"] = strategy
    return {"apiVersion": DAEMONSETS.api_version, "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "ns", "uid": UID, "generation": generation},
            "spec": spec, "status": {}}


def node(name: str, labels: dict[str, str] | None = None, taints: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"taints": taints or []}}


def pod(name: str, on: str, *, hash_: str = HASH, phase: str = "Running", ready: bool = True, bound: bool = True,
        created: float = 100, deleting: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [on]}]}]}}}}
    if bound:
        spec["nodeName"] = on
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "creationTimestamp": ago(created),
                            "labels": {"app": "agent", logic.HASH_LABEL: hash_}}
    if deleting:
        meta["deletionTimestamp"] = ago(1)
    return {"metadata": meta, "spec": spec,
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                                       "lastTransitionTime": ago(60)}]}}


def plan(d: dict[str, Any], nodes: list[dict[str, Any]], pods: list[dict[str, Any]], *, satisfied: bool = True,
         backoff: dict[str, float] | None = None) -> logic.Plan:
    return logic.plan(logic.Observed(ds=d, nodes=nodes, pods=pods, hash=HASH, expectations_satisfied=satisfied,
                                     now=NOW, backoff=backoff or {}))


def names(pods: tuple[dict[str, Any], ...]) -> list[str]:
    return sorted(p["metadata"]["name"] for p in pods)


# --- NodeShouldRunDaemonPod -----------------------------------------------------------------------------

NO_SCHEDULE = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
NO_EXECUTE = {"key": "dedicated", "value": "db", "effect": "NoExecute"}
TOLERATE = [{"key": "dedicated", "operator": "Equal", "value": "db"}]


@pytest.mark.parametrize(("d", "n", "want"), [
    (ds(), node("n1"), (True, True)),
    (ds(nodeSelector={"disk": "ssd"}), node("n1"), (False, False)),
    (ds(nodeSelector={"disk": "ssd"}), node("n1", {"disk": "ssd"}), (True, True)),
    (ds(nodeName="n2"), node("n1"), (False, False)),
    (ds(nodeName="n1"), node("n1"), (True, True)),
    # An untolerated NoSchedule taint: no new pod, an existing one stays; NoExecute: it goes too.
    (ds(), node("n1", taints=[NO_SCHEDULE]), (False, True)),
    (ds(), node("n1", taints=[NO_EXECUTE]), (False, False)),
    (ds(tolerations=TOLERATE), node("n1", taints=[NO_SCHEDULE, NO_EXECUTE]), (True, True)),
    (ds(), node("n1", taints=[{"key": "soft", "effect": "PreferNoSchedule"}]), (True, True)),
    # The daemon tolerations: cordoned, not ready, unreachable, pressure.
    (ds(), node("n1", taints=[{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]), (True, True)),
    (ds(), node("n1", taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]), (True, True)),
    (ds(), node("n1", taints=[{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]), (True, True)),
    (ds(), node("n1", taints=[{"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}]), (True, True)),
    # network-unavailable is tolerated only by host-network pods.
    (ds(), node("n1", taints=[{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]),
     (False, True)),
    (ds(hostNetwork=True), node("n1", taints=[{"key": "node.kubernetes.io/network-unavailable",
                                               "effect": "NoSchedule"}]), (True, True)),
    # Required node affinity, as the scheduler reads it.
    (ds(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}}), node("n1", {"zone": "b"}),
     (False, False)),
    (ds(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}}), node("n1"),
     (True, True)),
])
def test_node_should_run_daemon_pod(d: dict[str, Any], n: dict[str, Any], want: tuple[bool, bool]) -> None:
    assert logic.should_run(n, d) == want


def test_daemon_tolerations_are_added_once_and_replace_a_matching_one() -> None:
    spec = {"tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                             "tolerationSeconds": 300}, {"key": "mine", "operator": "Exists"}]}
    got = logic.with_daemon_tolerations(spec)
    assert len(got) == 7 and {"key": "mine", "operator": "Exists"} in got
    assert {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"} in got
    assert not any("tolerationSeconds" in t for t in got)


# --- the pod ----------------------------------------------------------------------------------------------

def test_the_pod_is_unbound_with_its_node_as_a_match_fields_term() -> None:
    """ReplaceDaemonSetPodNodeNameNodeAffinity: required terms replaced, preferred kept."""
    preferred = [{"weight": 1, "preference": {"matchExpressions": [{"key": "a", "operator": "Exists"}]}}]
    d = ds(affinity={"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]},
        "preferredDuringSchedulingIgnoredDuringExecution": preferred}})
    body = logic.pod_for_node(d, DAEMONSETS, "n7", "h1")
    affinity = body["spec"]["affinity"]["nodeAffinity"]
    assert affinity["requiredDuringSchedulingIgnoredDuringExecution"] == {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n7"]}]}]}
    assert affinity["preferredDuringSchedulingIgnoredDuringExecution"] == preferred
    assert "nodeName" not in body["spec"]
    assert body["metadata"]["labels"] == {"app": "agent", logic.HASH_LABEL: "h1", logic.GENERATION_LABEL: "2"}
    assert body["metadata"]["generateName"] == "agent-"
    assert body["metadata"]["ownerReferences"][0]["uid"] == UID
    assert logic.target_node(body) == "n7"
    # The template itself is untouched.
    assert "matchFields" not in str(d["spec"]["template"])


def test_template_generation_prefers_apps_v1s_annotation() -> None:
    d = ds(generation=9)
    assert logic.template_generation(d) == 9
    d["metadata"]["annotations"] = {logic.TEMPLATE_GENERATION: "4"}
    assert logic.template_generation(d) == 4


# --- manage (podsShouldBeOnNode) -----------------------------------------------------------------------------

def test_a_pod_for_every_node_that_should_run_one() -> None:
    nodes = [node("n1"), node("n2", {"disk": "hdd"}), node("n3", taints=[NO_SCHEDULE])]
    p = plan(ds(), nodes, [pod("a-1", "n1")])
    assert p.create == ("n2",) and not p.delete
    assert plan(ds(nodeSelector={"disk": "hdd"}), nodes, []).create == ("n2",)


def test_pods_where_none_may_stay_are_deleted() -> None:
    nodes = [node("n1", taints=[NO_EXECUTE]), node("n2", {"disk": "ssd"})]
    p = plan(ds(nodeSelector={"disk": "ssd"}), [*nodes, node("n3")], [pod("a-1", "n1"), pod("a-3", "n3")])
    assert names(p.delete) == ["a-1", "a-3"] and p.create == ("n2",)
    # A NoSchedule taint keeps no new pod off... but lets the existing one stay.
    assert not plan(ds(), [node("n1", taints=[NO_SCHEDULE])], [pod("a-1", "n1")]).delete


def test_duplicates_keep_the_oldest_bound_pod() -> None:
    pods = [pod("young", "n1", created=10), pod("old", "n1", created=500), pod("unbound", "n1", bound=False,
                                                                                created=900)]
    assert names(plan(ds(), [node("n1")], pods).delete) == ["unbound", "young"]


def test_a_failed_pod_is_deleted_with_an_event_unless_its_node_is_in_backoff() -> None:
    failed = pod("a-1", "n1", phase="Failed")
    p = plan(ds(), [node("n1")], [failed])
    assert names(p.delete) == ["a-1"] and p.backoff == ("n1",)
    assert [(e.type, e.reason, e.message) for e in p.events] == [
        ("Warning", "FailedDaemonPod", "Found failed daemon pod ns/a-1 on node n1, will try to kill it")]
    held = plan(ds(), [node("n1")], [failed], backoff={"n1": 4.0})
    assert not held.delete and not held.create and held.requeue == 4.0
    done = plan(ds(), [node("n1")], [pod("a-2", "n1", phase="Succeeded")])
    assert names(done.delete) == ["a-2"] and done.events[0].reason == "SucceededDaemonPod"


def test_unscheduled_pods_of_a_vanished_node_are_deleted() -> None:
    pods = [pod("gone-unbound", "n9", bound=False), pod("gone-bound", "n8")]
    assert names(plan(ds(), [node("n1")], [pod("a-1", "n1"), *pods]).delete) == ["gone-unbound"]


def test_only_status_while_expectations_wait() -> None:
    p = plan(ds(), [node("n1"), node("n2")], [pod("a-1", "n1")], satisfied=False)
    assert not p.create and not p.delete and p.status["desiredNumberScheduled"] == 2
    assert "observedGeneration" not in p.status


def test_selecting_everything_is_refused_with_an_event() -> None:
    d = ds()
    d["spec"]["selector"] = {}
    p = plan(d, [node("n1")], [])
    assert p.selecting_all and not p.create and p.events[0].reason == "SelectingAll"


# --- rolling update ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("rolling", "desired", "want"), [
    ({}, 5, (0, 1)), ({"maxUnavailable": "10%"}, 15, (0, 2)), ({"maxUnavailable": "50%", "maxSurge": 0}, 3, (0, 2)),
    ({"maxUnavailable": 0, "maxSurge": "34%"}, 3, (2, 0)), ({"maxUnavailable": 0, "maxSurge": 0}, 3, (0, 1)),
    ({"maxUnavailable": 0, "maxSurge": 0}, 0, (0, 0)),
])
def test_surge_and_unavailable_round_up(rolling: dict[str, Any], desired: int, want: tuple[int, int]) -> None:
    d = ds(strategy={"type": "RollingUpdate", "rollingUpdate": rolling})
    assert logic.surge_and_unavailable(d, desired) == want
    assert logic.surge_and_unavailable(ds(strategy={"type": "OnDelete"}), desired) == (0, 0)


NODES = [node("n1"), node("n2"), node("n3"), node("n4")]


def test_without_surge_old_pods_go_within_max_unavailable() -> None:
    d = ds(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}})
    old = [pod(f"old-{i}", f"n{i}", hash_="old") for i in range(1, 5)]
    assert len(plan(d, NODES, old).delete) == 2
    # A new pod not yet available counts against the budget.
    mixed = [pod("new-1", "n1", ready=False), *old[1:]]
    assert names(plan(d, NODES, mixed).delete) == ["old-2"]
    # An unavailable old pod is replaced whatever the budget.
    broken = [pod("new-1", "n1", ready=False), pod("new-2", "n2", ready=False), pod("old-3", "n3", hash_="old",
                                                                                     ready=False), old[3]]
    assert names(plan(d, NODES, broken).delete) == ["old-3"]


def test_on_delete_never_deletes_an_old_pod() -> None:
    old = [pod(f"old-{i}", f"n{i}", hash_="old") for i in range(1, 5)]
    assert not plan(ds(strategy={"type": "OnDelete"}), NODES, old).delete


def test_with_surge_a_new_pod_comes_beside_the_old_which_goes_once_it_is_available() -> None:
    d = ds(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}})
    old = [pod(f"old-{i}", f"n{i}", hash_="old") for i in range(1, 5)]
    first = plan(d, NODES, old)
    assert first.create == ("n1",) and not first.delete
    waiting = plan(d, NODES, [*old, pod("new-1", "n1", ready=False, created=5)])
    assert not waiting.create and not waiting.delete
    ready = plan(d, NODES, [*old, pod("new-1", "n1", created=5)])
    assert names(ready.delete) == ["old-1"]


def test_manage_runs_before_the_rolling_update() -> None:
    d = ds(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 4}})
    p = plan(d, [*NODES, node("n5")], [pod(f"old-{i}", f"n{i}", hash_="old") for i in range(1, 5)])
    assert p.create == ("n5",) and not p.delete


# --- status ------------------------------------------------------------------------------------------------

def test_status_counts_the_oldest_pod_per_node() -> None:
    d = ds(min_ready=30)
    pods = [pod("a-1", "n1"), pod("a-2", "n2", hash_="old"), pod("a-3", "n3", ready=False),
            pod("stray", "n5")]
    nodes = [*NODES, node("n5", taints=[NO_SCHEDULE, NO_EXECUTE])]
    p = plan(d, nodes, pods)
    assert {k: v for k, v in p.status.items()} == {
        "desiredNumberScheduled": 4, "currentNumberScheduled": 3, "numberMisscheduled": 1, "numberReady": 2,
        "updatedNumberScheduled": 2, "numberAvailable": 2, "numberUnavailable": 2, "observedGeneration": 2}
    # Ready for 10 s of the 30 s minReadySeconds: ready, not available, looked at again after 30 s.
    young = pod("b-1", "n1", created=12)
    young["status"]["conditions"][0]["lastTransitionTime"] = ago(10)
    fresh = plan(d, NODES[:1], [young])
    assert (fresh.status["numberReady"], fresh.status["numberAvailable"], fresh.requeue) == (1, 0, 30.0)
    assert plan(d, NODES[:1], [pod("b-1", "n1")]).requeue is None


# --- the failed-pod backoff (flowcontrol.Backoff, 1 s doubling to 15 minutes) ---------------------------------

def test_failed_pod_backoff_doubles_and_starts_over_after_twice_the_maximum() -> None:
    from operators.controllers.daemonset.controller import Backoff
    b = Backoff()
    assert b.in_backoff("k", 0.0) is None
    b.step("k", 0.0)
    assert b.in_backoff("k", 0.5) == 1.0 and b.in_backoff("k", 1.0) is None
    b.step("k", 1.0)
    b.step("k", 3.0)
    assert b.in_backoff("k", 3.1) == 4.0
    for t in range(4, 20):
        b.step("k", float(t))
    assert b.entries["k"][0] == 900.0  # capped at 15 minutes
    b.step("k", 19.0 + 2 * 900 + 1)
    assert b.entries["k"][0] == 1.0


# --- `kubeplane rollout status daemonset/NAME` (DaemonSetStatusViewer) ---------------------------------------

@pytest.mark.parametrize(("status", "generation", "want"), [
    ({"observedGeneration": 1}, 2, ("Waiting for daemon set spec update to be observed...", False)),
    ({"observedGeneration": 2, "desiredNumberScheduled": 3, "updatedNumberScheduled": 1, "numberAvailable": 3}, 2,
     ('Waiting for daemon set "agent" rollout to finish: 1 out of 3 new pods have been updated...', False)),
    ({"observedGeneration": 2, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 2}, 2,
     ('Waiting for daemon set "agent" rollout to finish: 2 of 3 updated pods are available...', False)),
    ({"observedGeneration": 2, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 3}, 2,
     ('daemon set "agent" successfully rolled out', True)),
])
def test_rollout_status_messages(status: dict[str, Any], generation: int, want: tuple[str, bool]) -> None:
    from operators.cli.rollout import ds_status_message
    d = ds(generation=generation)
    d["status"] = status
    assert ds_status_message(d) == want


def test_rollout_status_refuses_on_delete() -> None:
    import click

    from operators.cli.rollout import ds_status_message
    with pytest.raises(click.ClickException, match="only available for RollingUpdate"):
        ds_status_message(ds(strategy={"type": "OnDelete"}))


def test_each_exclusion_is_named_in_upstreams_order_and_counted() -> None:
    d = ds(nodeSelector={"role": "edge"}, affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}})
    fits = node("fits", {"role": "edge", "zone": "a"})
    unlabelled = node("unlabelled", {"zone": "a"})
    elsewhere = node("elsewhere", {"role": "edge", "zone": "b"})
    noschedule = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    tainted = node("tainted", {"role": "edge", "zone": "a"}, taints=[noschedule])
    # A node failing both the selector and a taint is counted once, by the first check (the selector).
    both = node("both", {"zone": "a"}, taints=[noschedule])
    decisions = {n["metadata"]["name"]: logic.decide(n, d) for n in (fits, unlabelled, elsewhere, tainted, both)}
    assert decisions["fits"] == logic.Decision(True, True)
    assert decisions["unlabelled"].excluded == logic.NODE_SELECTOR
    assert decisions["elsewhere"].excluded == logic.NODE_AFFINITY
    assert decisions["tainted"] == logic.Decision(False, True, logic.TAINTS, noschedule)  # NoSchedule: a pod may stay
    assert decisions["both"].excluded == logic.NODE_SELECTOR
    assert logic.decide(fits, ds(nodeName="other")).excluded == logic.NODE_NAME
    assert logic.excluded_nodes(decisions) == {"nodeName": 0, "nodeSelector": 2, "nodeAffinity": 1, "taints": 1}
    assert plan(d, [fits, unlabelled, elsewhere, tainted, both], []).excluded == logic.excluded_nodes(decisions)
