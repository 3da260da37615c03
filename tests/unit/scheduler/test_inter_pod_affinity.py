"""InterPodAffinity, with cases from upstream's filtering_test.go and scoring_test.go. Upstream's
pods without a namespace are in "" here too, so namespaces match as they do there."""

from operators.scheduler.framework import CycleState, Framework, PluginArgs, Profile
from operators.scheduler.snapshot import PodInfo, Snapshot
from operators.scheduler.status import Code
from tests.unit.scheduler.builders import (
    expr,
    filter_codes,
    filter_statuses,
    node,
    pod,
    pod_affinity,
    scores,
    selector_exists,
    selector_in,
    term,
)

IPA = "InterPodAffinity"
NS_LABELS = {
    "subteam1.team1": {"team": "team1"},
    "subteam2.team1": {"team": "team1"},
    "subteam1.team2": {"team": "team2"},
    "subteam2.team2": {"team": "team2"},
}
AFFINITY_MISMATCH = "node(s) didn't match pod affinity rules"
ANTI_MISMATCH = "node(s) didn't match pod anti-affinity rules"
EXISTING_ANTI = "node(s) didn't satisfy existing pods anti-affinity rules"


def p(name="p", namespace="", **kwargs):
    return pod(name, namespace, **kwargs)


def snap(nodes, pods=()):
    return Snapshot.build([node(n, labels=labels) for n, labels in nodes.items()], pods, namespaces=NS_LABELS)


# Single node (TestRequiredAffinitySingleNode).

NODE1 = {"node1": {"region": "r1", "zone": "z11"}}
SECURITYSCAN = {"service": "securityscan"}
S1 = {"security": "S1"}


def existing_scan(**kwargs):
    return p("existing", labels=SECURITYSCAN, node_name="node1", **kwargs)


def single(incoming, pods=None):
    pre, statuses = filter_statuses(IPA, incoming, snap(NODE1, pods if pods is not None else [existing_scan()]))
    return pre, statuses.get("node1")


def test_no_affinity_skips():
    pre, _ = single(p(), [])
    assert pre is not None and pre.code is Code.SKIP


def test_affinity_in_matches_existing_pod():
    incoming = p(
        labels=S1, affinity=pod_affinity(required=[term(selector_in("service", "securityscan", "value2"), "region")])
    )
    assert single(incoming)[1] is None


def test_affinity_not_in_matches_existing_pod():
    incoming = p(
        labels=S1,
        affinity=pod_affinity(
            required=[term({"matchExpressions": [expr("service", "NotIn", "securityscan3", "value3")]}, "region")]
        ),
    )
    assert single(incoming)[1] is None


def test_affinity_in_a_different_namespace_fails():
    incoming = p(
        labels=S1,
        affinity=pod_affinity(
            required=[term(selector_in("service", "securityscan", "value2"), "region", namespaces=["DiffNameSpace"])]
        ),
    )
    status = single(incoming)[1]
    assert (status.code, status.reasons) == (Code.UNSCHEDULABLE_AND_UNRESOLVABLE, [AFFINITY_MISMATCH])


def test_affinity_unmatched_selector_fails():
    incoming = p(
        labels=S1, affinity=pod_affinity(required=[term(selector_in("service", "antivirusscan", "value2"), "region")])
    )
    assert single(incoming)[1].reasons == [AFFINITY_MISMATCH]


def test_affinity_expressions_are_anded():
    sel = {"matchExpressions": [expr("service", "Exists"), expr("wrongkey", "DoesNotExist")]}
    sel2 = {"matchExpressions": [expr("service", "In", "securityscan"), expr("service", "NotIn", "WrongValue")]}
    assert single(p(labels=S1, affinity=pod_affinity(required=[term(sel, "region"), term(sel2, "region")])))[1] is None
    bad = {"matchExpressions": [expr("service", "Exists"), expr("wrongkey", "In", "x")]}
    assert single(p(labels=S1, affinity=pod_affinity(required=[term(bad, "region")])))[1].reasons == [AFFINITY_MISMATCH]


