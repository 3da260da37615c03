"""TaintToleration, with the cases of upstream's TestTaintTolerationScore and filter tests."""

import pytest

from operators.core.taints import taint_to_string, tolerates
from operators.scheduler.snapshot import Snapshot
from operators.scheduler.status import Code
from tests.unit.scheduler.builders import filter_statuses, node, pod, scores, taint, toleration

PREFER = "PreferNoSchedule"


def score_of(tolerations, taints_by_node):
    snapshot = Snapshot.build([node(name, taints=taints) for name, taints in taints_by_node.items()])
    return scores("TaintToleration", pod(tolerations=tolerations), snapshot)


def test_tolerated_taint_scores_higher():
    got = score_of(
        [toleration("foo", "bar", PREFER)],
        {"nodeA": [taint("foo", "bar", PREFER)], "nodeB": [taint("foo", "blah", PREFER)]},
    )
    assert got == {"nodeA": 100, "nodeB": 0}


def test_number_of_tolerated_taints_does_not_matter():
    got = score_of(
        [toleration("cpu-type", "arm64", PREFER), toleration("disk-type", "ssd", PREFER)],
        {
            "nodeA": [],
            "nodeB": [taint("cpu-type", "arm64", PREFER)],
            "nodeC": [taint("cpu-type", "arm64", PREFER), taint("disk-type", "ssd", PREFER)],
        },
    )
    assert got == {"nodeA": 100, "nodeB": 100, "nodeC": 100}


def test_more_intolerable_taints_lower_score():
    got = score_of(
        [toleration("foo", "bar", PREFER)],
        {
            "nodeA": [],
            "nodeB": [taint("cpu-type", "arm64", PREFER)],
            "nodeC": [taint("cpu-type", "arm64", PREFER), taint("disk-type", "ssd", PREFER)],
        },
    )
    assert got == {"nodeA": 100, "nodeB": 50, "nodeC": 0}


def test_only_prefer_no_schedule_counts_for_score():
    got = score_of(
        [toleration("cpu-type", "arm64", "NoSchedule"), toleration("disk-type", "ssd", "NoSchedule")],
        {
            "nodeA": [],
            "nodeB": [taint("cpu-type", "arm64", "NoSchedule")],
            "nodeC": [taint("cpu-type", "arm64", PREFER), taint("disk-type", "ssd", PREFER)],
        },
    )
    assert got == {"nodeA": 100, "nodeB": 100, "nodeC": 0}


def test_no_tolerations_prefers_untainted_nodes():
    assert score_of([], {"nodeA": [], "nodeB": [taint("cpu-type", "arm64", PREFER)]}) == {"nodeA": 100, "nodeB": 0}


def test_effectless_toleration_counts_for_score():
    got = score_of(
        [toleration("foo", operator="Exists")], {"a": [taint("foo", "x", PREFER)], "b": [taint("bar", "x", PREFER)]}
    )
    assert got == {"a": 100, "b": 0}


@pytest.mark.parametrize(
    ("tolerations", "taints", "fits"),
    [
        ([], [taint("dedicated", "user1")], False),
        ([toleration("dedicated", "user1", "NoSchedule")], [taint("dedicated", "user1")], True),
        ([toleration("dedicated", "user2", "NoSchedule")], [taint("dedicated", "user1")], False),
        ([toleration("foo", operator="Exists", effect="NoSchedule")], [taint("foo", "bar")], True),
        (
            [toleration("dedicated", "user2", "NoSchedule"), toleration("foo", operator="Exists", effect="NoSchedule")],
            [taint("dedicated", "user2"), taint("foo", "bar")],
            True,
        ),
        ([toleration("foo", "bar", PREFER)], [taint("foo", "blah", PREFER)], True),  # PreferNoSchedule never rejects
        ([], [taint("foo", "bar", "NoExecute")], False),
        ([toleration("foo", "bar")], [taint("foo", "bar", "NoExecute")], True),  # empty effect tolerates all
        ([toleration(operator="Exists")], [taint("a"), taint("b", "c", "NoExecute")], True),
    ],
)
def test_filter(tolerations, taints, fits):
    snapshot = Snapshot.build([node("n", taints=taints)])
    _, statuses = filter_statuses("TaintToleration", pod(tolerations=tolerations), snapshot)
    if fits:
        assert statuses["n"] is None
    else:
        status = statuses["n"]
        assert status is not None
        assert status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
        assert status.reasons == ["node(s) had untolerated taint(s)"]
        assert status.details["untoleratedTaint"] == taint_to_string(taints[0])


def test_toleration_rules():
    assert tolerates({"key": "k", "operator": "Exists"}, {"key": "k", "value": "v", "effect": "NoSchedule"})
    assert not tolerates({"key": "k", "operator": "Bogus"}, {"key": "k"})
    assert not tolerates(
        {"key": "k", "value": "v", "effect": "NoExecute"}, {"key": "k", "value": "v", "effect": "NoSchedule"}
    )
    assert tolerates({"operator": "Exists"}, {"key": "anything", "effect": "NoExecute"})
    assert taint_to_string({"key": "k"}) == "k"
    assert taint_to_string({"key": "k", "value": "v"}) == "k=v:"
    assert taint_to_string({"key": "k", "effect": "NoSchedule"}) == "k:NoSchedule"
