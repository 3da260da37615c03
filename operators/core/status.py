"""Status writes shared by the operators."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def status_patch(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any] | None:
    """A merge patch turning status `old` into `new` (None when equal); vanished keys become null."""
    old = old or {}
    if dict(old) == dict(new):
        return None
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    patch.update(new)
    return {"status": patch}


def merge_diff(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) turning `old` into `new`, nested maps included: a key gone
    from a nested map becomes null (an empty map in `new` clears the old one's keys, which
    `{"key": {}}` alone would not)."""
    old = old or {}
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            nested = merge_diff(before, value)
            if nested:
                patch[key] = nested
        elif before != value or key not in old:
            patch[key] = value
    return patch