def test_affinity_and_anti_affinity():
    both = pod_affinity(
        required=[term(selector_in("service", "securityscan", "value2"), "region")],
        anti_required=[term(selector_in("service", "antivirusscan", "value2"), "node")],
    )
    assert single(p(labels=S1, affinity=both))[1] is None
    anti_hit = pod_affinity(
        required=[term(selector_in("service", "securityscan", "value2"), "region")],
        anti_required=[term(selector_in("service", "securityscan", "value2"), "zone")],
    )
    status = single(p(labels=S1, affinity=anti_hit))[1]
    assert (status.code, status.reasons) == (Code.UNSCHEDULABLE, [ANTI_MISMATCH])


def test_existing_pod_anti_affinity_symmetry():
    existing = existing_scan(affinity=pod_affinity(anti_required=[term(selector_in("security", "S1"), "zone")]))
    status = single(p(labels=S1), [existing])[1]
    assert (status.code, status.reasons) == (Code.UNSCHEDULABLE, [EXISTING_ANTI])
    other = existing_scan(affinity=pod_affinity(anti_required=[term(selector_in("security", "S2"), "zone")]))
    assert single(p(labels=S1), [other])[0].code is Code.SKIP  # nothing to check at all


def test_pod_matching_its_own_affinity_with_existing_pod():
    incoming = p(
        labels=SECURITYSCAN, affinity=pod_affinity(required=[term(selector_in("service", "securityscan"), "region")])
    )
    assert single(incoming)[1] is None


def test_invalid_label_syntax_fails_prefilter():
    incoming = p(
        affinity=pod_affinity(required=[term({"matchExpressions": [expr("service", "InvalidOp", "x")]}, "region")])
    )
    pre, _ = single(incoming)
    assert pre is not None and pre.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert pre.reasons[0].startswith("parsing pod: ")


def namespace_selected(affinity_kind, own_ns, existing_ns, ns_selector):
    t = term(
        selector_in("service", "securityscan", "value2"),
        "region" if affinity_kind == "affinity" else "zone",
        namespace_selector=ns_selector,
    )
    kwargs = {"required": [t]} if affinity_kind == "affinity" else {"anti_required": [t]}
    incoming = p(namespace=own_ns, labels={"security": "S1"}, affinity=pod_affinity(**kwargs))
    existing = p("existing", namespace=existing_ns, labels=SECURITYSCAN, node_name="node1")
    return single(incoming, [existing])[1]


TEAM1 = {"matchExpressions": [expr("team", "In", "team1")]}


def test_affinity_with_namespace_selector():
    assert namespace_selected("affinity", "", "subteam1.team1", TEAM1) is None
    assert namespace_selected("affinity", "", "subteam1.team2", TEAM1).reasons == [AFFINITY_MISMATCH]


def test_anti_affinity_with_namespace_selector():
    assert namespace_selected("anti", "subteam1.team1", "subteam2.team1", TEAM1).reasons == [ANTI_MISMATCH]
    assert namespace_selected("anti", "subteam1.team1", "subteam2.team1", {}).reasons == [ANTI_MISMATCH]  # {} = all
    assert namespace_selected("anti", "subteam1.team1", "subteam1.team2", TEAM1) is None


def test_existing_pod_namespace_selector_uses_incoming_namespace_labels():
    t = term(selector_in("security", "S1"), "zone", namespace_selector=TEAM1)
    existing = p(
        "existing", namespace="subteam2.team2", labels={}, node_name="node1", affinity=pod_affinity(anti_required=[t])
    )
    in_team1 = single(p(namespace="subteam1.team1", labels=S1), [existing])[1]
    assert in_team1.reasons == [EXISTING_ANTI]
    assert single(p(namespace="subteam1.team2", labels=S1), [existing])[0].code is Code.SKIP


# Multiple nodes (TestRequiredAffinityMultipleNodes).

CHINA = {"region": "China"}
CHINA_AZ1 = {"region": "China", "az": "az1"}
INDIA = {"region": "India"}


