import pytest

from operators.scheduler.framework import (
    DEFAULT_PLUGINS,
    DEFAULT_WEIGHTS,
    FEASIBLE,
    NOT_EVALUATED,
    REJECTED,
    SCORE,
    CycleState,
    Framework,
    Profile,
    num_feasible_nodes_to_find,
    schedule_one,
)
from operators.scheduler.plugins import REGISTRY
from operators.scheduler.snapshot import Snapshot
from operators.scheduler.status import Code, Status
from tests.unit.scheduler.builders import (
    HOSTNAME,
    expr,
    node,
    node_affinity,
    pod,
    taint,
    toleration,
)

# numFeasibleNodesToFind, upstream's TestNumFeasibleNodesToFind (profile and global percentage
# are one setting here).


@pytest.mark.parametrize(
    ("percentage", "nodes", "expected"),
    [
        (None, 10, 10),
        (40, 10, 10),
        (None, 1000, 420),  # 50 - 1000/125 = 42%
        (40, 1000, 400),
        (None, 6000, 300),  # 50 - 48 = 2% -> at least 5%
        (40, 6000, 2400),
        (None, 99, 99),
        (None, 100, 100),  # 49% of 100 is 49 -> at least 100
        (None, 250, 120),  # 48% of 250
        (None, 5000, 500),  # 10%
        (1, 1000, 100),  # never under 100
        (0, 1000, 420),  # 0 means adaptive
        (100, 1000, 1000),
    ],
)
def test_num_feasible_nodes_to_find(percentage, nodes, expected):
    assert num_feasible_nodes_to_find(percentage, nodes) == expected


# Custom plugins, as upstream's fake TrueFilter / EqualPrioritizer / error plugins.


class TrueFilter:
    name = "TrueFilter"

    def __init__(self, handle):
        self.calls = 0

    def filter(self, state, pod, node_info):
        self.calls += 1
        return None


class EqualScore:
    name = "EqualScore"

    def __init__(self, handle):
        pass

    def score(self, state, pod, node_info):
        return 1, None

    def score_extensions(self):
        return None


class ErrorFilter:
    name = "ErrorFilter"

    def __init__(self, handle):
        pass

    def filter(self, state, pod, node_info):
        if node_info.name == "n2":
            return Status.error("boom")
        return None


class NameScore:
    """Scores node nI as I, to test weights and normalization bounds."""

    name = "NameScore"

    def __init__(self, handle):
        pass

    def score(self, state, pod, node_info):
        return int(node_info.name[1:]), None

    def score_extensions(self):
        return None


class Reserver:
    name = "Reserver"

    def __init__(self, handle):
        self.log = []

    def reserve(self, state, pod, node_name):
        self.log.append(("reserve", node_name))
        return Status.unschedulable("no room") if node_name == "bad" else None

    def unreserve(self, state, pod, node_name):
        self.log.append(("unreserve", node_name))

    def permit(self, state, pod, node_name):
        return Status(Code.WAIT), 60.0


CUSTOM = {p.name: p for p in (TrueFilter, EqualScore, ErrorFilter, NameScore, Reserver)}


def custom(*plugins, **kwargs):
    return Profile(plugins=plugins, registry=CUSTOM, **kwargs)


def many_nodes(count):
    return Snapshot.build([node(f"{i:04d}") for i in range(count)])


