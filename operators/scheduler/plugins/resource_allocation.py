"""Resource scoring shared by NodeResourcesFit and NodeResourcesBalancedAllocation
(noderesources/resource_allocation.go and the three strategies' scorer functions)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from operators.scheduler import resources
from operators.scheduler.framework import (
    DEFAULT_RESOURCES,
    MAX_CUSTOM_PRIORITY_SCORE,
    MAX_NODE_SCORE,
    Pod,
    ResourceSpec,
)
from operators.scheduler.plugins.common import go_div, go_round
from operators.scheduler.snapshot import NodeInfo
from operators.scheduler.status import Status

Scorer = Callable[[Sequence[int], Sequence[int]], int]
MAX_UTILIZATION = 100
DEFAULT_SPECS: tuple[ResourceSpec, ...] = DEFAULT_RESOURCES


def validate_resources(specs: Sequence[ResourceSpec], field: str) -> None:
    """Weights must be in 1..100 (ValidateNodeResourcesFitArgs / BalancedAllocationArgs)."""
    for index, spec in enumerate(specs):
        if not 0 < spec.weight <= MAX_NODE_SCORE:
            raise ValueError(f"{field}[{index}].weight: Invalid value: {spec.weight}: resource weight of "
                             f"{spec.name} should be in the range (0, {MAX_NODE_SCORE}]")


def pod_requests_list(pod: Pod, specs: Sequence[ResourceSpec], *, use_requested: bool) -> list[int]:
    return resources.scoring_requests(pod, [spec.name for spec in specs], use_requested=use_requested)


def allocatable_and_requested(
    node_info: NodeInfo, resource: str, pod_request: int, *, use_requested: bool
) -> tuple[int, int]:
    """(node allocatable, node requested + the pod's request); (0, 0) drops the resource from the
    score: an extended resource the pod does not ask for, or one the node does not have."""
    requested = node_info.requested if use_requested else node_info.non_zero_requested
    if pod_request == 0 and resources.is_scalar_resource_name(resource):
        return 0, 0
    if resource == resources.CPU:
        return node_info.allocatable.milli_cpu, requested.milli_cpu + pod_request
    if resource == resources.MEMORY:
        return node_info.allocatable.memory, requested.memory + pod_request
    if resource == resources.EPHEMERAL_STORAGE:
        return node_info.allocatable.ephemeral_storage, node_info.requested.ephemeral_storage + pod_request
    if resource in node_info.allocatable.scalar:
        return node_info.allocatable.scalar[resource], node_info.requested.scalar.get(resource, 0) + pod_request
    return 0, 0


# How many remembered scores a node keeps (distinct pod request shapes since its last change).
_MEMO_LIMIT = 64


def scorer_key(kind: str, specs: Sequence[ResourceSpec], shape: Sequence[tuple[int, int]] = ()) -> str:
    """A string naming a scorer by everything its result depends on besides the node and the pod's
    requests (a string: its hash is computed once, unlike a tuple's)."""
    return repr((kind, [(spec.name, spec.weight) for spec in specs], list(shape)))


def score(
    node_info: NodeInfo,
    specs: Sequence[ResourceSpec],
    pod_requests: Sequence[int],
    scorer: Scorer,
    *,
    use_requested: bool,
    memo_key: str | None = None,
) -> tuple[int, Status | None]:
    """The node's score for a pod requesting `pod_requests`. With `memo_key` (a `scorer_key`
    naming `scorer` exactly), the score is remembered on the NodeInfo until its pods change: it
    depends only on the node's allocatable and requested totals and on the pod's requests."""
    if memo_key is not None:
        return single(score_nodes([node_info], specs, pod_requests, scorer, use_requested=use_requested,
                                  memo_key=memo_key))
    if not specs:
        return 0, Status.error("resources not found")
    return _score(node_info, specs, pod_requests, scorer, use_requested), None


def single(bulk: tuple[list[int], Status | None]) -> tuple[int, Status | None]:
    """The one score of a bulk answer for one node (0 with the error when it failed)."""
    values, status = bulk
    return (values[0] if values else 0), status


def score_nodes(
    nodes: Sequence[NodeInfo],
    specs: Sequence[ResourceSpec],
    pod_requests: Sequence[int],
    scorer: Scorer,
    *,
    use_requested: bool,
    memo_key: str,
) -> tuple[list[int], Status | None]:
    """`score` with a memo key, for every node at once: the key is built once and the loop is
    one function, which is most of the cost when nearly every score is remembered."""
    if not specs:
        return [], Status.error("resources not found")
    key = (memo_key, use_requested, tuple(pod_requests))
    values: list[int] = []
    for node_info in nodes:
        memo = node_info.score_memo
        value = memo.get(key)
        if value is None:
            value = _score(node_info, specs, pod_requests, scorer, use_requested)
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            memo[key] = value
        values.append(value)
    return values, None


def _score(
    node_info: NodeInfo, specs: Sequence[ResourceSpec], pod_requests: Sequence[int], scorer: Scorer,
    use_requested: bool,
) -> int:
    requested: list[int] = []
    allocatable: list[int] = []
    node_allocatable = node_info.allocatable
    node_requested = node_info.requested if use_requested else node_info.non_zero_requested
    for spec, pod_request in zip(specs, pod_requests, strict=False):
        # cpu and memory (nearly always the only ones) inline; the rest as allocatable_and_requested.
        name = spec.name
        if name == resources.CPU:
            alloc, req = node_allocatable.milli_cpu, node_requested.milli_cpu + pod_request
        elif name == resources.MEMORY:
            alloc, req = node_allocatable.memory, node_requested.memory + pod_request
        else:
            alloc, req = allocatable_and_requested(node_info, name, pod_request, use_requested=use_requested)
        if alloc == 0:
            alloc = req = 0
        allocatable.append(alloc)
        requested.append(req)
    return scorer(requested, allocatable)


def least_requested_score(requested: int, capacity: int) -> int:
    if capacity == 0 or requested > capacity:
        return 0
    if capacity > 0:
        # Both operands are non-negative, so Go's truncating division is Python's floor division.
        return (capacity - requested) * MAX_NODE_SCORE // capacity
    return go_div((capacity - requested) * MAX_NODE_SCORE, capacity)


def most_requested_score(requested: int, capacity: int) -> int:
    if capacity == 0:
        return 0
    return go_div(min(requested, capacity) * MAX_NODE_SCORE, capacity)


def _weighted(specs: Sequence[ResourceSpec], per_resource: Callable[[int, int], int]) -> Scorer:
    weights = [spec.weight for spec in specs]

    def scorer(requested: Sequence[int], allocatable: Sequence[int]) -> int:
        total = weight_sum = 0
        for i in range(len(requested)):
            if allocatable[i] == 0:
                continue
            total += per_resource(requested[i], allocatable[i]) * weights[i]
            weight_sum += weights[i]
        return go_div(total, weight_sum) if weight_sum else 0

    return scorer


def least_allocated_scorer(specs: Sequence[ResourceSpec]) -> Scorer:
    """Favours the emptiest node: mean over resources of (free / allocatable) x 100.

    `_weighted(specs, least_requested_score)` with the per-resource score inlined: the default
    strategy scores every feasible node of every cycle."""
    weights = [spec.weight for spec in specs]

    def scorer(requested: Sequence[int], allocatable: Sequence[int]) -> int:
        total = weight_sum = 0
        for req, capacity, weight in zip(requested, allocatable, weights, strict=False):
            if capacity == 0:
                continue
            if req <= capacity:
                # As least_requested_score; floor division equals Go's when capacity > 0.
                if capacity > 0:
                    total += (capacity - req) * MAX_NODE_SCORE // capacity * weight
                else:
                    total += go_div((capacity - req) * MAX_NODE_SCORE, capacity) * weight
            weight_sum += weight
        return go_div(total, weight_sum) if weight_sum else 0

    return scorer


def most_allocated_scorer(specs: Sequence[ResourceSpec]) -> Scorer:
    """Favours the fullest node (bin packing): mean of (requested / allocatable) x 100."""
    return _weighted(specs, most_requested_score)


def broken_linear(shape: Sequence[tuple[int, int]]) -> Callable[[int], int]:
    """helper.BuildBrokenLinearFunction over (utilization, score) points."""

    def function(p: int) -> int:
        for i, (utilization, value) in enumerate(shape):
            if p <= utilization:
                if i == 0:
                    return value
                prev_u, prev_s = shape[i - 1]
                return prev_s + go_div((value - prev_s) * (p - prev_u), utilization - prev_u)
        return shape[-1][1]

    return function


def validate_shape(shape: Sequence[tuple[int, int]]) -> None:
    if not shape:
        raise ValueError("scoringStrategy.requestedToCapacityRatio.shape: at least one point must be specified")
    for i, (utilization, value) in enumerate(shape):
        if not 0 <= utilization <= MAX_UTILIZATION:
            raise ValueError(f"shape[{i}].utilization must be in the range [0, 100]")
        if not 0 <= value <= MAX_CUSTOM_PRIORITY_SCORE:
            raise ValueError(f"shape[{i}].score must be in the range [0, {MAX_CUSTOM_PRIORITY_SCORE}]")
        if i > 0 and utilization <= shape[i - 1][0]:
            raise ValueError(f"shape[{i}].utilization values must be sorted in increasing order")


def requested_to_capacity_ratio_scorer(specs: Sequence[ResourceSpec], shape: Sequence[tuple[int, int]]) -> Scorer:
    """Scores each resource's utilization on the configured broken-line shape (scores 0..10
    scaled to 0..100) and averages the resources whose score is positive, rounded."""
    raw = broken_linear([(u, s * (MAX_NODE_SCORE // MAX_CUSTOM_PRIORITY_SCORE)) for u, s in shape])

    def per_resource(requested: int, capacity: int) -> int:
        if capacity == 0 or requested > capacity:
            return raw(MAX_UTILIZATION)
        return raw(go_div(requested * MAX_UTILIZATION, capacity))

    def scorer(requested: Sequence[int], allocatable: Sequence[int]) -> int:
        total = weight_sum = 0
        for i in range(len(requested)):
            if allocatable[i] == 0:
                continue
            value = per_resource(requested[i], allocatable[i])
            if value > 0:
                total += value * specs[i].weight
                weight_sum += specs[i].weight
        if weight_sum == 0:
            return 0
        return go_round(total / weight_sum)

    return scorer


def balanced_resource_scorer(requested: Sequence[int], allocatable: Sequence[int]) -> int:
    """(1 - standard deviation of the requested/allocatable fractions, each capped at 1) x 100;
    for two resources the deviation is |f1 - f2| / 2."""
    fractions = [min(r / a, 1.0) for r, a in zip(requested, allocatable, strict=False) if a != 0]
    std = 0.0
    if len(fractions) == 2:
        std = abs((fractions[0] - fractions[1]) / 2)
    elif len(fractions) > 2:
        mean = sum(fractions) / len(fractions)
        std = math.sqrt(sum((f - mean) * (f - mean) for f in fractions) / len(fractions))
    return int((1 - std) * MAX_NODE_SCORE)
