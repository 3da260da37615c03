"""Gang scheduling's pure decisions (operators/scheduler/gang.py): PreFilter, Permit, timeout, status."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from operators.scheduler import gang
from operators.scheduler.resources import Resource
from operators.scheduler.snapshot import NodeInfo
from tests.unit.scheduler.builders import node, pod

LABEL = {gang.POD_GROUP_LABEL: "trio"}


def group(min_member: int = 3, **spec: Any) -> gang.PodGroup:
    body = {"metadata": {"name": "trio", "namespace": "ns"}, "spec": {"minMember": min_member, **spec}}
    return gang.PodGroup.of(body)


def member(name: str, node_name: str = "", phase: str = "Pending") -> gang.Member:
    return gang.Member.of(pod(name, "ns", labels=LABEL, node_name=node_name or None, phase=phase))


# --- membership -------------------------------------------------------------------------------


def test_group_key_from_the_label() -> None:
    assert gang.group_key(pod("a", "ns", labels=LABEL)) == ("ns", "trio")
    assert gang.group_key(pod("a", "ns", labels={"app": "x"})) is None
    assert gang.group_key(pod("a", "ns")) is None
    assert gang.group_key(pod("a", "ns", labels={gang.POD_GROUP_LABEL: ""})) is None


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({}, True),
    ({"phase": "Running", "node_name": "n"}, True),
    ({"phase": "Succeeded"}, False),
    ({"phase": "Failed"}, False),
    ({"terminating": True}, False),
])
def test_only_live_pods_are_members(kwargs: dict[str, Any], expected: bool) -> None:
    assert gang.is_member(pod("a", "ns", labels=LABEL, **kwargs)) is expected
    assert not gang.is_member(pod("a", "ns", **kwargs))


def test_pod_group_of_body_defaults_and_quantities() -> None:
    g = group(2, minResources={"cpu": "1500m", "memory": "1Gi"})
    assert (g.namespace, g.name, g.min_member) == ("ns", "trio", 2)
    assert g.timeout_seconds == gang.DEFAULT_TIMEOUT_SECONDS
    assert g.min_resources == {"cpu": Decimal("1.5"), "memory": Decimal(2**30)}
    assert group(2, scheduleTimeoutSeconds=5).timeout_seconds == 5


def test_member_of_pod() -> None:
    m = member("a", "n1", "Running")
    assert (m.uid, m.name, m.node, m.phase) == ("uid-ns-a", "a", "n1", "Running")


# --- PreFilter --------------------------------------------------------------------------------


def test_pre_filter_rejects_a_missing_group() -> None:
    assert gang.pre_filter("trio", None, 5) == 'pod group "trio" not found'


@pytest.mark.parametrize(("members", "expected"), [
    (1, 'pod group "trio" has 1 pods, fewer than minMember 3'),
    (2, 'pod group "trio" has 2 pods, fewer than minMember 3'),
    (3, None),
    (4, None),
])
def test_pre_filter_needs_min_member_pods(members: int, expected: str | None) -> None:
    assert gang.pre_filter("trio", group(3), members) == expected


def test_free_resources_sum_over_nodes_without_overcommit() -> None:
    a = NodeInfo.of(node("a", capacity={"cpu": "4", "memory": "4Gi", "example.com/gpu": "2"}),
                    [pod("p", requests=[{"cpu": "1", "memory": "1Gi", "example.com/gpu": "1"}])])
    b = NodeInfo.of(node("b", capacity={"cpu": "2", "memory": "1Gi"}),
                    [pod("q", requests=[{"cpu": "3", "memory": "512Mi"}])])  # cpu overcommitted
    free = gang.free_resources([a, b])
    assert free.milli_cpu == 3000  # 3 on a, none (not -1) on b
    assert free.memory == 3 * 2**30 + 2**29
    assert free.scalar == {"example.com/gpu": 1}


def test_pre_filter_checks_min_resources_against_free_plus_held() -> None:
    g = group(2, minResources={"cpu": "4", "example.com/gpu": "2"})
    free = Resource(milli_cpu=3000, scalar={"example.com/gpu": 2})
    assert gang.insufficient_resources(g.min_resources, free) == ["cpu"]
    message = gang.pre_filter("trio", g, 2, free)
    assert message == ('pod group "trio" needs minResources the cluster\'s free resources cannot cover: '
                       "insufficient cpu")
    held = gang.held_resources([pod("m", requests=[{"cpu": "1"}])])
    free.milli_cpu += held.milli_cpu
    assert gang.pre_filter("trio", g, 2, free) is None
    # Not checked without a view of the cluster, nor for resources the scheduler does not track.
    assert gang.pre_filter("trio", g, 2, None) is None
    assert gang.insufficient_resources({"pods": Decimal(1000)}, Resource()) == []
    assert gang.insufficient_resources({"memory": Decimal(10)}, Resource()) == ["memory"]


# --- Permit and timeout -----------------------------------------------------------------------


def test_count_placed_counts_bound_and_reserved_once() -> None:
    members = [member("a", "n1"), member("b"), member("c")]
    assert gang.count_placed(members, []) == 1
    assert gang.count_placed(members, ["uid-ns-b"]) == 2
    # A bound member still assumed in the cache (the watch has not confirmed yet) counts once.
    assert gang.count_placed(members, ["uid-ns-a", "uid-ns-b", "uid-ns-c"]) == 3


@pytest.mark.parametrize(("placed", "allowed"), [(1, False), (2, False), (3, True), (4, True)])
def test_permit_waits_for_min_member(placed: int, allowed: bool) -> None:
    assert gang.permit(3, placed) is allowed


def test_timeout() -> None:
    assert not gang.timed_out(100.0, 104.9, 5)
    assert gang.timed_out(100.0, 105.0, 5)
    assert gang.timeout_message("trio", 2, 3, 5.0) == (
        'pod group "trio": only 2 of minMember 3 pods could be placed within 5s; reservations released'
    )


# --- status -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("scheduled", "running", "waiting", "failure", "phase"), [
    (0, 0, 0, None, gang.PENDING),
    (0, 0, 2, None, gang.SCHEDULING),
    (1, 0, 0, None, gang.SCHEDULING),
    (0, 0, 2, "timed out", gang.UNSCHEDULABLE),
    (3, 0, 0, None, gang.SCHEDULED),
    (3, 0, 0, "old failure", gang.SCHEDULED),
    (3, 2, 0, None, gang.SCHEDULED),
    (3, 3, 0, None, gang.RUNNING),
    (4, 3, 0, None, gang.RUNNING),
])
def test_phase(scheduled: int, running: int, waiting: int, failure: str | None, phase: str) -> None:
    assert gang.phase_of(3, scheduled, running, waiting, failure) == phase


def test_desired_status() -> None:
    g = group(3)
    assert gang.desired_status(g, [member("a"), member("b")], 0, None) == {
        "phase": "Pending", "scheduled": 0, "running": 0, "message": ""}
    assert gang.desired_status(g, [member("a", "n1", "Running"), member("b")], 1, None) == {
        "phase": "Scheduling", "scheduled": 1, "running": 1,
        "message": "2 of minMember 3 pods placed (1 bound, 1 waiting)"}
    assert gang.desired_status(g, [member("a"), member("b")], 0, "no room") == {
        "phase": "Unschedulable", "scheduled": 0, "running": 0, "message": "no room"}
    bound = [member(n, "n1", "Running") for n in "abc"]
    assert gang.desired_status(g, bound, 0, None) == {"phase": "Running", "scheduled": 3, "running": 3,
                                                      "message": ""}


def test_status_patch_only_what_changes() -> None:
    desired = {"phase": "Scheduled", "scheduled": 3, "running": 0, "message": ""}
    assert gang.status_patch({}, desired) == {"phase": "Scheduled", "scheduled": 3, "running": 0}
    assert gang.status_patch({"phase": "Scheduled", "scheduled": 3, "running": 0}, desired) is None
    assert gang.status_patch({"phase": "Unschedulable", "scheduled": 0, "running": 0, "message": "x"}, desired) == {
        "phase": "Scheduled", "scheduled": 3, "message": None}
    assert gang.status_patch({"phase": "Pending"}, {"phase": "Unschedulable", "message": "why"}) == {
        "phase": "Unschedulable", "message": "why"}


def test_trim_pod_group_and_path() -> None:
    body = {"apiVersion": "x", "metadata": {"name": "trio", "namespace": "ns", "uid": "u", "managedFields": []},
            "spec": {"minMember": 3}, "status": {"phase": "Pending"}}
    assert gang.trim_pod_group(body) == {"metadata": {"name": "trio", "namespace": "ns", "uid": "u"},
                                         "spec": {"minMember": 3}, "status": {"phase": "Pending"}}
    assert gang.pod_group_path("ns", "trio") == "/apis/scheduling.kubeplane.dev/v1alpha1/namespaces/ns/podgroups/trio"
