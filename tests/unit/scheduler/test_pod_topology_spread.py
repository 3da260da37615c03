"""PodTopologySpread, with cases from upstream's filtering_test.go (TestSingleConstraint,
TestMultipleConstraints) and scoring_test.go (TestPodTopologySpreadScore)."""

import pytest

from operators.scheduler.framework import CycleState, Framework, PluginArgs, Profile
from operators.scheduler.plugins.pod_topology_spread import CriticalPaths, default_selector
from operators.scheduler.snapshot import Snapshot
from operators.scheduler.status import Code
from tests.unit.scheduler.builders import (
    HOSTNAME,
    expr,
    filter_codes,
    filter_statuses,
    node,
    node_affinity,
    pod,
    scores,
    selector_exists,
    spread,
    taint,
)

PTS = "PodTopologySpread"
FOO = selector_exists("foo")
BAR = selector_exists("bar")
OK, U, UU = "Success", "Unschedulable", "UnschedulableAndUnresolvable"
LIST = Profile(plugins=(PTS,), args=PluginArgs(spread_defaulting_type="List"))


def p(name="p", labels=None, **kwargs):
    return pod(name, "", labels=labels if labels is not None else {"foo": ""}, **kwargs)


def placed(name, node_name, labels=None, **kwargs):
    return pod(name, "", labels=labels if labels is not None else {"foo": ""}, node_name=node_name, **kwargs)


def four_nodes():
    return [
        node("node-a", labels={"zone": "zone1", "node": "node-a"}),
        node("node-b", labels={"zone": "zone1", "node": "node-b"}),
        node("node-x", labels={"zone": "zone2", "node": "node-x"}),
        node("node-y", labels={"zone": "zone2", "node": "node-y"}),
    ]


def codes(incoming, nodes, pods=(), profile=LIST):
    return filter_codes(PTS, incoming, Snapshot.build(nodes, pods), profile)


def spread_pod(*constraints, **kwargs):
    return p(spread=list(constraints), **kwargs)


def test_no_existing_pods():
    assert set(codes(spread_pod(spread(1, "zone", selector=FOO)), four_nodes()).values()) == {OK}
    # the pod does not match its own selector
    assert set(codes(spread_pod(spread(1, "zone", selector=BAR)), four_nodes()).values()) == {OK}


def test_pods_in_other_namespaces_do_not_count():
    pods = [
        pod("a1", "ns1", labels={"foo": ""}, node_name="node-a"),
        pod("b1", "ns2", labels={"foo": ""}, node_name="node-a"),
        placed("x1", "node-x"),
        placed("y1", "node-y"),
    ]
    got = codes(spread_pod(spread(1, "zone", selector=FOO)), four_nodes(), pods)
    assert got == {"node-a": OK, "node-b": OK, "node-x": U, "node-y": U}


def test_null_selector_matches_no_existing_pod():
    pods = [placed("x1", "node-x"), placed("y1", "node-y")]
    assert set(codes(spread_pod(spread(1, "zone")), four_nodes(), pods).values()) == {OK}


ZONES_3_3 = [placed("a1", "node-a"), placed("a2", "node-a"), placed("b1", "node-b")] + [
    placed(f"y{i}", "node-y") for i in range(3)
]


def test_spread_3_3_all_fit():
    assert set(codes(spread_pod(spread(1, "zone", selector=FOO)), four_nodes(), ZONES_3_3).values()) == {OK}


def test_missing_label_on_a_node():
    nodes = four_nodes()
    nodes[1] = node("node-b", labels={"zon": "zone1", "node": "node-b"})
    pods = [placed("a1", "node-a"), placed("b1", "node-b"), placed("x1", "node-x"), placed("y1", "node-y")]
    _, statuses = filter_statuses(PTS, spread_pod(spread(1, "zone", selector=FOO)), Snapshot.build(nodes, pods), LIST)
    assert statuses["node-b"].reasons == [
        "node(s) didn't match pod topology spread constraints (missing required label)"
    ]
    assert {n: s.code.value if s else OK for n, s in statuses.items()} == {
        "node-a": OK,
        "node-b": UU,
        "node-x": U,
        "node-y": U,
    }
    assert statuses["node-x"].reasons == ["node(s) didn't match pod topology spread constraints"]
    assert statuses["node-x"].details == {"topologyKey": "zone", "skew": 2, "maxSkew": 1}


