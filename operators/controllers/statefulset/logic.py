"""The StatefulSet's decisions: one pure function from what a sync observed to what it should do.

Mirrors pkg/controller/statefulset (stateful_set_control.go, stateful_set_utils.go,
stateful_pod_control.go) for Kubernetes 1.34 (StatefulSetAutoDeletePVC, StatefulSetStartOrdinal and
PodIndexLabel on; MaxUnavailableStatefulSet off):

- identity: pod `<set>-<ordinal>` for ordinals [ordinals.start, start + replicas), hostname = the pod's
  name, subdomain = serviceName, labels `statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index`
  and `controller-revision-hash` = the name of the pod's ControllerRevision; claim `<template>-<set>-<ordinal>`
  per volumeClaimTemplate, labelled with the template's labels and the selector's matchLabels, created
  before the pod (and again while the pod is Pending, should it have been deleted);
- management (updateStatefulSet): replicas in ascending ordinal order, then the pods out of range
  ("condemned") in descending order. OrderedReady ("monotonic") stops the sync at the first pod it
  creates, deletes, or finds terminating, not Running and Ready, or not available; it deletes one
  condemned pod per sync, and only once every pod before it is healthy (the first unhealthy one may
  go). Parallel does all of it at once. Failed and Succeeded pods are deleted (and made again next
  sync); a pod whose claims still carry a stale owner reference waits for the garbage collector;
- rolling update: from the highest replica down to `partition`, the first pod not at the update
  revision is deleted (it comes back at the update revision), and the walk stops at any unavailable
  pod; pods below the partition are made from the current revision; OnDelete only makes new pods at the
  update revision;
- claim retention (persistentVolumeClaimRetentionPolicy) through owner references, as upstream's table:
  whenDeleted=Delete puts the set on the claims of pods in range, whenScaled=Delete puts the pod on the
  claims of pods scaled away; a claim controlled by anything else is left alone (ConflictingController);
- status: replicas (pods with a phase), ready (Running and Ready), available, current and updated (by
  revision name, terminating pods left out); once every replica is updated and ready the update
  revision becomes the current one (completeRollingUpdate).

Beyond upstream (kubeplane's kind only, opt-in where it changes behaviour):

- `spec.stuckPodPolicy: Replace`: a pod of a stale revision that has not been Running and Ready for
  `spec.stuckPodSeconds` (default 600) is deleted, so it comes back at the update revision, with a
  `ReplacingStuckPod` Warning. Upstream waits for it forever (kubernetes issues 67250, 60164): a bad
  template's pod never gets Ready, and OrderedReady then never reaches the rolling update that would
  replace it with a fixed template;
- a `Progressing` condition says why the set is not moving: True `RolloutComplete`, True `Progressing`
  (acting, or waiting on a pod for less than stuckPodSeconds), False `PodNotReady`/`PodNotAvailable`/
  `PodTerminating` naming the pod it has waited on for longer.

ControllerRevisions are the controller's (`controller.py`); this module gives their data.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from operators.controllers.common import history, podcontrol
from operators.core import pods as podutil
from operators.core.apis import Resource
from operators.core.events import Event
from operators.core.owners import owner_reference
from operators.core.timeutil import format_time, parse_time

Obj = Mapping[str, Any]
Pod = Mapping[str, Any]

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"  # apps.StatefulSetPodNameLabel
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"  # apps.PodIndexLabel
REVISION_LABEL = "controller-revision-hash"  # apps.StatefulSetRevisionLabel
RETAIN, DELETE = "Retain", "Delete"
ORDERED_READY, PARALLEL = "OrderedReady", "Parallel"
ROLLING_UPDATE, ON_DELETE = "RollingUpdate", "OnDelete"
CONFLICTING_CONTROLLER = "ConflictingController"
REPLACE = "Replace"
STUCK_POD_SECONDS = 600  # default of spec.stuckPodSeconds (as a Deployment's progressDeadlineSeconds)
REPLACING_STUCK_POD = "ReplacingStuckPod"
PROGRESSING = "Progressing"
INT32_MAX = 2**31 - 1

_MEMBER = re.compile(r"(.*)-([0-9]+)$")  # statefulPodRegex


# --- identity ---------------------------------------------------------------------------------------------

def spec(sts: Obj) -> Obj:
    return sts.get("spec") or {}


def parent_and_ordinal(name: str) -> tuple[str, int]:
    """getParentNameAndOrdinal: ("", -1) for a name that is not `<parent>-<number>`; an ordinal beyond
    int32 is -1 with the parent kept."""
    match = _MEMBER.search(name)
    if match is None:
        return "", -1
    number = int(match.group(2))
    return match.group(1), number if number <= INT32_MAX else -1


def ordinal_of(pod: Pod) -> int:
    return parent_and_ordinal(pod["metadata"]["name"])[1]


def start_ordinal(sts: Obj) -> int:
    return int((spec(sts).get("ordinals") or {}).get("start") or 0)


def replicas(sts: Obj) -> int:
    value = spec(sts).get("replicas")
    return 1 if value is None else int(value)


def in_range(ordinal: int, sts: Obj) -> bool:
    """podInOrdinalRange."""
    start = start_ordinal(sts)
    return start <= ordinal < start + replicas(sts)


def is_member(sts: Obj, pod: Pod) -> bool:
    """isMemberOf: the pod's name says it belongs to the set."""
    return bool(parent_and_ordinal(pod["metadata"]["name"])[0] == sts["metadata"]["name"])


