from operators.controllers.replicaset import logic
from tests.unit.factories import NOW, pod, replicaset


def test_claim_splits_owned_orphans_foreign_and_mismatched():
    rs = replicaset()
    claim = logic.claim_pods(rs, [
        pod("mine", owner_uid="rs-uid"),
        pod("orphan"),
        pod("foreign", owner_uid="other"),
        pod("strayed", owner_uid="rs-uid", labels={"app": "db"}),
        pod("orphan-other-labels", labels={"app": "db"}),
        pod("orphan-terminating", deleting=True),
    ])
    assert [p["metadata"]["name"] for p in claim.owned] == ["mine"]
    assert [p["metadata"]["name"] for p in claim.adopt] == ["orphan"]
    assert [p["metadata"]["name"] for p in claim.release] == ["strayed"]


def test_deleting_replicaset_neither_adopts_nor_releases():
    claim = logic.claim_pods(replicaset(deleting=True),
                             [pod("orphan"), pod("strayed", owner_uid="rs-uid", labels={"app": "db"})])
    assert claim.adopt == [] and claim.release == []
    assert [p["metadata"]["name"] for p in claim.owned] == ["strayed"]


def test_plan_creates_missing_up_to_burst():
    assert logic.plan_replicas(3, [pod("a")], NOW) == logic.Plan(create=2)
    assert logic.plan_replicas(2000, [], NOW).create == logic.BURST_REPLICAS


def test_plan_deletes_ranked_victims():
    active = [pod("ready", node="n1"), pod("pending", node="", phase="Pending"), pod("other", node="n2")]
    plan = logic.plan_replicas(2, active, NOW)
    assert [p["metadata"]["name"] for p in plan.delete] == ["pending"]


def test_plan_nothing_when_equal():
    assert logic.plan_replicas(1, [pod("a")], NOW) == logic.Plan()


def test_slow_start_batches():
    assert logic.slow_start_batches(0) == []
    assert logic.slow_start_batches(1) == [1]
    assert logic.slow_start_batches(10) == [1, 2, 4, 3]
    assert sum(logic.slow_start_batches(500)) == 500
    assert logic.slow_start_batches(500)[:4] == [1, 2, 4, 8]


def test_pod_from_template_copies_template_and_owns_it():
    body = logic.pod_from_template(replicaset())
    meta = body["metadata"]
    assert meta["generateName"] == "web-"
    assert meta["labels"] == {"app": "web", "tier": "fe"}
    assert meta["annotations"] == {"a": "b"}
    [ref] = meta["ownerReferences"]
    assert ref["uid"] == "rs-uid" and ref["controller"] and ref["blockOwnerDeletion"]
    assert body["spec"]["containers"][0]["image"] == "nginx"


def test_status_counts_from_observed_pods():
    rs = replicaset(min_ready=30)
    active = [
        pod("a", ready_for=100),  # available
        pod("b", ready_for=10),  # ready, not yet available
        pod("c", ready=False, labels={"app": "web", "tier": "fe"}),
    ]
    status = logic.compute_status(rs, active, [pod("t", deleting=True)], None, NOW)
    assert status["replicas"] == 3
    assert status["readyReplicas"] == 2
    assert status["availableReplicas"] == 1
    assert status["fullyLabeledReplicas"] == 1
    assert status["terminatingReplicas"] == 1
    assert status["observedGeneration"] == 2
    assert status["selector"] == "app=web"
    assert "conditions" not in status


def test_replica_failure_condition_set_then_kept_then_cleared():
    rs = replicaset()
    failed = logic.compute_status(rs, [], [], ("FailedCreate", "quota exceeded"), NOW)
    [cond] = failed["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == ("ReplicaFailure", "True", "FailedCreate")
    rs["status"] = failed
    again = logic.compute_status(rs, [], [], ("FailedCreate", "another message"), NOW)
    assert again["conditions"][0]["message"] == "quota exceeded"  # first message kept, as upstream
    rs["status"] = again
    assert "conditions" not in logic.compute_status(rs, [], [], None, NOW)


def test_status_patch_nulls_vanished_keys_and_skips_no_change():
    assert logic.status_patch({"replicas": 1}, {"replicas": 1}) is None
    assert logic.status_patch({"replicas": 1, "conditions": []}, {"replicas": 2}) == {
        "status": {"replicas": 2, "conditions": None}
    }


def test_requeue_for_availability_only_while_waiting_for_min_ready():
    rs = replicaset(replicas=2, min_ready=15)
    assert logic.requeue_for_availability(rs, {"readyReplicas": 2, "availableReplicas": 1}) == 15.0
    assert logic.requeue_for_availability(rs, {"readyReplicas": 2, "availableReplicas": 2}) is None
    assert logic.requeue_for_availability(replicaset(), {"readyReplicas": 3, "availableReplicas": 0}) is None
