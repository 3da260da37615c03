"""Status conditions (metav1.Condition-shaped) as plain functions over lists of dicts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from operators.core.timeutil import format_time

Condition = dict[str, Any]


def find(conditions: Sequence[Mapping[str, Any]] | None, type_: str) -> Mapping[str, Any] | None:
    for condition in conditions or []:
        if condition.get("type") == type_:
            return condition
    return None


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    type_: str,
    status: str,
    reason: str,
    message: str,
    now: datetime,
    *,
    stamps: tuple[str, ...] = (),
) -> list[Condition]:
    """A copy with `type_` set; lastTransitionTime moves only when the status flips. `stamps` are
    further time fields set to `now` on every call (a Deployment's lastUpdateTime, a Job's
    lastProbeTime)."""
    previous = find(conditions, type_)
    transition = (
        previous["lastTransitionTime"]
        if previous is not None and previous.get("status") == status and previous.get("lastTransitionTime")
        else format_time(now)
    )
    updated: Condition = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    }
    for stamp in stamps:
        updated[stamp] = format_time(now)
    return [dict(c) for c in conditions or [] if c.get("type") != type_] + [updated]


def remove_condition(conditions: Sequence[Mapping[str, Any]] | None, type_: str) -> list[Condition]:
    return [dict(c) for c in conditions or [] if c.get("type") != type_]
