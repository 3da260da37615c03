"""TaintToleration.

Filter: a NoSchedule or NoExecute taint the pod does not tolerate rejects the node,
UnschedulableAndUnresolvable, with upstream 1.34's reason "node(s) had untolerated taint(s)"
(the taint itself is kept in the status details for explain; kube-scheduler 1.34 no longer puts it
in the message).

Score: the number of PreferNoSchedule taints the pod's PreferNoSchedule (or effect-less)
tolerations do not tolerate, normalized in reverse: the node with the most such taints gets 0,
nodes with none get 100.
"""

from __future__ import annotations

from collections.abc import Sequence

from operators.core import taints
from operators.scheduler import helpers
from operators.scheduler.framework import (
    MAX_NODE_SCORE,
    TAINT_TOLERATION,
    CycleState,
    Handle,
    NodeScore,
    Pod,
    ScoreExtensions,
)
from operators.scheduler.plugins.common import default_normalize_score, default_normalize_values
from operators.scheduler.snapshot import NodeInfo
from operators.scheduler.status import Status

ERR_REASON_UNTOLERATED = "node(s) had untolerated taint(s)"
_PRE_SCORE_KEY = "PreScore" + TAINT_TOLERATION


def _prefer_no_schedule_tolerations(pod: Pod) -> list[helpers.Obj]:
    return [t for t in taints.tolerations_of(pod) if (t.get("effect") or "") in ("", taints.PREFER_NO_SCHEDULE)]


def count_intolerable_prefer_no_schedule(node_taints: Sequence[helpers.Obj], tolerations: Sequence[helpers.Obj]) -> int:
    return sum(
        1
        for taint in node_taints
        if taint.get("effect") == taints.PREFER_NO_SCHEDULE
        and not taints.tolerations_tolerate_taint(tolerations, taint)
    )


class TaintToleration:
    name = TAINT_TOLERATION
    node_local = True  # Filter and Score read only the pod and this NodeInfo (see framework.NodeLocal)

    def __init__(self, handle: Handle) -> None:
        del handle

    def static_key(self, pod: Pod) -> str:
        return helpers.spec_key(helpers.spec(pod).get("tolerations"))

    def filter(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> Status | None:
        if not helpers.spec(node_info.node).get("taints"):
            return None  # most nodes have no taints: no need to list the pod's tolerations
        taint = taints.find_untolerated_taint(
            taints.taints_of(node_info.node), taints.tolerations_of(pod), taints.does_not_schedule
        )
        if taint is None:
            return None
        status = Status.unresolvable(ERR_REASON_UNTOLERATED)
        status.details["untoleratedTaint"] = taints.taint_to_string(taint)
        return status

    def pre_score(self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]) -> Status | None:
        state.write(_PRE_SCORE_KEY, _prefer_no_schedule_tolerations(pod))
        return None

    def score(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> tuple[int, Status | None]:
        tolerations = state.get(_PRE_SCORE_KEY)
        if tolerations is None:
            return 0, Status.error(f"reading {_PRE_SCORE_KEY!r} from cycleState: not found")
        taints = helpers.spec(node_info.node).get("taints")
        if not taints:
            return 0, None
        return count_intolerable_prefer_no_schedule(taints, tolerations), None

    def score_extensions(self) -> ScoreExtensions | None:
        return self

    def normalize_score(self, state: CycleState, pod: Pod, scores: list[NodeScore]) -> Status | None:
        default_normalize_score(MAX_NODE_SCORE, True, scores)
        return None

    def normalize_values(self, state: CycleState, pod: Pod, values: list[int]) -> tuple[list[int], Status | None]:
        return default_normalize_values(MAX_NODE_SCORE, True, values), None