def test_no_node_has_the_key():
    assert set(codes(spread_pod(spread(1, "rack", selector=FOO)), four_nodes(), [placed("a1", "node-a")]).values()) == {
        UU
    }


NODES_2_1_0_3 = [
    placed("a1", "node-a"),
    placed("a2", "node-a"),
    placed("b1", "node-b"),
    placed("y1", "node-y"),
    placed("y2", "node-y"),
    placed("y3", "node-y"),
]


def test_spread_across_nodes():
    got = codes(spread_pod(spread(1, "node", selector=FOO)), four_nodes(), NODES_2_1_0_3)
    assert got == {"node-a": U, "node-b": U, "node-x": OK, "node-y": U}
    got = codes(spread_pod(spread(2, "node", selector=FOO)), four_nodes(), NODES_2_1_0_3)
    assert got == {"node-a": U, "node-b": OK, "node-x": OK, "node-y": U}


def test_pod_not_matching_itself():
    got = codes(spread_pod(spread(1, "node", selector=FOO), labels={"bar": ""}), four_nodes(), NODES_2_1_0_3)
    assert got == {"node-a": U, "node-b": OK, "node-x": OK, "node-y": U}


def test_node_affinity_limits_the_domains():
    # only node-a and node-y count: 2/~1~/~0~/3, so node-a (2 - min 2 + 1 <= 1) fits
    incoming = spread_pod(
        spread(1, "node", selector=FOO),
        affinity=node_affinity(required=[{"matchExpressions": [expr("node", "In", "node-a", "node-y")]}]),
    )
    got = codes(incoming, four_nodes(), NODES_2_1_0_3)
    assert got == {"node-a": OK, "node-b": OK, "node-x": OK, "node-y": U}


def test_terminating_pods_are_excluded():
    nodes = [node("node-a", labels={"node": "node-a"}), node("node-b", labels={"node": "node-b"})]
    pods = [placed("a", "node-a", terminating=True), placed("b", "node-b")]
    assert codes(spread_pod(spread(1, "node", selector=FOO)), nodes, pods) == {"node-a": OK, "node-b": U}


def test_node_affinity_not_in():
    incoming = spread_pod(
        spread(1, "zone", selector=FOO),
        affinity=node_affinity(required=[{"matchExpressions": [expr("node", "NotIn", "node-b")]}]),
    )
    pods = [placed("b1", "node-b"), placed("b2", "node-b"), placed("y1", "node-y")]
    assert codes(incoming, four_nodes(), pods) == {"node-a": OK, "node-b": OK, "node-x": U, "node-y": U}


def three_nodes():
    return [node(n, labels={"node": n}) for n in ("node-a", "node-b", "node-c")]


PODS_2_2_1 = [
    placed("a1", "node-a"),
    placed("a2", "node-a"),
    placed("b1", "node-b"),
    placed("b2", "node-b"),
    placed("c1", "node-c"),
]


def test_min_domains():
    # fewer domains (3) than minDomains (4): the global minimum is 0
    got = codes(spread_pod(spread(2, "node", selector=FOO, min_domains=4)), three_nodes(), PODS_2_2_1)
    assert got == {"node-a": U, "node-b": U, "node-c": OK}
    got = codes(spread_pod(spread(2, "node", selector=FOO, min_domains=2)), three_nodes(), PODS_2_2_1)
    assert got == {"node-a": OK, "node-b": OK, "node-c": OK}
    zone_pods = [placed("b1", "node-a"), placed("b2", "node-b"), placed("y1", "node-y")]
    got = codes(spread_pod(spread(2, "zone", selector=FOO, min_domains=3)), four_nodes(), zone_pods)
    assert got == {"node-a": U, "node-b": U, "node-x": OK, "node-y": OK}
    got = codes(spread_pod(spread(2, "zone", selector=FOO, min_domains=1)), four_nodes(), zone_pods)
    assert set(got.values()) == {OK}


