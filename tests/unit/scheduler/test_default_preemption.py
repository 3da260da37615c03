"""DefaultPreemption, with cases from upstream's default_preemption_test.go (TestPostFilter,
TestDryRunPreemption, TestSelectBestCandidate, TestPodEligibleToPreemptOthers). Start times
differ by seconds where upstream uses nanoseconds (JSON times have second precision)."""

import pytest

from operators.scheduler.framework import DEFAULT_PREEMPTION, NODE_RESOURCES_FIT, PluginArgs, Profile, schedule_one
from operators.scheduler.plugins.default_preemption import (
    Candidate,
    filter_pods_with_pdb_violation,
    pick_one_node,
    select_victims,
)
from operators.scheduler.snapshot import PodInfo, Snapshot
from operators.scheduler.status import Code, NodeToStatus, Status
from tests.unit.scheduler.builders import (
    NOW,
    names,
    node,
    pdb,
    pod,
    pod_affinity,
    seconds,
    selector_exists,
    spread,
    term,
)

NEG, LOW, MID, HIGH, VERY_HIGH = -100, 0, 100, 1000, 10000
SMALL = {"cpu": "100m", "memory": "100"}
MEDIUM = {"cpu": "200m", "memory": "200"}
LARGE = {"cpu": "300m", "memory": "300"}
VERY_LARGE = {"cpu": "500m", "memory": "500"}
FIT_ONLY = Profile(plugins=(NODE_RESOURCES_FIT, DEFAULT_PREEMPTION))


def victim(name, node_name, priority, req=None, start=None, labels=None, **kwargs):
    return pod(
        name,
        requests=[req] if req else [],
        node_name=node_name,
        priority=priority,
        start_time=start,
        labels=labels,
        **kwargs,
    )


def preemptor(priority=HIGH, req=None, **kwargs):
    return pod("p", requests=[req] if req else [], priority=priority, **kwargs)


def cluster(node_names, pods, capacity=VERY_LARGE, pdbs=()):
    return Snapshot.build([node(n, capacity=capacity) for n in node_names], pods, pdbs=pdbs)


def run(incoming, snapshot, profile=FIT_ONLY, **kwargs):
    return select_victims(incoming, snapshot, profile, now=NOW, **kwargs)


def candidates_by_node(result):
    return {c.node: sorted(names(c.victims)) for c in result.candidates}


# TestPostFilter.


def test_higher_priority_pod_can_be_made_schedulable():
    snapshot = cluster(["node1"], [victim("p1", "node1", LOW)], capacity={"pods": "1"})
    result = run(preemptor(), snapshot)
    assert result.status.is_success()
    assert result.nominated_node == "node1"
    assert names(result.victims) == ["p1"]


def test_tied_priority_is_still_unschedulable():
    snapshot = cluster(["node1"], [victim("p1", "node1", LOW)], capacity={"pods": "1"})
    result = run(preemptor(priority=LOW), snapshot)
    assert result.status.code is Code.UNSCHEDULABLE
    assert result.message == "0/1 nodes are available: 1 No preemption victims found for incoming pod."
    assert result.nominated_node == ""  # clears an earlier nomination


def test_unresolvable_nodes_are_not_tried():
    snapshot = cluster(["node1"], [victim("p1", "node1", LOW)], capacity={"pods": "1"})
    statuses = NodeToStatus({"node1": Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE)})
    result = run(preemptor(), snapshot, node_statuses=statuses)
    assert result.message == "0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    # absent nodes default to UnschedulableAndUnresolvable too
    assert run(preemptor(), snapshot, node_statuses=NodeToStatus()).message == result.message


def test_only_the_node_with_lower_priority_pods():
    snapshot = cluster(
        ["node1", "node2"], [victim("p1", "node1", HIGH), victim("p2", "node2", LOW)], capacity={"pods": "1"}
    )
    result = run(preemptor(priority=MID), snapshot)
    assert result.nominated_node == "node2"


