"""Helpers shared by several plugins (framework/plugins/helper)."""

from __future__ import annotations

import math

from operators.scheduler.framework import NodeScore


def default_normalize_values(max_priority: int, reverse: bool, values: list[int]) -> list[int]:
    """helper.DefaultNormalizeScore on plain scores in node order: scale [0, max] to [0, max_priority]
    (integer division), optionally reversed; all zeros stay 0, or become max_priority when reversed."""
    highest = max(values, default=0)
    if highest <= 0:
        return [max_priority] * len(values) if reverse else list(values)
    if reverse:
        return [max_priority - max_priority * value // highest for value in values]
    return [max_priority * value // highest for value in values]


def default_normalize_score(max_priority: int, reverse: bool, scores: list[NodeScore]) -> None:
    """default_normalize_values on NodeScores, in place."""
    for score, value in zip(scores, default_normalize_values(max_priority, reverse, [s.score for s in scores]),
                            strict=True):
        score.score = value


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
