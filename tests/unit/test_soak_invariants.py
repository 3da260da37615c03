"""The soak's checks find what they are meant to find (tests/soak/invariants.py), on event sequences
built to break each one, and stay quiet on the sequences a correct run produces."""

from __future__ import annotations

from typing import Any

from tests.soak import invariants
from tests.soak.invariants import Event


def pod(name: str, uid: str, owner: str = "rs-0", node: str = "", cpu: str = "250m",
        deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": uid,
                            "ownerReferences": [{"kind": "ReplicaSet", "name": owner, "controller": True}]}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-04T00:00:00Z"
    spec: dict[str, Any] = {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": meta, "spec": spec}


def whats(violations: list[invariants.Violation]) -> list[str]:
    return [v.what for v in violations]


def test_creations_allowed_is_the_sum_of_every_increase() -> None:
    assert invariants.creations_allowed([3, 1, 4, 4, 0, 2]) == 3 + 3 + 2
    assert invariants.creations_allowed([]) == 0


def test_a_clean_run_has_no_violation() -> None:
    events: list[Event] = [
        ("ADDED", pod("a", "1")), ("MODIFIED", pod("a", "1", node="n1")),
        ("ADDED", pod("b", "2")), ("MODIFIED", pod("b", "2", node="n1")),
        ("MODIFIED", pod("a", "1", node="n1", deleting=True)), ("DELETED", pod("a", "1", node="n1")),
        ("ADDED", pod("c", "3")), ("MODIFIED", pod("c", "3", node="n1")),
    ]
    assert invariants.pod_violations(events, {"rs-0": 3}, {"n1": 500}) == []


def test_one_pod_more_than_the_scale_requests_asked_for_is_over_creation() -> None:
    events: list[Event] = [("ADDED", pod(name, name)) for name in ("a", "b", "c")]
    assert whats(invariants.pod_violations(events, {"rs-0": 2}, {})) == ["over-created"]
    # Seen again after a watch restart (ADDED for what exists): the same pods, not new ones.
    assert invariants.pod_violations(events + events, {"rs-0": 3}, {}) == []


def test_a_pod_bound_twice_is_a_double_binding() -> None:
    events: list[Event] = [("ADDED", pod("a", "1", node="n1")), ("MODIFIED", pod("a", "1", node="n2"))]
    assert whats(invariants.pod_violations(events, {"rs-0": 1}, {})) == ["double binding"]


def test_terminating_pods_still_hold_their_node() -> None:
    events: list[Event] = [
        ("ADDED", pod("a", "1", node="n1")), ("MODIFIED", pod("a", "1", node="n1", deleting=True)),
        ("ADDED", pod("b", "2", node="n1")),  # placed while a still terminates: 500m on 250m... of 250m
    ]
    assert whats(invariants.pod_violations(events, {"rs-0": 2}, {"n1": 250})) == ["node overcommitted"]
    # Once a is gone, b fits.
    gone: list[Event] = [events[0], events[1], ("DELETED", pod("a", "1", node="n1")), events[2]]
    assert invariants.pod_violations(gone, {"rs-0": 2}, {"n1": 250}) == []


def test_a_completed_backup_must_stay_completed_and_present() -> None:
    def backup(phase: str) -> dict[str, Any]:
        return {"metadata": {"name": "b"}, "status": {"phase": phase}}
    fine: list[Event] = [("ADDED", backup("New")), ("MODIFIED", backup("InProgress")),
                         ("MODIFIED", backup("Completed")), ("MODIFIED", backup("Completed"))]
    assert invariants.phase_violations("Backup", fine) == []
    assert invariants.ever_completed(fine) == ["b"]
    changed = [*fine, ("MODIFIED", backup("Failed"))]
    assert whats(invariants.phase_violations("Backup", changed)) == ["completed Backup changed"]
    deleted = [*fine, ("DELETED", backup("Completed"))]
    assert whats(invariants.phase_violations("Backup", deleted)) == ["completed Backup deleted"]
    # Failed from the start is an honest outcome, not a violation.
    assert invariants.phase_violations("Backup", [("ADDED", backup("Failed")), ("DELETED", backup("Failed"))]) == []