def pod_name(sts: Obj, ordinal: int) -> str:
    return f"{sts['metadata']['name']}-{ordinal}"


def claim_name(template: Obj, sts: Obj, ordinal: int) -> str:
    """getPersistentVolumeClaimName: `<template>-<set>-<ordinal>`."""
    return f"{(template.get('metadata') or {}).get('name')}-{sts['metadata']['name']}-{ordinal}"


def claim_templates(sts: Obj) -> list[Obj]:
    return list(spec(sts).get("volumeClaimTemplates") or [])


def revision_of(pod: Pod) -> str:
    return str((pod["metadata"].get("labels") or {}).get(REVISION_LABEL) or "")


def identity_matches(sts: Obj, pod: Pod) -> bool:
    parent, ordinal = parent_and_ordinal(pod["metadata"]["name"])
    return (ordinal >= 0 and parent == sts["metadata"]["name"] and pod["metadata"]["name"] == pod_name(sts, ordinal)
            and (pod["metadata"].get("namespace") or "") == sts["metadata"].get("namespace")
            and (pod["metadata"].get("labels") or {}).get(POD_NAME_LABEL) == pod["metadata"]["name"])


def storage_matches(sts: Obj, pod: Pod) -> bool:
    ordinal = ordinal_of(pod)
    if ordinal < 0:
        return False
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    for template in claim_templates(sts):
        volume = volumes.get((template.get("metadata") or {}).get("name"))
        source = (volume or {}).get("persistentVolumeClaim")
        if not source or source.get("claimName") != claim_name(template, sts, ordinal):
            return False
    return True


def identity_labels(sts: Obj, ordinal: int) -> dict[str, str]:
    """updateIdentity's labels (PodIndexLabel is on in 1.34)."""
    return {POD_NAME_LABEL: pod_name(sts, ordinal), POD_INDEX_LABEL: str(ordinal)}


# --- revisions ----------------------------------------------------------------------------------------

def revision_data(sts: Obj) -> dict[str, Any]:
    """getPatch: what a ControllerRevision holds, the template with a replace directive."""
    return history.template_patch(sts)


def template_of(revision: Obj) -> dict[str, Any]:
    """ApplyRevision, for the one field a revision holds: its template."""
    return history.template_of(revision)


# --- claims and their retention --------------------------------------------------------------------------