def test_pdb_violations_weigh_first():
    pods = [
        victim("p1", "node1", HIGH, labels={"pdb": "non-violating"}),
        victim("p2", "node1", LOW, labels={"pdb": "violating"}),
        victim("p3", "node2", MID, labels={"pdb": "violating"}),
    ]
    pdbs = [pdb("violating", {"pdb": "violating"}, 0), pdb("non-violating", {"pdb": "non-violating"}, 2**31 - 1)]
    snapshot = cluster(["node1", "node2"], pods, capacity={"pods": "1"}, pdbs=pdbs)
    # node1 holds 2 pods already (pods: 1 is exceeded), both nodes need their pods evicted
    result = run(preemptor(priority=VERY_HIGH), snapshot)
    assert result.nominated_node == "node2"


def test_no_candidate_when_removing_all_lower_priority_pods_is_not_enough():
    pods = [victim("p1", "node1", LOW), victim("p2", "node2", LOW)]
    snapshot = cluster(["node1", "node2"], pods, capacity={"cpu": "200m", "memory": "400"})
    statuses = NodeToStatus({"node1": Status(Code.UNSCHEDULABLE), "node2": Status(Code.UNSCHEDULABLE)})
    result = run(preemptor(req=LARGE), snapshot, node_statuses=statuses)
    assert result.message == "0/2 nodes are available: 2 Insufficient cpu."
    assert result.nominated_node == ""
    # Left to compute the statuses itself, it sees 300m > 200m allocatable is unresolvable.
    result = run(preemptor(req=LARGE), snapshot)
    assert result.message == "0/2 nodes are available: 2 Preemption is not helpful for scheduling."


def test_mixed_reasons():
    pods = [victim("p1", "node1", HIGH), victim("p2", "node2", LOW), victim("p3", "node3", HIGH)]
    snapshot = Snapshot.build(
        [
            node("node1", capacity={"pods": "1"}),
            node("node2", capacity={"cpu": "200m", "memory": "400"}),
            node("node3", capacity={"pods": "1"}),
        ],
        pods,
    )
    statuses = NodeToStatus({n: Status(Code.UNSCHEDULABLE) for n in ("node1", "node2", "node3")})
    result = run(preemptor(req=LARGE), snapshot, node_statuses=statuses)
    assert (
        result.message == "0/3 nodes are available: 1 Insufficient cpu, 2 No preemption victims found for incoming pod."
    )


def test_mixed_reasons_with_unresolvable_nodes():
    pods = [victim("p1", "node1", LOW), victim("p2", "node2", LOW)]
    snapshot = cluster(["node1", "node2", "node3", "node4"], pods, capacity={"cpu": "200m", "memory": "400"})
    statuses = NodeToStatus(
        {
            "node1": Status(Code.UNSCHEDULABLE),
            "node2": Status(Code.UNSCHEDULABLE),
            "node4": Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE),
        }
    )
    result = run(preemptor(req=LARGE), snapshot, node_statuses=statuses)
    assert result.message == "0/4 nodes are available: 2 Insufficient cpu, 2 Preemption is not helpful for scheduling."


# TestDryRunPreemption.


def test_lower_priority_pod_that_fits_is_reprieved():
    pods = [victim("p1.1", "node1", LOW, SMALL), victim("p1.2", "node1", MID, LARGE), victim("p2", "node2", MID, LARGE)]
    result = run(preemptor(req=LARGE), cluster(["node1", "node2"], pods))
    assert candidates_by_node(result) == {"node1": ["p1.2"], "node2": ["p2"]}


def test_higher_priority_pods_block_preemption():
    pods = [victim("p1", "node1", MID, LARGE), victim("p2", "node2", MID, LARGE)]
    result = run(preemptor(priority=LOW, req=LARGE), cluster(["node1", "node2"], pods))
    assert result.candidates == []


def test_mixed_priority_victims():
    pods = [
        victim("p1.1", "node1", MID, SMALL),
        victim("p1.2", "node1", LOW, SMALL),
        victim("p1.3", "node1", MID, MEDIUM),
        victim("p1.4", "node1", HIGH, SMALL),
        victim("p2", "node2", HIGH, LARGE),
    ]
    result = run(preemptor(req=LARGE), cluster(["node1", "node2"], pods))
    assert candidates_by_node(result) == {"node1": ["p1.2", "p1.3"]}


