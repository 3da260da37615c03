"""NodeAffinity, with cases from upstream's TestNodeAffinity and TestNodeAffinityPriority."""

import pytest

from operators.core.selectors import Requirement, SelectorError, new_requirement
from operators.scheduler.framework import PluginArgs, Profile
from operators.scheduler.snapshot import Snapshot
from operators.scheduler.status import Code
from tests.unit.scheduler.builders import expr, filter_statuses, node, node_affinity, pod, scores

MISMATCH = "node(s) didn't match Pod's node affinity/selector"


def run(p, labels, node_name="node1", profile=None):
    snapshot = Snapshot.build([node(node_name, labels=labels)])
    pre, statuses = filter_statuses("NodeAffinity", p, snapshot, profile)
    return pre, statuses.get(node_name)


def affinity_pod(*terms, **kwargs):
    return pod(affinity=node_affinity(required=list(terms)), **kwargs)


FILTER_CASES = [
    ("missing labels", pod(node_selector={"foo": "bar"}), {}, False),
    ("same labels", pod(node_selector={"foo": "bar"}), {"foo": "bar"}, True),
    ("node labels are superset", pod(node_selector={"foo": "bar"}), {"foo": "bar", "baz": "blah"}, True),
    ("node labels are subset", pod(node_selector={"foo": "bar", "baz": "blah"}), {"foo": "bar"}, False),
    ("In", affinity_pod({"matchExpressions": [expr("foo", "In", "bar", "value2")]}), {"foo": "bar"}, True),
    (
        "Gt",
        affinity_pod({"matchExpressions": [expr("kernel-version", "Gt", "0204")]}),
        {"kernel-version": "0206"},
        True,
    ),
    (
        "Gt not",
        affinity_pod({"matchExpressions": [expr("kernel-version", "Gt", "0204")]}),
        {"kernel-version": "0204"},
        False,
    ),
    ("Lt", affinity_pod({"matchExpressions": [expr("v", "Lt", "10")]}), {"v": "9"}, True),
    ("Lt non-integer label", affinity_pod({"matchExpressions": [expr("v", "Lt", "10")]}), {"v": "nine"}, False),
    (
        "NotIn",
        affinity_pod({"matchExpressions": [expr("mem-type", "NotIn", "DDR", "DDR2")]}),
        {"mem-type": "DDR3"},
        True,
    ),
    ("NotIn missing key", affinity_pod({"matchExpressions": [expr("mem-type", "NotIn", "DDR")]}), {}, True),
    ("Exists", affinity_pod({"matchExpressions": [expr("GPU", "Exists")]}), {"GPU": "NVIDIA-GRID-K1"}, True),
    ("DoesNotExist", affinity_pod({"matchExpressions": [expr("GPU", "DoesNotExist")]}), {"GPU": "x"}, False),
    ("no match", affinity_pod({"matchExpressions": [expr("foo", "In", "value1", "value2")]}), {"foo": "bar"}, False),
    ("empty term matches nothing", affinity_pod({"matchExpressions": []}), {"foo": "bar"}, False),
    (
        "ANDed expressions",
        affinity_pod({"matchExpressions": [expr("GPU", "Exists"), expr("GPU", "NotIn", "AMD", "INTER")]}),
        {"GPU": "NVIDIA-GRID-K1"},
        True,
    ),
    (
        "ANDed expressions, one fails",
        affinity_pod({"matchExpressions": [expr("GPU", "Exists"), expr("GPU", "In", "AMD", "INTER")]}),
        {"GPU": "NVIDIA-GRID-K1"},
        False,
    ),
    (
        "ORed terms",
        affinity_pod(
            {"matchExpressions": [expr("foo", "In", "bar", "value2")]},
            {"matchExpressions": [expr("diffkey", "In", "wrong", "value2")]},
        ),
        {"foo": "bar"},
        True,
    ),
    (
        "affinity matches but nodeSelector does not",
        affinity_pod({"matchExpressions": [expr("foo", "Exists")]}, node_selector={"foo": "bar"}),
        {"foo": "barrrrrr"},
        False,
    ),
    (
        "invalid value never matches",
        affinity_pod({"matchExpressions": [expr("foo", "NotIn", "invalid value: ___@#$%^")]}),
        {"foo": "bar"},
        False,
    ),
    ("Gt needs an integer", affinity_pod({"matchExpressions": [expr("v", "Gt", "x")]}), {"v": "1"}, False),
]


