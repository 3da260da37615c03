"""Ownership: which objects a controller claims, adopts and releases (controller_ref_manager.go).

`claim` is upstream's `claimObject` as a pure function over a list of candidates:

- controlled by another owner: not ours, never touched;
- controlled by us and selected: ours;
- controlled by us, no longer selected: released, unless we are being deleted (then left alone:
  the garbage collector is about to act on it);
- an orphan that is selected, not being deleted, in our namespace, while we are not being deleted:
  adopted.

Callers filter the candidates first as upstream does (a ReplicaSet claims active pods only; a Job
claims finished pods too).

`Patcher` carries adoptions and releases out. Built-in kinds take upstream's strategic merge patches;
custom resources (a kubeplane ReplicaSet adopted by a kubeplane Deployment) refuse those with 415, so
they get JSON patches. Either way the patch names the target's uid, so a same-named replacement is
never touched (422), and before the first adoption of a sync the owner is read afresh from the API
server: an owner deleted since the cache saw it must not adopt (upstream's RecheckDeletionTimestamp).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from operators.controllers import caches
from operators.core.apis import PODS, Resource
from operators.core.informer import DELETED, Informer, object_key
from operators.core.kube import JSON_PATCH, STRATEGIC_PATCH, ApiError, Kube
from operators.core.owners import controller_ref, owner_reference
from operators.core.selectors import Selector, SelectorError, from_label_selector

logger = logging.getLogger(__name__)

Obj = Mapping[str, Any]


@dataclass
class Claim:
    owned: list[Obj] = field(default_factory=list)
    adopt: list[Obj] = field(default_factory=list)
    release: list[Obj] = field(default_factory=list)

    @property
    def claimed(self) -> list[Obj]:
        """Ours once the adoptions succeed: what upstream's Claim* returns."""
        return self.owned + self.adopt


def claim(owner: Obj, candidates: Iterable[Obj], selects: Callable[[Obj], bool]) -> Claim:
    meta = owner["metadata"]
    uid, namespace = meta["uid"], meta.get("namespace")
    deleting = bool(meta.get("deletionTimestamp"))
    result = Claim()
    for obj in candidates:
        obj_meta = obj["metadata"]
        ref = controller_ref(obj)
        if ref is not None:
            if ref.get("uid") != uid:
                continue
            if selects(obj):
                result.owned.append(obj)
            elif not deleting:
                result.release.append(obj)
            continue
        if deleting or not selects(obj) or obj_meta.get("deletionTimestamp"):
            continue
        if namespace and obj_meta.get("namespace") != namespace:
            continue
        result.adopt.append(obj)
    return result


# --- patches -------------------------------------------------------------------------------------


def adopt_patch(owner: Obj, owner_resource: Resource, obj: Obj, target: Resource,
                finalizers: tuple[str, ...] = ()) -> tuple[Any, str]:
    """(body, content type) that makes `owner` the controller of `obj`, guarded by obj's uid; with
    `finalizers` (a Job adopting a pod: its tracking finalizer) they are added in the same patch."""
    ref = owner_reference(owner, owner_resource)
    meta = obj["metadata"]
    if target.builtin:
        body: dict[str, Any] = {"ownerReferences": [ref], "uid": meta["uid"]}
        if finalizers:
            body["finalizers"] = list(finalizers)  # a merge list: added to the pod's own
        return {"metadata": body}, STRATEGIC_PATCH
    if finalizers:
        raise ValueError("finalizers on adoption are only supported for built-in kinds (pods)")
    existing = list(meta.get("ownerReferences") or [])
    operations: list[dict[str, Any]] = [
        {"op": "test", "path": "/metadata/uid", "value": meta["uid"]},
        # The list is written whole: refuse if anybody changed the object since our cache saw it.
        {"op": "test", "path": "/metadata/resourceVersion", "value": meta.get("resourceVersion")},
        {"op": "add", "path": "/metadata/ownerReferences", "value": [*existing, ref]},
    ]
    return operations, JSON_PATCH