def policy_nodes(tainted=False):
    return [
        node("node-a", labels={"node": "node-a", "foo": ""}),
        node("node-b", labels={"node": "node-b", "foo": ""}),
        node("node-x", labels={"node": "node-x", "foo": ""}),
        node(
            "node-y",
            labels={"node": "node-y"} if not tainted else {"node": "node-y", "foo": ""},
            taints=[taint("node.kubernetes.io/unschedulable")] if tainted else None,
        ),
    ]


POLICY_PODS = [placed("b1", "node-a"), placed("b2", "node-b"), placed("y1", "node-y")]


def test_node_affinity_policy():
    honored = spread_pod(spread(1, "node", selector=FOO), node_selector={"foo": ""})
    assert codes(honored, policy_nodes(), POLICY_PODS) == {"node-a": U, "node-b": U, "node-x": OK, "node-y": OK}
    ignored = spread_pod(spread(1, "node", selector=FOO, node_affinity_policy="Ignore"), node_selector={"foo": ""})
    assert codes(ignored, policy_nodes(), POLICY_PODS) == {"node-a": U, "node-b": U, "node-x": OK, "node-y": U}
    by_affinity = spread_pod(
        spread(1, "node", selector=FOO),
        affinity=node_affinity(required=[{"matchExpressions": [expr("foo", "In", "")]}]),
    )
    assert codes(by_affinity, policy_nodes(), POLICY_PODS) == {"node-a": U, "node-b": U, "node-x": OK, "node-y": OK}


def test_node_taints_policy():
    honored = spread_pod(spread(1, "node", selector=FOO, node_taints_policy="Honor"))
    assert codes(honored, policy_nodes(True), POLICY_PODS) == {"node-a": U, "node-b": U, "node-x": OK, "node-y": OK}
    ignored = spread_pod(spread(1, "node", selector=FOO))
    assert codes(ignored, policy_nodes(True), POLICY_PODS) == {"node-a": U, "node-b": U, "node-x": OK, "node-y": U}


def test_match_label_keys_narrow_the_selector():
    pods = [placed("a1", "node-a", {"foo": "", "rev": "1"}), placed("a2", "node-a", {"foo": "", "rev": "1"})]
    plain = spread_pod(spread(1, "node", selector=FOO), labels={"foo": "", "rev": "2"})
    assert codes(plain, four_nodes(), pods)["node-b"] == OK and codes(plain, four_nodes(), pods)["node-a"] == U
    keyed = spread_pod(spread(1, "node", selector=FOO, match_label_keys=["rev"]), labels={"foo": "", "rev": "2"})
    assert set(codes(keyed, four_nodes(), pods).values()) == {OK}  # rev=1 pods no longer count


def test_multiple_constraints():
    # pods per node 1/2/1/0, per zone 3/1
    pods = [placed("a1", "node-a"), placed("b1", "node-b"), placed("b2", "node-b"), placed("x1", "node-x")]
    incoming = spread_pod(spread(1, "zone", selector=FOO), spread(1, "node", selector=FOO))
    # zone1 (3+1-1 > 1) rules out node-a/b; node: node-x has 1 (1+1-0 > 1), node-y 0 fits
    assert codes(incoming, four_nodes(), pods) == {"node-a": U, "node-b": U, "node-x": U, "node-y": OK}


def test_schedule_anyway_constraints_do_not_filter():
    pre, _ = filter_statuses(
        PTS, spread_pod(spread(1, "zone", "ScheduleAnyway", FOO)), Snapshot.build(four_nodes()), LIST
    )
    assert pre is not None and pre.code is Code.SKIP


