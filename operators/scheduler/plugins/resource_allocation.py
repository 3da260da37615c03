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
    return [resources.scoring_request(pod, spec.name, use_requested=use_requested) for spec in specs]


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


def score(
    node_info: NodeInfo,
    specs: Sequence[ResourceSpec],
    pod_requests: Sequence[int],
    scorer: Scorer,
    *,
    use_requested: bool,
) -> tuple[int, Status | None]:
    if not specs:
        return 0, Status.error("resources not found")
    requested = [0] * len(specs)
    allocatable = [0] * len(specs)
    for i, spec in enumerate(specs):
        alloc, req = allocatable_and_requested(node_info, spec.name, pod_requests[i], use_requested=use_requested)
        if alloc == 0:
            continue
        allocatable[i], requested[i] = alloc, req
    return scorer(requested, allocatable), None


def least_requested_score(requested: int, capacity: int) -> int:
    if capacity == 0 or requested > capacity:
        return 0
    return go_div((capacity - requested) * MAX_NODE_SCORE, capacity)


def most_requested_score(requested: int, capacity: int) -> int:
    if capacity == 0:
        return 0
    return go_div(min(requested, capacity) * MAX_NODE_SCORE, capacity)


def _weighted(specs: Sequence[ResourceSpec], per_resource: Callable[[int, int], int]) -> Scorer:
    def scorer(requested: Sequence[int], allocatable: Sequence[int]) -> int:
        total = weight_sum = 0
        for i in range(len(requested)):
            if allocatable[i] == 0:
                continue
            total += per_resource(requested[i], allocatable[i]) * specs[i].weight
            weight_sum += specs[i].weight
        return go_div(total, weight_sum) if weight_sum else 0

    return scorer


def least_allocated_scorer(specs: Sequence[ResourceSpec]) -> Scorer:
    """Favours the emptiest node: mean over resources of (free / allocatable) x 100."""
    return _weighted(specs, least_requested_score)


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
    fractions: list[float] = []
    for i in range(len(requested)):
        if allocatable[i] == 0:
            continue
        fractions.append(min(requested[i] / allocatable[i], 1.0))
    std = 0.0
    if len(fractions) == 2:
        std = abs((fractions[0] - fractions[1]) / 2)
    elif len(fractions) > 2:
        mean = sum(fractions) / len(fractions)
        std = math.sqrt(sum((f - mean) * (f - mean) for f in fractions) / len(fractions))
    return int((1 - std) * MAX_NODE_SCORE)
