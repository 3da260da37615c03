"""ownerReferences that survive a restore (Velero drops them: its issue 4707).

Restored objects get new UIDs, so a backed-up reference (which names its owner by UID) would point
at nothing, and the garbage collector would delete the dependent. Instead, references are re-linked:

- an `OwnerIndex` built from the backed-up objects knows each item's old UID and its owners;
- `creation_waves` orders the items of one restore tier so owners are created before their
  dependents (Kahn layering; items of a wave may be created concurrently);
- a `Relinker` maps old UIDs to new ones as objects are created (or found already existing) and
  hands out each dependent's rewritten references. Velero's tier order is kept, so an owner may
  come in a later tier than its dependent (a Pod before its ReplicaSet): the dependent is then
  created without that reference and patched once the owner exists;
- references to owners that are not in the backup, not restored, or failed are dropped, each
  with a warning.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, order=True)
class ItemKey:
    """An item by where it sits in the backup (original namespace)."""

    group_resource: str
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.group_resource} {where}"


def item_key(group_resource: str, obj: Mapping[str, Any]) -> ItemKey:
    metadata = obj.get("metadata") or {}
    return ItemKey(group_resource, metadata.get("namespace") or "", metadata.get("name") or "")


@dataclass(frozen=True)
class Owner:
    key: ItemKey
    kind: str


def describe(ref: Mapping[str, Any]) -> str:
    return f"{ref.get('kind', '?')} {ref.get('name', '?')} (uid {ref.get('uid', '?')})"


class OwnerIndex:
    """Old UIDs and owner references of the backed-up items: add every item, then query."""

    def __init__(self) -> None:
        self.by_uid: dict[str, Owner] = {}
        self._refs: dict[ItemKey, list[dict[str, Any]]] = {}

    def add(self, key: ItemKey, obj: Mapping[str, Any]) -> None:
        metadata = obj.get("metadata") or {}
        uid = metadata.get("uid")
        if uid:
            self.by_uid[str(uid)] = Owner(key, str(obj.get("kind") or ""))
        refs = [dict(r) for r in metadata.get("ownerReferences") or [] if isinstance(r, Mapping)]
        if refs:
            self._refs[key] = refs

    @classmethod
    def build(cls, items: Iterable[tuple[ItemKey, Mapping[str, Any]]]) -> OwnerIndex:
        index = cls()
        for key, obj in items:
            index.add(key, obj)
        return index

    def owner_in_backup(self, dependent: ItemKey, ref: Mapping[str, Any]) -> Owner | None:
        """The backed-up owner a reference names: same UID, kind and name, and a scope the API
        allows (a namespaced dependent's owner is cluster-scoped or in its namespace)."""
        owner = self.by_uid.get(str(ref.get("uid") or ""))
        if owner is None or owner.kind != ref.get("kind") or owner.key.name != ref.get("name"):
            return None
        if owner.key.namespace and owner.key.namespace != dependent.namespace:
            return None
        return owner

    def owners_of(self, dependent: ItemKey) -> list[ItemKey]:
        owners = (self.owner_in_backup(dependent, ref) for ref in self._refs.get(dependent, []))
        return [o.key for o in owners if o is not None and o.key != dependent]


def creation_waves(keys: Sequence[ItemKey], index: OwnerIndex) -> list[list[ItemKey]]:
    """`keys` (one tier) in waves: each item after every owner of it among `keys`.

    Items in an ownership cycle (which the API does not forbid) go together in a last wave;
    the Relinker patches their references once all of them exist.
    """
    members = set(keys)
    owners = {k: {o for o in index.owners_of(k) if o in members} for k in keys}
    dependents: dict[ItemKey, list[ItemKey]] = {}
    for key, key_owners in owners.items():
        for owner in key_owners:
            dependents.setdefault(owner, []).append(key)
    remaining = {k: len(v) for k, v in owners.items()}
    wave = sorted(k for k, n in remaining.items() if n == 0)
    waves: list[list[ItemKey]] = []
    placed: set[ItemKey] = set()
    while wave:
        waves.append(wave)
        placed.update(wave)
        following: set[ItemKey] = set()
        for key in wave:
            for dependent in dependents.get(key, []):
                remaining[dependent] -= 1
                if remaining[dependent] == 0:
                    following.add(dependent)
        wave = sorted(following)
    cyclic = sorted(k for k in members if k not in placed)
    if cyclic:
        waves.append(cyclic)
    return waves


@dataclass(frozen=True)
class OwnerPatch:
    """A merge patch setting a created dependent's ownerReferences (its UID as precondition)."""

    key: ItemKey
    uid: str
    patch: dict[str, Any]


@dataclass
class _Dependent:
    refs: list[dict[str, Any]]  # as backed up, in order
    uid: str | None = None  # once created
    pending: set[str] = field(default_factory=set)  # owners' old UIDs still to come
    sent: int = 0  # how many references it was created with


class Relinker:
    """Rewrites ownerReferences to new UIDs while a restore creates objects.

    For each item created: `references_for_create` before the create call (the references its
    owners allow now), `created` after it (which may return patches for dependents that were
    waiting on it); `failed` for an item that will not exist; `finish` at the end for the warnings
    about references that never resolved.
    """

    def __init__(self, index: OwnerIndex, planned: Iterable[ItemKey] | None = None) -> None:
        self.index = index
        self.planned = set(planned) if planned is not None else None
        self.uid_map: dict[str, str] = {}  # old uid -> new uid
        self._failed: set[str] = set()  # old uids of owners that will not exist
        self._dependents: dict[ItemKey, _Dependent] = {}
        self._waiting: dict[str, set[ItemKey]] = {}  # owner old uid -> dependents

    def _rewrite(self, ref: Mapping[str, Any]) -> dict[str, Any]:
        return {**ref, "uid": self.uid_map[str(ref["uid"])]}

    def references_for_create(
        self, key: ItemKey, refs: Sequence[Mapping[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """(references to create the object with, warnings for references dropped)."""
        warnings: list[str] = []
        kept: list[dict[str, Any]] = []
        now: list[dict[str, Any]] = []
        pending: set[str] = set()
        for ref in refs:
            owner = self.index.owner_in_backup(key, ref)
            uid = str(ref.get("uid") or "")
            if owner is None:
                warnings.append(f"{key}: ownerReference to {describe(ref)} dropped: the owner is not in the backup")
            elif self.planned is not None and owner.key not in self.planned:
                warnings.append(f"{key}: ownerReference to {describe(ref)} dropped: the owner is not restored")
            elif uid in self._failed:
                warnings.append(f"{key}: ownerReference to {describe(ref)} dropped: the owner was not restored")
            else:
                kept.append(dict(ref))
                if uid in self.uid_map:
                    now.append(self._rewrite(ref))
                else:
                    pending.add(uid)
        if pending:
            self._dependents[key] = _Dependent(kept, pending=pending, sent=len(now))
            for uid in pending:
                self._waiting.setdefault(uid, set()).add(key)
        return now, warnings

    def _current(self, dependent: _Dependent) -> list[dict[str, Any]]:
        return [self._rewrite(r) for r in dependent.refs if str(r.get("uid")) in self.uid_map]

    def created(self, key: ItemKey, old_uid: str | None, new_uid: str) -> list[OwnerPatch]:
        """Record that `key` exists with `new_uid` (created, or found existing); returns the
        patches for created dependents whose references can now be completed further."""
        patches: list[OwnerPatch] = []
        own = self._dependents.get(key)
        if own is not None:
            own.uid = new_uid
            # An owner of the same tier may have been created while this object's create was in
            # flight: its references were computed before, so complete them now.
            if len(self._current(own)) > own.sent:
                patches.append(self._patch(key, own))
        if not old_uid:
            return patches
        self.uid_map[old_uid] = new_uid
        for dependent_key in sorted(self._waiting.pop(old_uid, set())):
            dependent = self._dependents.get(dependent_key)
            if dependent is None:  # failed meanwhile
                continue
            dependent.pending.discard(old_uid)
            if dependent.uid is not None:
                patches.append(self._patch(dependent_key, dependent))
        return patches

    def _patch(self, key: ItemKey, dependent: _Dependent) -> OwnerPatch:
        assert dependent.uid is not None
        dependent.sent = len(self._current(dependent))
        return OwnerPatch(key, dependent.uid, {"metadata": {"uid": dependent.uid,
                                                            "ownerReferences": self._current(dependent)}})

    def failed(self, key: ItemKey, old_uid: str | None) -> None:
        """`key` will not exist (skipped or failed): references to it are dropped."""
        if old_uid:
            self._failed.add(old_uid)
        self._dependents.pop(key, None)

    def finish(self) -> list[str]:
        """Warnings for references whose owner never appeared (they stay dropped)."""
        warnings: list[str] = []
        for uid, waiting in sorted(self._waiting.items()):
            for key in sorted(waiting):
                dependent = self._dependents.get(key)
                if dependent is None:
                    continue
                ref = next((r for r in dependent.refs if str(r.get("uid")) == uid), {"uid": uid})
                warnings.append(f"{key}: ownerReference to {describe(ref)} dropped: the owner was not restored")
        self._waiting.clear()
        return warnings