@pytest.mark.parametrize(("name", "p", "labels", "fits"), FILTER_CASES, ids=[c[0] for c in FILTER_CASES])
def test_filter(name, p, labels, fits):
    _, status = run(p, labels)
    if fits:
        assert status is None
    else:
        assert status is not None
        assert (status.code, status.reasons) == (Code.UNSCHEDULABLE_AND_UNRESOLVABLE, [MISMATCH])


def test_prefilter_skips_pods_without_node_constraints():
    pre, _ = run(pod(), {"foo": "bar"})
    assert pre is not None and pre.code is Code.SKIP
    pre, _ = run(pod(affinity={"nodeAffinity": {}}), {})
    assert pre is not None and pre.code is Code.SKIP


NAME = "metadata.name"


def prefilter_result(p, nodes=("node1", "node2")):
    from operators.scheduler.framework import CycleState, Framework

    snapshot = Snapshot.build([node(n) for n in nodes])
    plugin = Framework(Profile(plugins=("NodeAffinity",)), snapshot).plugins[0]
    return plugin.pre_filter(CycleState(), p, snapshot.node_list())


def test_match_fields_narrow_prefilter_and_filter():
    p = affinity_pod({"matchFields": [expr(NAME, "In", "node1")]})
    narrowed, status = prefilter_result(p)
    assert status is None and narrowed.node_names == frozenset({"node1"})
    assert run(p, {}, "node1")[1] is None
    assert run(p, {}, "node2")[1].reasons == [MISMATCH]


def test_two_terms_one_without_name_pin_allows_all_nodes():
    p = affinity_pod(
        {"matchFields": [expr(NAME, "In", "node1"), expr(NAME, "In", "node2")]},
        {"matchExpressions": [expr("foo", "In", "bar")]},
    )
    narrowed, status = prefilter_result(p)
    assert (narrowed, status) == (None, None)
    assert run(p, {"foo": "bar"}, "node2")[1] is None


def test_one_term_fields_and_expressions_both_needed():
    p = affinity_pod({"matchFields": [expr(NAME, "In", "node1")], "matchExpressions": [expr("foo", "In", "bar")]})
    assert prefilter_result(p)[0].node_names == frozenset({"node1"})
    assert run(p, {"foo": "bar"}, "node2")[1].reasons == [MISMATCH]
    assert run(p, {"foo": "bar"}, "node1")[1] is None


def test_two_name_terms_union():
    p = affinity_pod({"matchFields": [expr(NAME, "In", "node1")]}, {"matchFields": [expr(NAME, "In", "node2")]})
    assert prefilter_result(p)[0].node_names == frozenset({"node1", "node2"})


def test_conflicting_name_requirements():
    p = affinity_pod({"matchFields": [expr(NAME, "In", "node1"), expr(NAME, "In", "node2")]})
    narrowed, status = prefilter_result(p)
    assert narrowed is None
    assert (status.code, status.reasons) == (Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ["pod affinity terms conflict"])


def test_not_in_match_field():
    p = affinity_pod({"matchFields": [expr(NAME, "NotIn", "node1")]})
    assert run(p, {}, "node1")[1] is not None
    assert run(p, {}, "node2")[1] is None


ZONE_FOO = {"matchExpressions": [expr("zone", "In", "foo")]}


def added(required_name):
    return Profile(
        plugins=("NodeAffinity",),
        args=PluginArgs(
            added_affinity={
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchFields": [expr(NAME, "In", required_name)]}]
                }
            }
        ),
    )