def retention(sts: Obj) -> tuple[str, str]:
    """(whenDeleted, whenScaled), Retain unless set."""
    policy = spec(sts).get("persistentVolumeClaimRetentionPolicy") or {}
    return str(policy.get("whenDeleted") or RETAIN), str(policy.get("whenScaled") or RETAIN)


@dataclass(frozen=True)
class Owner:
    """What a claim's owner references are compared with: the set, or a pod (uid "" for a pod not yet
    made)."""
    api_version: str
    kind: str
    name: str
    uid: str
    ref: dict[str, Any] | None = None  # the controller reference to add, when it may be added

    def matches(self, ref: Obj) -> bool:
        """matchesRef: same group/version, kind and name (the uid is not compared)."""
        return ref.get("apiVersion") == self.api_version and ref.get("kind") == self.kind and \
            ref.get("name") == self.name


def set_owner(sts: Obj, resource: Resource) -> Owner:
    meta = sts["metadata"]
    return Owner(resource.api_version, resource.kind, meta["name"], meta["uid"], owner_reference(sts, resource))


def pod_owner(pod: Pod) -> Owner:
    meta = pod["metadata"]
    uid = str(meta.get("uid") or "")
    ref = {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": uid, "controller": True,
           "blockOwnerDeletion": True} if uid else None
    return Owner("v1", "Pod", meta["name"], uid, ref)


def _refs(claim: Obj) -> list[Obj]:
    return list((claim.get("metadata") or {}).get("ownerReferences") or [])


def has_owner_ref(claim: Obj, owner: Owner) -> bool:
    return bool(owner.uid) and any(r.get("uid") == owner.uid for r in _refs(claim))


def has_stale_owner_ref(claim: Obj, owner: Owner) -> bool:
    """The first reference naming the owner carries another uid."""
    for ref in _refs(claim):
        if owner.matches(ref):
            return ref.get("uid") != owner.uid
    return False


def has_unexpected_controller(claim: Obj, sts: Obj, set_: Owner, pod: Owner) -> bool:
    """hasUnexpectedController: with a Delete policy, a stale reference to the set or pod, or another
    controller, makes the claim someone else's."""
    if retention(sts) == (RETAIN, RETAIN):
        return False
    for ref in _refs(claim):
        if set_.matches(ref):
            if ref.get("uid") != set_.uid:
                return True
            continue
        if pod.matches(ref):
            if ref.get("uid") != pod.uid:
                return True
            continue
        if ref.get("controller"):
            return True
    return False


def _has_non_controller_owner(claim: Obj, set_: Owner, pod: Owner) -> bool:
    return any(r.get("uid") in (set_.uid, pod.uid) and r.get("uid") and not r.get("controller")
               for r in _refs(claim))


def claim_matches_policy(claim: Obj, sts: Obj, set_: Owner, pod: Owner, scaled_down: bool) -> bool:
    """claimOwnerMatchesSetAndPod: the claim's owner references are what the policy asks for."""
    if has_stale_owner_ref(claim, set_) or has_stale_owner_ref(claim, pod):
        return True  # not ours to fix
    if has_unexpected_controller(claim, sts, set_, pod):
        return not (has_owner_ref(claim, set_) or has_owner_ref(claim, pod))
    if _has_non_controller_owner(claim, set_, pod):
        return False
    when_deleted, when_scaled = retention(sts)
    on_set, on_pod = has_owner_ref(claim, set_), has_owner_ref(claim, pod)
    if when_scaled == RETAIN and when_deleted == DELETE:
        return on_set and not on_pod
    if when_scaled == DELETE and when_deleted == RETAIN:
        return not on_set and scaled_down == on_pod
    if when_scaled == DELETE and when_deleted == DELETE:
        return scaled_down != on_set and scaled_down == on_pod
    return not on_set and not on_pod