def release_patch(owner: Obj, obj: Obj, target: Resource, finalizers: tuple[str, ...] = ()) -> tuple[Any, str]:
    """(body, content type) that removes `owner`'s reference from `obj`, guarded by obj's uid (and
    `finalizers` with it, as deleteOwnerRefStrategicMergePatch does)."""
    owner_uid = owner["metadata"]["uid"]
    meta = obj["metadata"]
    if target.builtin:
        body: dict[str, Any] = {"ownerReferences": [{"$patch": "delete", "uid": owner_uid}], "uid": meta["uid"]}
        if finalizers:
            body["$deleteFromPrimitiveList/finalizers"] = list(finalizers)
        return {"metadata": body}, STRATEGIC_PATCH
    if finalizers:
        raise ValueError("finalizers on release are only supported for built-in kinds (pods)")
    refs = list(meta.get("ownerReferences") or [])
    index = next((i for i, r in enumerate(refs) if r.get("uid") == owner_uid), None)
    operations: list[dict[str, Any]] = [{"op": "test", "path": "/metadata/uid", "value": meta["uid"]}]
    if index is not None:
        path = f"/metadata/ownerReferences/{index}"
        operations += [{"op": "test", "path": f"{path}/uid", "value": owner_uid}, {"op": "remove", "path": path}]
    return operations, JSON_PATCH


def resolve_controller_ref(get: Callable[[str], Obj | None], resource: Resource, namespace: str,
                           ref: Mapping[str, Any] | None) -> Obj | None:
    """resolveControllerRef: the owner a controller reference names, from a cache (`get` by
    `namespace/name`), if it is of `resource`'s kind and still the same object (same uid)."""
    if ref is None or not resource.is_kind_of(ref):
        return None
    owner = get(f"{namespace}/{ref.get('name')}")
    if owner is None or owner["metadata"]["uid"] != ref.get("uid"):
        return None
    return owner


class OwnerGone(Exception):
    """The owner was deleted (or is being deleted) since the cache saw it: it must not adopt."""


class Patcher:
    """Adopts and releases objects of `target` for one owner during one sync."""

    def __init__(self, kube: Kube, owner: Obj, owner_resource: Resource, target: Resource,
                 finalizers: tuple[str, ...] = ()) -> None:
        self.kube = kube
        self.finalizers = finalizers
        self.owner = owner
        self.owner_resource = owner_resource
        self.target = target
        self._recheck: asyncio.Task[bool] | None = None

    async def can_adopt(self) -> bool:
        """Read the owner from the API server once per sync (concurrent adoptions share the read):
        same uid and not being deleted."""
        if self._recheck is None:
            self._recheck = asyncio.ensure_future(self._read_owner())
        return await asyncio.shield(self._recheck)

    async def _read_owner(self) -> bool:
        meta = self.owner["metadata"]
        try:
            fresh = await self.kube.get(self.owner_resource.path(meta.get("namespace"), meta["name"]))
        except ApiError as e:
            if not e.not_found:
                raise
            return False
        fresh_meta = fresh.get("metadata") or {}
        return bool(fresh_meta.get("uid") == meta["uid"] and not fresh_meta.get("deletionTimestamp"))

    async def adopt(self, obj: Obj) -> bool:
        """True when adopted; False when the object is gone. Raises OwnerGone, or the API's error."""
        if not await self.can_adopt():
            meta = self.owner["metadata"]
            raise OwnerGone(f"{self.owner_resource.kind} {meta.get('namespace')}/{meta['name']} "
                            f"(uid {meta['uid']}) is gone or being deleted; not adopting")
        body, content_type = adopt_patch(self.owner, self.owner_resource, obj, self.target, self.finalizers)
        try:
            await self.kube.patch(self.target.object_path(obj), body, content_type=content_type)
        except ApiError as e:
            if e.not_found:
                return False
            raise
        return True

    async def release(self, obj: Obj) -> None:
        """Remove our reference; an object gone or replaced (404, 422) needs no release."""
        body, content_type = release_patch(self.owner, obj, self.target, self.finalizers)
        try:
            await self.kube.patch(self.target.object_path(obj), body, content_type=content_type)
        except ApiError as e:
            if e.not_found or e.invalid:
                return
            raise