def test_critical_paths_track_the_minimum():
    paths = CriticalPaths()
    for value, num in {"a": 3, "b": 1, "c": 2}.items():
        paths.update(value, num)
    assert paths.min_match() == 1
    assert (paths.values, paths.nums) == (["b", "c"], [1, 2])
    paths.update("b", 4)  # b grows past the second path: they swap
    assert (paths.values, paths.nums) == (["c", "b"], [2, 4])
    paths.update("a", 0)  # a new minimum pushes the old one down
    assert (paths.values, paths.nums) == (["a", "c"], [0, 2])


def test_prefilter_extensions_update_counts():
    snapshot = Snapshot.build(three_nodes(), PODS_2_2_1)
    framework = Framework(LIST, snapshot)
    plugin = framework.plugins[0]
    incoming = spread_pod(spread(1, "node", selector=FOO))
    state = CycleState()
    plugin.pre_filter(state, incoming, snapshot.node_list())
    a = snapshot.nodes["node-a"]
    assert plugin.filter(state, incoming, a) is not None  # 2 + 1 - 1 > 1
    copy = state.clone()
    framework.run_pre_filter_extension_remove_pod(copy, incoming, a.pods[0], a)
    assert plugin.filter(copy, incoming, a) is None  # 1 + 1 - 1 <= 1
    assert plugin.filter(state, incoming, a) is not None


# Scoring.


def hostname_nodes(*names):
    return [node(n, labels={HOSTNAME: n}) for n in names]


def score_of(incoming, nodes, pods=(), candidates=None, profile=LIST, **build):
    return scores(PTS, incoming, Snapshot.build(nodes, pods, **build), candidates, profile=profile)


def host_spread(max_skew=1, selector=FOO):
    return spread_pod(spread(max_skew, HOSTNAME, "ScheduleAnyway", selector))


def test_score_no_existing_pods():
    assert score_of(host_spread(), hostname_nodes("node-a", "node-b")) == {"node-a": 100, "node-b": 100}


def test_score_only_one_candidate():
    pods = [placed("a1", "node-a"), placed("a2", "node-a"), placed("b1", "node-b")]
    assert score_of(host_spread(), hostname_nodes("node-a", "node-b"), pods, ["node-a"]) == {"node-a": 100}


def test_score_same_counts():
    pods = [placed("a1", "node-a"), placed("b1", "node-b")]
    assert score_of(host_spread(), hostname_nodes("node-a", "node-b"), pods) == {"node-a": 100, "node-b": 100}


PODS_2_1_0_3 = [placed("a1", "node-a"), placed("a2", "node-a"), placed("b1", "node-b")] + [
    placed(f"d{i}", "node-d") for i in range(3)
]
ABCD = ("node-a", "node-b", "node-c", "node-d")


def test_score_four_candidates():
    assert score_of(host_spread(), hostname_nodes(*ABCD), PODS_2_1_0_3) == {
        "node-a": 20,
        "node-b": 60,
        "node-c": 100,
        "node-d": 0,
    }


def test_score_null_selector():
    got = score_of(host_spread(selector=None), hostname_nodes(*ABCD), PODS_2_1_0_3)
    assert got == {"node-a": 100, "node-b": 100, "node-c": 100, "node-d": 100}


def test_score_max_skew_waters_down_differences():
    assert score_of(host_spread(2), hostname_nodes(*ABCD), PODS_2_1_0_3) == {
        "node-a": 33,
        "node-b": 66,
        "node-c": 100,
        "node-d": 16,
    }
    pods = [
        placed(f"{n}{i}", f"node-{n}") for n, count in (("a", 4), ("b", 3), ("c", 2), ("d", 1)) for i in range(count)
    ]
    assert score_of(host_spread(3), hostname_nodes(*ABCD), pods) == {
        "node-a": 44,
        "node-b": 66,
        "node-c": 77,
        "node-d": 100,
    }