def claim_owner_refs(claim: Obj, sts: Obj, set_: Owner, pod: Owner, scaled_down: bool) -> list[dict[str, Any]]:
    """updateClaimOwnerRefForSetAndPod: the claim's owner references as the policy wants them."""
    unexpected = has_unexpected_controller(claim, sts, set_, pod)
    refs = [dict(r) for r in _refs(claim) if not (set_.matches(r) or pod.matches(r))]
    if unexpected:
        return refs

    def add(owner: Owner) -> None:
        if owner.ref is not None and not any(r.get("uid") == owner.uid for r in refs):
            refs.append(dict(owner.ref))
    when_deleted, when_scaled = retention(sts)
    if when_scaled == RETAIN and when_deleted == DELETE:
        add(set_)
    elif when_scaled == DELETE and when_deleted == RETAIN:
        if scaled_down:
            add(pod)
    elif when_scaled == DELETE and when_deleted == DELETE:
        add(pod if scaled_down else set_)
    return refs


def claim_bodies(sts: Obj, ordinal: int) -> list[dict[str, Any]]:
    """getPersistentVolumeClaims: one claim per template, named for the ordinal, labelled with the
    template's labels and the selector's matchLabels."""
    match_labels = dict((spec(sts).get("selector") or {}).get("matchLabels") or {})
    found: list[dict[str, Any]] = []
    for template in claim_templates(sts):
        claim = copy.deepcopy(dict(template))
        meta = dict(claim.get("metadata") or {})
        meta["name"] = claim_name(template, sts, ordinal)
        meta["namespace"] = sts["metadata"]["namespace"]
        meta["labels"] = {**(meta.get("labels") or {}), **match_labels}
        claim["metadata"] = meta
        claim["apiVersion"], claim["kind"] = "v1", "PersistentVolumeClaim"
        claim.pop("status", None)
        found.append(claim)
    return found


# --- the pod --------------------------------------------------------------------------------------------

def new_pod(sts: Obj, resource: Resource, template: Obj, ordinal: int, revision: str) -> dict[str, Any]:
    """newStatefulSetPod + setPodRevision: the template with the pod's identity, storage and revision."""
    pod = podcontrol.pod_from_template(sts, resource, template)
    name = pod_name(sts, ordinal)
    pod["metadata"]["name"] = name
    pod["metadata"]["labels"].update({**identity_labels(sts, ordinal), REVISION_LABEL: revision})
    body_spec = pod["spec"]
    body_spec["hostname"] = name
    if spec(sts).get("serviceName"):
        body_spec["subdomain"] = spec(sts)["serviceName"]
    claims = {(t.get("metadata") or {}).get("name"): claim_name(t, sts, ordinal) for t in claim_templates(sts)}
    volumes: list[dict[str, Any]] = [{"name": volume, "persistentVolumeClaim": {"claimName": claim}}
                                     for volume, claim in claims.items()]
    volumes += [dict(v) for v in body_spec.get("volumes") or [] if v.get("name") not in claims]
    if volumes:
        body_spec["volumes"] = volumes
    return pod


def running_and_ready(pod: Pod) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and podutil.is_ready(pod)


def unavailable(pod: Pod, min_ready: int, now: datetime) -> bool:
    """isUnavailable."""
    return not podutil.is_available(pod, min_ready, now) or podutil.is_being_deleted(pod)


def created(pod: Pod) -> bool:
    return bool((pod.get("status") or {}).get("phase"))


# --- the plan -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Revision:
    name: str
    template: Obj


@dataclass(frozen=True)
class Observed:
    sts: Obj
    resource: Resource
    pods: Sequence[Pod]  # the pods the set controls (members only)
    claims: Mapping[str, Obj]  # the namespace's PersistentVolumeClaims by name
    current: Revision
    update: Revision
    now: datetime


@dataclass(frozen=True)
class ClaimFix:
    """A claim whose owner references must change (resourceVersion guards the write)."""
    name: str
    resource_version: str
    owner_references: tuple[dict[str, Any], ...]
    conflicting: bool = False  # another controller holds it: the policy is ignored (an event says so)