async def claim_pods(kube: Kube, owner: Obj, owner_resource: Resource, pods: Informer,
                     finalizers: tuple[str, ...] = (), member: Callable[[Obj], bool] | None = None) -> list[Obj]:
    """getPodsFor<Kind>: the pods `owner` controls, after adopting the orphans of its namespace its
    selector matches and releasing the pods it controls but no longer selects (`member` narrows what
    matches: a StatefulSet's pods must also carry its name). Adopted pods are
    returned as the patch made them (our controller reference, `finalizers` added), so the sync that
    adopted them counts them so. Raises OwnerGone when the owner went away (the recheck)."""
    try:
        selector = from_label_selector((owner.get("spec") or {}).get("selector"))
    except SelectorError as e:
        logger.error("%s %s: invalid selector: %s", owner_resource.kind, object_key(owner), e)
        return []
    meta = owner["metadata"]
    candidates = [*pods.by_index(caches.CONTROLLER, meta["uid"]),
                  *pods.by_index(caches.ORPHAN, meta.get("namespace") or "")]
    found = claim(owner, candidates, lambda p: selector.matches(p["metadata"].get("labels") or {})
                  and (member is None or member(p)))
    if not found.adopt and not found.release:
        return found.owned
    patcher = Patcher(kube, owner, owner_resource, PODS, finalizers=finalizers)
    await asyncio.gather(*(patcher.release(p) for p in found.release))
    adopted = await asyncio.gather(*(patcher.adopt(p) for p in found.adopt))
    ref = owner_reference(owner, owner_resource)
    taken: list[Obj] = []
    for pod, ok in zip(found.adopt, adopted, strict=True):
        if ok:
            pod_meta = pod["metadata"]
            taken.append({**pod, "metadata": {
                **pod_meta, "ownerReferences": [*(pod_meta.get("ownerReferences") or []), ref],
                "finalizers": [*(pod_meta.get("finalizers") or []), *finalizers]}})
    return [*found.owned, *taken]


def parsed_selector(owner: Obj) -> Selector | None:
    """The owner's spec.selector, None when absent or invalid."""
    raw = (owner.get("spec") or {}).get("selector")
    if raw is None:
        return None
    try:
        return from_label_selector(raw)
    except SelectorError:
        return None


def owners_selecting(owners: Informer, obj: Obj,
                     selector_of: Callable[[Obj], Selector | None] = parsed_selector) -> list[Obj]:
    """get<Kind>sFor<Object>: the owners of the object's namespace whose selector matches its labels.
    A missing, invalid or empty selector matches nothing (upstream: "a nil or empty selector should
    match nothing, not everything")."""
    labels = obj["metadata"].get("labels") or {}
    found: list[Obj] = []
    for owner in owners.by_index(caches.NAMESPACE, obj["metadata"].get("namespace") or ""):
        selector = selector_of(owner)
        if selector is not None and not selector.empty() and selector.matches(labels):
            found.append(owner)
    return found


def owners_of_change(kind: str, obj: Obj, old: Obj | None, resolve: Callable[[Obj], Obj | None],
                     selecting: Callable[[Obj], list[Obj]]) -> tuple[Obj | None, list[Obj]]:
    """add/update/delete<Object>'s routing: (the object's controller, if it is one of ours; every owner
    to sync). Those are its controller; for an orphan that is not deleted, every owner whose selector
    matches it (one may adopt it); and the previous controller when the reference changed (it released
    the object, or lost it)."""
    owner = resolve(obj)
    wake: list[Obj] = []
    if owner is not None:
        wake.append(owner)
    elif controller_ref(obj) is None and kind != DELETED:
        wake.extend(selecting(obj))
    if old is not None and controller_ref(old) is not None:
        previous = resolve(old)
        if previous is not None and previous is not owner:
            wake.append(previous)
    return owner, wake