def test_fair_evaluation_rotates_the_start_index():
    # Upstream's TestFairEvaluationForNodes: 500 nodes, 30% -> 150 per cycle, start moves by 150.
    snapshot = many_nodes(500)
    profile = custom("TrueFilter", "EqualScore", percentage_of_nodes_to_score=30)
    to_find = num_feasible_nodes_to_find(30, 500)
    assert to_find == 150
    start = 0
    for i in range(2 * (500 // to_find + 1)):
        result = schedule_one(pod(), snapshot, profile, start_index=start)
        assert len(result.feasible_nodes) == to_find
        assert result.next_start_index == (i + 1) * to_find % 500
        assert result.feasible_nodes[0] == f"{start:04d}"
        start = result.next_start_index


def test_nodes_beyond_the_quota_are_not_evaluated():
    snapshot = many_nodes(300)
    result = schedule_one(pod(), snapshot, custom("TrueFilter", "EqualScore"), start_index=250)
    # 300 nodes -> 50 - 300/125 = 48% -> 144 nodes, starting at node 250 and wrapping around.
    assert len(result.feasible_nodes) == 144
    assert result.feasible_nodes[:2] == ["0250", "0251"]
    assert result.feasible_nodes[-1] == "0093"
    assert result.verdicts["0094"].outcome == NOT_EVALUATED
    assert result.verdicts["0250"].outcome == FEASIBLE
    assert result.next_start_index == 94


def test_without_score_plugins_one_feasible_node_is_enough():
    result = schedule_one(pod(), many_nodes(5), custom("TrueFilter"), start_index=3)
    assert result.feasible_nodes == ["0003"]
    assert result.suggested_host == "0003"
    assert result.next_start_index == 4


def test_ties_go_to_the_first_node_by_name_unless_told_otherwise():
    snapshot = many_nodes(5)
    assert schedule_one(pod(), snapshot, custom("TrueFilter", "EqualScore")).suggested_host == "0000"
    seen = []

    def last(candidates):
        seen.append(list(candidates))
        return candidates[-1]

    result = schedule_one(pod(), snapshot, custom("TrueFilter", "EqualScore"), start_index=2, tie_break=last)
    assert result.suggested_host == "0004"
    assert seen == [["0000", "0001", "0002", "0003", "0004"]]


def test_invalid_score_is_an_error():
    snapshot = Snapshot.build([node("n1"), node("n200")])
    result = schedule_one(pod(), snapshot, custom("TrueFilter", "NameScore"))
    assert result.status.code is Code.ERROR
    assert "invalid score 200" in result.message


def test_weights_multiply_normalized_scores():
    snapshot = Snapshot.build([node("n1"), node("n7")])
    result = schedule_one(pod(), snapshot, custom("TrueFilter", "NameScore", weights={"NameScore": 5}))
    assert result.suggested_host == "n7"
    score = result.scores["n7"].plugins[0]
    assert (score.raw, score.normalized, score.weight, score.weighted) == (7, 7, 5, 35)
    assert result.scores["n7"].total == 35


def test_unset_or_zero_weight_is_one():
    assert Profile(weights={"X": 0}).weight("X") == 1
    assert Profile(weights={}).weight("X") == 1


def test_filter_error_aborts_the_cycle():
    snapshot = Snapshot.build([node("n1"), node("n2"), node("n3")])
    result = schedule_one(pod(), snapshot, custom("ErrorFilter", "EqualScore"))
    assert result.status.code is Code.ERROR
    assert result.suggested_host is None
    assert "boom" in result.message


def test_unknown_plugin_is_refused():
    with pytest.raises(ValueError, match="unknown scheduler plugin"):
        Framework(Profile(plugins=("Nope",)), Snapshot())


def test_no_nodes():
    result = schedule_one(pod(), Snapshot())
    assert result.status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert result.message == "no nodes available to schedule pods"


def test_reserve_unreserve_and_permit():
    framework = Framework(custom("Reserver"), Snapshot())
    state = CycleState()
    status = framework.run_reserve(state, pod(), "bad")
    assert status is not None and status.code is Code.UNSCHEDULABLE and status.plugin == "Reserver"
    framework.run_unreserve(state, pod(), "bad")
    assert framework.plugins[0].log == [("reserve", "bad"), ("unreserve", "bad")]
    permit, waits = framework.run_permit(state, pod(), "good")
    assert permit is not None and permit.code is Code.WAIT
    assert waits == {"Reserver": 60.0}


def test_cycle_state_clone_copies_cloneable_values():
    class Counter:
        def __init__(self, n):
            self.n = n

        def clone(self):
            return Counter(self.n)

    state = CycleState()
    shared = [1]
    state.write("c", Counter(1))
    state.write("shared", shared)
    state.skip_filter_plugins.add("X")
    copy = state.clone()
    copy.read("c").n = 2
    assert state.read("c").n == 1
    assert copy.read("shared") is shared
    assert copy.skip_filter_plugins == {"X"}
    copy.skip_filter_plugins.add("Y")
    assert state.skip_filter_plugins == {"X"}


# The default profile.


def test_default_profile_matches_upstream():
    profile = Profile()
    assert profile.plugins == DEFAULT_PLUGINS
    assert dict(profile.weights) == {
        "TaintToleration": 3,
        "NodeAffinity": 2,
        "PodTopologySpread": 2,
        "InterPodAffinity": 2,
        "NodeResourcesFit": 1,
        "NodeResourcesBalancedAllocation": 1,
    }
    assert DEFAULT_WEIGHTS["TaintToleration"] == 3
    framework = Framework(profile, Snapshot())
    assert [p.name for p in framework.filter_plugins] == [
        "NodeUnschedulable",
        "NodeName",
        "TaintToleration",
        "NodeAffinity",
        "NodePorts",
        "NodeResourcesFit",
        "PodTopologySpread",
        "InterPodAffinity",
    ]
    assert [p.name for p in framework.score_plugins] == [
        "TaintToleration",
        "NodeAffinity",
        "NodeResourcesFit",
        "PodTopologySpread",
        "InterPodAffinity",
        "NodeResourcesBalancedAllocation",
    ]
    assert [p.name for p in framework.post_filter_plugins] == ["DefaultPreemption"]
    assert set(REGISTRY) == set(DEFAULT_PLUGINS)


def cluster():
    cap = {"cpu": "4", "memory": "8Gi"}
    return Snapshot.build(
        [
            node("a", capacity=cap, labels={HOSTNAME: "a", "disk": "ssd"}),
            node("b", capacity=cap, labels={HOSTNAME: "b", "disk": "hdd"}),
            node("c", capacity=cap, labels={HOSTNAME: "c"}, taints=[taint("dedicated", "gpu")]),
            node("d", capacity={"cpu": "1", "memory": "8Gi"}, labels={HOSTNAME: "d"}),
            node("e", capacity=cap, labels={HOSTNAME: "e"}, unschedulable=True, taints=[taint("dedicated", "gpu")]),
        ],
        [
            pod("a-busy", requests=[{"cpu": "2"}], node_name="a"),
            pod("b-busy", requests=[{"cpu": "3"}], node_name="b"),
        ],
    )


def test_end_to_end_choice_and_explanation():
    result = schedule_one(pod(requests=[{"cpu": "2", "memory": "1Gi"}]), cluster())
    assert result.status.is_success()
    assert result.suggested_host == "a"
    v = result.verdicts
    assert v["a"].outcome == FEASIBLE
    assert (v["b"].status.plugin, v["b"].status.reasons) == ("NodeResourcesFit", ["Insufficient cpu"])
    assert (v["c"].status.plugin, v["c"].status.reasons) == ("TaintToleration", ["node(s) had untolerated taint(s)"])
    assert v["c"].status.details == {"untoleratedTaint": "dedicated=gpu:NoSchedule"}
    assert v["d"].status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE  # 2 cpu > 1 cpu allocatable
    # Filters run in profile order: NodeUnschedulable rejects e before TaintToleration looks.
    assert v["e"].status.plugin == "NodeUnschedulable"
    # A single feasible node is taken without scoring, as upstream.
    assert result.scores == {}
    assert result.evaluated_nodes == 5
    explained = result.explain()
    assert explained["node"] == "a"
    assert explained["nodes"]["b"]["reasons"] == ["Insufficient cpu"]


def test_end_to_end_failure_message_with_preemption_attempt():
    result = schedule_one(pod(requests=[{"cpu": "3"}]), cluster())
    assert result.status.code is Code.UNSCHEDULABLE
    assert result.message == (
        "0/5 nodes are available: 1 node(s) had untolerated taint(s), 1 node(s) were unschedulable, "
        "3 Insufficient cpu. "
        "preemption: 0/5 nodes are available: 2 No preemption victims found for incoming pod, "
        "3 Preemption is not helpful for scheduling."
    )
    assert result.nominated_node == ""
    assert result.diagnosis.unschedulable_plugins == {"NodeResourcesFit", "TaintToleration", "NodeUnschedulable"}


def test_preemption_never_suffix():
    result = schedule_one(pod(requests=[{"cpu": "3"}], priority=100, preemption_policy="Never"), cluster())
    assert result.message.endswith(". preemption: not eligible due to preemptionPolicy=Never.")
    assert result.nominated_node is None


def test_scores_and_totals_with_default_profile():
    snapshot = Snapshot.build(
        [
            node("a", capacity={"cpu": "4", "memory": "8Gi"}, labels={HOSTNAME: "a", "disk": "ssd"}),
            node("b", capacity={"cpu": "4", "memory": "8Gi"}, labels={HOSTNAME: "b"}),
        ]
    )
    p = pod(
        requests=[{"cpu": "1", "memory": "2Gi"}],
        affinity=node_affinity(preferred=[(10, {"matchExpressions": [expr("disk", "In", "ssd")]})]),
    )
    result = schedule_one(p, snapshot)
    assert result.suggested_host == "a"
    a = {s.plugin: s for s in result.scores["a"].plugins}
    b = {s.plugin: s for s in result.scores["b"].plugins}
    assert a["NodeAffinity"].weighted == 200 and b["NodeAffinity"].weighted == 0
    # LeastAllocated: cpu (4000-1000)*100/4000 = 75, memory 75 -> 75; BalancedAllocation |0.25-0.25| -> 100.
    assert a["NodeResourcesFit"].normalized == 75
    assert a["NodeResourcesBalancedAllocation"].normalized == 100
    assert a["TaintToleration"].weighted == 300
    assert result.scores["a"].total == 300 + 200 + 75 + 100
    assert result.scores["b"].total == 300 + 0 + 75 + 100
    # InterPodAffinity and PodTopologySpread have nothing to do here: skipped at PreScore.
    assert "InterPodAffinity" not in a and "PodTopologySpread" not in a


def test_score_plugins_can_be_disabled():
    snapshot = Snapshot.build([node("a", capacity={"cpu": "4"}), node("b", capacity={"cpu": "8"})])
    profile = Profile(disabled={SCORE: frozenset({"NodeResourcesFit"})})
    result = schedule_one(pod(requests=[{"cpu": "1"}]), snapshot, profile)
    assert all(s.plugin != "NodeResourcesFit" for s in result.scores["a"].plugins)


def test_most_allocated_packs():
    from operators.scheduler.framework import MOST_ALLOCATED, ScoringStrategy

    snapshot = Snapshot.build(
        [node("a", capacity={"cpu": "4", "memory": "4Gi"}), node("b", capacity={"cpu": "4", "memory": "4Gi"})],
        [pod("x", requests=[{"cpu": "2", "memory": "2Gi"}], node_name="b")],
    )
    p = pod(requests=[{"cpu": "1", "memory": "1Gi"}])
    assert schedule_one(p, snapshot).suggested_host == "a"
    packed = Profile(scoring_strategy=ScoringStrategy(MOST_ALLOCATED))
    assert schedule_one(p, snapshot, packed).suggested_host == "b"


def test_prefilter_narrowing_to_named_nodes():
    snapshot = Snapshot.build([node(n) for n in ("n1", "n2", "n3", "n4")])
    p = pod(affinity=node_affinity(required=[{"matchFields": [expr("metadata.name", "In", "n2")]}]))
    result = schedule_one(p, snapshot)
    assert result.suggested_host == "n2"
    assert result.verdicts["n1"].outcome == REJECTED
    assert result.verdicts["n1"].status.reasons == ["node(s) didn't satisfy plugin(s) [NodeAffinity]"]


def test_prefilter_narrowing_to_a_node_that_does_not_fit():
    snapshot = Snapshot.build([node(n, taints=[taint("k")] if n == "n2" else None) for n in ("n1", "n2", "n3")])
    p = pod(affinity=node_affinity(required=[{"matchFields": [expr("metadata.name", "In", "n2")]}]))
    result = schedule_one(p, snapshot)
    assert result.message.startswith(
        "0/3 nodes are available: 1 node(s) had untolerated taint(s), "
        "2 node(s) didn't satisfy plugin(s) [NodeAffinity]."
    )


def test_prefilter_rejection_message():
    snapshot = Snapshot.build([node("n1"), node("n2")])
    p = pod(
        affinity=node_affinity(
            required=[{"matchFields": [expr("metadata.name", "In", "n1"), expr("metadata.name", "In", "n2")]}]
        )
    )
    result = schedule_one(p, snapshot)
    assert result.message.startswith("0/2 nodes are available: pod affinity terms conflict.")
    assert all(v.outcome == REJECTED for v in result.verdicts.values())


def test_nominated_node_is_tried_first():
    snapshot = many_nodes(3)
    result = schedule_one(pod(nominated_node="0002"), snapshot, custom("TrueFilter", "EqualScore"))
    assert result.suggested_host == "0002"
    assert result.feasible_nodes == ["0002"]
    assert result.verdicts["0000"].outcome == NOT_EVALUATED


def test_higher_priority_nominated_pods_hold_their_room():
    nodes = [node("a", capacity={"cpu": "2"}), node("b", capacity={"cpu": "2"})]
    waiting = pod("waiting", requests=[{"cpu": "2"}], priority=100, nominated_node="a")
    snapshot = Snapshot.build(nodes, [waiting])
    assert snapshot.nominated_pods_for("a")[0].pod["metadata"]["name"] == "waiting"
    assert schedule_one(pod(requests=[{"cpu": "1"}], priority=50), snapshot).suggested_host == "b"
    # Equal or higher priority pods do not yield the room.
    equal = schedule_one(pod(requests=[{"cpu": "1"}], priority=100), snapshot)
    assert equal.verdicts["a"].outcome == REJECTED
    higher = schedule_one(
        pod(requests=[{"cpu": "1"}], priority=200), snapshot, Profile(disabled={SCORE: frozenset(DEFAULT_PLUGINS)})
    )
    assert higher.verdicts["a"].outcome == FEASIBLE


def test_tolerated_taint_and_cordon():
    snapshot = Snapshot.build([node("e", unschedulable=True, taints=[taint("dedicated", "gpu")])])
    p = pod(
        tolerations=[
            toleration("dedicated", "gpu", "NoSchedule"),
            toleration("node.kubernetes.io/unschedulable", operator="Exists", effect="NoSchedule"),
        ]
    )
    assert schedule_one(p, snapshot).suggested_host == "e"


def test_at_random_picks_every_tied_node_sometimes() -> None:
    from operators.scheduler.framework import at_random, first_by_name

    candidates = ["node-b", "node-a", "node-c"]
    seen = {at_random(candidates) for _ in range(200)}
    assert seen == set(candidates)  # chance of missing one in 200 draws: about 3 * (2/3)**200
    assert first_by_name(candidates) == "node-a"