@dataclass(frozen=True)
class Step:
    """One action, carried out in order. `create`: claims (`claims`) then the pod (`pod`); `claims`: missing
    claims of a Pending pod; `delete`: the pod; `update`: the pod's identity labels (`labels`); each may
    also fix claims' owner references (`fixes`). `blocked`: claims being deleted, so the step fails."""
    action: str
    pod: Pod
    claims: tuple[dict[str, Any], ...] = ()
    fixes: tuple[ClaimFix, ...] = ()
    blocked: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...] = ()
    status: dict[str, Any] = field(default_factory=dict)
    requeue: float | None = None
    events: tuple[Event, ...] = ()
    # kubeplane's Progressing condition (type, status, reason, message); the controller writes it on
    # kubeplane's kind only.
    progressing: tuple[str, str, str] = ("True", "Progressing", "")


def stuck_seconds(sts: Obj) -> int:
    return int(spec(sts).get("stuckPodSeconds") or STUCK_POD_SECONDS)


def not_ready_since(pod: Pod) -> datetime | None:
    """When the pod last stopped being ready: its Ready condition's transition, else its creation."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") != "True":
            changed = parse_time(condition.get("lastTransitionTime"))
            return changed or parse_time(pod["metadata"].get("creationTimestamp"))
    return parse_time(pod["metadata"].get("creationTimestamp"))


def min_ready_seconds(sts: Obj) -> int:
    return int(spec(sts).get("minReadySeconds") or 0)


def monotonic(sts: Obj) -> bool:
    return spec(sts).get("podManagementPolicy") != PARALLEL


def partition(sts: Obj) -> int | None:
    """The partition of a RollingUpdate (0 when rollingUpdate is absent, as apps/v1 defaults it); None
    for OnDelete."""
    strategy = spec(sts).get("updateStrategy") or {}
    if (strategy.get("type") or ROLLING_UPDATE) != ROLLING_UPDATE:
        return None
    return int((strategy.get("rollingUpdate") or {}).get("partition") or 0)


def replica_status(sts: Obj, pods: Sequence[Pod], current: str, update: str, now: datetime) -> dict[str, int]:
    """computeReplicaStatus."""
    min_ready = min_ready_seconds(sts)
    counts = {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0, "currentReplicas": 0, "updatedReplicas": 0}
    for pod in pods:
        if created(pod):
            counts["replicas"] += 1
        if running_and_ready(pod):
            counts["readyReplicas"] += 1
            if podutil.is_available(pod, min_ready, now):
                counts["availableReplicas"] += 1
        if created(pod) and not podutil.is_being_deleted(pod):
            revision = revision_of(pod)
            counts["currentReplicas"] += 1 if revision == current else 0
            counts["updatedReplicas"] += 1 if revision == update else 0
    return counts


class _Planner:
    def __init__(self, observed: Observed) -> None:
        self.o = observed
        self.sts = observed.sts
        self.set_owner = set_owner(self.sts, observed.resource)
        self.when_deleted, self.when_scaled = retention(self.sts)
        self.steps: list[Step] = []
        self.failed = False  # a step that will fail (a claim being deleted) ends the sync in either mode
        self.events: list[Event] = []
        self.requeues: list[float] = []
        self.waiting: tuple[str, Pod] | None = None  # (reason, pod) the sync stopped at
        self.replace_stuck = spec(self.sts).get("stuckPodPolicy") == REPLACE
        self.stuck_after = stuck_seconds(self.sts)

    def wait_on(self, reason: str, pod: Pod) -> bool:
        if self.waiting is None:
            self.waiting = (reason, pod)
        return True

    def stuck(self, pod: Pod) -> bool:
        """stuckPodPolicy Replace: a pod of a stale revision, not ready for stuckPodSeconds, goes."""
        if not self.replace_stuck or revision_of(pod) == self.o.update.name or podutil.is_being_deleted(pod) \
                or running_and_ready(pod):
            return False
        since = not_ready_since(pod)
        if since is None:
            return False
        waited = (self.o.now - since).total_seconds()
        if waited < self.stuck_after:
            self.requeues.append(self.stuck_after - waited + 1.0)
            return False
        name = pod["metadata"]["name"]
        self.events.append(Event("Warning", REPLACING_STUCK_POD,
                                 f"pod {name} of revision {revision_of(pod)} has not been Running and Ready for "
                                 f"{int(waited)}s (stuckPodSeconds {self.stuck_after}): replacing it with revision "
                                 f"{self.o.update.name}"))
        self.steps.append(Step("delete", pod))
        return True

    # claims
    def _claims(self, pod: Pod) -> list[tuple[dict[str, Any], Obj | None]]:
        """(the claim the pod needs, the one that exists), per template."""
        return [(body, self.o.claims.get(body["metadata"]["name"])) for body in claim_bodies(self.sts, ordinal_of(pod))]

    def stale_claim(self, pod: Pod) -> bool:
        """PodClaimIsStale: with whenScaled=Delete, a claim still names an earlier pod of this name."""
        if self.when_scaled == RETAIN:
            return False
        owner = pod_owner(pod)
        return any(existing is not None and has_stale_owner_ref(existing, owner) for _, existing in self._claims(pod))

    def missing(self, pod: Pod) -> tuple[list[dict[str, Any]], list[str]]:
        """createPersistentVolumeClaims: (claims to create, with the owner references the policy wants;
        claims being deleted)."""
        create: list[dict[str, Any]] = []
        blocked: list[str] = []
        scaled_down = not in_range(ordinal_of(pod), self.sts)
        for body, existing in self._claims(pod):
            if existing is None:
                refs = claim_owner_refs(body, self.sts, self.set_owner, pod_owner(pod), scaled_down)
                if refs:
                    body["metadata"]["ownerReferences"] = refs
                create.append(body)
            elif existing["metadata"].get("deletionTimestamp"):
                blocked.append(body["metadata"]["name"])
        return create, blocked

    def fixes(self, pod: Pod) -> list[ClaimFix]:
        """UpdatePodClaimForRetentionPolicy: the existing claims whose owner references the policy changes."""
        found: list[ClaimFix] = []
        owner = pod_owner(pod)
        scaled_down = not in_range(ordinal_of(pod), self.sts)
        for _, existing in self._claims(pod):
            if existing is None or claim_matches_policy(existing, self.sts, self.set_owner, owner, scaled_down):
                continue
            refs = claim_owner_refs(existing, self.sts, self.set_owner, owner, scaled_down)
            found.append(ClaimFix(existing["metadata"]["name"], str(existing["metadata"].get("resourceVersion") or ""),
                                  tuple(refs), has_unexpected_controller(existing, self.sts, self.set_owner, owner)))
        return found

    # replicas
    def process_replica(self, pod: Pod, is_new: bool, strict: bool) -> bool:
        """processReplica: True ends an OrderedReady sync (any sync, with `failed`)."""
        phase = (pod.get("status") or {}).get("phase")
        if not is_new and phase in ("Failed", "Succeeded"):
            if not podutil.is_being_deleted(pod):
                self.steps.append(Step("delete", pod))
            return True
        if is_new:
            if self.stale_claim(pod):
                return True
            create, blocked = self.missing(pod)
            self.steps.append(Step("create", pod, claims=tuple(create), blocked=tuple(blocked)))
            self.failed = self.failed or bool(blocked)
            return True
        if phase == "Pending":
            create, blocked = self.missing(pod)
            fixes = self.fixes(pod)
            if create or blocked or fixes:
                self.steps.append(Step("claims", pod, claims=tuple(create), blocked=tuple(blocked), fixes=tuple(fixes)))
                if blocked:
                    self.failed = True
                    return True
        if self.stuck(pod):
            return True
        if strict:
            if podutil.is_being_deleted(pod):
                return self.wait_on("PodTerminating", pod)
            if not running_and_ready(pod):
                return self.wait_on("PodNotReady", pod)
            if not podutil.is_available(pod, min_ready_seconds(self.sts), self.o.now):
                return self.wait_on("PodNotAvailable", pod)
        fixes = [] if phase == "Pending" else self.fixes(pod)
        if not identity_matches(self.sts, pod) or fixes:
            # updateIdentity: both labels written whenever the pod-name label is wrong. (Storage is not
            # "fixed": a live pod's volumes cannot change, so upstream's attempt always fails.)
            labels = {} if identity_matches(self.sts, pod) else identity_labels(self.sts, ordinal_of(pod))
            self.steps.append(Step("update", pod, fixes=tuple(fixes), labels=labels))
        return False


def plan(observed: Observed) -> Plan:
    sts, now = observed.sts, observed.now
    planner = _Planner(observed)
    min_ready = min_ready_seconds(sts)
    strict = monotonic(sts)
    count, start = replicas(sts), start_ordinal(sts)
    part = partition(sts)

    by_ordinal: dict[int, Pod] = {}
    condemned: list[Pod] = []
    for pod in observed.pods:
        ordinal = ordinal_of(pod)
        if in_range(ordinal, sts):
            by_ordinal[ordinal] = pod
        elif ordinal >= 0:
            condemned.append(pod)
    condemned.sort(key=ordinal_of, reverse=True)
    replicas_: list[tuple[Pod, bool]] = []
    for ordinal in range(start, start + count):
        existing = by_ordinal.get(ordinal)
        if existing is not None:
            replicas_.append((existing, False))
            continue
        # newVersionedStatefulSetPod: below the partition from the current revision, else the update one.
        revision = observed.current if part is not None and ordinal < start + part else observed.update
        replicas_.append((new_pod(sts, observed.resource, revision.template, ordinal, revision.name), True))

    first_unhealthy: Pod | None = None
    for pod, _ in replicas_:
        if unavailable(pod, min_ready, now):
            first_unhealthy = pod
            break
    if first_unhealthy is None:
        for pod in reversed(condemned):
            if unavailable(pod, min_ready, now):
                first_unhealthy = pod
                break

    current, update = observed.current.name, observed.update.name
    everything = [p for p, _ in replicas_] + condemned
    counts = replica_status(sts, everything, current, update, now)
    status = _status(sts, observed, counts)
    requeue = float(min_ready) if min_ready > 0 and counts["availableReplicas"] != count else None

    def done() -> Plan:
        final = _complete(sts, status)
        progressing = _progressing(planner, final)
        requeues = [r for r in (requeue, *planner.requeues) if r is not None]
        return Plan(steps=tuple(planner.steps), status=final, requeue=min(requeues) if requeues else None,
                    events=tuple(planner.events), progressing=progressing)

    if sts["metadata"].get("deletionTimestamp"):
        return Plan(status=_complete(sts, status))

    for pod, is_new in replicas_:
        if planner.process_replica(pod, is_new, strict) and (strict or planner.failed):
            return done()
    for pod in condemned:
        fixes = planner.fixes(pod)
        if fixes:
            planner.steps.append(Step("update", pod, fixes=tuple(fixes)))
    for pod in condemned:
        if podutil.is_being_deleted(pod):
            if strict:
                planner.wait_on("PodTerminating", pod)
                return done()
            continue
        if strict and pod is not first_unhealthy and (
                not running_and_ready(pod) or not podutil.is_available(pod, min_ready, now)):
            planner.wait_on("PodNotReady" if not running_and_ready(pod) else "PodNotAvailable", pod)
            return done()
        planner.steps.append(Step("delete", pod))
        if strict:
            return done()
    if part is None:
        return done()
    for index in range(len(replicas_) - 1, part - 1, -1):
        pod, _ = replicas_[index]
        if revision_of(pod) != update and not podutil.is_being_deleted(pod):
            planner.steps.append(Step("delete", pod))
            status["currentReplicas"] = status["currentReplicas"] - 1
            return done()
        if unavailable(pod, min_ready, now):
            planner.wait_on("PodNotReady" if not running_and_ready(pod) else "PodNotAvailable", pod)
            return done()
    return done()


_WAITING = {"PodTerminating": "to terminate", "PodNotReady": "to be Running and Ready",
            "PodNotAvailable": "to be available (minReadySeconds)"}


def _progressing(planner: _Planner, status: Mapping[str, Any]) -> tuple[str, str, str]:
    """(status, reason, message) of kubeplane's Progressing condition."""
    sts = planner.sts
    want = replicas(sts)
    if planner.waiting is not None:
        reason, pod = planner.waiting
        name = pod["metadata"]["name"]
        if reason == "PodNotAvailable":  # ready, counting minReadySeconds down: not stuck
            return "True", PROGRESSING, f"waiting for pod {name} {_WAITING[reason]}"
        since = not_ready_since(pod) if reason != "PodTerminating" else \
            parse_time(pod["metadata"].get("deletionTimestamp"))
        waited = (planner.o.now - since).total_seconds() if since is not None else 0.0
        if waited >= planner.stuck_after:
            return ("False", reason, f"waited {int(waited)}s for pod {name} {_WAITING[reason]}; the set does not move "
                    f"on until it is (stuckPodSeconds {planner.stuck_after})")
        planner.requeues.append(planner.stuck_after - waited + 1.0)
        return "True", PROGRESSING, f"waiting for pod {name} {_WAITING[reason]}"
    part = partition(sts)
    settled = status.get("readyReplicas") == want == status.get("replicas") and (
        status.get("updatedReplicas", 0) >= want - (part or 0) if part is not None else True)
    if settled and not planner.steps:
        return "True", "RolloutComplete", f"{want} replicas ready, {status.get('updatedReplicas', 0)} at revision " \
            f"{status.get('updateRevision')}"
    return "True", PROGRESSING, "creating, updating or deleting pods"


