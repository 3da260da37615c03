"""The ReplicaSet's pure decisions (logic.plan), including each deviation from upstream fixed in
the runtime rework: each `test_upstream_*` failed on the previous implementation."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from operators.controllers.common import ownership
from operators.controllers.replicaset import logic
from operators.core.apis import REPLICASETS
from operators.core.selectors import from_label_selector
from tests.unit.factories import NOW, pod, replicaset


def observe(rs=None, candidates=(), related=(), satisfied=True, extended=True) -> logic.Observed:
    rs = rs or replicaset()
    return logic.Observed(rs=rs, selector=from_label_selector(rs["spec"]["selector"]), candidates=list(candidates),
                          related=list(related), expectations_satisfied=satisfied, now=NOW, extended_status=extended)


def names(items) -> list[str]:
    return [p["metadata"]["name"] for p in items]


def selects_app_web(p) -> bool:
    return (p["metadata"].get("labels") or {}).get("app") == "web"


# --- claiming (claimObject) ---------------------------------------------------------------------

def test_claim_splits_owned_orphans_foreign_and_mismatched():
    claim = ownership.claim(replicaset(), [
        pod("mine", owner_uid="rs-uid"),
        pod("orphan"),
        pod("foreign", owner_uid="other"),
        pod("strayed", owner_uid="rs-uid", labels={"app": "db"}),
        pod("orphan-other-labels", labels={"app": "db"}),
        pod("orphan-terminating", deleting=True),
    ], selects_app_web)
    assert names(claim.owned) == ["mine"]
    assert names(claim.adopt) == ["orphan"]
    assert names(claim.release) == ["strayed"]


def test_upstream_a_set_being_deleted_keeps_non_matching_pods_out():
    # claimObject: an owned pod that no longer matches is neither ours nor released while the owner
    # is being deleted (it used to be counted as owned).
    claim = ownership.claim(replicaset(deleting=True),
                            [pod("orphan"), pod("mine", owner_uid="rs-uid"),
                             pod("strayed", owner_uid="rs-uid", labels={"app": "db"})], selects_app_web)
    assert claim.adopt == [] and claim.release == []
    assert names(claim.owned) == ["mine"]


def test_upstream_finished_pods_are_neither_claimed_adopted_nor_released():
    # FilterActivePods before claimPods: a Succeeded orphan is not adopted, a Failed stray not released.
    plan = logic.plan(observe(candidates=[
        pod("done-orphan", phase="Succeeded"),
        pod("failed-stray", phase="Failed", owner_uid="rs-uid", labels={"app": "db"}),
        pod("running", owner_uid="rs-uid"),
    ]))
    assert plan.adopt == () and plan.release == ()
    assert names(plan.claimed) == ["running"]


def test_claim_ignores_other_namespaces():
    other = pod("elsewhere")
    other["metadata"]["namespace"] = "other"
    assert ownership.claim(replicaset(), [other], selects_app_web).adopt == []


# --- managing replicas -------------------------------------------------------------------------

def test_creates_missing_up_to_burst():
    assert logic.plan(observe(replicaset(3), [pod("a", owner_uid="rs-uid")])).create == 2
    assert logic.plan(observe(replicaset(2000))).create == logic.BURST_REPLICAS


def test_orphans_to_adopt_count_towards_replicas():
    plan = logic.plan(observe(replicaset(2), [pod("orphan")]))
    assert names(plan.adopt) == ["orphan"] and plan.create == 1


def test_deletes_ranked_victims():
    plan = logic.plan(observe(replicaset(2), [
        pod("ready", node="n1", owner_uid="rs-uid"), pod("pending", phase="Pending", owner_uid="rs-uid"),
        pod("other", node="n2", owner_uid="rs-uid")]))
    assert names(plan.delete) == ["pending"]


def test_upstream_a_bare_set_does_not_rank_by_node_sharing():
    # getIndirectlyRelatedPods returns nothing for a ReplicaSet without a controller: node ranks are
    # all 0 and age decides (it used to rank the set's own pods per node, deleting doubled-up first).
    candidates = [pod("alone", node="n1", created_ago=10, ready=False, owner_uid="rs-uid"),
                  pod("pair1", node="n2", created_ago=5000, ready=False, owner_uid="rs-uid"),
                  pod("pair2", node="n2", created_ago=6000, ready=False, owner_uid="rs-uid")]
    assert names(logic.plan(observe(replicaset(2), candidates)).delete) == ["alone"]
    # Under a Deployment, the related pods (all of the Deployment's) make doubled-up nodes go first.
    assert names(logic.plan(observe(replicaset(2), candidates, related=candidates)).delete) == ["pair1"]


def test_delete_everything_skips_ranking():
    plan = logic.plan(observe(replicaset(0), [pod("a", owner_uid="rs-uid"), pod("b", owner_uid="rs-uid")]))
    assert sorted(names(plan.delete)) == ["a", "b"]


def test_nothing_when_equal():
    plan = logic.plan(observe(replicaset(1), [pod("a", owner_uid="rs-uid")]))
    assert (plan.create, plan.delete) == (0, ())


def test_no_management_while_expectations_pending_or_deleting():
    assert logic.plan(observe(replicaset(3), satisfied=False)).create == 0
    assert logic.plan(observe(replicaset(3, deleting=True))).create == 0


def test_without_recounts_after_an_adoptee_vanished():
    orphans = [pod("o1"), pod("o2")]
    plan = logic.plan(observe(replicaset(2), orphans))
    assert plan.create == 0
    again = plan.without([orphans[0]])
    assert names(again.adopt) == ["o2"] and again.create == 1 and names(again.claimed) == ["o2"]


# --- status ----------------------------------------------------------------------------------------

def test_status_counts_claimed_pods():
    rs = replicaset(min_ready=30)
    plan = logic.plan(observe(rs, [
        pod("a", ready_for=100, owner_uid="rs-uid"),  # available
        pod("b", ready_for=10, owner_uid="rs-uid"),  # ready, not yet available
        pod("c", ready=False, labels={"app": "web", "tier": "fe"}, owner_uid="rs-uid"),
        pod("t", deleting=True, owner_uid="rs-uid"),
    ]))
    status = plan.status(None)
    assert (status["replicas"], status["readyReplicas"], status["availableReplicas"],
            status["fullyLabeledReplicas"]) == (3, 2, 1, 1)
    assert status["terminatingReplicas"] == 1
    assert status["observedGeneration"] == 2
    assert status["selector"] == "app=web"
    assert "conditions" not in status


def test_upstream_terminating_replicas_exclude_finished_and_unselected_pods():
    plan = logic.plan(observe(candidates=[
        pod("stopping", deleting=True, owner_uid="rs-uid"),
        pod("done", phase="Succeeded", deleting=True, owner_uid="rs-uid"),  # not terminating: finished
        pod("unselected", deleting=True, owner_uid="rs-uid", labels={"app": "db"}),
        pod("foreign", deleting=True, owner_uid="other"),
    ]))
    assert plan.status(None)["terminatingReplicas"] == 1


def test_builtin_status_has_no_kubeplane_fields():
    status = logic.plan(observe(extended=False)).status(None)
    assert "selector" not in status and "terminatingReplicas" not in status


def test_replica_failure_set_then_kept_then_cleared():
    rs = replicaset(3)
    failed = logic.plan(observe(rs)).status('pods "web-x" is forbidden: exceeded quota')
    [cond] = failed["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == ("ReplicaFailure", "True", "FailedCreate")
    assert cond["message"] == 'pods "web-x" is forbidden: exceeded quota'
    rs["status"] = failed
    again = logic.plan(observe(rs)).status("another message")
    assert again["conditions"][0]["message"] == 'pods "web-x" is forbidden: exceeded quota'  # first kept
    rs["status"] = again
    assert "conditions" not in logic.plan(observe(rs)).status(None)


def test_replica_failure_reason_follows_the_difference():
    rs = replicaset(0)
    status = logic.plan(observe(rs, [pod("a", owner_uid="rs-uid")])).status("unable to delete pods: boom")
    assert status["conditions"][0]["reason"] == "FailedDelete"


# --- availability ------------------------------------------------------------------------------

def test_upstream_partly_ready_sets_look_again_when_the_next_pod_becomes_available():
    # Upstream requeues on each pod's Ready transition (minReadySeconds + 1 s). The previous code
    # only requeued once every pod was ready, so one ready pod of three waited for the 60 s resync.
    rs = replicaset(3, min_ready=30)
    plan = logic.plan(observe(rs, [
        pod("a", ready_for=10, owner_uid="rs-uid"), pod("b", ready=False, owner_uid="rs-uid"),
        pod("c", ready=False, owner_uid="rs-uid")]))
    assert plan.requeue_after(None) == 21.0  # 30 - 10, plus upstream's second of skew


def test_no_availability_requeue_without_min_ready_or_waiting_pods():
    assert logic.plan(observe(replicaset(1), [pod("a", owner_uid="rs-uid")])).requeue_after(None) is None
    rs = replicaset(1, min_ready=5)
    assert logic.plan(observe(rs, [pod("a", ready_for=100, owner_uid="rs-uid")])).requeue_after(None) is None


def test_pod_from_template_copies_template_and_is_controlled():
    body = logic.pod_from_template(replicaset(), REPLICASETS)
    meta = body["metadata"]
    assert meta["generateName"] == "web-"
    assert meta["labels"] == {"app": "web", "tier": "fe"}
    assert meta["annotations"] == {"a": "b"}
    [ref] = meta["ownerReferences"]
    assert ref == {"apiVersion": "apps.kubeplane.dev/v1alpha1", "kind": "ReplicaSet", "name": "web",
                   "uid": "rs-uid", "controller": True, "blockOwnerDeletion": True}
    assert body["spec"]["containers"][0]["image"] == "nginx"


def test_pod_transition():
    old = pod("a", ready=False, owner_uid="rs-uid")
    new = replace_labels(pod("a", owner_uid="rs-uid"), {"app": "web", "x": "y"})
    change = logic.pod_transition(old, new)
    assert change.became_ready and change.labels_changed and not change.controller_changed


def replace_labels(p, labels):
    p["metadata"]["labels"] = labels
    return p


def test_observed_is_a_plain_value():
    # The plan is a pure function: same observation, same plan.
    obs = observe(replicaset(2), [pod("a", owner_uid="rs-uid"), pod("o")])
    assert logic.plan(obs) == logic.plan(replace(obs, now=NOW + timedelta(0)))