def test_same_topology_domain_as_a_matching_pod():
    incoming = p(affinity=pod_affinity(required=[term(selector_in("foo", "bar"), "region")]))
    snapshot = snap(
        {"node1": CHINA, "node2": CHINA_AZ1, "node3": INDIA}, [p("p1", labels={"foo": "bar"}, node_name="node1")]
    )
    codes = filter_codes(IPA, incoming, snapshot)
    assert codes == {"node1": "Success", "node2": "Success", "node3": "UnschedulableAndUnresolvable"}


def test_first_pod_of_a_self_attracted_group_may_go_anywhere_with_the_keys():
    incoming = p(
        labels={"foo": "bar", "service": "securityscan"},
        affinity=pod_affinity(
            required=[term(selector_in("foo", "bar"), "zone"), term(selector_in("service", "securityscan"), "zone")]
        ),
    )
    existing = [p("p1", labels={"foo": "bar"}, node_name="nodeA")]
    with_keys = snap({"nodeA": {"zone": "az1", "hostname": "h1"}, "nodeB": {"zone": "az2", "hostname": "h2"}}, existing)
    assert filter_codes(IPA, incoming, with_keys) == {"nodeA": "Success", "nodeB": "Success"}
    without = snap(
        {"nodeA": {"zoneLabel": "az1", "hostname": "h1"}, "nodeB": {"zoneLabel": "az2", "hostname": "h2"}}, existing
    )
    assert filter_codes(IPA, incoming, without) == {
        "nodeA": "UnschedulableAndUnresolvable",
        "nodeB": "UnschedulableAndUnresolvable",
    }


def test_self_match_does_not_apply_when_another_pod_matches_elsewhere():
    incoming = p(labels={"app": "x"}, affinity=pod_affinity(required=[term(selector_in("app", "x"), "zone")]))
    snapshot = snap({"a": {"zone": "z1"}, "b": {"zone": "z2"}}, [p("x1", labels={"app": "x"}, node_name="a")])
    assert filter_codes(IPA, incoming, snapshot) == {"a": "Success", "b": "UnschedulableAndUnresolvable"}


def test_anti_affinity_blocks_the_whole_domain():
    incoming = p(affinity=pod_affinity(anti_required=[term(selector_in("foo", "abc"), "region")]))
    snapshot = snap(
        {"nodeA": CHINA, "nodeB": CHINA_AZ1, "nodeC": INDIA}, [p("e", labels={"foo": "abc"}, node_name="nodeA")]
    )
    assert filter_codes(IPA, incoming, snapshot) == {
        "nodeA": "Unschedulable",
        "nodeB": "Unschedulable",
        "nodeC": "Success",
    }


def test_anti_affinity_any_term_matches():
    incoming = p(
        affinity=pod_affinity(
            anti_required=[
                term(selector_in("foo", "abc"), "region"),
                term(selector_in("service", "securityscan"), "zone"),
            ]
        )
    )
    nodes = {
        "nodeA": {"region": "r1", "zone": "z1", "hostname": "nodeA"},
        "nodeB": {"region": "r1", "zone": "z2", "hostname": "nodeB"},
    }
    snapshot = snap(nodes, [p("e", labels={"foo": "abc", "service": "securityscan"}, node_name="nodeA")])
    assert filter_codes(IPA, incoming, snapshot) == {"nodeA": "Unschedulable", "nodeB": "Unschedulable"}


def test_existing_anti_affinity_in_other_namespace_does_not_apply():
    incoming = p(
        namespace="NS1",
        labels={"foo": "123"},
        affinity=pod_affinity(anti_required=[term(selector_in("foo", "bar"), "region")]),
    )
    pods = [
        p("a", namespace="NS1", labels={"foo": "bar"}, node_name="nodeA"),
        p(
            "c",
            namespace="NS2",
            node_name="nodeC",
            affinity=pod_affinity(anti_required=[term(selector_in("foo", "123"), "region")]),
        ),
    ]
    snapshot = snap({"nodeA": CHINA, "nodeB": CHINA_AZ1, "nodeC": INDIA}, pods)
    assert filter_codes(IPA, incoming, snapshot) == {
        "nodeA": "Unschedulable",
        "nodeB": "Unschedulable",
        "nodeC": "Success",
    }


