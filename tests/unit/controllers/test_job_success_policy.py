"""A Job's successPolicy (job/policy.py success_policy_match), held to upstream's TestMatchSuccessPolicy
(pkg/controller/job/success_policy_test.go, Kubernetes 1.34), every case with the feature on (it is GA),
completions 10. Each case: succeeded indexes (as upstream's orderedIntervals, some past completions),
the rules as (succeededIndexes, succeededCount), and the message expected (None: not met)."""

from __future__ import annotations

from typing import Any

import pytest

from operators.controllers.job import policy

M0, M1 = "Matched rules at index 0", "Matched rules at index 1"

CASES: dict[str, tuple[list[tuple[int, int]], list[tuple[str | None, int | None]] | None, str | None]] = {
    "successPolicy is null": ([(0, 0)], None, None),
    "any rules are nothing": ([(0, 0)], [], None),
    "rules.succeededIndexes is invalid format": ([(0, 0)], [("invalid-form", None)], None),
    "succeededIndexes matched rules": ([(0, 2), (4, 7)], [("0-2", None)], M0),
    "succeededIndexes didn't match rules": ([(0, 2)], [("3", None)], None),
    "succeededCount matched": ([(0, 2)], [(None, 2)], M0),
    "succeededCount didn't match": ([(0, 2)], [(None, 4)], None),
    "multiple rules; met one of rules": ([(0, 2), (4, 7)], [("9", None), ("4,6", None)], M1),
    "multiple rules; met all rules": ([(0, 2), (4, 7)], [("0,1", None), ("5", None)], M0),
    "both; met": ([(0, 2), (4, 7)], [("3-6", 2)], M0),
    "both; didn't match": ([(0, 2), (6, 7)], [("3-6", 2)], None),
    "succeededIndexes are nothing": ([], [(None, 4)], None),
    "rules is proper subset of succeededIndexes": ([(1, 5), (6, 9)], [("2-4,6-8", None)], M0),
    "rules equals succeededIndexes": ([(2, 4), (6, 9)], [("2-4,6-9", None)], M0),
    "rules is subset of succeededIndexes": ([(2, 5), (7, 15)], [("2-4,8-12", None)], M0),
    "rules is an empty set": ([(1, 3)], [("", None)], None),
    "succeededIndexes is an empty set": ([], [("", None)], None),
    "rules and succeededIndexes are empty set": ([], [("", None)], None),
    "no element of the rule is included": ([(1, 3), (5, 7)], [("10-12,14-16", None)], None),
    "rules overlaps succeededIndexes at first": ([(2, 4), (6, 8)], [("1-3,5-7", None)], None),
    "both; rules overlaps succeededIndexes at first": ([(2, 4), (6, 8)], [("1-3,5-7", 4)], M0),
    "rules overlaps succeededIndexes at last": ([(1, 3), (5, 7)], [("2-4,6-9", None)], None),
    "both; rules overlaps succeededIndexes at last": ([(1, 3), (5, 7)], [("2-4,6-9", 4)], M0),
    "rules completely overlaps succeededIndexes": ([(1, 3), (7, 8)], [("0-4,6-9", None)], None),
    "both; rules completely overlaps succeededIndexes": ([(1, 3), (7, 8)], [("0-4,6-9", 5)], M0),
    "rules overlaps multiple succeededIndexes at last": ([(1, 3), (5, 9)], [("0-6,8-9", None)], None),
    "both; rules overlaps multiple succeededIndexes at last": ([(1, 3), (5, 9)], [("0-6,8-9", 7)], M0),
    "overlaps at first, equals at last": ([(1, 5), (7, 10)], [("0-5,7-9", None)], None),
    "both; overlaps at first, equals at last": ([(1, 5), (7, 10)], [("0-5,7-9", 8)], M0),
    "the first rules overlaps succeededIndexes at first": ([(1, 10)], [("0-3,6-9", None)], None),
    "both; the first rules overlaps succeededIndexes at first": ([(1, 10)], [("0-3,6-9", 7)], M0),
}


def _job(rules: list[tuple[str | None, int | None]] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"completions": 10, "completionMode": "Indexed"}
    if rules is not None:
        spec["successPolicy"] = {"rules": [{k: v for k, v in (("succeededIndexes", i), ("succeededCount", c))
                                            if v is not None} for i, c in rules]}
    return {"spec": spec}


@pytest.mark.parametrize("name", list(CASES))
def test_match_success_policy(name: str) -> None:
    intervals, rules, expected = CASES[name]
    succeeded = {i for first, last in intervals for i in range(first, last + 1)}
    assert policy.success_policy_match(_job(rules), succeeded, 10) == expected


def test_a_huge_interval_costs_nothing() -> None:
    job = _job([("0-2000000000", None)])
    assert policy.success_policy_match(job, set(range(10)), 10) == M0


# --- in the plan: the interim condition, the remaining pods, the final one -----------------------------

def test_a_met_success_policy_completes_an_indexed_job_early() -> None:
    from operators.controllers.job import logic
    from tests.unit.controllers.test_job_logic import job, plan, pod, types

    j = job(completions=3, parallelism=3, completionMode="Indexed",
            successPolicy={"rules": [{"succeededIndexes": "0", "succeededCount": 1}]},
            status={"startTime": "2026-01-01T00:00:00Z", "completedIndexes": "0", "succeeded": 1})
    running = [pod("pi-1", index=1), pod("pi-2", index=2)]
    first = plan(j, [pod("pi-0", "Succeeded", finalizer=False, index=0), *running])
    assert types(first.status) == [("SuccessCriteriaMet", "True", "SuccessPolicy")]
    assert first.status["conditions"][0]["message"] == "Matched rules at index 0"
    assert {p["metadata"]["name"] for p in first.delete} == {"pi-1", "pi-2"}
    assert not first.create
    # The deleted pods end in phase Failed and count as failed, as upstream counts them
    # (trackJobStatusAndRemoveFinalizers: isPodFailed); the Job completes with the policy's reason.
    j["status"] = {**first.status}
    ended = [pod("pi-1", "Failed", index=1, deleting=True), pod("pi-2", "Failed", index=2, deleting=True)]
    pods = [pod("pi-0", "Succeeded", finalizer=False, index=0), *ended]
    events = []
    for _ in range(3):  # as the controller: the record, the finalizers gone, the status
        step = plan(j, pods)
        events += [e.reason for e in step.events]
        j["status"] = {**step.status}
        released = {p["metadata"]["uid"] for p in step.finalize}
        pods = [{**p, "metadata": {**p["metadata"], "finalizers": []}} if p["metadata"]["uid"] in released else p
                for p in pods]
    final = j["status"]
    assert ("Complete", "True", "SuccessPolicy") in types(final)
    assert final["failed"] == 2 and final["succeeded"] == 1
    assert events.count("Completed") == 1
    assert logic.SUCCESS_POLICY == "SuccessPolicy"