def test_equal_priorities_reprieve_the_earlier_started():
    pods = [
        victim("p1.1", "node1", LOW, SMALL, seconds(5)),
        victim("p1.2", "node1", LOW, SMALL, seconds(4)),
        victim("p1.3", "node1", MID, MEDIUM, seconds(3)),
        victim("p1.4", "node1", HIGH, SMALL, seconds(2)),
        victim("p2", "node2", HIGH, LARGE, seconds(1)),
    ]
    result = run(preemptor(req=LARGE), cluster(["node1", "node2"], pods))
    assert candidates_by_node(result) == {"node1": ["p1.1", "p1.3"]}
    # victims come most important first
    assert names(result.candidates[0].victims) == ["p1.3", "p1.1"]


def test_pod_with_anti_affinity_is_preempted():
    anti = pod_affinity(anti_required=[term(selector_exists("foo"), "hostname")])
    pods = [
        victim("p1.1", "node1", LOW, SMALL, labels={"foo": ""}, affinity=anti),
        victim("p1.2", "node1", MID, SMALL),
        victim("p1.3", "node1", HIGH, SMALL),
        victim("p2", "node2", HIGH, SMALL),
    ]
    snapshot = Snapshot.build([node(n, capacity=VERY_LARGE, labels={"hostname": n}) for n in ("node1", "node2")], pods)
    profile = Profile(plugins=(NODE_RESOURCES_FIT, "InterPodAffinity", DEFAULT_PREEMPTION))
    # node2 fits already (so preemption would not run at all); ask about node1 as upstream's dry run does
    statuses = NodeToStatus({"node1": Status(Code.UNSCHEDULABLE)})
    result = run(preemptor(req=SMALL, labels={"foo": ""}), snapshot, profile, node_statuses=statuses)
    assert candidates_by_node(result) == {"node1": ["p1.1"]}


def test_preemption_resolves_topology_spread():
    selector = selector_exists("foo")
    incoming = pod(
        "p",
        labels={"foo": ""},
        priority=HIGH,
        spread=[spread(1, "zone", selector=selector), spread(1, "hostname", selector=selector)],
    )
    pods = [
        victim("pod-a1", "node-a", MID, labels={"foo": ""}),
        victim("pod-a2", "node-a", LOW, labels={"foo": ""}),
        victim("pod-b1", "node-b", LOW, labels={"foo": ""}),
        victim("pod-x1", "node-x", HIGH, labels={"foo": ""}),
        victim("pod-x2", "node-x", HIGH, labels={"foo": ""}),
    ]
    snapshot = Snapshot.build(
        [
            node(n, capacity=VERY_LARGE, labels={"hostname": n, "zone": z})
            for n, z in (("node-a", "zone1"), ("node-b", "zone1"), ("node-x", "zone2"))
        ],
        pods,
    )
    profile = Profile(plugins=("PodTopologySpread", DEFAULT_PREEMPTION), args=PluginArgs(spread_defaulting_type="List"))
    result = run(incoming, snapshot, profile)
    assert candidates_by_node(result) == {"node-a": ["pod-a2"], "node-b": ["pod-b1"]}


@pytest.mark.parametrize(
    ("disrupted", "violations", "extra"),
    [(None, 1, False), (["p2"], 1, False), (["p1.2"], 0, False), (["p1.3"], 1, True)],
)
def test_pdb_violations_are_counted(disrupted, violations, extra):
    pods = [
        victim("p1.1", "node1", MID, MEDIUM, labels={"app": "foo"}),
        victim("p1.2", "node1", MID, MEDIUM, labels={"app": "foo"}),
    ]
    if extra:
        pods.append(victim("p1.3", "node1", MID, MEDIUM, labels={"app": "foo"}))
    snapshot = cluster(["node1"], pods, pdbs=[pdb("budget", {"app": "foo"}, 1, disrupted=disrupted)])
    result = run(preemptor(req=VERY_LARGE), snapshot)
    assert len(result.candidates) == 1
    candidate = result.candidates[0]
    assert sorted(names(candidate.victims)) == sorted(names(pods))
    assert candidate.num_pdb_violations == violations


