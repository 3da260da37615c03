"""The Job's decisions (operators/controllers/job/logic.py), as facts from upstream's job_controller.go,
indexed_job_utils.go and backoff_utils.go (Kubernetes 1.34) and their table tests."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from operators.controllers.job import logic
from operators.core.apis import JOBS
from tests.unit.factories import NOW, ago

UID = "job-uid"


def job(*, completions: int | None = 3, parallelism: int | None = 2, status: dict[str, Any] | None = None,
        **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "selector": {"matchLabels": {logic.CONTROLLER_UID: UID}},
        "template": {"metadata": {"labels": {logic.CONTROLLER_UID: UID, "app": "batch"}},
                     "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}},
        **spec,
    }
    if completions is not None:
        body["completions"] = completions
    if parallelism is not None:
        body["parallelism"] = parallelism
    return {"apiVersion": JOBS.api_version, "kind": "Job",
            "metadata": {"name": "pi", "namespace": "ns", "uid": UID, "resourceVersion": "7"},
            "spec": body, "status": status if status is not None else {"startTime": ago(30)}}


def pod(name: str, phase: str = "Running", *, finalizer: bool = True, finished_ago: float | None = None,
        index: int | None = None, deleting: bool = False, ready: bool = True, restarts: int = 0) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "creationTimestamp": ago(100),
                            "labels": {logic.CONTROLLER_UID: UID},
                            "finalizers": [logic.FINALIZER] if finalizer else []}
    if index is not None:
        meta["annotations"] = {logic.COMPLETION_INDEX: str(index)}
    if deleting:
        meta["deletionTimestamp"] = ago(1)
    container: dict[str, Any] = {"name": "c", "restartCount": restarts}
    if phase in ("Succeeded", "Failed"):
        container["state"] = {"terminated": {"exitCode": 0 if phase == "Succeeded" else 1,
                                             "finishedAt": ago(finished_ago if finished_ago is not None else 5)}}
    return {"metadata": meta, "spec": {},
            "status": {"phase": phase, "containerStatuses": [container],
                       "conditions": [{"type": "Ready", "status": "True" if ready and phase == "Running" else "False",
                                       "lastTransitionTime": ago(50)}]}}


def plan(j: dict[str, Any], pods: list[dict[str, Any]], satisfied: bool = True) -> logic.Plan:
    return logic.plan(logic.Observed(job=j, pods=pods, expectations_satisfied=satisfied, now=NOW))


def types(status: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(c["type"], c["status"], c["reason"]) for c in status.get("conditions") or []]


# --- intervals (indexed_job_utils_test.go: TestCalculateSucceededIndexes, succeededIndexesToString) ----

@pytest.mark.parametrize(("text", "limit", "want"), [
    ("", None, set()), ("1", None, {1}), ("1,3-5", None, {1, 3, 4, 5}), ("0-2,7", 5, {0, 1, 2}),
    ("1,3-5,8-10", 9, {1, 3, 4, 5, 8}), ("a,2", None, {2}),
])
def test_parse_intervals(text: str, limit: int | None, want: set[int]) -> None:
    assert logic.parse_intervals(text, limit) == want


@pytest.mark.parametrize(("indexes", "want"), [
    (set(), ""), ({0}, "0"), ({0, 1, 2}, "0-2"), ({1, 3, 4, 5}, "1,3-5"), ({0, 2, 4, 5, 6, 9}, "0,2,4-6,9"),
])
def test_format_intervals(indexes: set[int], want: str) -> None:
    assert logic.format_intervals(indexes) == want
    assert logic.parse_intervals(want) == indexes


def test_first_pending_indexes_skip_done_and_active() -> None:
    assert logic.first_pending_indexes({0, 2}, {1, 4}, 3, 8) == [3, 5, 6]
    assert logic.first_pending_indexes({0, 1}, set(), 5, 3) == [2]


# --- the selector, then pods ---------------------------------------------------------------------------

def test_a_job_without_selector_gets_upstreams_labels_first_and_nothing_else() -> None:
    j = job()
    del j["spec"]["selector"]
    p = plan(j, [])
    assert p.labels == {"spec": {"selector": {"matchLabels": {logic.CONTROLLER_UID: UID}},
                                 "template": {"metadata": {"labels": {
                                     logic.CONTROLLER_UID: UID, logic.JOB_NAME: "pi",
                                     "controller-uid": UID, "job-name": "pi"}}},
                                 "backoffLimit": 6}}
    assert not p.create and p.record is None


@pytest.mark.parametrize(("fields", "want"), [
    ({}, 6), ({"backoffLimit": 2}, None), ({"completionMode": "Indexed", "backoffLimitPerIndex": 1}, 2**31 - 1),
])
def test_backoff_limit_defaults_as_set_defaults_job(fields: dict[str, Any], want: int | None) -> None:
    """SetDefaults_Job: 6, or MaxInt32 with backoffLimitPerIndex; a given value is left alone."""
    j = job(**fields)
    del j["spec"]["selector"]
    p = plan(j, [])
    assert p.labels is not None and p.labels["spec"].get("backoffLimit") == want


def test_creates_min_parallelism_and_remaining_completions() -> None:
    assert len(plan(job(completions=3, parallelism=2), []).create) == 2
    done = job(completions=3, parallelism=2, status={"startTime": ago(30), "succeeded": 2})
    assert len(plan(done, []).create) == 1
    # completions unset with parallelism set: parallelism pods, and none once one succeeded.
    assert len(plan(job(completions=None, parallelism=4), []).create) == 4
    # both unset: batch/v1 defaults completions and parallelism to 1.
    assert plan(job(completions=None, parallelism=None), []).create == (None,)


def test_pods_carry_the_finalizer_and_the_job_as_controller() -> None:
    body = logic.pod_from_template(job(), JOBS, None)
    assert body["metadata"]["generateName"] == "pi-"
    assert body["metadata"]["finalizers"] == [logic.FINALIZER]
    ref = body["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["uid"], ref["controller"]) == ("Job", UID, True)


def test_indexed_pods_get_index_annotation_label_hostname_and_env() -> None:
    body = logic.pod_from_template(job(completionMode="Indexed"), JOBS, 3)
    meta = body["metadata"]
    assert meta["generateName"] == "pi-3-"
    assert meta["annotations"][logic.COMPLETION_INDEX] == "3" and meta["labels"][logic.COMPLETION_INDEX] == "3"
    assert body["spec"]["hostname"] == "pi-3"
    env = body["spec"]["containers"][0]["env"]
    assert env == [{"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
        "fieldPath": f"metadata.annotations['{logic.COMPLETION_INDEX}']"}}}]


def test_indexed_job_creates_the_lowest_free_indexes() -> None:
    j = job(completions=5, parallelism=3, completionMode="Indexed",
            status={"startTime": ago(30), "completedIndexes": "0", "succeeded": 1})
    p = plan(j, [pod("a", index=2)])
    assert p.create == (1, 3)


# --- counting exactly once (trackJobStatusAndRemoveFinalizers) ------------------------------------------

def test_a_finished_pod_is_recorded_uncounted_then_finalized_then_counted() -> None:
    p = plan(job(), [pod("a", "Succeeded"), pod("b", "Failed"), pod("c")])
    assert p.record is not None
    assert p.record["uncountedTerminatedPods"] == {"succeeded": ["uid-a"], "failed": ["uid-b"]}
    assert "succeeded" not in p.record and "failed" not in p.record, "the counters wait for the finalizers"
    assert [x["metadata"]["name"] for x in p.finalize] == ["a", "b"]
    assert (p.status["succeeded"], p.status["failed"], p.status["uncountedTerminatedPods"]) == (1, 1, {})


def test_an_uncounted_pod_whose_finalizer_is_gone_is_counted_once() -> None:
    """After a crash between the finalizer removal and the counters: the uid is in the list, the pod
    (or its finalizer) is gone; it is counted now, and not listed again."""
    j = job(status={"startTime": ago(30), "succeeded": 1,
                    "uncountedTerminatedPods": {"succeeded": ["uid-a"], "failed": []}})
    p = plan(j, [pod("a", "Succeeded", finalizer=False)])
    assert p.record is None and not p.finalize
    assert p.status["succeeded"] == 2 and p.status["uncountedTerminatedPods"] == {}


def test_a_pod_without_finalizer_is_never_counted_again() -> None:
    j = job(status={"startTime": ago(30), "succeeded": 1})
    p = plan(j, [pod("a", "Succeeded", finalizer=False)])
    assert p.record is None and p.status["succeeded"] == 1


def test_a_deleted_running_pod_counts_as_failed() -> None:
    """isPodFailed without podFailurePolicy: deleted and not Succeeded is a failure."""
    p = plan(job(), [pod("a", deleting=True)])
    assert p.record is not None and p.record["uncountedTerminatedPods"]["failed"] == ["uid-a"]
    assert p.status["terminating"] == 1 and p.status["failed"] == 1


def test_indexed_successes_count_by_index_not_uid() -> None:
    j = job(completions=3, completionMode="Indexed", status={"startTime": ago(30)})
    p = plan(j, [pod("a", "Succeeded", index=1), pod("b", "Succeeded", index=1), pod("c", index=0)])
    assert p.record is not None
    assert p.record["completedIndexes"] == "1" and p.record["succeeded"] == 1
    assert p.record["uncountedTerminatedPods"]["succeeded"] == []
    assert p.status["succeeded"] == 1 and p.status["completedIndexes"] == "1"


# --- terminal conditions ---------------------------------------------------------------------------

def test_success_is_interim_until_no_pod_is_left_then_complete() -> None:
    j = job(completions=2, parallelism=2, status={"startTime": ago(30), "succeeded": 1})
    p = plan(j, [pod("a", "Succeeded"), pod("x", "Running")])  # a stray active pod goes
    assert types(p.status) == [("SuccessCriteriaMet", "True", "CompletionsReached")]
    assert [x["metadata"]["name"] for x in p.delete] == ["x"]
    j2 = job(completions=2, parallelism=2, status={**p.status})
    p2 = plan(j2, [])
    assert types(p2.status) == [("SuccessCriteriaMet", "True", "CompletionsReached"),
                                ("Complete", "True", "CompletionsReached")]
    assert p2.status["conditions"][-1]["message"] == "Reached expected number of succeeded pods"
    assert p2.status["completionTime"] and [e.reason for e in p2.events] == ["Completed"]


def test_backoff_limit_exceeded_when_failed_passes_the_limit() -> None:
    j = job(backoffLimit=1, status={"startTime": ago(30), "failed": 1})
    p = plan(j, [pod("a", "Failed"), pod("b")])
    assert types(p.status) == [("FailureTarget", "True", "BackoffLimitExceeded")]
    assert [x["metadata"]["name"] for x in p.delete] == ["b"] and not p.create
    p2 = plan(job(backoffLimit=1, status=p.status), [])
    assert types(p2.status)[-1] == ("Failed", "True", "BackoffLimitExceeded")
    assert [(e.type, e.reason, e.message) for e in p2.events] == [
        ("Warning", "BackoffLimitExceeded", "Job has reached the specified backoff limit")]
    assert "completionTime" not in p2.status


def test_on_failure_restarts_count_against_the_limit() -> None:
    j = job(backoffLimit=2)
    j["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    assert not types(plan(j, [pod("a", restarts=1)]).status)
    assert types(plan(j, [pod("a", restarts=1), pod("b", restarts=1)]).status)[0][2] == "BackoffLimitExceeded"
    zero = job(backoffLimit=0)
    zero["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    assert types(plan(zero, [pod("a", restarts=1)]).status)[0][2] == "BackoffLimitExceeded"


def test_active_deadline() -> None:
    j = job(activeDeadlineSeconds=60, status={"startTime": ago(61)})
    p = plan(j, [pod("a")])
    assert types(p.status) == [("FailureTarget", "True", "DeadlineExceeded")]
    assert p.status["conditions"][0]["message"] == "Job was active longer than specified deadline"
    # Not yet: requeued for the moment it passes.
    p = plan(job(activeDeadlineSeconds=60, status={"startTime": ago(20)}), [pod("a"), pod("b")])
    assert p.requeue == pytest.approx(40)


# --- backoff (backoff_utils_test.go facts: 10 s doubling, capped at 10 minutes) ---------------------------

@pytest.mark.parametrize(("failures", "want"), [(1, 10), (2, 20), (3, 40), (6, 320), (7, 600), (12, 600)])
def test_backoff_doubles_per_failure_since_the_last_success(failures: int, want: float) -> None:
    seen = [pod(f"f{i}", "Failed", finished_ago=0, finalizer=False) for i in range(failures)]
    assert logic.backoff_remaining(seen, NOW, job()) == pytest.approx(want)


def test_backoff_counts_only_failures_after_the_last_success_and_from_the_last_failure() -> None:
    seen = [pod("f1", "Failed", finished_ago=100), pod("s", "Succeeded", finished_ago=50),
            pod("f2", "Failed", finished_ago=4)]
    assert logic.backoff_remaining(seen, NOW, job()) == pytest.approx(6)
    assert logic.backoff_remaining([pod("s", "Succeeded")], NOW, job()) == 0


def test_a_failed_pod_delays_the_replacement() -> None:
    j = job(completions=1, parallelism=1, status={"startTime": ago(30), "failed": 1})
    p = plan(j, [pod("a", "Failed", finalizer=False, finished_ago=3)])
    assert not p.create and p.requeue == pytest.approx(7)
    p = plan(j, [pod("a", "Failed", finalizer=False, finished_ago=11)])
    assert p.create == (None,)


# --- beyond upstream: spec.backoffPolicy and status.nextRetryTime ----------------------------------------

@pytest.mark.parametrize(("policy", "failures", "want"), [
    ({"initialSeconds": 2}, 1, 2), ({"initialSeconds": 2}, 4, 16), ({"initialSeconds": 2}, 12, 600),
    ({"initialSeconds": 2, "maxSeconds": 5}, 3, 5), ({"maxSeconds": 30}, 3, 30), ({"maxSeconds": 30}, 1, 10),
    ({"initialSeconds": 900}, 2, 900),  # maxSeconds defaults to initialSeconds when that is over 600
])
def test_backoff_policy_replaces_10s_and_600s(policy: dict[str, int], failures: int, want: float) -> None:
    seen = [pod(f"f{i}", "Failed", finished_ago=0, finalizer=False) for i in range(failures)]
    assert logic.backoff_remaining(seen, NOW, job(backoffPolicy=policy)) == pytest.approx(want)


def test_a_waiting_job_shows_next_retry_time_and_a_creating_one_clears_it() -> None:
    j = job(completions=1, parallelism=1, status={"startTime": ago(30), "failed": 1})
    p = plan(j, [pod("a", "Failed", finalizer=False, finished_ago=3)])
    assert not p.create and p.status["nextRetryTime"] == ago(-7)
    # The write is stable across syncs: the time comes from the finish time, not the sync's.
    later = logic.plan(logic.Observed(job=j | {"status": p.status}, expectations_satisfied=True,
                                      pods=[pod("a", "Failed", finalizer=False, finished_ago=3)],
                                      now=NOW + timedelta(seconds=2)))
    assert later.status == p.status and later.requeue == pytest.approx(5)
    done = plan(j | {"status": {**j["status"], "nextRetryTime": ago(1)}},
                [pod("a", "Failed", finalizer=False, finished_ago=11)])
    assert done.create == (None,) and "nextRetryTime" not in done.status


def test_next_retry_time_outlives_the_failed_pods() -> None:
    """The failed pods deleted (or a restart that lost them): the stored time still holds the Job back."""
    j = job(completions=1, parallelism=1, status={"startTime": ago(30), "failed": 3, "nextRetryTime": ago(-25)})
    p = plan(j, [])
    assert not p.create and p.requeue == pytest.approx(25) and p.status["nextRetryTime"] == ago(-25)
    # A later time from the pods wins over an earlier stored one, and the other way round.
    assert plan(j, [pod("a", "Failed", finalizer=False, finished_ago=0)]).status["nextRetryTime"] == ago(-25)
    assert plan(j | {"status": {**j["status"], "nextRetryTime": ago(-2)}},
                [pod("a", "Failed", finalizer=False, finished_ago=0)]).status["nextRetryTime"] == ago(-10)


def test_a_success_after_every_failure_resets_the_stored_wait() -> None:
    j = job(completions=3, parallelism=1, status={"startTime": ago(30), "failed": 1, "succeeded": 1,
                                                  "nextRetryTime": ago(-300)})
    p = plan(j, [pod("f", "Failed", finalizer=False, finished_ago=20), pod("s", "Succeeded", finalizer=False,
                                                                             finished_ago=10)])
    assert p.create == (None,) and "nextRetryTime" not in p.status


def test_builtin_jobs_neither_write_nor_read_next_retry_time() -> None:
    j = job(completions=1, parallelism=1, status={"startTime": ago(30), "failed": 1, "nextRetryTime": ago(-300)})
    p = logic.plan(logic.Observed(job=j, pods=[pod("a", "Failed", finalizer=False, finished_ago=3)],
                                  expectations_satisfied=True, now=NOW, extras=False))
    assert p.requeue == pytest.approx(7) and "nextRetryTime" not in p.status


def test_next_retry_time_kept_while_expectations_wait_and_dropped_when_suspended() -> None:
    j = job(completions=1, parallelism=1, status={"startTime": ago(30), "failed": 1, "nextRetryTime": ago(-9)})
    assert plan(j, [], satisfied=False).status["nextRetryTime"] == ago(-9)
    assert "nextRetryTime" not in plan(job(completions=1, parallelism=1, suspend=True, status=j["status"]),
                                       []).status


# --- suspend -------------------------------------------------------------------------------------------

def test_suspend_deletes_active_pods_and_resume_resets_start_time() -> None:
    j = job(suspend=True)
    p = plan(j, [pod("a"), pod("b")])
    assert types(p.status) == [("Suspended", "True", "JobSuspended")]
    assert len(p.delete) == 2 and not p.create
    assert [e.reason for e in p.events] == ["Suspended"]
    resumed = job(status={**p.status, "startTime": ago(3600)})
    p2 = plan(resumed, [])
    assert types(p2.status) == [("Suspended", "False", "JobResumed")]
    assert p2.status["startTime"] == ago(0) and len(p2.create) == 2


def test_created_suspended_has_no_start_time() -> None:
    p = plan(job(suspend=True, status={}), [])
    assert "startTime" not in p.status and not p.create


def test_a_finished_job_only_releases_finalizers() -> None:
    status = {"startTime": ago(30), "succeeded": 3, "conditions": [
        {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "",
         "lastTransitionTime": ago(5)}]}
    p = plan(job(status=status), [pod("late", "Failed")])
    assert [x["metadata"]["name"] for x in p.finalize] == ["late"]
    assert p.record is None and p.status["failed"] == 0 and not p.create and not p.delete


def test_unsatisfied_expectations_create_nothing() -> None:
    assert not plan(job(), [], satisfied=False).create


def test_finish_time_falls_back_to_ready_transition_then_deletion() -> None:
    p = pod("a", "Failed")
    p["status"]["containerStatuses"] = []
    assert logic.finish_time(p) == NOW - timedelta(seconds=50)


# --- podFailurePolicy (pod_failure_policy_test.go facts) ---------------------------------------------------

def failed_with(code: int, name: str = "a", container: str = "c") -> dict[str, Any]:
    p = pod(name, "Failed")
    p["status"]["containerStatuses"][0].update(name=container)
    p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] = code
    return p


def policy_job(*rules: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return job(podFailurePolicy={"rules": list(rules)}, **spec)


@pytest.mark.parametrize(("rule", "code", "action"), [
    ({"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}, 42, "FailJob"),
    ({"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}, 1, "Count"),
    ({"action": "Ignore", "onExitCodes": {"operator": "NotIn", "values": [1, 2]}}, 3, "Ignore"),
    ({"action": "Ignore", "onExitCodes": {"operator": "NotIn", "values": [1, 2]}}, 2, "Count"),
    ({"action": "FailJob", "onExitCodes": {"containerName": "other", "operator": "In", "values": [42]}}, 42,
     "Count"),
    ({"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}, 1, "Ignore"),
])
def test_policy_rules(rule: dict[str, Any], code: int, action: str) -> None:
    from operators.controllers.job import policy

    p = failed_with(code)
    p["status"]["conditions"].append({"type": "DisruptionTarget", "status": "True"})
    assert policy.match(policy_job(rule), p).action == action


def test_exit_code_zero_never_matches_and_the_first_rule_wins() -> None:
    from operators.controllers.job import policy

    j = policy_job({"action": "Ignore", "onExitCodes": {"operator": "NotIn", "values": [5]}},
                   {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [7]}})
    assert policy.match(j, failed_with(7)).action == "Ignore"
    assert policy.match(j, failed_with(0)).action == "Count"


def test_fail_job_fails_at_once_with_upstreams_message() -> None:
    j = policy_job({"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}, backoffLimit=6)
    p = plan(j, [failed_with(42, "a"), pod("b")])
    assert types(p.status) == [("FailureTarget", "True", "PodFailurePolicy")]
    assert p.status["conditions"][0]["message"] == \
        "Container c for pod ns/a failed with exit code 42 matching FailJob rule at index 0"
    # On a failure target the still-running pod is deleted and counts as failed too (its finalizer goes now).
    assert [x["metadata"]["name"] for x in p.delete] == ["b"] and p.status["failed"] == 2
    assert [x["metadata"]["name"] for x in p.finalize] == ["a", "b"]


def test_ignored_failures_are_not_counted_and_do_not_back_off() -> None:
    j = policy_job({"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}},
                   completions=1, parallelism=1, backoffLimit=0)
    p = plan(j, [failed_with(3, "a")])
    assert p.status["failed"] == 0 and not types(p.status)
    assert [x["metadata"]["name"] for x in p.finalize] == ["a"], "its finalizer goes all the same"
    assert p.record is None
    released = failed_with(3, "a")
    released["metadata"]["finalizers"] = []
    p = plan(j, [released])
    assert p.create == (None,), "no backoff after an ignored failure"


def test_with_a_policy_deleted_pods_are_not_failures_and_are_not_replaced_until_failed() -> None:
    j = policy_job({"action": "Count", "onExitCodes": {"operator": "In", "values": [1]}},
                   completions=2, parallelism=2)
    p = plan(j, [pod("a", deleting=True), pod("b")])
    assert p.record is None and p.status["failed"] == 0 and p.status["terminating"] == 1
    assert p.create == (), "the terminating pod is replaced only once it is Failed"


# --- ttlSecondsAfterFinished (ttlafterfinished_controller.go: getFinishAndExpireTime) ----------------------

def test_ttl_counts_from_the_finished_condition() -> None:
    finished = [{"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": ago(100)},
                {"type": "Complete", "status": "True", "lastTransitionTime": ago(30)}]
    assert logic.ttl_remaining(job(ttlSecondsAfterFinished=60, status={"conditions": finished}), NOW) == 30
    assert logic.ttl_remaining(job(ttlSecondsAfterFinished=0, status={"conditions": finished}), NOW) == -30
    assert logic.ttl_remaining(job(status={"conditions": finished}), NOW) is None, "no TTL: kept"
    assert logic.ttl_remaining(job(ttlSecondsAfterFinished=0), NOW) is None, "not finished: kept"
