"""Resource scores remembered on a NodeInfo (a speed-up only: the scores must not change)."""

from __future__ import annotations

from operators.scheduler.framework import LEAST_ALLOCATED, ResourceSpec
from operators.scheduler.plugins import resource_allocation
from operators.scheduler.snapshot import NodeInfo
from tests.unit.scheduler.builders import node, pod

SPECS = (ResourceSpec("cpu", 1), ResourceSpec("memory", 1))
KEY = resource_allocation.scorer_key(LEAST_ALLOCATED, SPECS)
SCORER = resource_allocation.least_allocated_scorer(SPECS)
REQUEST = [1000, 1024**3]


def score(info: NodeInfo, *, memo: bool) -> int:
    value, status = resource_allocation.score(
        info, SPECS, REQUEST, SCORER, use_requested=False, memo_key=KEY if memo else None
    )
    assert status is None
    return value


def test_remembered_score_is_dropped_when_the_node_changes() -> None:
    info = NodeInfo.of(node("a", capacity={"cpu": "4", "memory": "4Gi"}))
    empty = score(info, memo=True)
    assert empty == score(info, memo=False) and info.score_memo
    placed = info.add_pod(pod("p", requests=[{"cpu": "2", "memory": "2Gi"}], node_name="a"))
    assert not info.score_memo
    busy = score(info, memo=True)
    assert busy == score(info, memo=False) < empty
    info.remove_pod(placed)
    assert not info.score_memo
    assert score(info, memo=True) == empty


def test_a_clone_starts_without_remembered_scores() -> None:
    info = NodeInfo.of(node("a", capacity={"cpu": "4", "memory": "4Gi"}))
    score(info, memo=True)
    copy = info.clone()
    assert not copy.score_memo
    copy.add_pod(pod("p", requests=[{"cpu": "2", "memory": "2Gi"}], node_name="a"))
    assert score(info, memo=True) == score(info, memo=False)


def test_scorers_with_different_settings_do_not_share_scores() -> None:
    weighted = (ResourceSpec("cpu", 1), ResourceSpec("memory", 3))
    assert resource_allocation.scorer_key(LEAST_ALLOCATED, SPECS) != resource_allocation.scorer_key(
        LEAST_ALLOCATED, weighted
    )
    assert resource_allocation.scorer_key("RequestedToCapacityRatio", SPECS, ((0, 0), (100, 10))) != (
        resource_allocation.scorer_key("RequestedToCapacityRatio", SPECS, ((0, 10), (100, 0)))
    )


def test_scoring_in_bulk_gives_what_scoring_one_by_one_gives() -> None:
    # Nodes of different sizes and loads, some already remembering a score and some not: the
    # bulk path must agree with the plain computation node for node.
    infos = [NodeInfo.of(node(f"n{i}", capacity={"cpu": str(2 + i), "memory": f"{4 + 2 * i}Gi"})) for i in range(6)]
    for i, info in enumerate(infos[::2]):
        info.add_pod(pod(f"p{i}", requests=[{"cpu": f"{500 * (i + 1)}m", "memory": "1Gi"}], node_name=info.name))
    score(infos[1], memo=True)
    plain = [score(info, memo=False) for info in infos]
    assert len(set(plain)) > 2  # the nodes really differ
    for _ in range(2):  # cold, then remembered
        values, status = resource_allocation.score_nodes(infos, SPECS, REQUEST, SCORER, use_requested=False,
                                                         memo_key=KEY)
        assert status is None and values == plain
    _, status = resource_allocation.score_nodes(infos, (), REQUEST, SCORER, use_requested=False, memo_key=KEY)
    assert status is not None and "resources not found" in status.message()
