"""Completion indexes as interval strings ("1,3-5"), the form of status.completedIndexes and of a
successPolicy rule's succeededIndexes (pkg/controller/job/indexed_job_utils.go: parseIndexesFromString,
orderedIntervals.String)."""

from __future__ import annotations

from collections.abc import Iterable


def parse_intervals(text: str | None, limit: int | None = None) -> set[int]:
    """"1,3-5" -> {1, 3, 4, 5}; indexes at or above `limit` are dropped (completions shrank)."""
    found: set[int] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            continue
        if limit is not None:
            last = min(last, limit - 1)  # never walk past the completions, whatever the text says
        found.update(range(max(first, 0), last + 1))
    return found


def format_intervals(indexes: Iterable[int]) -> str:
    """{1, 3, 4, 5} -> "1,3-5" (the form of status.completedIndexes)."""
    ordered = sorted(set(indexes))
    parts: list[str] = []
    start = prev = None
    for i in ordered:
        if start is None:
            start = prev = i
        elif prev is not None and i == prev + 1:
            prev = i
        else:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = prev = i
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(parts)
