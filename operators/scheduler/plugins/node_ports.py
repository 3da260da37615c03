"""NodePorts: the host ports a pod asks for must be free on the node. A port is taken when a
placed pod holds the same protocol and port on the same host IP, or on 0.0.0.0, or when the pod
asks for 0.0.0.0 and any IP holds it. An empty hostIP is 0.0.0.0, an empty protocol TCP."""

from __future__ import annotations

from collections.abc import Sequence

from operators.scheduler import helpers
from operators.scheduler.framework import NODE_PORTS, CycleState, Handle, Pod, PreFilterExtensions, PreFilterResult
from operators.scheduler.snapshot import NodeInfo
from operators.scheduler.status import Status

ERR_REASON = "node(s) didn't have free ports for the requested pod ports"
_STATE_KEY = "PreFilter" + NODE_PORTS


def fits_ports(wanted: Sequence[helpers.HostPort], node_info: NodeInfo) -> bool:
    return not any(node_info.used_ports.conflicts(ip, protocol, port) for ip, protocol, port in wanted)


class NodePorts:
    name = NODE_PORTS
    node_local = True  # Filter and Score read only the pod and this NodeInfo (see framework.NodeLocal)

    def __init__(self, handle: Handle) -> None:
        del handle

    def pre_filter(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[PreFilterResult | None, Status | None]:
        wanted = helpers.host_ports(pod)
        if not wanted:
            return None, Status.skip()
        state.write(_STATE_KEY, tuple(wanted))
        return None, None

    def pre_filter_extensions(self) -> PreFilterExtensions | None:
        return None

    def filter(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> Status | None:
        wanted = state.get(_STATE_KEY)
        if wanted is None:
            wanted = tuple(helpers.host_ports(pod))
        return None if fits_ports(wanted, node_info) else Status.unschedulable(ERR_REASON)