def test_candidate_limit_and_offset():
    pods = [victim(f"p{i}", f"node{i}", MID, LARGE) for i in range(1, 6)]
    snapshot = cluster([f"node{i}" for i in range(1, 6)], pods)
    profile = Profile(
        plugins=FIT_ONLY.plugins, args=PluginArgs(min_candidate_nodes_percentage=40, min_candidate_nodes_absolute=1)
    )
    # offset 4 starts at node5 and wraps to node1; 40% of 5 is 2 candidates
    result = run(preemptor(req=LARGE), snapshot, profile, offset=4)
    assert sorted(c.node for c in result.candidates) == ["node1", "node5"]
    result = run(preemptor(req=LARGE), snapshot, profile, offset=1)
    assert sorted(c.node for c in result.candidates) == ["node2", "node3"]


def test_dry_run_looks_past_the_limit_for_a_pdb_respecting_node():
    pods = [
        victim(f"p{i}", f"node{i}", MID, LARGE, labels={"app": "guarded"} if i in (1, 2) else {"app": "free"})
        for i in range(1, 6)
    ]
    snapshot = cluster([f"node{i}" for i in range(1, 6)], pods, pdbs=[pdb("guard", {"app": "guarded"}, 0)])
    profile = Profile(
        plugins=FIT_ONLY.plugins, args=PluginArgs(min_candidate_nodes_percentage=20, min_candidate_nodes_absolute=1)
    )
    result = run(preemptor(req=LARGE), snapshot, profile)
    # node1 and node2 would violate the PDB; the run goes on to node3, which does not
    assert [c.node for c in result.candidates] == ["node3", "node1"]
    assert result.nominated_node == "node3"


# TestSelectBestCandidate.


def best(incoming_priority, incoming_req, node_names, pods):
    result = run(preemptor(priority=incoming_priority, req=incoming_req), cluster(node_names, pods))
    return result.nominated_node


EPOCH_START = seconds(0)


def v(name, node_name, priority, req, start=EPOCH_START):
    return victim(name, node_name, priority, req, start)


def test_best_candidate_any_node():
    pods = [v("p1", "node1", MID, LARGE), v("p2", "node2", MID, LARGE)]
    assert best(HIGH, LARGE, ["node1", "node2"], pods) in ("node1", "node2")


def test_best_candidate_min_highest_priority():
    pods = [
        v("p1.1", "node1", MID, MEDIUM),
        v("p1.2", "node1", MID, LARGE),
        v("p2.1", "node2", MID, MEDIUM),
        v("p2.2", "node2", LOW, MEDIUM),
        v("p3.1", "node3", LOW, MEDIUM),
        v("p3.2", "node3", LOW, MEDIUM),
    ]
    assert best(HIGH, VERY_LARGE, ["node1", "node2", "node3"], pods) == "node3"


def test_best_candidate_min_sum_of_priorities():
    pods = [
        v("p1.1", "node1", MID, MEDIUM),
        v("p1.2", "node1", MID, LARGE),
        v("p2.1", "node2", MID, LARGE),
        v("p2.2", "node2", LOW, MEDIUM),
        v("p3.1", "node3", MID, MEDIUM),
        v("p3.2", "node3", MID, MEDIUM),
    ]
    assert best(HIGH, VERY_LARGE, ["node1", "node2", "node3"], pods) == "node2"


def test_best_candidate_min_number_of_pods():
    pods = [
        v("p1.1", "node1", MID, SMALL),
        v("p1.2", "node1", NEG, SMALL),
        v("p1.3", "node1", MID, SMALL),
        v("p1.4", "node1", NEG, SMALL),
        v("p2.1", "node2", MID, LARGE),
        v("p2.2", "node2", NEG, MEDIUM),
        v("p3.1", "node3", MID, MEDIUM),
        v("p3.2", "node3", NEG, SMALL),
        v("p3.3", "node3", LOW, SMALL),
    ]
    assert best(HIGH, VERY_LARGE, ["node1", "node2", "node3"], pods) == "node2"


def test_best_candidate_adjusted_priority_sum():
    pods = [
        v("p1.1", "node1", MID, SMALL),
        v("p1.2", "node1", NEG, SMALL),
        v("p1.3", "node1", NEG, SMALL),
        v("p2.1", "node2", MID, LARGE),
        v("p2.2", "node2", NEG, MEDIUM),
        v("p3.1", "node3", MID, MEDIUM),
        v("p3.2", "node3", NEG, SMALL),
        v("p3.3", "node3", LOW, SMALL),
    ]
    assert best(HIGH, VERY_LARGE, ["node1", "node2", "node3"], pods) == "node2"


