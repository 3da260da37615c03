"""NodeResourcesFit.

Filter: the node must have room for the pod: one more pod than it holds ("Too many pods"), and
for cpu, memory, ephemeral-storage and every extended/hugepages resource the pod requests, its
request must fit into allocatable minus what placed pods request ("Insufficient <resource>").
Every shortfall is reported. The status is UnschedulableAndUnresolvable when some request exceeds
the node's whole allocatable (no preemption can help), else Unschedulable. Extended resources in
`ignored_resources`, or whose domain is in `ignored_resource_groups`, are not checked.

Score (the profile's scoring strategy, resources weighted, cpu=1 memory=1 by default):
LeastAllocated (default, spread), MostAllocated (bin packing) or RequestedToCapacityRatio. CPU and
memory use the "non-zero" requests: containers without a request count 100m / 200Mi.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from operators.scheduler import resources
from operators.scheduler.framework import (
    LEAST_ALLOCATED,
    MOST_ALLOCATED,
    NODE_RESOURCES_FIT,
    REQUESTED_TO_CAPACITY_RATIO,
    CycleState,
    Handle,
    Pod,
    PreFilterExtensions,
    PreFilterResult,
    ScoreExtensions,
)
from operators.scheduler.plugins import resource_allocation
from operators.scheduler.resources import Resource
from operators.scheduler.snapshot import NodeInfo
from operators.scheduler.status import Code, Status

_PRE_FILTER_KEY = "PreFilter" + NODE_RESOURCES_FIT
_PRE_SCORE_KEY = "PreScore" + NODE_RESOURCES_FIT
TOO_MANY_PODS = "Too many pods"


@dataclass(frozen=True)
class InsufficientResource:
    resource: str
    reason: str
    requested: int
    used: int
    capacity: int
    unresolvable: bool = False


def insufficient_reason(resource: str) -> str:
    return f"Insufficient {resource}"


def fits_request(
    request: Resource,
    node_info: NodeInfo,
    ignored_resources: frozenset[str] = frozenset(),
    ignored_groups: frozenset[str] = frozenset(),
) -> list[InsufficientResource]:
    """What the node lacks for a pod requesting `request` (fitsRequest)."""
    result: list[InsufficientResource] = []
    allocatable, used = node_info.allocatable, node_info.requested
    if len(node_info.pods) + 1 > allocatable.allowed_pod_number:
        result.append(
            InsufficientResource(resources.PODS, TOO_MANY_PODS, 1, len(node_info.pods), allocatable.allowed_pod_number)
        )
    if request.is_zero():
        return result
    # cpu, memory, ephemeral-storage, spelled out: this runs for every node of every cycle.
    wanted, have, taken = request.milli_cpu, allocatable.milli_cpu, used.milli_cpu
    if wanted > 0 and wanted > have - taken:
        result.append(InsufficientResource(resources.CPU, _INSUFFICIENT_CPU, wanted, taken, have, wanted > have))
    wanted, have, taken = request.memory, allocatable.memory, used.memory
    if wanted > 0 and wanted > have - taken:
        result.append(InsufficientResource(resources.MEMORY, _INSUFFICIENT_MEMORY, wanted, taken, have, wanted > have))
    wanted, have, taken = request.ephemeral_storage, allocatable.ephemeral_storage, used.ephemeral_storage
    if wanted > 0 and wanted > have - taken:
        name = resources.EPHEMERAL_STORAGE
        result.append(InsufficientResource(name, _INSUFFICIENT_EPHEMERAL, wanted, taken, have, wanted > have))
    if not request.scalar:
        return result
    for name in sorted(request.scalar):
        wanted = request.scalar[name]
        if wanted == 0:
            continue
        if resources.is_extended_resource_name(name) and (
            name in ignored_resources or (ignored_groups and name.split("/")[0] in ignored_groups)
        ):
            continue
        have, taken = allocatable.scalar.get(name, 0), used.scalar.get(name, 0)
        if wanted > have - taken:
            result.append(InsufficientResource(name, insufficient_reason(name), wanted, taken, have, wanted > have))
    return result


_INSUFFICIENT_CPU = insufficient_reason(resources.CPU)
_INSUFFICIENT_MEMORY = insufficient_reason(resources.MEMORY)
_INSUFFICIENT_EPHEMERAL = insufficient_reason(resources.EPHEMERAL_STORAGE)


@dataclass
class _PreFilterState:
    request: Resource = field(default_factory=Resource)


class NodeResourcesFit:
    name = NODE_RESOURCES_FIT
    node_local = True  # Filter and Score read only the pod and this NodeInfo (see framework.NodeLocal)

    def __init__(self, handle: Handle) -> None:
        strategy = handle.profile.scoring_strategy
        args = handle.profile.args
        self.ignored_resources = args.ignored_resources
        self.ignored_groups = args.ignored_resource_groups
        self.resources = strategy.resources or resource_allocation.DEFAULT_SPECS
        resource_allocation.validate_resources(self.resources, "scoringStrategy.resources")
        if strategy.type == LEAST_ALLOCATED:
            self.scorer = resource_allocation.least_allocated_scorer(self.resources)
        elif strategy.type == MOST_ALLOCATED:
            self.scorer = resource_allocation.most_allocated_scorer(self.resources)
        elif strategy.type == REQUESTED_TO_CAPACITY_RATIO:
            resource_allocation.validate_shape(strategy.shape)
            self.scorer = resource_allocation.requested_to_capacity_ratio_scorer(self.resources, strategy.shape)
        else:
            raise ValueError(f"scoring strategy {strategy.type} is not supported")
        self.strategy = strategy.type
        self.memo_key = resource_allocation.scorer_key(strategy.type, self.resources, strategy.shape)

    def pre_filter(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[PreFilterResult | None, Status | None]:
        state.write(_PRE_FILTER_KEY, resources.incoming_pod_request(pod))
        return None, None

    def pre_filter_extensions(self) -> PreFilterExtensions | None:
        return None

    def filter(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> Status | None:
        request = state.get(_PRE_FILTER_KEY)
        if not isinstance(request, Resource):
            return Status.error(f"error reading {_PRE_FILTER_KEY!r} from cycleState: not found")
        missing = fits_request(request, node_info, self.ignored_resources, self.ignored_groups)
        if not missing:
            return None
        code = Code.UNSCHEDULABLE_AND_UNRESOLVABLE if any(m.unresolvable for m in missing) else Code.UNSCHEDULABLE
        status = Status(code, [m.reason for m in missing])
        status.details["insufficient"] = [
            {"resource": m.resource, "requested": m.requested, "used": m.used, "capacity": m.capacity} for m in missing
        ]
        return status

    def pre_score(self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]) -> Status | None:
        state.write(_PRE_SCORE_KEY, resource_allocation.pod_requests_list(pod, self.resources, use_requested=False))
        return None

    def score(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> tuple[int, Status | None]:
        return resource_allocation.single(self.score_nodes(state, pod, [node_info]))

    def score_nodes(self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]) -> tuple[list[int], Status | None]:
        requests = state.get(_PRE_SCORE_KEY)
        if requests is None:
            requests = resource_allocation.pod_requests_list(pod, self.resources, use_requested=False)
        return resource_allocation.score_nodes(
            nodes, self.resources, requests, self.scorer, use_requested=False, memo_key=self.memo_key
        )

    def score_extensions(self) -> ScoreExtensions | None:
        return None
