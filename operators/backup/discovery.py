"""What the API server serves, and reading all of it page by page.

A backup covers every served resource type (custom resources included) at its group's preferred
version, as Velero does. Subresources and types that cannot be listed are left out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from operators.core.kube import ApiError, Kube

logger = logging.getLogger(__name__)

PAGE_SIZE = 500  # Velero's default page size


@dataclass(frozen=True)
class ApiResource:
    group: str
    version: str
    name: str  # the plural, e.g. deployments
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()

    @property
    def group_resource(self) -> str:
        """`deployments.apps`, or just `pods` for the core group: Velero's directory names."""
        return f"{self.name}.{self.group}" if self.group else self.name

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace and self.namespaced:
            base += f"/namespaces/{namespace}"
        base += f"/{self.name}"
        return f"{base}/{name}" if name else base


def _resources_of(group: str, version: str, listing: dict[str, Any]) -> list[ApiResource]:
    found = []
    for item in listing.get("resources") or []:
        verbs = set(item.get("verbs") or [])
        if "/" in item["name"] or not {"list", "get", "create"} <= verbs:
            continue
        found.append(ApiResource(
            group=group, version=version, name=item["name"], kind=item["kind"],
            namespaced=bool(item.get("namespaced")), short_names=tuple(item.get("shortNames") or ()),
        ))
    return found


async def discover(kube: Kube) -> list[ApiResource]:
    """Every listable resource type, each once, at its group's preferred version."""
    core = await kube.get("/api/v1")
    groups = (await kube.get("/apis")).get("groups") or []

    async def group_resources(group: dict[str, Any]) -> list[ApiResource]:
        preferred = (group.get("preferredVersion") or {}).get("version") or group["versions"][0]["version"]
        try:
            listing = await kube.get(f"/apis/{group['name']}/{preferred}")
        except ApiError as e:
            if e.status in (404, 503):  # an aggregated API that is down: skip it, as kubectl does
                return []
            raise
        return _resources_of(group["name"], preferred, listing)

    per_group = await asyncio.gather(*(group_resources(g) for g in groups))
    resources = _resources_of("", "v1", core) + [r for rs in per_group for r in rs]
    # The same kind can be served twice (events in core and events.k8s.io): both are kept, the
    # selection rules decide which to back up.
    return sorted(resources, key=lambda r: r.group_resource)


async def list_items(
    kube: Kube, resource: ApiResource, namespace: str | None = None, label_selector: str | None = None
) -> AsyncIterator[list[dict[str, Any]]]:
    """Pages of items (at most PAGE_SIZE each), so a large cluster is never held whole in memory.

    A continue token can expire (410) while a large backup is written: client-go's pager then lists
    again in full. Here the list starts over, paginated, and skips what was already yielded: the API
    server lists in storage-key order ("<namespace>/<name>"), so remembering the last key keeps memory flat."""
    token, last = "", ""
    while True:
        params: dict[str, str | int] = {"limit": PAGE_SIZE}
        if token:
            params["continue"] = token
        if label_selector:
            params["labelSelector"] = label_selector
        try:
            page = await kube.get(resource.path(namespace), **params)
        except ApiError as e:
            if not (e.expired and token):
                raise
            logger.warning("listing %s: the continue token expired; listing again from after %r",
                           resource.group_resource, last)
            token = ""
            continue
        items = _described([i for i in page.get("items") or [] if _key(i) > last], resource)
        if items:
            last = _key(items[-1])
            yield items
        token = (page.get("metadata") or {}).get("continue") or ""
        if not token:
            return


async def list_in_one_page(kube: Kube, resource: ApiResource) -> list[dict[str, Any]] | None:
    """Every item of the type across all namespaces when they fit in one page (PAGE_SIZE), else None.

    One request answers for a type that is empty or small everywhere, where listing it namespace by
    namespace costs a round trip per namespace (a backup of 256 namespaces lists ~30 types: ~7,700
    requests, most of them empty, and the API server's time went there)."""
    page = await kube.get(resource.path(None), limit=PAGE_SIZE)
    if (page.get("metadata") or {}).get("continue"):
        return None
    return _described(page.get("items") or [], resource)


def _described(items: list[dict[str, Any]], resource: ApiResource) -> list[dict[str, Any]]:
    """Lists omit apiVersion/kind on items; an archived object must be self-describing."""
    for item in items:
        item.setdefault("apiVersion", resource.api_version)
        item.setdefault("kind", resource.kind)
    return items


def _key(item: dict[str, Any]) -> str:
    """The item's storage key below its resource, which orders a list."""
    meta = item.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"
