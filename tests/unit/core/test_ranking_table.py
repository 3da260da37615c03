"""Upstream's TestSortingActivePodsWithRanks (pkg/controller/controller_utils_test.go), ported as
facts: every pair it says is equivalent, or ordered, with the ranks it gives (gates on: PodDeletionCost
and LogarithmicScaleDown are on by default in 1.34; the disabled-gate cases are left out)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from operators.core import pods
from operators.core.timeutil import format_time

NOW = datetime(2026, 3, 15, 12, 0, 0, tzinfo=UTC)
THEN_1_MONTH = datetime(2026, 2, 15, 12, 0, 0, tzinfo=UTC)  # now.AddDate(0, -1, 0)
THEN_2_HOURS = NOW - timedelta(hours=2)
THEN_5_HOURS = NOW - timedelta(hours=5)
THEN_8_HOURS = NOW - timedelta(hours=8)
ZERO = None


def make(name: str, node: str, phase: str, ready: bool, restarts: int, ready_since: datetime | None,
         created: datetime | None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    conditions: list[dict[str, Any]] = []
    statuses: list[dict[str, Any]] = []
    if ready:
        condition: dict[str, Any] = {"type": "Ready", "status": "True"}
        if ready_since is not None:
            condition["lastTransitionTime"] = format_time(ready_since)
        conditions = [condition]
        statuses = [{"name": "c", "restartCount": restarts}]
    metadata: dict[str, Any] = {"name": name, "annotations": annotations or {}}
    if created is not None:
        metadata["creationTimestamp"] = format_time(created)
    return {"metadata": metadata, "spec": {"nodeName": node},
            "status": {"phase": phase, "conditions": conditions, "containerStatuses": statuses}}


COST = pods.DELETION_COST_ANNOTATION
unscheduled = make("unscheduled", "", "Pending", False, 0, ZERO, ZERO)
scheduled_pending = make("pending", "node", "Pending", False, 0, ZERO, ZERO)
unknown_phase = make("unknown-phase", "node", "Unknown", False, 0, ZERO, ZERO)
running_not_ready = make("not-ready", "node", "Running", False, 0, ZERO, ZERO)
ready_no_transition_time = make("ready-no-last-transition-time", "node", "Running", True, 0, ZERO, ZERO)
ready_now = make("ready-now", "node", "Running", True, 0, NOW, NOW)
ready_then = make("ready-then", "node", "Running", True, 0, THEN_1_MONTH, THEN_1_MONTH)
ready_now_high_restarts = make("ready-high-restarts", "node", "Running", True, 9001, NOW, NOW)
ready_now_created_then = make("ready-now-created-then", "node", "Running", True, 0, NOW, THEN_1_MONTH)
low_cost = make("low-deletion-cost", "node", "Running", True, 0, NOW, THEN_1_MONTH, {COST: "10"})
high_cost = make("high-deletion-cost", "node", "Running", True, 0, NOW, THEN_1_MONTH, {COST: "100"})
unscheduled_5h = make("unscheduled-5-hours", "", "Pending", False, 0, THEN_5_HOURS, THEN_5_HOURS)
unscheduled_8h = make("unscheduled-10-hours", "", "Pending", False, 0, THEN_8_HOURS, THEN_8_HOURS)
ready_2h = make("ready-2-hours", "", "Running", True, 0, THEN_2_HOURS, THEN_1_MONTH)
ready_5h = make("ready-5-hours", "", "Running", True, 0, THEN_5_HOURS, THEN_1_MONTH)
ready_10h = make("ready-10-hours", "", "Running", True, 0, THEN_8_HOURS, THEN_1_MONTH)


@pytest.mark.parametrize(("p1", "p2"), [
    (unscheduled, None), (scheduled_pending, None), (unknown_phase, None), (running_not_ready, None),
    (ready_now_created_then, None), (ready_now, None), (ready_then, None), (ready_now_high_restarts, None),
    (unscheduled_5h, unscheduled_8h),  # same power-of-two age bucket
    (ready_5h, ready_10h),
], ids=lambda p: p["metadata"]["name"] if p else "itself")
def test_equivalent(p1: dict[str, Any], p2: dict[str, Any] | None) -> None:
    p2 = p2 or p1
    assert not pods.before(p1, 1, p2, 1, NOW)
    assert not pods.before(p2, 1, p1, 1, NOW)


@pytest.mark.parametrize(("lesser", "lesser_rank", "greater", "greater_rank"), [
    (unscheduled, 1, scheduled_pending, 2),
    (unscheduled, 2, scheduled_pending, 1),
    (scheduled_pending, 1, unknown_phase, 2),
    (unknown_phase, 1, running_not_ready, 2),
    (running_not_ready, 1, ready_no_transition_time, 1),
    (ready_no_transition_time, 1, ready_now, 1),
    (ready_now, 2, ready_no_transition_time, 1),
    (ready_now, 1, ready_then, 1),
    (ready_now, 2, ready_then, 1),
    (ready_now_high_restarts, 1, ready_now, 1),
    (ready_now, 2, ready_now_high_restarts, 1),
    (ready_now, 1, ready_now_created_then, 1),
    (ready_now_created_then, 2, ready_now, 1),
    (low_cost, 2, high_cost, 1),
    (ready_2h, 1, ready_5h, 1),
], ids=lambda v: v["metadata"]["name"] if isinstance(v, dict) else str(v))
def test_ordered(lesser: dict[str, Any], lesser_rank: int, greater: dict[str, Any], greater_rank: int) -> None:
    assert pods.before(lesser, lesser_rank, greater, greater_rank, NOW)
    assert not pods.before(greater, greater_rank, lesser, lesser_rank, NOW)
