"""IntOrString values (k8s.io/apimachinery util/intstr), as the workload controllers read them."""

from __future__ import annotations

import math


def scaled_value(value: int | str | None, total: int, round_up: bool, default: int | str = "25%") -> int:
    """GetScaledValueFromIntOrPercent: an int as is, a percentage of `total` rounded up or down
    (`default` when the value is absent)."""
    if value is None:
        value = default
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.endswith("%"):
        return int(text)
    exact = int(text[:-1]) * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)
