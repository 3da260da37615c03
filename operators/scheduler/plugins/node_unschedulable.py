"""NodeUnschedulable: cordoned nodes (spec.unschedulable) take only pods that tolerate the
node.kubernetes.io/unschedulable:NoSchedule taint."""

from __future__ import annotations

from operators.core import taints
from operators.scheduler import helpers
from operators.scheduler.framework import NODE_UNSCHEDULABLE, CycleState, Handle, Pod
from operators.scheduler.snapshot import NodeInfo
from operators.scheduler.status import Status

ERR_REASON_UNSCHEDULABLE = "node(s) were unschedulable"
_UNSCHEDULABLE_TAINT = {"key": taints.TAINT_NODE_UNSCHEDULABLE, "effect": taints.NO_SCHEDULE}


class NodeUnschedulable:
    name = NODE_UNSCHEDULABLE
    node_local = True  # Filter and Score read only the pod and this NodeInfo (see framework.NodeLocal)

    def __init__(self, handle: Handle) -> None:
        del handle

    def static_key(self, pod: Pod) -> str:
        return helpers.spec_key(helpers.spec(pod).get("tolerations"))

    def filter(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> Status | None:
        if not helpers.spec(node_info.node).get("unschedulable"):
            return None
        if taints.tolerations_tolerate_taint(taints.tolerations_of(pod), _UNSCHEDULABLE_TAINT):
            return None
        return Status.unresolvable(ERR_REASON_UNSCHEDULABLE)
