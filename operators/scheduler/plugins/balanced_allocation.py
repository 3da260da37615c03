"""NodeResourcesBalancedAllocation: prefers nodes whose resources would be used evenly.

Score = (1 - std-dev of requested/allocatable over the configured resources) x 100, truncated,
with each fraction capped at 1 (1.34's standard-deviation formula). Requests here are the actual
ones, without the 100m / 200Mi stand-ins; a pod requesting nothing (best effort) is not scored
by this plugin at all (PreScore skips it), so such pods do not pile up on one node.
"""

from __future__ import annotations

from collections.abc import Sequence

from operators.scheduler.framework import (
    NODE_RESOURCES_BALANCED_ALLOCATION,
    CycleState,
    Handle,
    Pod,
    ScoreExtensions,
)
from operators.scheduler.plugins import resource_allocation
from operators.scheduler.snapshot import NodeInfo
from operators.scheduler.status import Status

_PRE_SCORE_KEY = "PreScore" + NODE_RESOURCES_BALANCED_ALLOCATION


class NodeResourcesBalancedAllocation:
    name = NODE_RESOURCES_BALANCED_ALLOCATION
    node_local = True  # Filter and Score read only the pod and this NodeInfo (see framework.NodeLocal)

    def __init__(self, handle: Handle) -> None:
        self.resources = handle.profile.args.balanced_allocation_resources or resource_allocation.DEFAULT_SPECS
        resource_allocation.validate_resources(self.resources, "resources")
        self.memo_key = resource_allocation.scorer_key(NODE_RESOURCES_BALANCED_ALLOCATION, self.resources)

    def pre_score(self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]) -> Status | None:
        requests = resource_allocation.pod_requests_list(pod, self.resources, use_requested=True)
        if not any(requests):
            return Status.skip()
        state.write(_PRE_SCORE_KEY, requests)
        return None

    def score(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> tuple[int, Status | None]:
        return resource_allocation.single(self.score_nodes(state, pod, [node_info]))

    def score_nodes(self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]) -> tuple[list[int], Status | None]:
        requests = state.get(_PRE_SCORE_KEY)
        if requests is None:
            requests = resource_allocation.pod_requests_list(pod, self.resources, use_requested=True)
            if not any(requests):
                return [0] * len(nodes), None
        return resource_allocation.score_nodes(
            nodes, self.resources, requests, resource_allocation.balanced_resource_scorer,
            use_requested=True, memo_key=self.memo_key,
        )

    def score_extensions(self) -> ScoreExtensions | None:
        return None
