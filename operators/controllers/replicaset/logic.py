"""The ReplicaSet's decisions, as pure functions over plain objects (no I/O).

Mirrors pkg/controller/replicaset/replica_set.go: claim pods (adopt orphans, release pods that
no longer match), compare active pods with spec.replicas, choose what to create or delete, and
compute the status from what was observed.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from operators.core import conditions, pods
from operators.core.labels import selector_matches, selector_to_string
from operators.core.pods import Pod

GROUP = "apps.kubeplane.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ReplicaSet"
PLURAL = "replicasets"

# Upstream's burstReplicas: at most this many creates or deletes in one sync.
BURST_REPLICAS = 500
REPLICA_FAILURE = "ReplicaFailure"

ReplicaSet = Mapping[str, Any]


def is_owned_by(obj: Mapping[str, Any], rs: ReplicaSet) -> bool:
    ref = pods.controller_ref(obj)
    return ref is not None and ref.get("uid") == rs["metadata"]["uid"]


def is_our_kind(ref: Mapping[str, Any] | None) -> bool:
    return ref is not None and ref.get("kind") == KIND and ref.get("apiVersion") == API_VERSION


@dataclass
class Claim:
    """How a ReplicaSet's pods relate to it after claiming (PodControllerRefManager)."""

    owned: list[Pod] = field(default_factory=list)
    adopt: list[Pod] = field(default_factory=list)
    release: list[Pod] = field(default_factory=list)


def claim_pods(rs: ReplicaSet, candidates: Iterable[Pod]) -> Claim:
    """Split the namespace's pods into ours, orphans to adopt, and ours to release.

    Pods controlled by anybody else are never touched. A ReplicaSet being deleted adopts nothing
    and releases nothing: the garbage collector is about to act on its pods.
    """
    selector = rs["spec"].get("selector")
    deleting = bool(rs["metadata"].get("deletionTimestamp"))
    claim = Claim()
    for pod in candidates:
        matches = selector_matches(selector, pod["metadata"].get("labels"))
        ref = pods.controller_ref(pod)
        if ref is not None:
            if ref.get("uid") != rs["metadata"]["uid"]:
                continue
            if matches or deleting:
                claim.owned.append(pod)
            else:
                claim.release.append(pod)
        elif matches and not deleting and not pods.is_terminating(pod):
            claim.adopt.append(pod)
    return claim


def controller_reference(rs: ReplicaSet) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": rs["metadata"]["name"],
        "uid": rs["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def adopt_patch(rs: ReplicaSet, pod: Pod) -> dict[str, Any]:
    """Strategic merge patch that adds our controller reference; the uid guards against a
    same-named replacement pod."""
    return {"metadata": {"ownerReferences": [controller_reference(rs)], "uid": pod["metadata"]["uid"]}}


def release_patch(rs: ReplicaSet, pod: Pod) -> dict[str, Any]:
    return {
        "metadata": {
            "ownerReferences": [{"$patch": "delete", "uid": rs["metadata"]["uid"]}],
            "uid": pod["metadata"]["uid"],
        }
    }


def pod_from_template(rs: ReplicaSet) -> dict[str, Any]:
    """The pod a ReplicaSet creates: template labels, annotations, finalizers and spec,
    a generated name prefixed with the ReplicaSet's, and a controller reference."""
    template = rs["spec"]["template"]
    meta = template.get("metadata") or {}
    metadata: dict[str, Any] = {
        "generateName": f"{rs['metadata']['name']}-",
        "namespace": rs["metadata"]["namespace"],
        "labels": dict(meta.get("labels") or {}),
        "ownerReferences": [controller_reference(rs)],
    }
    if meta.get("annotations"):
        metadata["annotations"] = dict(meta["annotations"])
    if meta.get("finalizers"):
        metadata["finalizers"] = list(meta["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": copy.deepcopy(template["spec"])}


@dataclass(frozen=True)
class Plan:
    create: int = 0
    delete: tuple[pods.Pod, ...] = ()


def plan_replicas(desired: int, active: Sequence[Pod], now: datetime) -> Plan:
    """How many pods to create, or which to delete (first victims first), capped at the burst."""
    diff = len(active) - desired
    if diff < 0:
        return Plan(create=min(-diff, BURST_REPLICAS))
    if diff > 0:
        count = min(diff, BURST_REPLICAS)
        if count >= len(active):
            return Plan(delete=tuple(active))
        ranked = pods.rank_for_deletion(active, related=active, now=now)
        return Plan(delete=tuple(ranked[:count]))
    return Plan()


def slow_start_batches(count: int, initial: int = 1) -> list[int]:
    """Batch sizes 1, 2, 4, ... adding up to `count`: a template that fails costs one call, not N."""
    sizes: list[int] = []
    size = initial
    remaining = count
    while remaining > 0:
        batch = min(size, remaining)
        sizes.append(batch)
        remaining -= batch
        size *= 2
    return sizes


def compute_status(
    rs: ReplicaSet,
    active: Sequence[Pod],
    terminating: Sequence[Pod],
    manage_error: tuple[str, str] | None,
    now: datetime,
) -> dict[str, Any]:
    """The status the ReplicaSet should have, from the pods observed before this sync acted.

    `manage_error` is (reason, message) when creating or deleting failed; as upstream, an existing
    ReplicaFailure condition keeps its first message until the failure clears.
    """
    spec = rs["spec"]
    old = rs.get("status") or {}
    template_labels = (spec["template"].get("metadata") or {}).get("labels") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    fully_labeled = ready = available = 0
    for pod in active:
        labels = pod["metadata"].get("labels") or {}
        if all(labels.get(k) == v for k, v in template_labels.items()):
            fully_labeled += 1
        if pods.is_ready(pod):
            ready += 1
            if pods.is_available(pod, min_ready, now):
                available += 1

    current_conditions = old.get("conditions") or []
    failure = conditions.find(current_conditions, REPLICA_FAILURE)
    if manage_error is not None and failure is None:
        reason, message = manage_error
        current_conditions = conditions.set_condition(
            current_conditions, REPLICA_FAILURE, "True", reason, message, now
        )
    elif manage_error is None and failure is not None:
        current_conditions = conditions.remove_condition(current_conditions, REPLICA_FAILURE)

    status: dict[str, Any] = {
        "replicas": len(active),
        "fullyLabeledReplicas": fully_labeled,
        "readyReplicas": ready,
        "availableReplicas": available,
        "terminatingReplicas": len(terminating),
        "observedGeneration": rs["metadata"].get("generation", 0),
        "selector": selector_to_string(spec.get("selector") or {}),
    }
    if current_conditions:
        status["conditions"] = list(current_conditions)
    return status


def status_patch(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any] | None:
    """A merge patch turning `old` into `new` (None when equal); vanished keys become null."""
    old = old or {}
    if dict(old) == dict(new):
        return None
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    patch.update(new)
    return {"status": patch}


def requeue_for_availability(rs: ReplicaSet, status: Mapping[str, Any]) -> float | None:
    """With minReadySeconds, ready pods become available later with no event to say so:
    look again then (upstream's AddAfter)."""
    min_ready = int(rs["spec"].get("minReadySeconds") or 0)
    desired = int(rs["spec"].get("replicas", 1))
    if min_ready > 0 and status["readyReplicas"] == desired and status["availableReplicas"] != desired:
        return float(min_ready)
    return None