def progressing_condition(sts: Obj, plan: Plan, now: datetime) -> list[dict[str, Any]]:
    """status.conditions with the Progressing condition from the plan (its transition time kept while its
    status stays)."""
    old = [dict(c) for c in (sts.get("status") or {}).get("conditions") or []]
    previous = next((c for c in old if c.get("type") == PROGRESSING), None)
    state, reason, message = plan.progressing
    since = previous.get("lastTransitionTime") if previous is not None and previous.get("status") == state else None
    condition = {"type": PROGRESSING, "status": state, "reason": reason, "message": message,
                 "lastTransitionTime": since or format_time(now)}
    return [*(c for c in old if c.get("type") != PROGRESSING), condition]


def _status(sts: Obj, observed: Observed, counts: Mapping[str, int]) -> dict[str, Any]:
    old = sts.get("status") or {}
    status: dict[str, Any] = {"observedGeneration": sts["metadata"].get("generation"), **counts,
                              "currentRevision": observed.current.name, "updateRevision": observed.update.name,
                              "collisionCount": int(old.get("collisionCount") or 0)}
    if old.get("conditions"):
        status["conditions"] = old["conditions"]
    return status


def _complete(sts: Obj, status: dict[str, Any]) -> dict[str, Any]:
    """completeRollingUpdate: every replica updated and ready makes the update revision the current one."""
    want = replicas(sts)
    if partition(sts) is not None and status["updatedReplicas"] == want and status["readyReplicas"] == want \
            and status["replicas"] == want:
        status = {**status, "currentReplicas": status["updatedReplicas"], "currentRevision": status["updateRevision"]}
    return {k: v for k, v in status.items() if v is not None}