def test_added_affinity():
    assert run(affinity_pod(ZONE_FOO), {"zone": "foo"}, "node2", added("node2"))[1] is None
    status = run(
        affinity_pod({"matchExpressions": [expr("zone", "In", "bar")]}), {"zone": "foo"}, "node2", added("node2")
    )[1]
    assert status.reasons == [MISMATCH]
    status = run(pod(), {"zone": "foo"}, "node2", added("node1"))[1]
    assert (status.code, status.reasons) == (
        Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
        ["node(s) didn't match scheduler-enforced node affinity"],
    )


# Scoring (TestNodeAffinityPriority).

LABEL1 = {"foo": "bar"}
LABEL2 = {"key": "value"}
LABEL3 = {"az": "az1"}
LABEL4 = {"abc": "az11", "def": "az22"}
LABEL5 = {"foo": "bar", "key": "value", "az": "az1"}
AFFINITY1 = [(2, {"matchExpressions": [expr("foo", "In", "bar")]})]
AFFINITY2 = [
    (2, {"matchExpressions": [expr("foo", "In", "bar")]}),
    (4, {"matchExpressions": [expr("key", "In", "value")]}),
    (5, {"matchExpressions": [expr("foo", "In", "bar"), expr("key", "In", "value"), expr("az", "In", "az1")]}),
]


def score_of(preferred, nodes, profile=None):
    snapshot = Snapshot.build([node(n, labels=labels) for n, labels in nodes.items()])
    p = pod(affinity=node_affinity(preferred=preferred)) if preferred is not None else pod()
    return scores("NodeAffinity", p, snapshot, profile=profile)


def test_score_skipped_without_preferences():
    got = score_of(None, {"node1": LABEL1})
    assert got.code is Code.SKIP


def test_score_no_node_matches():
    assert score_of(AFFINITY1, {"node1": LABEL4, "node2": LABEL2, "node3": LABEL3}) == {
        "node1": 0,
        "node2": 0,
        "node3": 0,
    }


def test_score_only_one_node_matches():
    got = score_of(AFFINITY1, {"node1": LABEL1, "node2": LABEL2, "node3": LABEL3})
    assert got == {"node1": 100, "node2": 0, "node3": 0}


def test_score_weights_summed_and_scaled():
    # 2, 11 and 4 -> 2*100/11 = 18, 100, 4*100/11 = 36
    got = score_of(AFFINITY2, {"node1": LABEL1, "node5": LABEL5, "node2": LABEL2})
    assert got == {"node1": 18, "node5": 100, "node2": 36}


def test_score_added_preferred_terms():
    profile = Profile(
        plugins=("NodeAffinity",),
        args=PluginArgs(
            added_affinity={
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 2, "preference": {"matchExpressions": [expr("foo", "In", "bar")]}}
                ]
            }
        ),
    )
    assert score_of(None, {"node1": LABEL1, "node2": LABEL2}, profile) == {"node1": 100, "node2": 0}
    # added terms (weight 2 on foo) plus the pod's own (weight 3 on key): 2 and 3 -> 66 and 100
    own = [(3, {"matchExpressions": [expr("key", "In", "value")]})]
    assert score_of(own, {"node1": LABEL1, "node2": LABEL2}, profile) == {"node1": 66, "node2": 100}


def test_score_invalid_preferred_term_is_an_error():
    got = score_of([(2, {"matchExpressions": [expr("invalid key", "In", "bar")]})], {"node1": LABEL1})
    assert got.code is Code.ERROR


def test_requirement_validation():
    with pytest.raises(SelectorError):
        new_requirement("k", "In", [])
    with pytest.raises(SelectorError):
        new_requirement("k", "Exists", ["v"])
    with pytest.raises(SelectorError):
        new_requirement("k", "Gt", ["1", "2"])
    with pytest.raises(SelectorError):
        new_requirement("-bad-", "Exists", None)
    with pytest.raises(SelectorError):
        new_requirement("k", "Lt", ["-5"])  # a valid integer, but not a valid label value (as upstream)
    assert new_requirement("example.com/k", "Lt", ["5"]) == Requirement("example.com/k", "Lt", ("5",))
    assert Requirement("k", "Lt", ("-5",)).matches({"k": "-6"})
    assert not Requirement("k", "Gt", ("5",)).matches({"k": "5"})
