"""Owner references (metav1.GetControllerOf, NewControllerRef), one implementation for every operator."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from operators.core.apis import Resource

Obj = Mapping[str, Any]


def controller_ref(obj: Obj) -> Mapping[str, Any] | None:
    """The ownerReference with controller: true, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref  # type: ignore[no-any-return]
    return None


def controller_uid(obj: Obj) -> str | None:
    ref = controller_ref(obj)
    return str(ref["uid"]) if ref is not None and ref.get("uid") else None


def is_controlled_by(obj: Obj, owner: Obj) -> bool:
    return controller_uid(obj) == str(owner["metadata"]["uid"])


def owner_reference(owner: Obj, resource: Resource) -> dict[str, Any]:
    """metav1.NewControllerRef: controller and blockOwnerDeletion set."""
    meta = owner["metadata"]
    return {
        "apiVersion": resource.api_version, "kind": resource.kind, "name": meta["name"], "uid": meta["uid"],
        "controller": True, "blockOwnerDeletion": True,
    }