def test_score_system_default_spreading_for_service_pods():
    pods = [
        placed(f"{n}{i}", f"node-{n}") for n, count in (("a", 4), ("b", 3), ("c", 2), ("d", 1)) for i in range(count)
    ]
    service = {"metadata": {"name": "svc", "namespace": ""}, "spec": {"selector": {"foo": ""}}}
    got = score_of(p(), hostname_nodes(*ABCD), pods, profile=Profile(plugins=(PTS,)), services=[service])
    assert got == {"node-a": 44, "node-b": 66, "node-c": 77, "node-d": 100}
    # Without a Service (or owner) selecting the pod there is nothing to spread.
    assert score_of(p(), hostname_nodes(*ABCD), pods, profile=Profile(plugins=(PTS,))).code is Code.SKIP


def test_score_three_of_four_candidates():
    pods = (
        [placed(f"a{i}", "node-a") for i in range(4)]
        + [placed("b1", "node-b"), placed("b2", "node-b"), placed("x1", "node-x")]
        + [placed(f"y{i}", "node-y") for i in range(3)]
    )
    nodes = hostname_nodes("node-a", "node-b", "node-x", "node-y")
    got = score_of(host_spread(), nodes, pods, ["node-a", "node-b", "node-x"])
    assert got == {"node-a": 33, "node-b": 83, "node-x": 100}
    nodes[1] = node("node-b", labels={"n": "node-b"})  # missing the topology key
    got = score_of(host_spread(), nodes, pods, ["node-a", "node-b", "node-x"])
    assert got == {"node-a": 16, "node-b": 0, "node-x": 100}


def zone_host_nodes(*specs):
    return [node(n, labels={"zone": z, HOSTNAME: n}) for n, z in specs]


def test_score_zone_constraint():
    pods = (
        [placed(f"a{i}", "node-a") for i in range(4)]
        + [placed("b1", "node-b"), placed("b2", "node-b"), placed("x1", "node-x")]
        + [placed(f"y{i}", "node-y") for i in range(3)]
    )
    nodes = zone_host_nodes(("node-a", "zone1"), ("node-b", "zone1"), ("node-x", "zone2"), ("node-y", "zone2"))
    incoming = spread_pod(spread(1, "zone", "ScheduleAnyway", FOO))
    assert score_of(incoming, nodes, pods, ["node-a", "node-b", "node-x"]) == {
        "node-a": 75,
        "node-b": 75,
        "node-x": 100,
    }


def test_score_zone_and_node_constraints():
    pods = [
        placed("a1", "node-a"),
        placed("a2", "node-a"),
        placed("b1", "node-b"),
        placed("x1", "node-x"),
        placed("x2", "node-x"),
    ] + [placed(f"y{i}", "node-y") for i in range(4)]
    nodes = zone_host_nodes(("node-a", "zone1"), ("node-b", "zone1"), ("node-x", "zone2"), ("node-y", "zone2"))
    incoming = spread_pod(spread(1, "zone", "ScheduleAnyway", FOO), spread(1, HOSTNAME, "ScheduleAnyway", FOO))
    assert score_of(incoming, nodes, pods, ["node-a", "node-x"]) == {"node-a": 100, "node-x": 63}


def test_score_two_zone_constraints_different_selectors():
    pods = [
        placed("a1", "node-a", {"foo": "", "bar": ""}),
        placed("a2", "node-a", {"foo": ""}),
        placed("b1", "node-b", {"foo": "", "bar": ""}),
        placed("y1", "node-y", {"foo": ""}),
        placed("y2", "node-y", {"foo": "", "bar": ""}),
        placed("y3", "node-y", {"foo": ""}),
    ]
    nodes = [
        node(n, labels={"zone": z})
        for n, z in (("node-a", "zone1"), ("node-x", "zone2"), ("node-b", "zone1"), ("node-y", "zone2"))
    ]
    incoming = p(
        labels={"foo": "", "bar": ""},
        spread=[spread(1, "zone", "ScheduleAnyway", FOO), spread(1, "zone", "ScheduleAnyway", BAR)],
    )
    assert score_of(incoming, nodes, pods, ["node-a", "node-x"]) == {"node-a": 85, "node-x": 100}