def test_existing_anti_affinity_needs_topology_key_on_node():
    incoming = p(labels={"foo": ""})
    existing = p(
        "e",
        node_name="nodeA",
        affinity=pod_affinity(anti_required=[term(selector_exists("foo"), "invalid-node-label")]),
    )
    snapshot = snap(
        {
            "nodeA": {"region": "r1", "zone": "z1", "hostname": "nodeA"},
            "nodeB": {"region": "r1", "zone": "z1", "hostname": "nodeB"},
        },
        [existing],
    )
    pre, _ = filter_statuses(IPA, incoming, snapshot)
    assert pre is not None and pre.code is Code.SKIP


def test_prefilter_extensions_add_and_remove_pods():
    incoming = p(labels={"app": "web"}, affinity=pod_affinity(anti_required=[term(selector_in("app", "web"), "zone")]))
    snapshot = snap({"a": {"zone": "z1"}, "b": {"zone": "z2"}}, [p("w1", labels={"app": "web"}, node_name="a")])
    framework = Framework(Profile(plugins=(IPA,)), snapshot)
    plugin = framework.plugins[0]
    state = CycleState()
    plugin.pre_filter(state, incoming, snapshot.node_list())
    a, b = snapshot.nodes["a"], snapshot.nodes["b"]
    assert plugin.filter(state, incoming, a).reasons == [ANTI_MISMATCH]
    copy = state.clone()
    victim = a.pods[0]
    framework.run_pre_filter_extension_remove_pod(copy, incoming, victim, a)
    assert plugin.filter(copy, incoming, a) is None  # removed in the copy...
    assert plugin.filter(state, incoming, a) is not None  # ...not in the original
    framework.run_pre_filter_extension_add_pod(copy, incoming, PodInfo.of(p("w2", labels={"app": "web"})), b)
    assert plugin.filter(copy, incoming, b).reasons == [ANTI_MISMATCH]


# Scoring (TestPreferredAffinity).

AZ1 = {"az": "az1"}
AZ2 = {"az": "az2"}
S2 = {"security": "S2"}
STAY_S1_REGION = pod_affinity(preferred=[(5, term(selector_in("security", "S1"), "region"))])
STAY_S2_REGION = pod_affinity(preferred=[(6, term(selector_in("security", "S2"), "region"))])
AFFINITY3 = pod_affinity(
    preferred=[
        (8, term({"matchExpressions": [expr("security", "NotIn", "S1"), expr("security", "In", "S2")]}, "region")),
        (2, term({"matchExpressions": [expr("security", "Exists"), expr("wrongkey", "DoesNotExist")]}, "region")),
    ]
)
HARD = pod_affinity(
    required=[
        term(selector_in("security", "S1", "value2"), "region"),
        term({"matchExpressions": [expr("security", "Exists"), expr("wrongkey", "DoesNotExist")]}, "region"),
    ]
)
AWAY_S1_AZ = pod_affinity(anti_preferred=[(5, term(selector_in("security", "S1"), "az"))])
AWAY_S2_AZ = pod_affinity(anti_preferred=[(5, term(selector_in("security", "S2"), "az"))])
STAY_S1_AWAY_S2 = pod_affinity(
    preferred=[(8, term(selector_in("security", "S1"), "region"))],
    anti_preferred=[(5, term(selector_in("security", "S2"), "az"))],
)
NS_SEL = {"matchExpressions": [expr("team", "In", "team1")]}
AFFINITY_NS = pod_affinity(
    preferred=[
        (5, term(selector_in("security", "S1"), "region", namespaces=["subteam2.team2"], namespace_selector=NS_SEL))
    ]
)
ANTI_NS = pod_affinity(
    anti_preferred=[
        (5, term(selector_in("security", "S1"), "region", namespaces=["subteam2.team2"], namespace_selector=NS_SEL))
    ]
)


def score_of(incoming, nodes, pods, profile=None):
    return scores(IPA, incoming, snap(nodes, pods), profile=profile)


def placed(name, node_name, labels=None, affinity=None, namespace=""):
    return p(name, namespace, labels=labels, node_name=node_name, affinity=affinity)


