"""A 5,000-pod burst replayed with and without the alike-pod memo (framework.NodeLocal): every
placement, every failure message and a sample of full explanations must be identical.

The cluster is varied so that reuse has something to get wrong: 400 nodes of different sizes,
some tainted, some cordoned, zones and disk labels; four templates interleaved (preferred and
required node affinity, a toleration, a host port that fills every node once, large requests that
fill nodes) plus pods that are each unlike any other. Every placed pod is added to its node, so
nodes change between cycles as in a real burst.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from operators.scheduler import framework
from operators.scheduler.framework import Result, default_profile, first_by_name, schedule_one
from operators.scheduler.snapshot import NodeInfo, Snapshot
from tests.unit.scheduler.builders import node, pod

NODES = 400
PODS = 5000


def cluster() -> Snapshot:
    infos = {}
    for i in range(NODES):
        labels = {"kubernetes.io/hostname": f"n-{i:04d}", "topology.kubernetes.io/zone": "abc"[i % 3]}
        if i % 3 == 0:
            labels["disk"] = "ssd"
        taints = [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}] if i % 10 == 7 else None
        spec = node(f"n-{i:04d}", capacity={"cpu": str(4 + (i % 8) * 4), "memory": f"{8 + (i % 5) * 8}Gi"},
                    labels=labels, taints=taints, unschedulable=i % 20 == 13, pods="110")
        infos[spec["metadata"]["name"]] = NodeInfo.of(spec)
    return Snapshot(nodes=dict(sorted(infos.items())))


def burst_pod(i: int) -> dict[str, Any]:
    kind = i % 9
    if i % 12 == 5:  # a host port: one per node, then nowhere (more of them than nodes that take them)
        result = pod(f"agent-{i}", uid=f"u{i}", labels={"app": "agent"}, host_ports=["TCP/0.0.0.0/8080"])
    elif kind in (0, 1, 2, 3):  # a web ReplicaSet preferring SSD nodes
        result = pod(f"web-{i}", uid=f"u{i}", labels={"app": "web"}, requests=[{"cpu": "100m", "memory": "128Mi"}])
        ssd = {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}
        result["spec"]["affinity"] = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "preference": ssd}]}}
    elif kind in (4, 5, 6):  # big batch pods for zones a and b, tolerating the GPU taint
        result = pod(f"batch-{i}", uid=f"u{i}", labels={"app": "batch"}, requests=[{"cpu": "3", "memory": "6Gi"}])
        result["spec"]["tolerations"] = [{"key": "dedicated", "operator": "Equal", "value": "gpu",
                                          "effect": "NoSchedule"}]
        result["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In",
                                                         "values": ["a", "b"]}]}]}}}
    elif kind == 7:  # best effort, no requests (the scorers' non-zero defaults)
        result = pod(f"be-{i}", uid=f"u{i}", labels={"app": "be"}, requests=[{}])
    else:  # unlike any other pod
        result = pod(f"one-{i}", uid=f"u{i}", requests=[{"cpu": f"{10 + i}m"}])
    return result


def replay() -> list[tuple[str, str, str, str | None]]:
    snapshot, profile = cluster(), default_profile()
    outcomes: list[tuple[str, str, str, str | None]] = []
    start = 0
    for i in range(PODS):
        spec = burst_pod(i)
        result: Result = schedule_one(spec, snapshot, profile, start_index=start, tie_break=first_by_name)
        start = result.next_start_index
        explained = json.dumps(result.explain(), sort_keys=True) if i % 100 == 0 else None
        outcomes.append((result.suggested_host or "", result.status.code.name, result.message or "", explained))
        if result.suggested_host:
            placed = {**spec, "spec": {**spec["spec"], "nodeName": result.suggested_host}}
            snapshot.nodes[result.suggested_host].add_pod(placed)
    return outcomes


def test_every_placement_of_a_burst_is_the_same_with_and_without_the_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    remembered = replay()
    monkeypatch.setattr(framework.Framework, "_alike_key", lambda *args: None)
    computed = replay()
    placed = sum(1 for host, *_ in computed if host)
    assert 0 < placed < PODS, "the burst should both place pods and run out of room for some"
    assert len({host for host, *_ in computed if host}) > NODES // 2
    for i, (a, b) in enumerate(zip(remembered, computed, strict=True)):
        assert a == b, f"pod {i} ({burst_pod(i)['metadata']['name']}): {a[:3]} with the memo, {b[:3]} without"
