"""NodeName: a pod that names its node (spec.nodeName) fits only that node."""

from __future__ import annotations

from operators.scheduler import helpers
from operators.scheduler.framework import NODE_NAME, CycleState, Handle, Pod
from operators.scheduler.snapshot import NodeInfo
from operators.scheduler.status import Status

ERR_REASON = "node(s) didn't match the requested node name"


def fits(pod: Pod, node_info: NodeInfo) -> bool:
    wanted = helpers.spec(pod).get("nodeName") or ""
    return not wanted or wanted == node_info.name


class NodeName:
    name = NODE_NAME
    node_local = True  # Filter and Score read only the pod and this NodeInfo (see framework.NodeLocal)

    def __init__(self, handle: Handle) -> None:
        del handle

    def static_key(self, pod: Pod) -> str:
        return str(helpers.spec(pod).get("nodeName") or "")

    def filter(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> Status | None:
        return None if fits(pod, node_info) else Status.unresolvable(ERR_REASON)
