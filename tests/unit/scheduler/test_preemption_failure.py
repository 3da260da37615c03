"""A preemption that cannot evict its victims (403 under a role without `delete pods`, a dropped
connection) must still leave the pod's PodScheduled=False condition, say why, and nominate nothing:
it used to raise before the status write, so the pod showed neither."""

from __future__ import annotations

from typing import Any

from operators.core.kube import ApiError
from operators.scheduler.framework import Result
from operators.scheduler.status import Code, Status
from tests.unit.scheduler.builders import pod
from tests.unit.scheduler.test_gang_operator import NS, World


async def test_a_failed_eviction_leaves_the_reason_and_no_nomination() -> None:
    world = World(members=0)

    async def forbidden(path: str, body: Any = None) -> Any:
        raise ApiError(403, {"reason": "Forbidden", "message": 'pods "victim" is forbidden: cannot delete'})

    world.kube.delete = forbidden  # type: ignore[method-assign]
    urgent, victim = pod("urgent", NS), pod("victim", NS)
    result = Result(pod="ns/urgent", status=Status(Code.UNSCHEDULABLE, ["Insufficient cpu"]),
                    message="0/1 nodes are available: 1 Insufficient cpu.", nominated_node="n1", victims=[victim])
    await world.scheduler.report_failure((NS, "urgent"), urgent, result)

    [body] = [b for p, b in world.kube.patched if p.endswith("/urgent/status")]
    condition = body["status"]["conditions"][0]
    assert (condition["type"], condition["status"], condition["reason"]) == ("PodScheduled", "False", "Unschedulable")
    assert "preemption failed" in condition["message"] and "cannot delete" in condition["message"]
    assert "nominatedNodeName" not in body["status"]
