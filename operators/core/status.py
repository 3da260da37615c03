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
