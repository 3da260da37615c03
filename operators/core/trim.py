"""What the operators keep of the objects they cache: one trimmed pod, one trimmed node, one trimmed
object, shared by the scheduler and every workload controller.

Caches hold thousands of pods; `managedFields`, volumes and most of the container statuses are never
read, and keeping them would cost memory and (because an informer tells a change only when the
trimmed object changes) wake consumers for nothing. What is kept:

- metadata without `managedFields` and without kubectl's last-applied annotation;
- a pod's whole spec but `volumes` (the scheduler reads nearly all of it), its phase, conditions,
  startTime, nominatedNodeName, qosClass, resize, and per container the name, readiness, restart
  count and the terminated state (exit code, reason, finish time: the Job controller's input);
- a node's labels, annotations, spec (taints, unschedulable) and allocatable/capacity/images, but not
  its conditions: heartbeats then change nothing a consumer sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_POD_STATUS_KEYS = ("phase", "nominatedNodeName", "startTime", "conditions", "qosClass", "resize", "reason")


def trim_metadata(body: Mapping[str, Any]) -> dict[str, Any]:
    metadata = {k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"}
    annotations = metadata.get("annotations")
    if annotations and LAST_APPLIED in annotations:
        metadata["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    return metadata


def trim_object(body: Mapping[str, Any]) -> dict[str, Any]:
    """A workload object (ReplicaSet, Deployment, ...): everything but managedFields and last-applied."""
    trimmed = {k: v for k, v in body.items() if k != "metadata"}
    trimmed["metadata"] = trim_metadata(body)
    return trimmed


def _container_status(status: Mapping[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {"name": status.get("name"), "restartCount": status.get("restartCount", 0)}
    if "ready" in status:
        kept["ready"] = status["ready"]
    terminated = (status.get("state") or {}).get("terminated")
    if terminated:
        kept["state"] = {"terminated": {k: terminated[k] for k in ("exitCode", "reason", "finishedAt")
                                        if k in terminated}}
    return kept


def trim_pod(body: Mapping[str, Any]) -> dict[str, Any]:
    spec = {k: v for k, v in (body.get("spec") or {}).items() if k != "volumes"}
    status = body.get("status") or {}
    trimmed_status = {k: status[k] for k in _POD_STATUS_KEYS if k in status}
    for key in ("containerStatuses", "initContainerStatuses"):
        if status.get(key):
            trimmed_status[key] = [_container_status(c) for c in status[key]]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": trim_metadata(body), "spec": spec,
            "status": trimmed_status}


def trim_node(body: Mapping[str, Any]) -> dict[str, Any]:
    status = body.get("status") or {}
    meta = trim_metadata(body)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {k: meta[k] for k in ("name", "uid", "labels", "annotations") if k in meta},
        "spec": dict(body.get("spec") or {}),
        "status": {k: status[k] for k in ("allocatable", "capacity", "images") if k in status},
    }
