"""backoffLimitPerIndex, maxFailedIndexes and the FailIndex action (job/logic.py), held to upstream's
tables (pkg/controller/job, Kubernetes 1.34: indexed_job_utils_test.go TestIsIndexFailed and
TestGetNewIndexFailureCountValue, backoff_utils_test.go TestGetRemainingBackoffTimePerIndex) and to
syncJob's per-index behaviour, step by step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from operators.controllers.job import logic
from tests.unit.controllers.test_job_logic import job, plan, pod, types


def failed(name: str, index: int, count: int | None = None, *, ignored: int = 0, code: int = 1,
           finished_ago: float = 5, condition: str | None = None) -> dict[str, Any]:
    p = pod(name, "Failed", index=index, finished_ago=finished_ago)
    if count is not None:
        p["metadata"]["annotations"][logic.INDEX_FAILURE_COUNT] = str(count)
    if ignored:
        p["metadata"]["annotations"][logic.INDEX_IGNORED_FAILURE_COUNT] = str(ignored)
    p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] = code
    if condition:
        p["status"]["conditions"].append({"type": condition, "status": "True"})
    return p


FAIL_INDEX_ON_3 = {"rules": [{"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [3]}}]}
IGNORE_DISRUPTION = {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}


# --- TestIsIndexFailed --------------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "p", "want"), [
    ({"completions": 2, "backoffLimitPerIndex": 0}, failed("a", 0, 0), True),
    ({"completions": 2, "backoffLimitPerIndex": 1}, failed("a", 1, 1), True),
    ({"completions": 2, "backoffLimitPerIndex": 1, "podFailurePolicy": FAIL_INDEX_ON_3},
     failed("a", 0, 0, code=3), True),
    # kubeplane's own: within the limit, and an ignored failure, do not fail the index.
    ({"completions": 2, "backoffLimitPerIndex": 1}, failed("a", 0, 0), False),
    ({"completions": 2, "backoffLimitPerIndex": 0, "podFailurePolicy": IGNORE_DISRUPTION},
     failed("a", 0, 0, condition="DisruptionTarget"), False),
], ids=["limit 0", "limit 1", "matching FailIndex", "within the limit", "ignored"])
def test_is_index_failed(spec: dict[str, Any], p: dict[str, Any], want: bool) -> None:
    assert logic.is_index_failed({"spec": spec}, p) is want


# --- TestGetNewIndexFailureCountValue -----------------------------------------------------------------

@pytest.mark.parametrize(("spec", "p", "want"), [
    ({}, None, (0, 0)),
    ({}, failed("a", 0, 0), (1, 0)),
    ({}, failed("a", 0, 3), (4, 0)),
    ({"podFailurePolicy": IGNORE_DISRUPTION}, failed("a", 3, 3, condition="DisruptionTarget"), (3, 1)),
], ids=["first pod created", "replacing 0", "replacing >0", "matching the ignore rule"])
def test_new_index_failure_counts(spec: dict[str, Any], p: dict[str, Any] | None, want: tuple[int, int]) -> None:
    assert logic.new_index_failure_counts({"spec": spec}, p) == want


# --- TestGetRemainingBackoffTimePerIndex --------------------------------------------------------------

T = datetime(2009, 11, 10, 23, 0, 0, tzinfo=UTC)


def deleted_at(count: int, ignored: int = 0) -> dict[str, Any]:
    p = failed("a", 0, count, ignored=ignored)
    p["status"] = {"phase": "Failed"}
    p["metadata"]["deletionTimestamp"] = T.strftime("%Y-%m-%dT%H:%M:%SZ")
    return p


@pytest.mark.parametrize(("p", "want"), [(None, 0.0), (deleted_at(2), 20.0), (deleted_at(1, 1), 20.0)],
                         ids=["no failures", "two prev failures", "one counted and one ignored"])
def test_remaining_for_index(p: dict[str, Any] | None, want: float) -> None:
    assert logic.remaining_for_index(p, T, base=5, cap=700) == want


# --- syncJob, step by step ------------------------------------------------------------------------------

def per_index(**spec: Any) -> dict[str, Any]:
    return job(completions=3, parallelism=3, completionMode="Indexed", **spec)


def test_a_failed_index_is_retried_after_its_own_backoff_carrying_its_count() -> None:
    j = per_index(backoffLimitPerIndex=1)
    running = [pod("pi-0", index=0), pod("pi-2", index=2)]
    first = failed("pi-1", 1, 0, finished_ago=4)
    early = plan(j, [*running, first])
    # The failed pod keeps its finalizer (and is not counted yet) until its replacement exists.
    assert first not in early.finalize and not early.create
    assert early.requeue == pytest.approx(6, abs=0.01)  # 10 s backoff from its finish, 4 s ago
    assert early.status["failedIndexes"] == "" and early.status["failed"] == 0
    late = plan(j, [*running, failed("pi-1", 1, 0, finished_ago=11)])
    assert late.create == (1,)
    body = logic.pod_from_template(j, _jobs(), 1, late.replacing.get(1))
    assert body["metadata"]["annotations"][logic.INDEX_FAILURE_COUNT] == "1"
    # Once the replacement runs, the failed pod is counted and released.
    replaced = plan(j, [*running, failed("pi-1", 1, 0, finished_ago=11), pod("pi-1b", index=1)])
    assert replaced.record is not None and replaced.record["uncountedTerminatedPods"]["failed"] == ["uid-pi-1"]
    assert [p["metadata"]["name"] for p in replaced.finalize] == ["pi-1"]


def test_per_index_backoff_follows_backoff_policy_and_shows_the_soonest_retry() -> None:
    """kubeplane only: spec.backoffPolicy sets each index's backoff; status.nextRetryTime is the soonest."""
    j = per_index(backoffLimitPerIndex=3, backoffPolicy={"initialSeconds": 4, "maxSeconds": 6})
    waiting = plan(j, [pod("pi-0", index=0), failed("pi-1", 1, 0, finished_ago=1),
                       failed("pi-2", 2, 2, finished_ago=1)])
    assert not waiting.create and waiting.requeue == pytest.approx(3, abs=0.01)  # index 1: 4 s; index 2: 6 s (capped)
    assert waiting.status["nextRetryTime"] == "2026-01-01T12:00:03Z"
    assert plan(j, [pod("pi-0", index=0), failed("pi-1", 1, 0, finished_ago=5),
                    failed("pi-2", 2, 2, finished_ago=5)]).create == (1,)


