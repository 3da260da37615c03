"""Helpers shared by several plugins (framework/plugins/helper)."""

from __future__ import annotations

import math

from operators.scheduler.framework import NodeScore


def default_normalize_score(max_priority: int, reverse: bool, scores: list[NodeScore]) -> None:
    """helper.DefaultNormalizeScore: scale [0, max] to [0, max_priority] (integer division),
    optionally reversed; all zeros stay 0, or become max_priority when reversed."""
    highest = max([0, *(s.score for s in scores)])
    if highest == 0:
        if reverse:
            for s in scores:
                s.score = max_priority
        return
    for s in scores:
        value = max_priority * s.score // highest
        s.score = max_priority - value if reverse else value


def go_round(value: float) -> int:
    """Go's math.Round: to the nearest integer, halves away from zero (Python's round() goes to
    even)."""
    whole = math.floor(abs(value))
    result = whole + 1 if abs(value) - whole >= 0.5 else whole
    return int(result) if value >= 0 else -int(result)


def go_div(a: int, b: int) -> int:
    """Go's integer division, which truncates towards zero."""
    quotient = abs(a) // abs(b)
    return quotient if (a >= 0) == (b > 0) else -quotient