def test_score_skipped_without_any_affinity():
    got = score_of(p(labels=S1), {"node1": CHINA, "node2": INDIA, "node3": AZ1}, [])
    assert got.code is Code.SKIP


def test_score_affinity_topology_and_labels():
    pods = [placed("a", "node1", S1), placed("b", "node2", S2), placed("c", "node3", S1)]
    got = score_of(p(labels=S1, affinity=STAY_S1_REGION), {"node1": CHINA, "node2": INDIA, "node3": AZ1}, pods)
    assert got == {"node1": 100, "node2": 0, "node3": 0}


def test_score_same_domain_same_score():
    got = score_of(
        p(affinity=STAY_S1_REGION), {"node1": CHINA, "node2": CHINA_AZ1, "node3": INDIA}, [placed("a", "node1", S1)]
    )
    assert got == {"node1": 100, "node2": 100, "node3": 0}


def test_score_more_matches_more_score():
    pods = [placed(f"x{i}", n, S2) for i, n in enumerate(["node1", "node1", "node2", "node3", "node4", "node5"])]
    nodes = {"node1": CHINA, "node2": INDIA, "node3": CHINA, "node4": CHINA, "node5": INDIA}
    got = score_of(p(labels=S1, affinity=STAY_S2_REGION), nodes, pods)
    assert got == {"node1": 100, "node2": 0, "node3": 100, "node4": 100, "node5": 0}


def test_score_different_operators():
    pods = [placed("a", "node1", S1), placed("b", "node2", S2), placed("c", "node3", S1)]
    got = score_of(p(labels=S1, affinity=AFFINITY3), {"node1": CHINA, "node2": INDIA, "node3": AZ1}, pods)
    assert got == {"node1": 20, "node2": 100, "node3": 0}


def test_score_symmetry_of_existing_preferred_affinity():
    pods = [placed("a", "node1", S1, STAY_S1_REGION), placed("b", "node2", S2, STAY_S2_REGION)]
    got = score_of(p(labels=S2), {"node1": CHINA, "node2": INDIA, "node3": AZ1}, pods)
    assert got == {"node1": 0, "node2": 100, "node3": 0}


def test_score_symmetry_with_namespace_selector():
    pods = [placed("a", "node1", S1, AFFINITY_NS), placed("b", "node2", S2, STAY_S2_REGION)]
    got = score_of(p(namespace="subteam1.team1", labels=S1), {"node1": CHINA, "node2": INDIA, "node3": AZ1}, pods)
    assert got == {"node1": 100, "node2": 0, "node3": 0}
    pods = [placed("a", "node1", S1, ANTI_NS), placed("b", "node2", S2, STAY_S2_REGION)]
    got = score_of(p(namespace="subteam1.team1", labels=S1), {"node1": CHINA, "node2": INDIA, "node3": AZ1}, pods)
    assert got == {"node1": 0, "node2": 100, "node3": 100}


def test_score_symmetry_of_existing_required_affinity():
    pods = [placed("a", "node1", S1, HARD), placed("b", "node2", S2, HARD)]
    got = score_of(p(labels=S1), {"node1": CHINA, "node2": INDIA, "node3": AZ1}, pods)
    assert got == {"node1": 100, "node2": 100, "node3": 0}


def test_score_hard_pod_affinity_weight_zero_ignores_required_terms():
    pods = [placed("a", "node1", S1, HARD), placed("b", "node2", S2, HARD)]
    profile = Profile(plugins=(IPA,), args=PluginArgs(hard_pod_affinity_weight=0))
    got = score_of(p(labels=S1), {"node1": CHINA, "node2": INDIA, "node3": AZ1}, pods, profile)
    assert got.code is Code.SKIP