def test_score_zone_and_node_with_different_selectors():
    pods = [
        placed("a1", "node-a", {"foo": ""}),
        placed("b1", "node-b", {"foo": "", "bar": ""}),
        placed("y1", "node-y", {"foo": ""}),
        placed("y2", "node-y", {"bar": ""}),
    ]
    nodes = zone_host_nodes(("node-a", "zone1"), ("node-b", "zone1"), ("node-x", "zone2"), ("node-y", "zone2"))
    incoming = p(
        labels={"foo": "", "bar": ""},
        spread=[spread(1, "zone", "ScheduleAnyway", FOO), spread(1, HOSTNAME, "ScheduleAnyway", BAR)],
    )
    assert score_of(incoming, nodes, pods) == {"node-a": 60, "node-b": 20, "node-x": 100, "node-y": 60}
    assert score_of(incoming, nodes, pods, ["node-a", "node-b", "node-x"]) == {
        "node-a": 50,
        "node-b": 25,
        "node-x": 100,
    }
    pods = [
        placed("b1", "node-b", {"bar": ""}),
        placed("x1", "node-x", {"foo": ""}),
        placed("y1", "node-y", {"foo": "", "bar": ""}),
    ]
    assert score_of(incoming, nodes, pods) == {"node-a": 100, "node-b": 60, "node-x": 40, "node-y": 0}


def test_score_other_namespaces_and_terminating_pods_do_not_count():
    pods = [
        pod("a1", "ns1", labels={"foo": ""}, node_name="node-a"),
        placed("a2", "node-a"),
        placed("b1", "node-b"),
        placed("b2", "node-b"),
    ]
    assert score_of(host_spread(), hostname_nodes("node-a", "node-b"), pods) == {"node-a": 100, "node-b": 33}
    pods = [placed("a", "node-a", terminating=True), placed("b", "node-b")]
    assert score_of(host_spread(), hostname_nodes("node-a", "node-b"), pods) == {"node-a": 100, "node-b": 0}


# Default spreading selectors (helper.DefaultSelector).


def test_default_selector_from_services_and_owners():
    services = [
        {"metadata": {"name": "s1", "namespace": "ns"}, "spec": {"selector": {"app": "web"}}},
        {"metadata": {"name": "s2", "namespace": "ns"}, "spec": {"selector": {"tier": "front"}}},
        {"metadata": {"name": "other", "namespace": "ns"}, "spec": {"selector": {"app": "db"}}},
        {"metadata": {"name": "headless", "namespace": "ns"}, "spec": {}},
        {"metadata": {"name": "elsewhere", "namespace": "other"}, "spec": {"selector": {"app": "web"}}},
    ]
    rs = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "web-1", "namespace": "ns"},
        "spec": {"selector": {"matchLabels": {"pod-template-hash": "1"}}},
    }
    snapshot = Snapshot.build([], services=services, controllers=[rs])
    labels = {"app": "web", "tier": "front", "pod-template-hash": "1"}
    owned = pod("w", "ns", labels=labels, owner={"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1"})
    selector = default_selector(owned, snapshot)
    assert selector.matches(labels)
    assert not selector.matches({"app": "web", "tier": "front", "pod-template-hash": "2"})
    assert not selector.matches({"app": "web", "pod-template-hash": "1"})
    # a kubeplane ReplicaSet owner is not apps/v1: only the Services count
    other_owner = pod(
        "w",
        "ns",
        labels=labels,
        owner={"apiVersion": "apps.kubeplane.dev/v1alpha1", "kind": "ReplicaSet", "name": "web-1"},
    )
    assert default_selector(other_owner, snapshot).matches({"app": "web", "tier": "front"})
    assert default_selector(pod("lonely", "ns", labels={"x": "y"}), snapshot).empty()


def test_invalid_defaulting_type():
    with pytest.raises(ValueError):
        Framework(Profile(plugins=(PTS,), args=PluginArgs(spread_defaulting_type="Nope")), Snapshot())
    with pytest.raises(ValueError):
        Framework(Profile(plugins=(PTS,), args=PluginArgs(default_constraints=({"maxSkew": 1},))), Snapshot())
