"""The StatefulSet's decisions (operators/controllers/statefulset/logic.py) as facts.

The claim-retention tables are upstream's (stateful_set_utils_test.go: TestIsClaimOwnerUpToDate,
TestUpdateClaimOwnerRefForSetAndPod, TestHasUnexpectedController) with every variation of existing
references; the ordering facts are stateful_set_control.go's (OrderedReady creates ascending and one at
a time, halts at an unhealthy pod, deletes descending one at a time; Parallel does it all; the rolling
update walks down to the partition).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from operators.controllers.statefulset import logic
from operators.core.apis import STATEFULSETS

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
CURRENT, UPDATE = "web-aaaa", "web-bbbb"
TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "v1"}]}}
NEW_TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "v2"}]}}


def sts(replicas: int = 3, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps.kubeplane.dev/v1alpha1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "ns", "uid": "set-uid", "generation": 2},
            "spec": {"replicas": replicas, "serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
                     "template": TEMPLATE, **spec}}


def pod(ordinal: int, *, ready: bool = True, phase: str = "Running", revision: str = UPDATE,
        terminating: bool = False, name: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name or f"web-{ordinal}", "namespace": "ns", "uid": f"pod-uid-{ordinal}",
                            "labels": {"app": "web", logic.REVISION_LABEL: revision,
                                       logic.POD_NAME_LABEL: name or f"web-{ordinal}",
                                       logic.POD_INDEX_LABEL: str(ordinal)}}
    if terminating:
        meta["deletionTimestamp"] = "2026-12-04T11:59:00Z"
    conditions = [{"type": "Ready", "status": "True" if ready else "False",
                   "lastTransitionTime": "2026-12-04T11:00:00Z"}]
    return {"metadata": meta, "spec": {}, "status": {"phase": phase, "conditions": conditions}}


def observe(s: dict[str, Any], pods: list[dict[str, Any]], claims: dict[str, Any] | None = None,
            now: datetime = NOW) -> logic.Plan:
    return logic.plan(logic.Observed(sts=s, resource=STATEFULSETS, pods=pods, claims=claims or {},
                                     current=logic.Revision(CURRENT, TEMPLATE),
                                     update=logic.Revision(UPDATE, NEW_TEMPLATE), now=now))


def actions(plan: logic.Plan) -> list[tuple[str, str]]:
    return [(s.action, s.pod["metadata"]["name"]) for s in plan.steps]


# --- identity ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "parent", "ordinal"), [
    ("web-0", "web", 0), ("a-b-12", "a-b", 12), ("web", "", -1), ("web-", "", -1), ("web-x", "", -1),
    ("web-2147483647", "web", 2147483647), ("web-2147483648", "web", -1),
])
def test_parent_and_ordinal(name: str, parent: str, ordinal: int) -> None:
    assert logic.parent_and_ordinal(name) == (parent, ordinal)


def test_new_pod_identity_storage_and_revision() -> None:
    volumes = [{"name": "data", "emptyDir": {}}, {"name": "cfg", "emptyDir": {}}]
    s = sts(volumeClaimTemplates=[{"metadata": {"name": "data"}, "spec": {}}],
            template={**TEMPLATE, "spec": {**TEMPLATE["spec"], "volumes": volumes}})
    body = logic.new_pod(s, STATEFULSETS, s["spec"]["template"], 4, UPDATE)
    assert body["metadata"]["name"] == "web-4" and body["metadata"]["generateName"] == "web-"
    assert body["metadata"]["labels"] == {"app": "web", logic.POD_NAME_LABEL: "web-4", logic.POD_INDEX_LABEL: "4",
                                          logic.REVISION_LABEL: UPDATE}
    assert body["spec"]["hostname"] == "web-4" and body["spec"]["subdomain"] == "web"
    # The claim replaces the template's volume of the same name; the others stay.
    assert body["spec"]["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "data-web-4"}},
                                       {"name": "cfg", "emptyDir": {}}]
    assert body["metadata"]["ownerReferences"][0]["uid"] == "set-uid"
    assert logic.identity_matches(s, body) and logic.storage_matches(s, body)
    assert not logic.storage_matches(s, {**body, "spec": {}})
    wrong = {**body, "metadata": {**body["metadata"], "labels": {}}}
    assert not logic.identity_matches(s, wrong)


def test_claims_carry_template_labels_and_selector() -> None:
    s = sts(volumeClaimTemplates=[{"metadata": {"name": "data", "labels": {"tier": "db"}},
                                   "spec": {"resources": {"requests": {"storage": "1Gi"}}}}])
    (claim,) = logic.claim_bodies(s, 2)
    assert claim["metadata"] == {"name": "data-web-2", "namespace": "ns", "labels": {"tier": "db", "app": "web"}}
    assert claim["spec"] == {"resources": {"requests": {"storage": "1Gi"}}}


# --- claim retention: upstream's tables ---------------------------------------------------------------------

SET_OWNER = logic.Owner("apps.kubeplane.dev/v1alpha1", "StatefulSet", "stateful-set", "ss-456",
                        {"apiVersion": "apps.kubeplane.dev/v1alpha1", "kind": "StatefulSet", "name": "stateful-set",
                         "uid": "ss-456", "controller": True, "blockOwnerDeletion": True})


def _pod_owner(name: str, uid: str) -> logic.Owner:
    return logic.pod_owner({"metadata": {"name": name, "uid": uid}})


def _policy(when_scaled: str, when_deleted: str, replicas: int) -> dict[str, Any]:
    s = sts(replicas)
    s["metadata"]["name"], s["metadata"]["uid"] = "stateful-set", "ss-456"
    s["spec"]["persistentVolumeClaimRetentionPolicy"] = {"whenScaled": when_scaled, "whenDeleted": when_deleted}
    return s


R, D = logic.RETAIN, logic.DELETE


@pytest.mark.parametrize(("when_scaled", "when_deleted", "needs_pod", "needs_set", "replicas", "ordinal"), [
    (R, R, False, False, 0, 0),  # retain
    (R, D, False, True, 0, 0),  # on SS delete
    (D, R, True, False, 2, 2),  # on scaledown only, condemned
    (D, R, False, False, 2, 1),  # on scaledown only, remains
    (D, D, True, False, 2, 2),  # on both, condemned
    (D, D, False, True, 2, 1),  # on both, remains
])
def test_claim_owner_up_to_date(when_scaled: str, when_deleted: str, needs_pod: bool, needs_set: bool,
                                replicas: int, ordinal: int) -> None:
    s = _policy(when_scaled, when_deleted, replicas)
    pod_owner = _pod_owner(f"pod-{ordinal}", "pod-123")
    scaled_down = not logic.in_range(ordinal, s)
    for others, with_pod, with_set in itertools.product((False, True), repeat=3):
        refs: list[dict[str, Any]] = []
        if with_pod:
            refs.append(dict(pod_owner.ref or {}))
        if with_set:
            refs.append(dict(SET_OWNER.ref or {}))
        if others:
            refs += [{"name": "rand1", "apiVersion": "v1", "kind": "Pod", "uid": "rand1-uid"},
                     {"name": "rand2", "apiVersion": "v1", "kind": "Pod", "uid": "rand2-uid"}]
        claim = {"metadata": {"name": "target-claim", "ownerReferences": refs}}
        expected = with_pod == needs_pod and with_set == needs_set
        assert logic.claim_matches_policy(claim, s, SET_OWNER, pod_owner, scaled_down) is expected, \
            (when_scaled, when_deleted, others, with_pod, with_set)


@pytest.mark.parametrize(("when_scaled", "when_deleted", "condemned", "needs_pod", "needs_set", "unexpected"), [
    (R, R, False, False, False, False),
    (R, D, False, False, True, False),
    (D, R, False, False, False, False),
    (D, R, True, True, False, False),
    (D, D, False, False, True, False),
    (D, D, True, True, False, False),
    (D, D, True, False, False, True),  # another controller: ours are removed, none added
])
def test_update_claim_owner_refs(when_scaled: str, when_deleted: str, condemned: bool, needs_pod: bool,
                                 needs_set: bool, unexpected: bool) -> None:
    s = _policy(when_scaled, when_deleted, 5)
    name = "pod-8" if condemned else "pod-1"
    pod_owner = _pod_owner(name, "pod-456")
    for variation in range(8):
        refs: list[dict[str, Any]] = []
        if variation & 1:
            refs.append(dict(pod_owner.ref or {}))
        if variation & 2:
            refs.append(dict(SET_OWNER.ref or {}))
        if variation & 3:
            refs.append({"apiVersion": "custom/v1", "kind": "random", "name": "random", "uid": "abc"})
        if unexpected:
            refs.append({"apiVersion": "custom/v1", "kind": "Unknown", "name": "unknown", "uid": "xyz",
                         "controller": True})
        claim = {"metadata": {"ownerReferences": refs}}
        updated = logic.claim_owner_refs(claim, s, SET_OWNER, pod_owner, condemned)

        def controls(uid: str, refs: list[dict[str, Any]] = updated) -> bool:
            return any(r.get("uid") == uid and r.get("controller") for r in refs)
        assert controls("pod-456") is needs_pod, variation
        assert controls("ss-456") is needs_set, variation
        if variation & 3:
            assert any(r.get("uid") == "abc" for r in updated), "a foreign owner is kept"


def test_unexpected_controller_only_matters_with_a_delete_policy() -> None:
    foreign = {"metadata": {"ownerReferences": [{"apiVersion": "x/v1", "kind": "X", "name": "x", "uid": "u",
                                                 "controller": True}]}}
    stale_set = {"metadata": {"ownerReferences": [{**(SET_OWNER.ref or {}), "uid": "old-uid"}]}}
    pod_owner = _pod_owner("pod-1", "pod-1-uid")
    assert not logic.has_unexpected_controller(foreign, _policy(R, R, 3), SET_OWNER, pod_owner)
    assert logic.has_unexpected_controller(foreign, _policy(R, D, 3), SET_OWNER, pod_owner)
    assert logic.has_unexpected_controller(stale_set, _policy(D, R, 3), SET_OWNER, pod_owner)
    assert logic.has_stale_owner_ref(stale_set, SET_OWNER)


# --- management ---------------------------------------------------------------------------------------

def test_ordered_ready_creates_one_pod_at_a_time_in_order() -> None:
    assert actions(observe(sts(), [])) == [("create", "web-0")]
    assert actions(observe(sts(), [pod(0)])) == [("create", "web-1")]
    # web-1 exists but is not ready: nothing more happens (and web-2 is not made).
    assert actions(observe(sts(), [pod(0), pod(1, ready=False)])) == []
    assert actions(observe(sts(), [pod(0), pod(1, phase="Pending", ready=False)])) == []
    assert actions(observe(sts(), [pod(0), pod(1)])) == [("create", "web-2")]


def test_ordered_ready_halts_on_an_unhealthy_lower_pod() -> None:
    # web-0 turned unready: web-2 is not made, even though web-1 is fine.
    assert actions(observe(sts(), [pod(0, ready=False), pod(1)])) == []
    # Parallel does not wait.
    assert actions(observe(sts(podManagementPolicy="Parallel"), [pod(0, ready=False), pod(1)])) == \
        [("create", "web-2")]


def test_parallel_creates_everything_at_once() -> None:
    assert actions(observe(sts(podManagementPolicy="Parallel"), [])) == \
        [("create", "web-0"), ("create", "web-1"), ("create", "web-2")]


def test_ordinals_start() -> None:
    plan = observe(sts(2, ordinals={"start": 5}, podManagementPolicy="Parallel"), [pod(0)])
    assert actions(plan) == [("create", "web-5"), ("create", "web-6"), ("delete", "web-0")]


def test_scale_down_deletes_the_highest_first_one_at_a_time() -> None:
    pods = [pod(i) for i in range(5)]
    assert actions(observe(sts(2), pods)) == [("delete", "web-4")]
    # The next one waits while web-4 terminates.
    pods[4] = pod(4, terminating=True)
    assert actions(observe(sts(2), pods)) == []
    # Parallel deletes every condemned pod at once, highest first.
    assert actions(observe(sts(2, podManagementPolicy="Parallel"), [pod(i) for i in range(5)])) == \
        [("delete", "web-4"), ("delete", "web-3"), ("delete", "web-2")]


def test_scale_down_waits_for_health_but_the_first_unhealthy_pod_may_go() -> None:
    # web-3 unhealthy is the first unhealthy pod: it may be deleted even though it is not ready...
    pods = [pod(0), pod(1), pod(2), pod(3, ready=False)]
    assert actions(observe(sts(2), pods)) == [("delete", "web-3")]
    # ... but with web-2 unhealthy too, web-2 is the first unhealthy one, and web-3 blocks.
    pods = [pod(0), pod(1), pod(2, ready=False), pod(3, ready=False)]
    assert actions(observe(sts(2), pods)) == []


def test_failed_and_succeeded_pods_are_deleted_to_be_made_again() -> None:
    assert actions(observe(sts(), [pod(0), pod(1, phase="Failed", ready=False)])) == [("delete", "web-1")]
    assert actions(observe(sts(), [pod(0, phase="Succeeded", ready=False)])) == [("delete", "web-0")]
    # Already being deleted: nothing to do but wait.
    assert actions(observe(sts(), [pod(0, phase="Failed", ready=False, terminating=True)])) == []


def test_wrong_identity_label_is_repaired() -> None:
    p = pod(0)
    p["metadata"]["labels"].pop(logic.POD_NAME_LABEL)
    plan = observe(sts(1), [p])
    assert actions(plan) == [("update", "web-0")]
    assert plan.steps[0].labels == {logic.POD_NAME_LABEL: "web-0", logic.POD_INDEX_LABEL: "0"}


# --- claims --------------------------------------------------------------------------------------------

def claimed_set(**policy: str) -> dict[str, Any]:
    return sts(2, volumeClaimTemplates=[{"metadata": {"name": "data"}, "spec": {}}],
               persistentVolumeClaimRetentionPolicy=policy)


def test_claims_are_made_with_the_pod_and_owned_per_policy() -> None:
    (step,) = observe(claimed_set(), []).steps
    assert [c["metadata"]["name"] for c in step.claims] == ["data-web-0"]
    assert "ownerReferences" not in step.claims[0]["metadata"]
    (step,) = observe(claimed_set(whenDeleted="Delete"), []).steps
    assert [r["uid"] for r in step.claims[0]["metadata"]["ownerReferences"]] == ["set-uid"]
    # An existing claim is reused, not made again.
    existing = {"data-web-0": {"metadata": {"name": "data-web-0", "resourceVersion": "1"}}}
    (step,) = observe(claimed_set(), [], existing).steps
    assert step.action == "create" and step.claims == ()


def test_a_claim_being_deleted_blocks_the_pod() -> None:
    existing = {"data-web-0": {"metadata": {"name": "data-web-0", "deletionTimestamp": "2026-12-04T11:00:00Z"}}}
    (step,) = observe(claimed_set(), [], existing).steps
    assert step.blocked == ("data-web-0",)


def test_a_claim_still_owned_by_a_previous_pod_waits_for_the_garbage_collector() -> None:
    stale = {"data-web-1": {"metadata": {"name": "data-web-1", "ownerReferences": [
        {"apiVersion": "v1", "kind": "Pod", "name": "web-1", "uid": "old-pod", "controller": True}]}}}
    assert actions(observe(claimed_set(whenScaled="Delete"), [pod(0)], stale)) == []
    # With whenScaled=Retain the reference is not ours to wait for.
    assert actions(observe(claimed_set(), [pod(0)], stale)) == [("create", "web-1")]


def test_scaled_down_claims_get_the_pod_as_owner_before_it_goes() -> None:
    claims = {f"data-web-{i}": {"metadata": {"name": f"data-web-{i}", "resourceVersion": str(i)}} for i in range(3)}
    plan = observe(claimed_set(whenScaled="Delete"), [pod(0), pod(1), pod(2)], claims)
    assert actions(plan) == [("update", "web-2"), ("delete", "web-2")]
    (fix,) = plan.steps[0].fixes
    assert fix.name == "data-web-2" and [r["uid"] for r in fix.owner_references] == ["pod-uid-2"]


# --- updates and status ----------------------------------------------------------------------------------

def test_rolling_update_goes_down_from_the_top_one_pod_at_a_time() -> None:
    pods = [pod(i, revision=CURRENT) for i in range(3)]
    plan = observe(sts(), pods)
    assert actions(plan) == [("delete", "web-2")]
    assert plan.status["currentReplicas"] == 2  # upstream counts the deleted pod out at once
    # web-2 came back at the update revision but is not ready: the walk stops there.
    pods[2] = pod(2, ready=False)
    assert actions(observe(sts(), pods)) == []
    pods[2] = pod(2)
    assert actions(observe(sts(), pods)) == [("delete", "web-1")]


def test_partition_keeps_lower_pods_and_makes_them_from_the_current_revision() -> None:
    s = sts(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}})
    pods = [pod(0, revision=CURRENT), pod(1, revision=CURRENT), pod(2)]
    assert actions(observe(s, pods)) == []
    # A lost pod below the partition is made again from the current revision.
    (step,) = observe(s, [pod(0, revision=CURRENT)]).steps
    assert step.pod["metadata"]["labels"][logic.REVISION_LABEL] == CURRENT
    assert step.pod["spec"]["containers"][0]["image"] == "v1"


def test_on_delete_only_makes_new_pods_at_the_update_revision() -> None:
    s = sts(updateStrategy={"type": "OnDelete"})
    assert actions(observe(s, [pod(i, revision=CURRENT) for i in range(3)])) == []
    (step,) = observe(s, [pod(0, revision=CURRENT)]).steps
    assert step.pod["metadata"]["labels"][logic.REVISION_LABEL] == UPDATE


def test_status_counts_and_complete_rolling_update() -> None:
    pods = [pod(0, revision=CURRENT), pod(1, ready=False), pod(2, terminating=True)]
    status = observe(sts(), pods).status
    assert status["replicas"] == 3 and status["readyReplicas"] == 2 and status["availableReplicas"] == 2
    assert status["currentReplicas"] == 1 and status["updatedReplicas"] == 1  # the terminating one not counted
    assert status["currentRevision"] == CURRENT and status["updateRevision"] == UPDATE
    assert status["observedGeneration"] == 2
    done = observe(sts(), [pod(i) for i in range(3)]).status
    assert done["currentRevision"] == UPDATE and done["currentReplicas"] == 3


def test_min_ready_seconds_decides_availability_and_requeues() -> None:
    s = sts(1, minReadySeconds=3600)
    plan = observe(s, [pod(0)])
    assert plan.status["readyReplicas"] == 1 and plan.status["availableReplicas"] == 0
    assert plan.requeue == 3600.0
    later = observe(s, [pod(0)], now=NOW + timedelta(hours=2))
    assert later.status["availableReplicas"] == 1 and later.requeue is None


def test_nothing_is_done_for_a_set_being_deleted() -> None:
    s = sts()
    s["metadata"]["deletionTimestamp"] = "2026-12-04T11:00:00Z"
    assert observe(s, []).steps == ()


# --- beyond upstream: stuckPodPolicy and the Progressing condition -------------------------------------------

def not_ready_for(ordinal: int, seconds: float, revision: str = UPDATE) -> dict[str, Any]:
    p = pod(ordinal, ready=False, phase="Pending", revision=revision)
    p["status"]["conditions"][0]["lastTransitionTime"] = (NOW - timedelta(seconds=seconds)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    return p


def test_a_stale_pod_stuck_past_stuck_pod_seconds_is_replaced_only_with_the_policy() -> None:
    # web-1 is at the old revision (a bad template's) and has not been ready for 700 s.
    pods = [pod(0), not_ready_for(1, 700, revision=CURRENT)]
    assert actions(observe(sts(2), pods)) == []  # upstream: waits for it forever
    plan = observe(sts(2, stuckPodPolicy="Replace"), pods)
    assert actions(plan) == [("delete", "web-1")]
    (event,) = plan.events
    assert event.reason == logic.REPLACING_STUCK_POD and "web-1" in event.message and UPDATE in event.message
    # Not yet stuck: nothing, and a sync is asked for when it would be.
    young = observe(sts(2, stuckPodPolicy="Replace"), [pod(0), not_ready_for(1, 500, revision=CURRENT)])
    assert actions(young) == [] and young.requeue is not None and 100 <= young.requeue <= 102
    # A pod at the update revision is not replaced: it would come back the same.
    assert actions(observe(sts(2, stuckPodPolicy="Replace"), [pod(0), not_ready_for(1, 700)])) == []
    # stuckPodSeconds sets the time.
    assert actions(observe(sts(2, stuckPodPolicy="Replace", stuckPodSeconds=30),
                           [pod(0), not_ready_for(1, 31, revision=CURRENT)])) == [("delete", "web-1")]


def test_progressing_condition_names_what_the_set_waits_on() -> None:
    assert observe(sts(2), [pod(0), not_ready_for(1, 10)]).progressing == (
        "True", "Progressing", "waiting for pod web-1 to be Running and Ready")
    state, reason, message = observe(sts(2), [pod(0), not_ready_for(1, 700)]).progressing
    assert (state, reason) == ("False", "PodNotReady") and "web-1" in message and "stuckPodSeconds 600" in message
    assert observe(sts(2), [pod(0), pod(1)]).progressing[:2] == ("True", "RolloutComplete")
    assert observe(sts(2), [pod(0)]).progressing[:2] == ("True", "Progressing")  # creating web-1
    # The transition time stays while the status does.
    s = sts(2)
    s["status"] = {"conditions": [{"type": "Progressing", "status": "False", "reason": "PodNotReady",
                                   "lastTransitionTime": "2026-12-04T10:00:00Z"}]}
    (kept,) = logic.progressing_condition(s, observe(s, [pod(0), not_ready_for(1, 700)]), NOW)
    assert kept["lastTransitionTime"] == "2026-12-04T10:00:00Z"
    (moved,) = logic.progressing_condition(s, observe(s, [pod(0), pod(1)]), NOW)
    assert moved["status"] == "True" and moved["lastTransitionTime"] == "2026-12-04T12:00:00Z"


# --- kubectl's StatefulSetStatusViewer messages (`kubeplane rollout status statefulset/NAME`) --------------------

@pytest.mark.parametrize(("status", "generation", "strategy", "want"), [
    ({}, 2, None, ("Waiting for statefulset spec update to be observed...", False)),
    ({"observedGeneration": 1}, 2, None, ("Waiting for statefulset spec update to be observed...", False)),
    ({"observedGeneration": 2, "readyReplicas": 1}, 2, None, ("Waiting for 2 pods to be ready...", False)),
    ({"observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 1}, 2, None,
     ("Waiting for partitioned roll out to finish: 1 out of 3 new pods have been updated...", False)),
    ({"observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 1}, 2,
     {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
     ("partitioned roll out complete: 1 new pods have been updated...", True)),
    ({"observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 3}, 2, None,
     ("partitioned roll out complete: 3 new pods have been updated...", True)),
])
def test_rollout_status_messages(status: dict[str, Any], generation: int, strategy: dict[str, Any] | None,
                                 want: tuple[str, bool]) -> None:
    from operators.cli.rollout import sts_status_message
    s = sts(**({"updateStrategy": strategy} if strategy else {}))
    s["metadata"]["generation"] = generation
    s["status"] = status
    assert sts_status_message(s) == want


def test_rollout_status_refuses_on_delete() -> None:
    import click

    from operators.cli.rollout import sts_status_message
    with pytest.raises(click.ClickException, match="only available for RollingUpdate"):
        sts_status_message(sts(updateStrategy={"type": "OnDelete"}))