def test_score_anti_affinity():
    pods = [placed("a", "node1", S1), placed("b", "node2", S2)]
    assert score_of(p(labels=S1, affinity=AWAY_S1_AZ), {"node1": AZ1, "node2": CHINA}, pods) == {
        "node1": 0,
        "node2": 100,
    }
    pods = [placed("a", "node1", S1), placed("b", "node2", S1)]
    assert score_of(p(labels=S1, affinity=AWAY_S1_AZ), {"node1": AZ1, "node2": CHINA}, pods) == {
        "node1": 0,
        "node2": 100,
    }
    pods = [placed("a", "node1", S1), placed("a2", "node1", S1), placed("b", "node2", S2)]
    assert score_of(p(labels=S1, affinity=AWAY_S1_AZ), {"node1": AZ1, "node2": INDIA}, pods) == {
        "node1": 0,
        "node2": 100,
    }


def test_score_anti_affinity_symmetry():
    pods = [placed("a", "node1", S1, AWAY_S2_AZ), placed("b", "node2", S2, AWAY_S1_AZ)]
    assert score_of(p(labels=S2), {"node1": AZ1, "node2": AZ2}, pods) == {"node1": 0, "node2": 100}


def test_score_affinity_and_anti_affinity():
    pods = [placed("a", "node1", S1), placed("b", "node2", S1)]
    got = score_of(p(labels=S1, affinity=STAY_S1_AWAY_S2), {"node1": CHINA, "node2": AZ1}, pods)
    assert got == {"node1": 100, "node2": 0}
    pods = [
        placed(f"x{i}", n, S1) for i, n in enumerate(["node1", "node1", "node2", "node3", "node3", "node4", "node5"])
    ]
    nodes = {"node1": CHINA_AZ1, "node2": INDIA, "node3": CHINA, "node4": CHINA, "node5": INDIA}
    got = score_of(p(labels=S1, affinity=STAY_S1_AWAY_S2), nodes, pods)
    assert got == {"node1": 100, "node2": 0, "node3": 100, "node4": 100, "node5": 0}


def test_score_affinity_anti_affinity_and_symmetry():
    pods = [
        placed("a", "node1", S1),
        placed("b", "node2", S2),
        placed("c", "node3", None, STAY_S1_AWAY_S2),
        placed("d", "node4", None, AWAY_S1_AZ),
    ]
    nodes = {"node1": CHINA, "node2": AZ1, "node3": INDIA, "node4": AZ2}
    got = score_of(p(labels=S1, affinity=STAY_S1_AWAY_S2), nodes, pods)
    assert got == {"node1": 100, "node2": 0, "node3": 100, "node4": 0}


def test_score_partial_topology_without_affinity_pods():
    pods = [placed("a", "node1", S1), placed("b", "node2", None, STAY_S1_AWAY_S2)]
    assert score_of(p(labels=S1), {"node1": CHINA, "node2": CHINA}, pods) == {"node1": 0, "node2": 0}


def test_score_invalid_labels_are_an_error():
    bad = pod_affinity(preferred=[(8, term(selector_in("security", "{{.bad-value.}}"), "region"))])
    assert score_of(p(affinity=bad), {"node1": CHINA, "node2": CHINA}, []).code is Code.ERROR


def test_score_namespace_selector_and_namespaces():
    pods = [
        placed("a", "node1", S1, namespace="subteam1.team1"),
        placed("b", "node1", S1, namespace="subteam1.team1"),
        placed("c", "node1", S1, namespace="subteam1.team2"),
        placed("d", "node2", S1, namespace="subteam2.team1"),
    ]
    incoming = p(namespace="subteam1.team1", labels=S1, affinity=AFFINITY_NS)
    assert score_of(incoming, {"node1": CHINA, "node2": INDIA}, pods) == {"node1": 100, "node2": 0}
    incoming = p(namespace="subteam1.team1", labels=S1, affinity=ANTI_NS)
    assert score_of(incoming, {"node1": CHINA, "node2": INDIA}, pods) == {"node1": 0, "node2": 100}


def test_score_ignore_preferred_terms_of_existing_pods():
    pods = [placed("a", "node1", S1, STAY_S1_AWAY_S2), placed("b", "node2", S2, STAY_S2_REGION)]
    profile = Profile(plugins=(IPA,), args=PluginArgs(ignore_preferred_terms_of_existing_pods=True))
    assert score_of(p(labels=S2), {"node1": CHINA, "node2": INDIA}, pods, profile).code is Code.SKIP
