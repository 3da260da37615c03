"""Node-static results remembered per Node object (Snapshot.static_memo): a speed-up only, so every
decision and every explanation must be what a fresh evaluation gives, through a stream of varied
pods, placements and node changes."""

from __future__ import annotations

import copy
import random
from typing import Any

from operators.scheduler.framework import Profile, default_profile, first_by_name, schedule_one
from operators.scheduler.snapshot import Snapshot
from tests.unit.scheduler.builders import NOW, node, pod

TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
SOFT = {"key": "spot", "value": "yes", "effect": "PreferNoSchedule"}
TOLERATE = {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
TOLERATE_SOFT = {"key": "spot", "operator": "Exists"}


def cluster() -> list[dict[str, Any]]:
    nodes = []
    for i in range(24):
        labels = {"zone": f"z{i % 3}", "disk": "ssd" if i % 4 == 0 else "hdd"}
        taints = [TAINT] if i % 5 == 0 else [SOFT] if i % 7 == 0 else []
        nodes.append(node(f"n{i:02}", capacity={"cpu": str(2 + i % 6), "memory": "16Gi"}, labels=labels,
                          taints=taints, unschedulable=i == 9))
    return nodes


def pods(count: int, rng: random.Random) -> list[dict[str, Any]]:
    preferred = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}}
    required = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["z0"]}]}]}}}
    shapes: list[dict[str, Any]] = [
        {}, {"tolerations": [TOLERATE]}, {"tolerations": [TOLERATE_SOFT]}, {"node_selector": {"zone": "z1"}},
        {"affinity": preferred}, {"affinity": required}, {"tolerations": [TOLERATE], "affinity": preferred},
        {"node_selector": {"disk": "ssd"}, "tolerations": [TOLERATE, TOLERATE_SOFT]},
    ]
    return [pod(f"p{i}", uid=f"u{i}", requests=[{"cpu": rng.choice(["100m", "500m", "1"])}], **rng.choice(shapes))
            for i in range(count)]


def run(nodes: list[dict[str, Any]], stream: list[dict[str, Any]], profile: Profile, *, memo: bool,
        relabel_at: int) -> list[Any]:
    snapshot = Snapshot.build(copy.deepcopy(nodes))
    explanations = []
    start = 0
    for i, p in enumerate(stream):
        if i == relabel_at:
            # A new Node object (as after a watch event): its remembered results must go.
            changed = copy.deepcopy(snapshot.nodes["n01"].node)
            changed["metadata"]["labels"]["zone"] = "z1"
            changed["spec"]["taints"] = [TAINT]
            info = snapshot.nodes["n01"]
            info.node = changed
        if not memo:
            snapshot.static_memo.clear()
        result = schedule_one(p, snapshot, profile, start_index=start, now=NOW, tie_break=first_by_name)
        start = result.next_start_index
        explanations.append(result.explain())
        if result.suggested_host:
            snapshot.assume(p, result.suggested_host)
    return explanations


def test_remembered_node_static_results_change_no_decision() -> None:
    nodes, stream = cluster(), pods(160, random.Random(7))
    profile = default_profile()
    fresh = run(nodes, stream, profile, memo=False, relabel_at=80)
    remembered = run(nodes, stream, profile, memo=True, relabel_at=80)
    assert remembered == fresh
    placed = [e["node"] for e in fresh if e["node"]]
    assert len(placed) > 60 and len(set(placed)) > 10  # the stream exercised many nodes and rejections
    assert any(e["node"] is None for e in fresh)


def test_percentage_of_nodes_to_score_and_a_new_profile_start_afresh() -> None:
    nodes, stream = cluster(), pods(60, random.Random(11))
    small = Profile(percentage_of_nodes_to_score=10)
    assert run(nodes, stream, small, memo=True, relabel_at=30) == run(nodes, stream, small, memo=False,
                                                                      relabel_at=30)
    snapshot = Snapshot.build(copy.deepcopy(nodes))
    schedule_one(stream[0], snapshot, small, now=NOW)
    assert all(entry[1] is small for entry in snapshot.static_memo.values())
    other = Profile(percentage_of_nodes_to_score=10)
    schedule_one(stream[0], snapshot, other, now=NOW)
    assert all(entry[1] is other for entry in snapshot.static_memo.values())
