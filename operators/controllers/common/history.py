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

The writes both of them make are here too: `create_revision` (with upstream's collision handling),
`renumber` (a rollback brings an old revision back as the newest) and `delete_revisions`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from operators.core.apis import CONTROLLER_REVISIONS, Resource
from operators.core.informer import object_key
from operators.core.kube import ApiError, Kube
from operators.core.owners import controller_uid, owner_reference
from operators.core.timeutil import parse_time
from operators.core.workqueue import RetryLater

logger = logging.getLogger(__name__)

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


def template_patch(owner: Mapping[str, Any]) -> dict[str, Any]:
    """getPatch (DaemonSet, StatefulSet): what a ControllerRevision holds, the owner's pod template with a
    replace directive."""
    template = json.loads(json.dumps((owner.get("spec") or {}).get("template") or {}))
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def template_of(revision: Mapping[str, Any]) -> dict[str, Any]:
    """The pod template a revision holds (what applying it restores)."""
    template = dict(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def equal_revisions(revisions: Iterable[Mapping[str, Any]], data: Any) -> list[Mapping[str, Any]]:
    """The revisions whose data equals `data` (history.FindEqualRevisions, compared semantically)."""
    wanted = canonical(data)
    return [r for r in revisions if canonical(r.get("data")) == wanted]


# --- writes ---------------------------------------------------------------------------------------------

async def create_revision(kube: Kube, owner: Mapping[str, Any], resource: Resource, data: Any, hash_: str,
                          number: int, labels: Mapping[str, str]) -> Mapping[str, Any]:
    """CreateControllerRevision: `<owner>-<hash>` owned by `owner`, holding `data`, with the owner's
    annotations. A revision of that name with the same data and owner is reused; one with other data is
    a hash collision: status.collisionCount is bumped (from a fresh read, so a stale count is not bumped
    twice) and RetryLater raised, so the next sync hashes anew."""
    meta = owner["metadata"]
    name = revision_name(meta["name"], hash_)
    body: dict[str, Any] = {
        "apiVersion": CONTROLLER_REVISIONS.api_version, "kind": CONTROLLER_REVISIONS.kind,
        "metadata": {"name": name, "namespace": meta["namespace"], "labels": dict(labels),
                     "ownerReferences": [owner_reference(owner, resource)]},
        # Keys sorted at every level, as Go writes maps: the API server compares a revision's data byte
        # for byte (immutable) with what it re-encodes on a patch, so the renumbering patch of a rollback
        # only passes if the stored bytes are already in Go's form (see also core/kube.encode).
        "data": json.loads(canonical(data)), "revision": number,
    }
    if meta.get("annotations"):
        body["metadata"]["annotations"] = dict(meta["annotations"])
    try:
        created: Mapping[str, Any] = await kube.create(CONTROLLER_REVISIONS.path(meta["namespace"]), body)
        return created
    except ApiError as e:
        if not e.already_exists:
            raise
    existing = await kube.get(CONTROLLER_REVISIONS.path(meta["namespace"], name))
    if equal_revisions([existing], data) and controller_uid(existing) == meta["uid"]:
        return existing
    fresh = await kube.get(resource.object_path(owner))
    count = (fresh.get("status") or {}).get("collisionCount")
    if count != (owner.get("status") or {}).get("collisionCount"):
        raise RetryLater(f"{resource.kind} {object_key(owner)}: stale collision count; retrying")
    bumped = int(count or 0) + 1
    await kube.patch(resource.object_path(owner, "status"),
                     {"status": {"collisionCount": bumped},
                      "metadata": {"resourceVersion": fresh["metadata"]["resourceVersion"]}})
    raise RetryLater(f"found a hash collision for {resource.kind} {object_key(owner)} - bumping "
                     f"collisionCount to {bumped} to resolve it")


async def renumber(kube: Kube, revision: Mapping[str, Any], number: int) -> Mapping[str, Any]:
    """UpdateControllerRevision: the revision under a new number (a rollback: the old template's revision
    comes back as the newest, its pods untouched). A revision whose stored data is not in sorted form
    (not written here) cannot be patched at all; it is then reused under its old number."""
    guard = {"resourceVersion": revision["metadata"]["resourceVersion"]}
    try:
        updated: Mapping[str, Any] = await kube.patch(CONTROLLER_REVISIONS.object_path(revision),
                                                      {"revision": number, "metadata": guard})
        return updated
    except ApiError as e:
        if e.conflict:  # the cache had not seen our last renumbering yet
            raise RetryLater(f"ControllerRevision {object_key(revision)} changed; retrying") from e
        if e.status != 422:
            raise
        logger.warning("ControllerRevision %s cannot be renumbered: %s", object_key(revision), e.message)
        return revision


async def delete_revisions(kube: Kube, revisions: Iterable[Mapping[str, Any]]) -> None:
    for revision in revisions:
        try:
            await kube.delete(CONTROLLER_REVISIONS.object_path(revision))
        except ApiError as e:
            if not e.not_found:
                raise
