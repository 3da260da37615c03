"""Template history: hashes, names and revision numbers (pkg/controller/history and
controller_utils.ComputeHash).

Upstream hashes a template by printing the Go struct (spew) into FNV-32a, then writes the 32-bit sum
in decimal through `rand.SafeEncodeString` (each digit mapped into "bcdfghjklmnpqrstvwxz2456789", so
the hash never spells words). The Go struct print cannot be reproduced from Python, so kubeplane
hashes a canonical JSON encoding (sorted keys, no spaces) instead: the same alphabet and length, the
same collision handling (the collision count is appended to the data), different values. Parity tests
therefore compare structure (which revision, how many), never hash strings.

ControllerRevisions (DaemonSet, StatefulSet) are numbered from 1; the next revision is one past the
highest; history is sorted by revision, then creation time, then name, and truncated oldest first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from operators.core.timeutil import parse_time

SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
FNV32_OFFSET = 0x811C9DC5
FNV32_PRIME = 0x01000193
MAX_NAME_PREFIX = 223  # ControllerRevisionName: 253 minus room for "-" and a hash


def fnv32a(data: bytes) -> int:
    value = FNV32_OFFSET
    for byte in data:
        value ^= byte
        value = (value * FNV32_PRIME) & 0xFFFFFFFF
    return value


def safe_encode(text: str) -> str:
    """rand.SafeEncodeString: each byte mapped into an alphabet without vowels or look-alikes."""
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in text)


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def hash_of(value: Any, collision_count: int | None = None) -> str:
    """The template hash: FNV-32a of the canonical encoding (plus the collision count, if any)."""
    data = canonical(value)
    if collision_count is not None:
        data += canonical(int(collision_count))
    return safe_encode(str(fnv32a(data)))


def revision_name(owner_name: str, template_hash: str) -> str:
    """ControllerRevisionName: `<owner>-<hash>`, the owner part cut to 223 characters."""
    return f"{owner_name[:MAX_NAME_PREFIX]}-{template_hash}"


def revision_number(revision: Mapping[str, Any]) -> int:
    return int(revision.get("revision") or 0)


def sort_revisions(revisions: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Oldest first: by revision, then creationTimestamp, then name (history.SortControllerRevisions)."""
    def key(revision: Mapping[str, Any]) -> tuple[int, float, str]:
        meta = revision.get("metadata") or {}
        created = parse_time(meta.get("creationTimestamp"))
        return revision_number(revision), created.timestamp() if created else 0.0, str(meta.get("name") or "")
    return sorted(revisions, key=key)


def next_revision(revisions: Sequence[Mapping[str, Any]]) -> int:
    """One past the highest revision (1 for an empty history)."""
    return max((revision_number(r) for r in revisions), default=0) + 1


def to_truncate(revisions: Sequence[Mapping[str, Any]], keep: int, live: set[str]) -> list[Mapping[str, Any]]:
    """The oldest revisions beyond `keep` that no live object uses (names in `live`), oldest first."""
    candidates = [r for r in sort_revisions(revisions) if (r.get("metadata") or {}).get("name") not in live]
    excess = len(candidates) - max(keep, 0)
    return candidates[:excess] if excess > 0 else []


def equal_revisions(revisions: Iterable[Mapping[str, Any]], data: Any) -> list[Mapping[str, Any]]:
    """The revisions whose data equals `data` (history.FindEqualRevisions, compared semantically)."""
    wanted = canonical(data)
    return [r for r in revisions if canonical(r.get("data")) == wanted]
