"""The ReplicaSet's decisions: one pure function from what a sync observed to what it should do.

Mirrors pkg/controller/replicaset (replica_set.go, replica_set_utils.go) for Kubernetes 1.34:

- claim the active pods (FilterActivePods, then claimObject): adopt matching orphans, release pods
  that no longer match; a ReplicaSet being deleted adopts and releases nothing;
- when the expectations are satisfied and the set is not being deleted, compare the claimed pods
  with spec.replicas: create the difference (at most 500 per sync), or delete the first victims of
  the deletion ranking (at most 500), ranked against the pods of every ReplicaSet that shares this
  one's controller (none for a bare ReplicaSet, as upstream);
- the status counts the claimed pods (fully labeled, ready, available after minReadySeconds); a
  failed create or delete sets ReplicaFailure (FailedCreate/FailedDelete, with the error's text) if
  it is not set already, and a clean sync removes it.

`plan(observed)` returns a `Plan`; the controller carries it out and asks the plan for the status
(`Plan.status(error)`): the only input the plan cannot know beforehand is whether the API calls failed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from operators.controllers.common import ownership, podcontrol
from operators.core import conditions, pods
from operators.core.apis import Resource
from operators.core.owners import controller_ref, controller_uid
from operators.core.pods import Pod
from operators.core.selectors import Selector

BURST_REPLICAS = 500  # upstream's burstReplicas: at most this many creates or deletes in one sync
REPLICA_FAILURE = "ReplicaFailure"

Obj = Mapping[str, Any]


def desired_replicas(rs: Obj) -> int:
    """spec.replicas, defaulting to 1 as the API server defaults it."""
    replicas = (rs.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


@dataclass(frozen=True)
class Observed:
    rs: Obj
    selector: Selector
    candidates: Sequence[Pod]  # the pods the set controls, and the orphans of its namespace
    related: Sequence[Pod]  # the pods of every ReplicaSet with the same controller (none for a bare one)
    expectations_satisfied: bool
    now: datetime
    extended_status: bool = True  # kubeplane's CRD: status.selector and status.terminatingReplicas too


@dataclass(frozen=True)
class Plan:
    observed: Observed
    adopt: tuple[Pod, ...] = ()
    release: tuple[Pod, ...] = ()
    claimed: tuple[Pod, ...] = ()  # owned and to be adopted: what the status counts
    terminating: int = 0
    create: int = 0
    delete: tuple[Pod, ...] = ()
    manages: bool = False  # whether this sync manages replicas at all

    def without(self, gone: Sequence[Pod]) -> Plan:
        """The plan had the adoption of `gone` pods found them deleted: claim, count and choose again
        without them (upstream's diff is taken after claiming)."""
        lost = {p["metadata"]["uid"] for p in gone}
        claimed = tuple(p for p in self.claimed if p["metadata"]["uid"] not in lost)
        adopt = tuple(p for p in self.adopt if p["metadata"]["uid"] not in lost)
        create, delete = _manage(self.observed, claimed) if self.manages else (0, ())
        return Plan(self.observed, adopt, self.release, claimed, self.terminating, create, delete, self.manages)

    def status(self, manage_error: str | None) -> dict[str, Any]:
        return compute_status(self.observed, self.claimed, self.terminating, manage_error)

    def requeue_after(self, manage_error: str | None) -> float | None:
        """When to look again for pods turning available (None: no pod is waiting to)."""
        if manage_error is not None:
            return None
        return next_availability_check(self.claimed, min_ready_seconds(self.observed.rs), self.observed.now)


def min_ready_seconds(rs: Obj) -> int:
    return int((rs.get("spec") or {}).get("minReadySeconds") or 0)


def plan(observed: Observed) -> Plan:
    rs = observed.rs
    active = [p for p in observed.candidates if pods.is_active(p)]
    labels_of: Callable[[Pod], Mapping[str, str]] = lambda p: p["metadata"].get("labels") or {}  # noqa: E731
    claim = ownership.claim(rs, active, lambda p: observed.selector.matches(labels_of(p)))
    claimed = tuple(claim.claimed)
    # Terminating pods the set still controls and selects (controller.FilterTerminatingPods).
    uid = rs["metadata"]["uid"]
    terminating = sum(
        1 for p in observed.candidates
        if pods.is_terminating(p) and controller_uid(p) == uid and observed.selector.matches(labels_of(p))
    )
    manages = observed.expectations_satisfied and not rs["metadata"].get("deletionTimestamp")
    create, delete = _manage(observed, claimed) if manages else (0, ())
    return Plan(observed, tuple(claim.adopt), tuple(claim.release), claimed, terminating, create, delete, manages)


def _manage(observed: Observed, claimed: Sequence[Pod]) -> tuple[int, tuple[Pod, ...]]:
    """manageReplicas' decision: how many to create, or which to delete, first victims first."""
    diff = len(claimed) - desired_replicas(observed.rs)
    if diff < 0:
        return min(-diff, BURST_REPLICAS), ()
    if diff > 0:
        count = min(diff, BURST_REPLICAS)
        ranked = claimed if count >= len(claimed) else pods.rank_for_deletion(claimed, observed.related, observed.now)
        return 0, tuple(ranked[:count])
    return 0, ()


def pod_from_template(rs: Obj, resource: Resource) -> dict[str, Any]:
    """controller.GetPodFromTemplate for the set's template."""
    return podcontrol.pod_from_template(rs, resource, rs["spec"]["template"])


def compute_status(observed: Observed, claimed: Sequence[Pod], terminating: int,
                   manage_error: str | None) -> dict[str, Any]:
    """calculateStatus: counts from the claimed pods as observed before this sync acted."""
    rs, now = observed.rs, observed.now
    spec = rs["spec"]
    old = rs.get("status") or {}
    template_labels = (spec["template"].get("metadata") or {}).get("labels") or {}
    min_ready = min_ready_seconds(rs)
    fully_labeled = ready = available = 0
    for pod in claimed:
        labels = pod["metadata"].get("labels") or {}
        if all(labels.get(k) == v for k, v in template_labels.items()):
            fully_labeled += 1
        if pods.is_ready(pod):
            ready += 1
            if pods.is_available(pod, min_ready, now):
                available += 1

    current = old.get("conditions") or []
    failure = conditions.find(current, REPLICA_FAILURE)
    if manage_error is not None and failure is None:
        diff = len(claimed) - desired_replicas(rs)
        reason = "FailedCreate" if diff < 0 else "FailedDelete" if diff > 0 else ""
        current = conditions.set_condition(current, REPLICA_FAILURE, "True", reason, manage_error, now)
    elif manage_error is None and failure is not None:
        current = conditions.remove_condition(current, REPLICA_FAILURE)

    status: dict[str, Any] = {
        "replicas": len(claimed),
        "fullyLabeledReplicas": fully_labeled,
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": rs["metadata"].get("generation", 0),
    }
    if observed.extended_status:
        status["terminatingReplicas"] = terminating
        status["selector"] = str(observed.selector)
    if current:
        status["conditions"] = list(current)
    return status


def next_availability_check(claimed: Sequence[Pod], min_ready: int, now: datetime) -> float | None:
    """Seconds until the first ready-but-not-yet-available pod becomes available, plus upstream's
    one second of skew (None when no pod waits). Upstream requeues only once every pod is ready, or
    on the pod's Ready transition; this covers a set whose pods are partly ready after a restart."""
    if min_ready <= 0:
        return None
    soonest = math.inf
    for pod in claimed:
        if not pods.is_ready(pod) or pods.is_available(pod, min_ready, now):
            continue
        since = pods.ready_since(pod)
        if since is None:
            continue
        soonest = min(soonest, (since - now).total_seconds() + min_ready)
    return None if soonest == math.inf else max(soonest, 0.0) + 1.0


@dataclass
class Transition:
    """What a pod update means to its ReplicaSet (updatePod): used by the controller's handler."""

    became_ready: bool = False
    labels_changed: bool = False
    controller_changed: bool = False
    old_controller: Mapping[str, Any] | None = None


def pod_transition(old: Pod, new: Pod) -> Transition:
    old_ref, new_ref = controller_ref(old), controller_ref(new)
    return Transition(
        became_ready=not pods.is_ready(old) and pods.is_ready(new),
        labels_changed=(old["metadata"].get("labels") or {}) != (new["metadata"].get("labels") or {}),
        controller_changed=old_ref != new_ref,
        old_controller=old_ref,
    )
