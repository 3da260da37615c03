"""The Deployment's pure decisions (logic.plan), as facts from upstream's table tests
(pkg/controller/deployment: util/deployment_util_test.go, rolling_test.go, sync_test.go,
progress_test.go) and from kcm-parity §1. Each table keeps upstream's numbers."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from operators.controllers.deployment import logic
from operators.core.timeutil import format_time
from tests.unit.factories import NOW

NEWER, NEW, OLD, OLDER = (format_time(NOW - timedelta(minutes=m)) for m in (0, 1, 2, 3))
TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "web:1"}]}}
HASHED = {"metadata": {"labels": {"app": "web", "pod-template-hash": "n"}}, "spec": TEMPLATE["spec"]}


def deployment(replicas: int = 10, surge: Any = 0, unavailable: Any = 0, *, strategy: str = "RollingUpdate",
               status: dict[str, Any] | None = None, paused: bool = False, template: dict[str, Any] | None = None,
               annotations: dict[str, str] | None = None, deadline: int | None = 600, generation: int = 1,
               history: int | None = 10) -> dict[str, Any]:
    spec: dict[str, Any] = {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                            "template": template or TEMPLATE, "strategy": {"type": strategy},
                            "progressDeadlineSeconds": deadline, "revisionHistoryLimit": history}
    if strategy == "RollingUpdate":
        spec["strategy"]["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    if paused:
        spec["paused"] = True
    return {"apiVersion": "apps.kubeplane.dev/v1alpha1", "kind": "Deployment",
            "metadata": {"name": "foo", "namespace": "ns", "uid": "d-uid", "generation": generation,
                         "annotations": annotations or {}},
            "spec": spec, "status": status or {}}


def replicaset(name: str, replicas: int, created: str = NEW, *, available: int | None = None,
               actual: int | None = None, annotations: dict[str, str] | None = None,
               template: dict[str, Any] | None = None, conditions: list[dict[str, Any]] | None = None,
               ) -> dict[str, Any]:
    tpl = template or {"metadata": {"labels": {"app": "web", "pod-template-hash": name}},
                       "spec": {"containers": [{"name": "c", "image": name}]}}
    actual = replicas if actual is None else actual
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"{name}-uid", "creationTimestamp": created,
                         "resourceVersion": "1", "generation": 1, "annotations": annotations or {},
                         "ownerReferences": [{"kind": "Deployment", "name": "foo", "uid": "d-uid",
                                              "controller": True}]},
            "spec": {"replicas": replicas, "template": tpl},
            "status": {"replicas": actual, "readyReplicas": actual,
                       "availableReplicas": actual if available is None else available,
                       "observedGeneration": 1, **({"conditions": conditions} if conditions else {})}}


def sync_for(d: dict[str, Any], sets: list[dict[str, Any]]) -> logic._Sync:
    return logic._Sync(logic.Observed(d, sets, {}, NOW, selector_text="app=web"))


def sized(sync: logic._Sync) -> dict[str, int]:
    return {rs.name: rs.replicas for rs in sync.sets}


# --- fenceposts (TestResolveFenceposts, kcm-parity §1) ---------------------------------------------

@pytest.mark.parametrize(("surge", "unavailable", "replicas", "expected"), [
    ("0%", "0%", 0, (0, 1)),
    ("39%", "39%", 10, (4, 3)),
    (0, "39%", 10, (0, 3)),
    ("39%", 0, 10, (4, 0)),
    (0, 0, 10, (0, 1)),
    ("25%", "25%", 10, (3, 2)),
    ("25%", "25%", 3, (1, 0)),
    ("25%", "25%", 1, (1, 0)),
    (None, None, 10, (3, 2)),  # a partial rollingUpdate block: the other value is upstream's default 25%
])
def test_fenceposts(surge, unavailable, replicas, expected):
    assert logic.fenceposts(deployment(replicas, surge, unavailable)) == expected


def test_recreate_has_no_surge_and_max_unavailable_is_capped():
    assert logic.fenceposts(deployment(strategy="Recreate")) == (0, 0)
    assert logic.max_unavailable(deployment(2, 0, 5)) == 2
    assert logic.max_unavailable(deployment(0, 0, 5)) == 0


# --- NewRSNewReplicas --------------------------------------------------------------------------

@pytest.mark.parametrize(("strategy", "replicas", "new", "surge", "old", "expected"), [
    ("RollingUpdate", 1, 5, 1, 5, 5),  # can not scale up: already over replicas + surge
    ("RollingUpdate", 6, 2, 10, 5, 6),  # scale up, but never past spec.replicas
    ("Recreate", 3, 1, 1, 1, 3),
])
def test_new_rs_new_replicas(strategy, replicas, new, surge, old, expected):
    d = deployment(replicas, surge, 0, strategy=strategy)
    sync = sync_for(d, [replicaset("foo-new", new), replicaset("foo-old", old, OLD)])
    target = next(rs for rs in sync.sets if rs.name == "foo-new")
    assert sync.new_replicas(sync.sets, target) == expected


# --- rolling.go --------------------------------------------------------------------------------

@pytest.mark.parametrize(("replicas", "surge", "old", "new", "scaled", "expected"), [
    (10, 0, 10, 0, False, 0),
    (10, 2, 10, 0, True, 2),
    (10, 2, 5, 0, True, 7),
    (10, 2, 10, 2, False, 2),
    (10, 2, 2, 11, True, 10),  # scale down
])
def test_reconcile_new_replica_set(replicas, surge, old, new, scaled, expected):
    sync = sync_for(deployment(replicas, surge, 0), [replicaset("foo-new", new), replicaset("foo-old", old, OLD)])
    target = next(rs for rs in sync.sets if rs.name == "foo-new")
    assert sync.reconcile_new(sync.sets, target) is scaled
    assert target.replicas == expected


@pytest.mark.parametrize(("replicas", "unavailable", "old", "new", "old_ready", "new_ready", "scaled", "expected"), [
    (10, 0, 10, 0, 10, 0, True, 9),
    (10, 2, 10, 0, 10, 0, True, 8),
    (10, 2, 10, 0, 8, 0, True, 8),  # the unhealthy old replicas are cleaned up first
    (10, 2, 10, 0, 9, 0, True, 8),  # one unhealthy cleaned up, one ready scaled down
    (10, 2, 8, 2, 8, 0, False, 8),  # the new set's unavailable pods hold the old ones back
])
def test_reconcile_old_replica_sets(replicas, unavailable, old, new, old_ready, new_ready, scaled, expected):
    sync = sync_for(deployment(replicas, 0, unavailable), [
        replicaset("foo-new", new, available=new_ready, actual=new),
        replicaset("foo-old", old, OLD, available=old_ready, actual=old),
    ])
    new_rs, old_rs = sync.sets
    assert sync.reconcile_old(sync.sets, [old_rs], new_rs) is scaled
    assert old_rs.replicas == expected


@pytest.mark.parametrize(("old", "ready", "most", "expected"), [
    (10, 8, 1, 1),
    (10, 8, 3, 2),
    (10, 8, 0, 0),
    (10, 10, 3, 0),
])
def test_cleanup_unhealthy_replicas(old, ready, most, expected):
    sync = sync_for(deployment(10, 0, 2), [replicaset("foo-old", old, OLD, available=ready)])
    assert sync.cleanup_unhealthy(list(sync.sets), most) == expected
    assert sync.sets[0].replicas == old - expected


@pytest.mark.parametrize(("replicas", "unavailable", "ready", "old", "expected"), [
    (10, 0, 10, 10, 9),
    (10, 2, 10, 10, 8),
    (10, 2, 8, 10, 10),
    (10, 2, 10, 0, 0),
])
def test_scale_down_old_for_rolling_update(replicas, unavailable, ready, old, expected):
    sync = sync_for(deployment(replicas, 0, unavailable), [replicaset("foo-old", old, OLD, available=ready)])
    sync.scale_down_old(sync.sets, list(sync.sets))
    assert sync.sets[0].replicas == expected


def test_old_sets_scale_down_oldest_first():
    sync = sync_for(deployment(4, 0, 2), [
        replicaset("foo-v3", 0, NEW), replicaset("foo-v2", 2, OLD), replicaset("foo-v1", 2, OLDER)])
    _, v2, v1 = sync.sets
    sync.scale_down_old(sync.sets, [v2, v1])
    assert (v1.replicas, v2.replicas) == (0, 2)


# --- proportional scaling (TestScale) ----------------------------------------------------------

def scale_case(replicas, old_replicas, new, old, *, surge=0, old_surge=0, desired=None):
    d = deployment(replicas, surge, 0)
    before = deployment(old_replicas, old_surge, 0)
    sets = ([new] if new else []) + old
    for rs in sets:
        want = (desired or {}).get(rs["metadata"]["name"], old_replicas)
        rs["metadata"]["annotations"] = {logic.DESIRED_REPLICAS: str(want),
                                         logic.MAX_REPLICAS: str(want + logic.max_surge(before))}
    sync = sync_for(d, sets)
    new_rs = next((rs for rs in sync.sets if new and rs.name == new["metadata"]["name"]), None)
    sync.proportional(new_rs, [rs for rs in sync.sets if rs is not new_rs])
    return sized(sync), sync.plan


@pytest.mark.parametrize(("replicas", "old_replicas", "new", "old", "expected"), [
    (12, 10, ("foo-v1", 10, NEWER), [], {"foo-v1": 12}),
    (5, 10, ("foo-v1", 10, NEWER), [], {"foo-v1": 5}),
    (10, 5, ("foo-v2", 2, NEWER), [("foo-v1", 3, OLD)], {"foo-v2": 4, "foo-v1": 6}),
    (3, 5, ("foo-v2", 2, NEWER), [("foo-v1", 3, OLD)], {"foo-v2": 1, "foo-v1": 2}),
    (4, 9, ("foo-v2", 8, NEWER), [("foo-v1", 1, OLD)], {"foo-v2": 4, "foo-v1": 0}),
    (10, 7, ("foo-v3", 2, NEWER), [("foo-v2", 3, OLD), ("foo-v1", 2, OLDER)],
     {"foo-v3": 3, "foo-v2": 4, "foo-v1": 3}),
    (8, 13, ("foo-v3", 2, NEWER), [("foo-v2", 8, OLD), ("foo-v1", 3, OLDER)],
     {"foo-v3": 1, "foo-v2": 5, "foo-v1": 2}),
    # leftovers: scaling up grows the newest of equals, scaling down shrinks the oldest
    (4, 3, ("foo-v3", 1, NEWER), [("foo-v2", 1, OLD), ("foo-v1", 1, OLDER)],
     {"foo-v3": 2, "foo-v2": 1, "foo-v1": 1}),
    (2, 3, ("foo-v3", 1, NEWER), [("foo-v2", 1, OLD), ("foo-v1", 1, OLDER)],
     {"foo-v3": 1, "foo-v2": 1, "foo-v1": 0}),
    (5, 4, None, [("foo-v2", 2, OLD), ("foo-v1", 2, OLDER)], {"foo-v2": 3, "foo-v1": 2}),
    (0, 6, ("foo-v3", 3, NEWER), [("foo-v2", 2, OLD), ("foo-v1", 1, OLDER)],
     {"foo-v3": 0, "foo-v2": 0, "foo-v1": 0}),
    (6, 0, ("foo-v3", 0, NEWER), [("foo-v2", 0, OLD), ("foo-v1", 0, OLDER)],
     {"foo-v3": 6, "foo-v2": 0, "foo-v1": 0}),
])
def test_proportional_scaling(replicas, old_replicas, new, old, expected):
    new_rs = replicaset(*new) if new else None
    got, _ = scale_case(replicas, old_replicas, new_rs, [replicaset(*o) for o in old])
    assert got == expected


def test_proportional_scaling_with_surge():
    got, _ = scale_case(20, 10, replicaset("foo-v2", 6, NEWER), [replicaset("foo-v1", 6, OLD)], surge=2, old_surge=2)
    assert got == {"foo-v2": 11, "foo-v1": 11}
    got, _ = scale_case(50, 10, replicaset("foo-v2", 5, NEWER), [replicaset("foo-v1", 8, OLD)], surge=6, old_surge=3)
    assert got == {"foo-v2": 22, "foo-v1": 34}


def test_scaling_events_carry_upstreams_wording_and_annotations():
    _, plan = scale_case(10, 5, replicaset("foo-v2", 2, NEWER), [replicaset("foo-v1", 3, OLD)])
    assert [w.event for w in plan.writes] == [
        ("Normal", "ScalingReplicaSet", "Scaled up replica set foo-v1 from 3 to 6"),
        ("Normal", "ScalingReplicaSet", "Scaled up replica set foo-v2 from 2 to 4"),
    ]
    assert all(w.rs.annotations[logic.DESIRED_REPLICAS] == "10" for w in plan.writes)


# --- the whole sync ----------------------------------------------------------------------------

def test_first_sync_creates_the_new_replica_set_with_hash_revision_and_condition():
    d = deployment(3, "25%", "25%")
    plan = logic.plan(logic.Observed(d, [], {}, NOW, selector_text="app=web"))
    [write] = plan.writes
    assert write.kind == "create"
    rs = write.rs
    template_hash = rs.obj["spec"]["template"]["metadata"]["labels"]["pod-template-hash"]
    assert re.fullmatch(r"[4-9bcdf]{1,10}", template_hash)
    assert rs.name == f"foo-{template_hash}" and rs.replicas == 3
    assert rs.obj["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": template_hash}
    assert rs.annotations == {logic.REVISION: "1", logic.DESIRED_REPLICAS: "3", logic.MAX_REPLICAS: "4"}
    assert write.event == ("Normal", "ScalingReplicaSet", f"Scaled up replica set {rs.name} from 0 to 3")
    assert plan.revision == "1"
    progressing = logic.find_condition(plan.status or {}, logic.PROGRESSING)
    assert progressing is not None and (progressing["status"], progressing["reason"], progressing["message"]) == (
        "True", logic.NEW_RS_CREATED, f"Created new replica set \"{rs.name}\"")
    available = logic.find_condition(plan.status or {}, logic.AVAILABLE)
    assert available is not None and available["reason"] == logic.MIN_UNAVAILABLE


def test_hash_is_stable_and_changes_with_the_template_or_collisions():
    d = deployment()
    assert logic.template_hash(d) == logic.template_hash(deployment())
    other = deployment(template={**TEMPLATE, "spec": {"containers": [{"name": "c", "image": "web:2"}]}})
    assert logic.template_hash(other) != logic.template_hash(d)
    assert logic.template_hash(deployment(status={"collisionCount": 1})) != logic.template_hash(d)


def test_new_replica_set_is_found_by_template_ignoring_the_hash_oldest_first():
    d = deployment()
    twin_a = replicaset("foo-a", 1, OLDER, template={"metadata": {"labels": {"app": "web", "pod-template-hash": "a"}},
                                                     "spec": TEMPLATE["spec"]})
    twin_b = replicaset("foo-b", 1, NEW, template={"metadata": {"labels": {"app": "web", "pod-template-hash": "b"}},
                                                   "spec": TEMPLATE["spec"], })
    other = replicaset("foo-c", 1, OLDER)
    found = logic.find_new(d, [logic.RS.of(twin_b), logic.RS.of(other), logic.RS.of(twin_a)])
    assert found is not None and found.name == "foo-a"


def test_rollback_raises_the_revision_and_keeps_the_old_one_in_history():
    # `rollout undo` copies revision 1's template back: that ReplicaSet becomes new, revision 3.
    d = deployment(2, 1, 0, template={"metadata": {"labels": {"app": "web"}},
                                      "spec": {"containers": [{"name": "c", "image": "foo-v1"}]}})
    v1 = replicaset("foo-v1", 0, OLDER, annotations={logic.REVISION: "1"})
    v2 = replicaset("foo-v2", 2, OLD, annotations={logic.REVISION: "2"})
    plan = logic.plan(logic.Observed(d, [v1, v2], {}, NOW))
    update = next(w for w in plan.writes if w.rs.name == "foo-v1" and w.kind == "update")
    assert update.rs.annotations[logic.REVISION] == "3"
    assert update.rs.annotations[logic.REVISION_HISTORY] == "1"
    assert plan.revision == "3"


def test_revision_history_is_cut_to_2000_characters_oldest_first():
    sync = sync_for(deployment(), [])
    long_history = ",".join(["1"] * 1000)
    rs = logic.RS.of(replicaset("x", 1, annotations={logic.REVISION: "9", logic.REVISION_HISTORY: long_history}))
    sync.revision_annotations(rs, "10", exists=True)
    assert len(rs.annotations[logic.REVISION_HISTORY]) <= 2000 and rs.annotations[logic.REVISION_HISTORY].endswith(",9")


def test_deployment_annotations_are_copied_except_the_controllers_own():
    d = deployment(annotations={"team": "a", logic.LAST_APPLIED: "{}", logic.REVISION: "7"})
    plan = logic.plan(logic.Observed(d, [], {}, NOW))
    annotations = plan.writes[0].rs.annotations
    assert annotations["team"] == "a" and logic.LAST_APPLIED not in annotations and annotations[logic.REVISION] == "1"


def test_complete_rollout_reports_new_replica_set_available_and_cleans_history():
    d = deployment(2, 1, 0, history=1, status={"replicas": 2, "updatedReplicas": 2, "availableReplicas": 2,
                                                 "observedGeneration": 1})
    new = replicaset("foo-new", 2, NEWER, template={"metadata": {"labels": {"app": "web", "pod-template-hash": "n"}},
                                                     "spec": TEMPLATE["spec"]},
                     annotations={logic.REVISION: "3", logic.DESIRED_REPLICAS: "2", logic.MAX_REPLICAS: "3"})
    old = [replicaset("foo-r1", 0, OLDER, annotations={logic.REVISION: "1"}),
           replicaset("foo-r2", 0, OLD, annotations={logic.REVISION: "2"})]
    plan = logic.plan(logic.Observed(d, [new, *old], {}, NOW))
    assert [(w.kind, w.rs.name) for w in plan.writes] == [("delete", "foo-r1")]  # history limit 1: the lowest revision
    progressing = logic.find_condition(plan.status or {}, logic.PROGRESSING)
    assert progressing is not None and progressing["reason"] == logic.NEW_RS_AVAILABLE
    assert progressing["message"] == 'ReplicaSet "foo-new" has successfully progressed.'


def test_history_keeps_sets_with_pods_or_an_unobserved_generation():
    d = deployment(1, 1, 0, history=0, paused=True)
    busy = replicaset("foo-busy", 0, OLDER, actual=1, annotations={logic.REVISION: "1"})
    plan = logic.plan(logic.Observed(d, [busy], {}, NOW))
    assert not [w for w in plan.writes if w.kind == "delete"]


def test_pause_and_resume_conditions_and_no_rollout_while_paused():
    d = deployment(2, 1, 0, paused=True, template={"metadata": {"labels": {"app": "web"}},
                                                   "spec": {"containers": [{"name": "c", "image": "v2"}]}})
    old = replicaset("foo-v1", 2, OLD, annotations={logic.REVISION: "1", logic.DESIRED_REPLICAS: "2"})
    plan = logic.plan(logic.Observed(d, [old], {}, NOW))
    assert not [w for w in plan.writes if w.kind == "create"]  # paused: no new ReplicaSet
    condition = logic.find_condition(plan.status or {}, logic.PROGRESSING)
    assert condition is not None and (condition["status"], condition["reason"]) == ("Unknown", logic.PAUSED)
    resumed = deployment(2, 1, 0, status=plan.status)
    plan = logic.plan(logic.Observed(resumed, [old], {}, NOW))
    condition = logic.find_condition(plan.status or {}, logic.PROGRESSING)
    # resumed, then in the same sync the rollout starts: a new ReplicaSet is created
    assert [w.kind for w in plan.writes][:1] == ["create"]
    assert condition is not None and condition["reason"] == logic.NEW_RS_CREATED


def test_deadline_passes_without_progress_and_is_never_overwritten_by_pause():
    start = format_time(NOW - timedelta(seconds=601))
    stuck = {"type": "Progressing", "status": "True", "reason": logic.RS_UPDATED, "message": "m",
             "lastUpdateTime": start, "lastTransitionTime": start}
    status = {"replicas": 3, "updatedReplicas": 1, "readyReplicas": 3, "availableReplicas": 2,
              "observedGeneration": 1, "conditions": [stuck]}
    d = deployment(2, 1, 0, status=status)
    new = replicaset("foo-new", 1, NEWER, available=0, actual=1,
                     template=HASHED,
                     annotations={logic.REVISION: "2", logic.DESIRED_REPLICAS: "2", logic.MAX_REPLICAS: "3"})
    old = replicaset("foo-old", 2, OLD, annotations={logic.REVISION: "1", logic.DESIRED_REPLICAS: "2",
                                                      logic.MAX_REPLICAS: "3"})
    plan = logic.plan(logic.Observed(d, [new, old], {}, NOW))
    condition = logic.find_condition(plan.status or {}, logic.PROGRESSING)
    assert condition is not None and (condition["status"], condition["reason"], condition["message"]) == (
        "False", logic.TIMED_OUT, 'ReplicaSet "foo-new" has timed out progressing.')
    paused = deployment(2, 1, 0, status=plan.status, paused=True)
    plan = logic.plan(logic.Observed(paused, [new, old], {}, NOW))
    condition = logic.find_condition(plan.status or {}, logic.PROGRESSING)
    assert condition is not None and condition["reason"] == logic.TIMED_OUT


def test_progress_refreshes_last_update_time_only_and_requeues_at_the_deadline():
    since = format_time(NOW - timedelta(seconds=100))
    current = {"type": "Progressing", "status": "True", "reason": logic.RS_UPDATED, "message": "m",
               "lastUpdateTime": since, "lastTransitionTime": since}
    d = deployment(2, 1, 0, status={"replicas": 3, "updatedReplicas": 1, "readyReplicas": 2, "availableReplicas": 2,
                                    "observedGeneration": 1, "conditions": [current]})
    new = replicaset("foo-new", 1, NEWER, available=1, actual=1,
                     template=HASHED,
                     annotations={logic.REVISION: "2", logic.DESIRED_REPLICAS: "2", logic.MAX_REPLICAS: "3"})
    old = replicaset("foo-old", 2, OLD, annotations={logic.REVISION: "1", logic.DESIRED_REPLICAS: "2",
                                                      logic.MAX_REPLICAS: "3"})
    plan = logic.plan(logic.Observed(d, [new, old], {}, NOW))
    condition = logic.find_condition(plan.status or {}, logic.PROGRESSING)
    assert condition is not None and condition["reason"] == logic.RS_UPDATED
    assert condition["lastTransitionTime"] == since and condition["lastUpdateTime"] == format_time(NOW)
    assert plan.requeue_after == pytest.approx(600 + 1)  # the deadline runs from the refreshed lastUpdateTime


def test_recreate_waits_for_old_pods_before_creating():
    d = deployment(2, strategy="Recreate", template={"metadata": {"labels": {"app": "web"}},
                                                     "spec": {"containers": [{"name": "c", "image": "v2"}]}})
    old = replicaset("foo-v1", 2, OLD, annotations={logic.REVISION: "1"})
    plan = logic.plan(logic.Observed(d, [old], {}, NOW))
    assert [(w.kind, w.rs.name, w.rs.replicas) for w in plan.writes] == [("update", "foo-v1", 0)]
    drained = replicaset("foo-v1", 0, OLD, actual=0, annotations={logic.REVISION: "1"})
    running = {"foo-v1-uid": [{"metadata": {"name": "p"}, "status": {"phase": "Running"}}]}
    plan = logic.plan(logic.Observed(d, [drained], running, NOW))
    assert plan.writes == []  # a pod of the old set still runs
    plan = logic.plan(logic.Observed(d, [drained], {"foo-v1-uid": []}, NOW))
    assert [(w.kind, w.rs.replicas) for w in plan.writes] == [("create", 2)]


def test_replica_failure_is_copied_from_the_replica_sets():
    failure = {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "quota",
               "lastTransitionTime": NEW}
    d = deployment(1, 1, 0)
    new = replicaset("foo-new", 1, NEWER, actual=0, available=0, conditions=[failure],
                     template=HASHED,
                     annotations={logic.REVISION: "1", logic.DESIRED_REPLICAS: "1", logic.MAX_REPLICAS: "2"})
    plan = logic.plan(logic.Observed(d, [new], {}, NOW))
    copied = logic.find_condition(plan.status or {}, logic.REPLICA_FAILURE)
    assert copied is not None and (copied["reason"], copied["message"]) == ("FailedCreate", "quota")


def test_empty_selector_only_warns():
    d = deployment()
    d["spec"]["selector"] = {}
    plan = logic.plan(logic.Observed(d, [], {}, NOW))
    assert plan.writes == [] and plan.events == [
        ("Warning", "SelectingAll", "This deployment is selecting all pods. A non-empty selector is required.")]


# --- ★ progressDeadlinePolicy: Rollback ---------------------------------------------------------

def stuck_rollout(policy: str | None, last_complete: str | None = "1"):
    start = format_time(NOW - timedelta(seconds=601))
    progressing = {"type": "Progressing", "status": "True", "reason": logic.RS_UPDATED, "message": "m",
                   "lastUpdateTime": start, "lastTransitionTime": start}
    d = deployment(2, 1, 0, status={"replicas": 3, "updatedReplicas": 1, "readyReplicas": 2, "availableReplicas": 2,
                                    "observedGeneration": 1, "conditions": [progressing]},
                   annotations={logic.LAST_COMPLETE: last_complete} if last_complete else {})
    if policy:
        d["spec"]["progressDeadlinePolicy"] = policy
    new = replicaset("foo-new", 1, NEWER, available=0, actual=1, template=HASHED,
                     annotations={logic.REVISION: "2", logic.DESIRED_REPLICAS: "2", logic.MAX_REPLICAS: "3"})
    new["status"]["readyReplicas"] = 0
    old = replicaset("foo-old", 2, OLD, annotations={logic.REVISION: "1", logic.DESIRED_REPLICAS: "2",
                                                      logic.MAX_REPLICAS: "3"})
    pods = {"foo-new-uid": [
        {"metadata": {"name": "foo-new-a"}, "status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}},
        {"metadata": {"name": "foo-new-b"}, "status": {"phase": "Pending", "containerStatuses": [
            {"name": "web", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}},
    ]}
    return logic.plan(logic.Observed(d, [new, old], pods, NOW))


def test_default_policy_reports_as_upstream_and_rolls_nothing_back():
    plan = stuck_rollout(None)
    condition = logic.find_condition(plan.status or {}, logic.PROGRESSING)
    assert condition is not None and condition["message"] == 'ReplicaSet "foo-new" has timed out progressing.'
    assert plan.rollback_to is None and plan.events == []


def test_rollback_policy_writes_back_the_last_complete_revision_and_names_the_blocking_pods():
    plan = stuck_rollout("Rollback")
    assert plan.rollback_to == {"metadata": {"labels": {"app": "web"}},
                                "spec": {"containers": [{"name": "c", "image": "foo-old"}]}}
    condition = logic.find_condition(plan.status or {}, logic.PROGRESSING)
    expected = ('ReplicaSet "foo-new" has timed out progressing. Rolled back to revision 1. '
                "Blocking pods: foo-new-a (Unschedulable), foo-new-b (ImagePullBackOff).")
    assert condition is not None and (condition["reason"], condition["message"]) == (logic.TIMED_OUT, expected)
    assert plan.events == [("Warning", "ProgressDeadlineRollback", expected)]


def test_rollback_policy_without_a_complete_revision_only_explains():
    plan = stuck_rollout("Rollback", last_complete=None)
    assert plan.rollback_to is None
    [(kind, reason, message)] = plan.events
    assert (kind, reason) == ("Warning", logic.TIMED_OUT) and "nothing to roll back to" in message


def test_rollback_policy_remembers_each_revision_that_completes():
    d = deployment(2, 1, 0, status={"replicas": 2, "updatedReplicas": 2, "availableReplicas": 2,
                                    "observedGeneration": 1})
    d["spec"]["progressDeadlinePolicy"] = "Rollback"
    new = replicaset("foo-new", 2, NEWER, template=HASHED,
                     annotations={logic.REVISION: "3", logic.DESIRED_REPLICAS: "2", logic.MAX_REPLICAS: "3"})
    plan = logic.plan(logic.Observed(d, [new], {}, NOW))
    assert plan.annotations == {logic.LAST_COMPLETE: "3"}


def test_a_finished_rollout_that_loses_a_pod_is_not_polled():
    # NewReplicaSetAvailable long ago, one replica unavailable now: nothing to time out, no requeue
    # (upstream requeues rate-limited from 5 ms; a 0 here once spun the event loop).
    long_ago = format_time(NOW - timedelta(hours=1))
    done = {"type": "Progressing", "status": "True", "reason": logic.NEW_RS_AVAILABLE, "message": "m",
            "lastUpdateTime": long_ago, "lastTransitionTime": long_ago}
    d = deployment(2, 1, 0, status={"replicas": 2, "updatedReplicas": 2, "readyReplicas": 1, "availableReplicas": 1,
                                    "observedGeneration": 1, "conditions": [done]})
    new = replicaset("foo-new", 2, NEWER, available=1, template=HASHED,
                     annotations={logic.REVISION: "1", logic.DESIRED_REPLICAS: "2", logic.MAX_REPLICAS: "3"})
    plan = logic.plan(logic.Observed(d, [new], {}, NOW))
    assert plan.requeue_after is None
    assert logic.stuck_requeue(deployment(), {"conditions": [{**done, "reason": logic.RS_UPDATED}]},
                               NOW) == 1.0  # past the deadline: once a second at most


def test_report_policy_names_the_blocking_pods_without_rolling_back():
    plan = stuck_rollout("Report")
    assert plan.rollback_to is None
    condition = logic.find_condition(plan.status or {}, logic.PROGRESSING)
    expected = ('ReplicaSet "foo-new" has timed out progressing. '
                "Blocking pods: foo-new-a (Unschedulable), foo-new-b (ImagePullBackOff).")
    assert condition is not None and condition["message"] == expected
    assert plan.events == [("Warning", logic.TIMED_OUT, expected)]


def test_a_rollout_that_just_started_is_requeued_for_its_deadline():
    # The stored condition still says the previous rollout finished; the one written now starts the
    # clock: the sync asks to look again when the deadline would pass.
    done = {"type": "Progressing", "status": "True", "reason": logic.NEW_RS_AVAILABLE, "message": "m",
            "lastUpdateTime": OLD, "lastTransitionTime": OLD}
    d = deployment(2, 1, 0, status={"replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2,
                                    "observedGeneration": 1, "conditions": [done]}, generation=2, deadline=5)
    old = replicaset("foo-old", 2, OLD, annotations={logic.REVISION: "1", logic.DESIRED_REPLICAS: "2",
                                                      logic.MAX_REPLICAS: "3"})
    plan = logic.plan(logic.Observed(d, [old], {}, NOW))
    assert [w.kind for w in plan.writes] == ["create"]
    assert plan.requeue_after == pytest.approx(5 + 1)