def test_best_candidate_non_overlapping_criteria():
    pods = [
        v("p1.1", "node1", MID, SMALL),
        v("p1.2", "node1", LOW, SMALL),
        v("p1.3", "node1", LOW, SMALL),
        v("p2.1", "node2", HIGH, LARGE),
        v("p3.1", "node3", MID, MEDIUM),
        v("p3.2", "node3", LOW, SMALL),
        v("p3.3", "node3", LOW, SMALL),
        v("p3.4", "node3", LOW, MEDIUM),
        v("p4.1", "node4", MID, MEDIUM),
        v("p4.2", "node4", MID, SMALL),
        v("p4.3", "node4", MID, SMALL),
        v("p4.4", "node4", NEG, SMALL),
    ]
    assert best(VERY_HIGH, VERY_LARGE, ["node1", "node2", "node3", "node4"], pods) == "node1"


def test_best_candidate_latest_start_time():
    pods = [
        v("p1.1", "node1", MID, MEDIUM, seconds(2)),
        v("p1.2", "node1", MID, MEDIUM, seconds(2)),
        v("p2.1", "node2", MID, MEDIUM, seconds(3)),
        v("p2.2", "node2", MID, MEDIUM, seconds(3)),
        v("p3.1", "node3", MID, MEDIUM, seconds(1)),
        v("p3.2", "node3", MID, MEDIUM, seconds(1)),
    ]
    assert best(HIGH, VERY_LARGE, ["node1", "node2", "node3"], pods) == "node2"
    pods = [
        v("p1.1", "node1", MID, MEDIUM, seconds(4)),
        v("p1.2", "node1", MID, MEDIUM, seconds(2)),
        v("p2.1", "node2", MID, MEDIUM, seconds(5)),
        v("p2.2", "node2", MID, MEDIUM, seconds(1)),
        v("p3.1", "node3", MID, MEDIUM, seconds(3)),
        v("p3.2", "node3", MID, MEDIUM, seconds(6)),
    ]
    assert best(HIGH, VERY_LARGE, ["node1", "node2", "node3"], pods) == "node3"
    pods = [
        v("p1.1", "node1", LOW, MEDIUM, seconds(4)),
        v("p1.2", "node1", MID, MEDIUM, seconds(2)),
        v("p2.1", "node2", MID, MEDIUM, seconds(6)),
        v("p2.2", "node2", LOW, MEDIUM, seconds(1)),
        v("p3.1", "node3", LOW, MEDIUM, seconds(3)),
        v("p3.2", "node3", MID, MEDIUM, seconds(5)),
    ]
    assert best(HIGH, VERY_LARGE, ["node1", "node2", "node3"], pods) == "node2"


def test_pick_one_node_ties_go_to_the_first_candidate():
    a = Candidate("a", [victim("x", "a", 1)])
    b = Candidate("b", [victim("y", "b", 1)])
    assert pick_one_node([a, b], NOW) is a
    assert pick_one_node([b, a], NOW) is b
    assert pick_one_node([], NOW) is None


# TestPodEligibleToPreemptOthers.


def test_preemption_policy_never():
    snapshot = cluster(["node1"], [victim("p1", "node1", LOW)], capacity={"pods": "1"})
    result = run(preemptor(preemption_policy="Never"), snapshot)
    assert result.status.code is Code.UNSCHEDULABLE
    assert result.message == "not eligible due to preemptionPolicy=Never."
    assert result.nominated_node is None  # the nomination is left alone


TERMINATING_VICTIM = {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}


def test_waits_for_victims_terminating_on_the_nominated_node():
    terminating = victim("p1", "node1", LOW, terminating=True, conditions=[TERMINATING_VICTIM])
    snapshot = cluster(["node1"], [terminating], capacity={"pods": "1"})
    result = run(preemptor(nominated_node="node1"), snapshot)
    assert result.message == "not eligible due to a terminating pod on the nominated node."
    # ... unless the nominated node became UnschedulableAndUnresolvable
    statuses = NodeToStatus({"node1": Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE)})
    result = run(preemptor(nominated_node="node1"), snapshot, node_statuses=statuses)
    assert result.message != "not eligible due to a terminating pod on the nominated node."


