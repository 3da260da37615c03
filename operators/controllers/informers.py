"""The caches every workload controller reads: Kopf indexes over pods, keyed by namespace.

Kopf fills every index completely before it calls any other handler, which is what makes a
restart safe: a sync never sees a half-listed namespace and never mistakes "not listed yet" for
"missing". Values are trimmed to what the controllers read, to keep memory flat with many pods.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

PodIndex = kopf.Index[str, dict[str, Any]]


def trim_pod(body: Mapping[str, Any]) -> dict[str, Any]:
    metadata = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    return {
        "metadata": {
            key: metadata[key]
            for key in (
                "name", "namespace", "uid", "labels", "annotations", "ownerReferences",
                "creationTimestamp", "deletionTimestamp",
            )
            if key in metadata
        },
        "spec": {
            "nodeName": spec.get("nodeName"),
            "initContainers": [
                {"name": c.get("name"), "restartPolicy": c.get("restartPolicy")}
                for c in spec.get("initContainers") or []
            ],
        },
        "status": {
            "phase": status.get("phase"),
            "conditions": status.get("conditions") or [],
            "containerStatuses": [
                {"name": c.get("name"), "restartCount": c.get("restartCount", 0)}
                for c in status.get("containerStatuses") or []
            ],
            "initContainerStatuses": [
                {"name": c.get("name"), "restartCount": c.get("restartCount", 0)}
                for c in status.get("initContainerStatuses") or []
            ],
        },
    }


@kopf.index("", "v1", "pods")
async def pods_by_namespace(body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    return {body.metadata.namespace or "": trim_pod(body)}