def _jobs() -> Any:
    from operators.core.apis import JOBS
    return JOBS


def test_an_index_past_its_limit_fails_and_the_job_fails_with_failed_indexes() -> None:
    j = per_index(backoffLimitPerIndex=1)
    done = [pod("pi-0", "Succeeded", index=0), pod("pi-2", "Succeeded", index=2)]
    step = plan(j, [*done, failed("pi-1b", 1, 1)])
    assert step.record is not None and step.record["failedIndexes"] == "1"  # written before any finalizer goes
    assert not step.create
    assert ("FailureTarget", "True", "FailedIndexes") in types(step.status)
    assert step.status["failedIndexes"] == "1" and step.status["completedIndexes"] == "0,2"
    # Nothing is active: the final condition comes in the same sync, with its Warning.
    assert ("Failed", "True", "FailedIndexes") in types(step.status)
    assert [(e.type, e.reason, e.message) for e in step.events] == [("Warning", "FailedIndexes",
                                                                     "Job has failed indexes")]


def test_other_indexes_go_on_while_one_has_failed() -> None:
    j = per_index(backoffLimitPerIndex=0)
    step = plan(j, [failed("pi-0", 0, 0)])
    assert step.status["failedIndexes"] == "0"
    assert step.create == (1, 2)  # index 0 is never retried
    assert not any(c[0] == "FailureTarget" for c in types(step.status))


def test_more_failed_indexes_than_max_fail_the_job() -> None:
    j = per_index(backoffLimitPerIndex=0, maxFailedIndexes=0)
    step = plan(j, [failed("pi-0", 0, 0), pod("pi-1", index=1), pod("pi-2", index=2)])
    assert ("FailureTarget", "True", "MaxFailedIndexesExceeded") in types(step.status)
    assert {p["metadata"]["name"] for p in step.delete} == {"pi-1", "pi-2"}
    assert step.status["conditions"][0]["message"] == logic.MAX_FAILED_INDEXES_MESSAGE


def test_fail_index_fails_the_index_at_its_first_failure() -> None:
    j = per_index(backoffLimitPerIndex=5, podFailurePolicy=FAIL_INDEX_ON_3)
    j["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    step = plan(j, [failed("pi-0", 0, 0, code=3), pod("pi-1", index=1), pod("pi-2", index=2)])
    assert step.status["failedIndexes"] == "0" and not step.create


def test_without_a_per_index_limit_backoff_limit_defaults_to_six_and_with_it_to_none() -> None:
    assert logic.backoff_limit(per_index()) == 6
    assert logic.backoff_limit(per_index(backoffLimitPerIndex=1)) == logic.MAX_INT32
    assert logic.backoff_limit(per_index(backoffLimitPerIndex=1, backoffLimit=2)) == 2


def test_new_pods_of_a_per_index_job_carry_a_zero_count() -> None:
    body = logic.pod_from_template(per_index(backoffLimitPerIndex=2), _jobs(), 0)
    assert body["metadata"]["annotations"][logic.INDEX_FAILURE_COUNT] == "0"
    assert logic.INDEX_IGNORED_FAILURE_COUNT not in body["metadata"]["annotations"]
    plain = logic.pod_from_template(per_index(), _jobs(), 0)
    assert logic.INDEX_FAILURE_COUNT not in plain["metadata"]["annotations"]