def test_other_terminating_pods_do_not_block():
    snapshot = cluster(["node1"], [victim("p1", "node1", LOW, terminating=True)], capacity={"pods": "1"})
    result = run(preemptor(nominated_node="node1"), snapshot)
    assert result.nominated_node == "node1"


# PDB grouping (filterPodsWithPDBViolation).


def test_filter_pods_with_pdb_violation_keeps_order():
    pods = [PodInfo.of(victim(n, "n", LOW, labels={"app": "a"})) for n in ("p1", "p2", "p3")]
    unlabelled = PodInfo.of(victim("p4", "n", LOW))
    violating, ok = filter_pods_with_pdb_violation([*pods, unlabelled], [pdb("b", {"app": "a"}, 1)])
    assert [p.pod["metadata"]["name"] for p in violating] == ["p2", "p3"]
    assert [p.pod["metadata"]["name"] for p in ok] == ["p1", "p4"]
    other_ns = pdb("b", {"app": "a"}, 0, namespace="elsewhere")
    empty = dict(pdb("e", {}, 0), spec={"selector": {}})
    violating, _ = filter_pods_with_pdb_violation(pods, [other_ns, empty])
    assert violating == []


# Through schedule_one: the nomination and the victims reach the result.


def test_schedule_one_nominates_and_lists_victims():
    pods = [victim("low", "node1", LOW, LARGE), victim("high", "node2", HIGH, LARGE)]
    snapshot = cluster(["node1", "node2"], pods)
    result = schedule_one(preemptor(priority=MID, req=LARGE), snapshot, now=NOW)
    assert result.status.code is Code.UNSCHEDULABLE
    assert result.message == "0/2 nodes are available: 2 Insufficient cpu, 2 Insufficient memory."
    assert result.nominated_node == "node1"
    assert names(result.victims) == ["low"]
    assert result.explain()["victims"] == ["default/low"]
    assert [c.node for c in result.post_filter_detail.candidates] == ["node1"]


def test_lower_priority_nominated_pods_are_reported():
    pods = [victim("low", "node1", LOW, LARGE), pod("waiting", requests=[SMALL], priority=LOW, nominated_node="node1")]
    result = run(preemptor(req=LARGE), cluster(["node1"], pods))
    assert result.nominated_node == "node1"
    assert names(result.lower_priority_nominated) == ["waiting"]


def test_fits_without_preemption():
    result = run(preemptor(req=SMALL), cluster(["node1"], []))
    assert result.status.code is Code.SKIP
    assert result.nominated_node is None


def test_pick_one_node_criteria_in_order():
    def cand(name, priorities, violations=0, starts=None):
        starts = starts or [0] * len(priorities)
        victims = [
            victim(f"{name}{i}", name, p, start=seconds(s))
            for i, (p, s) in enumerate(zip(priorities, starts, strict=True))
        ]
        return Candidate(name, victims, violations)

    # 1. fewest PDB violations beats everything else
    assert pick_one_node([cand("a", [5], 1), cand("b", [50, 50, 50], 0)], NOW).node == "b"
    # 2. lowest highest-priority victim
    assert pick_one_node([cand("a", [50]), cand("b", [10, 10, 10])], NOW).node == "b"
    # 3. smallest sum of (priority + 2^31)
    assert pick_one_node([cand("a", [10, 10]), cand("b", [10, 5])], NOW).node == "b"
    # 4. fewest victims: equal adjusted sums (0 + 2^31 + (-2^31 + 2^31) vs 0 + 2^31), fewer pods wins
    assert pick_one_node([cand("a", [0, -(2**31)]), cand("b", [0])], NOW).node == "b"
    # 5. latest start among the highest-priority victims
    assert pick_one_node([cand("a", [10], starts=[100]), cand("b", [10], starts=[200])], NOW).node == "b"
    # the earliest of the top-priority victims counts; lower-priority victims' starts do not
    a = cand("a", [10, 10, 1], starts=[300, 50, 999])
    b = cand("b", [10, 10, 1], starts=[100, 100, 0])
    assert pick_one_node([a, b], NOW).node == "b"
    # victims without a start time count as started now
    assert pick_one_node([cand("a", [10], starts=[100]), Candidate("b", [victim("b0", "b", 10)])], NOW).node == "b"
