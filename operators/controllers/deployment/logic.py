"""The Deployment's decisions: one pure function from what a sync observed to what it should do.

Mirrors pkg/controller/deployment for Kubernetes 1.34 (sync.go, rolling.go, recreate.go, progress.go,
util/deployment_util.go). Upstream's sync is a sequence of API calls whose results feed the next
step; here `plan(observed)` runs that sequence against an in-memory copy of the ReplicaSets and
returns every write it made, in order, plus the status upstream would write at the end. The
controller carries the writes out one by one and stops at the first failure (upstream returns the
error and the sync is retried), so the plan of the next sync starts from what really happened.

The steps of one sync (syncDeployment):

1. an empty selector: a SelectingAll warning and nothing else;
2. a Deployment being deleted: status only;
3. checkPausedConditions: Progressing Unknown DeploymentPaused / DeploymentResumed;
4. paused, or a scaling event (an active ReplicaSet's desired-replicas annotation differs from
   spec.replicas): `sync`, which only scales (proportionally during a rollout) and, when paused,
   cleans up history;
5. otherwise Recreate or RollingUpdate, then syncRolloutStatus (Available, Progressing with its
   deadline, ReplicaFailure copied from the ReplicaSets).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from operators.controllers.common import history
from operators.core import pods as podutil
from operators.core.intstr import scaled_value
from operators.core.timeutil import format_time, parse_time

Obj = Mapping[str, Any]

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
HASH_LABEL = "pod-template-hash"  # DefaultDeploymentUniqueLabelKey
MAX_REVISION_HISTORY_CHARS = 2000
NOT_COPIED = {LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS, ROLLBACK_TO}
MAX_INT32 = 2**31 - 1

# Beyond upstream (opt-in): spec.progressDeadlinePolicy Rollback rolls back to the last revision that
# completed when the deadline passes; the Deployment remembers that revision in this annotation.
LAST_COMPLETE = "apps.kubeplane.dev/last-complete-revision"
ROLLBACK_POLICY = "Rollback"
BLOCKING_SHOWN = 5  # pods named in the message

AVAILABLE, PROGRESSING, REPLICA_FAILURE = "Available", "Progressing", "ReplicaFailure"
# Reasons (util/deployment_util.go)
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
FAILED_RS_CREATE = "ReplicaSetCreateError"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"


# --- the spec, with upstream's defaults ------------------------------------------------------------


def quoted(name: str) -> str:
    """Go's %q, as upstream's messages quote names."""
    return json.dumps(name)


def replicas_of(d: Obj) -> int:
    value = (d.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def strategy_type(d: Obj) -> str:
    return ((d.get("spec") or {}).get("strategy") or {}).get("type") or "RollingUpdate"


def is_rolling(d: Obj) -> bool:
    return strategy_type(d) == "RollingUpdate"


def fenceposts(d: Obj) -> tuple[int, int]:
    """ResolveFenceposts: (maxSurge rounded up, maxUnavailable rounded down); both 0 makes
    unavailable 1. Recreate: (0, 0)."""
    if not is_rolling(d):
        return 0, 0
    rolling = ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
    replicas = replicas_of(d)
    surge = scaled_value(rolling.get("maxSurge"), replicas, True)
    unavailable = scaled_value(rolling.get("maxUnavailable"), replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(d: Obj) -> int:
    return fenceposts(d)[0] if is_rolling(d) else 0


def max_unavailable(d: Obj) -> int:
    """MaxUnavailable: at most spec.replicas, and 0 for Recreate or no replicas."""
    replicas = replicas_of(d)
    if not is_rolling(d) or replicas == 0:
        return 0
    return min(fenceposts(d)[1], replicas)


def min_ready_seconds(d: Obj) -> int:
    return int((d.get("spec") or {}).get("minReadySeconds") or 0)


def progress_deadline(d: Obj) -> int | None:
    """HasProgressDeadline: set and not MaxInt32 (the API server defaults it to 600)."""
    value = (d.get("spec") or {}).get("progressDeadlineSeconds", 600)
    return None if value is None or int(value) == MAX_INT32 else int(value)


def history_limit(d: Obj) -> int | None:
    value = (d.get("spec") or {}).get("revisionHistoryLimit", 10)
    return None if value is None else int(value)


def paused(d: Obj) -> bool:
    return bool((d.get("spec") or {}).get("paused"))


def deadline_policy(d: Obj) -> str | None:
    """kubeplane's spec.progressDeadlinePolicy: None (absent: upstream's behaviour), Report or Rollback."""
    value = (d.get("spec") or {}).get("progressDeadlinePolicy")
    return str(value) if value else None


def rolls_back(d: Obj) -> bool:
    return deadline_policy(d) == ROLLBACK_POLICY


def why_blocked(pod: Obj) -> str:
    """Why a pod is not available, as a person would say it: unschedulable, the waiting reason of a
    container (ImagePullBackOff, CrashLoopBackOff, ...), a container that exited, or not ready."""
    status = pod.get("status") or {}
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return "terminating"
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return str(condition.get("reason") or "Unschedulable")
    for container in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        state = container.get("state") or {}
        if (state.get("waiting") or {}).get("reason"):
            return str(state["waiting"]["reason"])
        if state.get("terminated"):
            terminated = state["terminated"]
            why = terminated.get("reason") or terminated.get("exitCode")
            return f"container {container.get('name')} exited ({why})"
    return "Pending" if status.get("phase") == "Pending" else "not ready"


def blocking_message(pods: Sequence[Obj], min_ready: int, now: datetime) -> str:
    blocked = sorted((p for p in pods if not podutil.is_available(p, min_ready, now)),
                     key=lambda p: str(p["metadata"].get("name")))
    if not blocked:
        return ""
    shown = ", ".join(f"{p['metadata']['name']} ({why_blocked(p)})" for p in blocked[:BLOCKING_SHOWN])
    more = f" and {len(blocked) - BLOCKING_SHOWN} more" if len(blocked) > BLOCKING_SHOWN else ""
    return f"Blocking pods: {shown}{more}."


# --- ReplicaSets as the sync sees them -------------------------------------------------------------


@dataclass
class RS:
    """A ReplicaSet during one sync: its spec and annotations as this sync leaves them."""

    obj: Obj
    replicas: int  # spec.replicas
    annotations: dict[str, str]
    min_ready_seconds: int
    created: bool = False  # created by this sync

    @classmethod
    def of(cls, obj: Obj) -> RS:
        spec = obj.get("spec") or {}
        return cls(obj, 1 if spec.get("replicas") is None else int(spec["replicas"]),
                   dict((obj.get("metadata") or {}).get("annotations") or {}), int(spec.get("minReadySeconds") or 0))

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def uid(self) -> str:
        return str(self.obj["metadata"].get("uid") or "")

    @property
    def status(self) -> Mapping[str, Any]:
        return {} if self.created else (self.obj.get("status") or {})

    def count(self, field_name: str) -> int:
        return int(self.status.get(field_name) or 0)

    @property
    def revision(self) -> int:
        try:
            return int(self.annotations.get(REVISION) or 0)
        except ValueError:
            return 0


def by_creation(rs: RS) -> tuple[float, str]:
    """ReplicaSetsByCreationTimestamp: oldest first, then by name."""
    created = parse_time((rs.obj.get("metadata") or {}).get("creationTimestamp"))
    return (created.timestamp() if created else math.inf), rs.name


def _semantic(value: Any) -> Any:
    """apiequality.Semantic: nil and empty maps and lists are equal."""
    if isinstance(value, Mapping):
        kept = {k: _semantic(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_semantic(v) for v in value]
    return value


def without_hash(template: Obj) -> Any:
    copied = copy.deepcopy(dict(template))
    labels = (copied.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    return _semantic(copied)


def equal_ignore_hash(a: Obj, b: Obj) -> bool:
    """EqualIgnoreHash: the templates are equal apart from the pod-template-hash label."""
    return bool(without_hash(a) == without_hash(b))


def find_new(d: Obj, sets: Sequence[RS]) -> RS | None:
    """FindNewReplicaSet: the oldest ReplicaSet whose template equals the Deployment's."""
    template = d["spec"]["template"]
    for rs in sorted(sets, key=by_creation):
        if equal_ignore_hash((rs.obj.get("spec") or {}).get("template") or {}, template):
            return rs
    return None


def template_hash(d: Obj) -> str:
    """ComputeHash of the template with status.collisionCount (kubeplane's hash: see common/history)."""
    collisions = (d.get("status") or {}).get("collisionCount")
    return history.hash_of(d["spec"]["template"], collisions)


# --- what a plan writes ----------------------------------------------------------------------------


@dataclass
class Write:
    """One API write, in plan order. kind: create | update | delete."""

    kind: str
    rs: RS
    event: tuple[str, str, str] | None = None  # (type, reason, message) once the write succeeded


@dataclass
class Observed:
    deployment: Obj
    sets: Sequence[Obj]  # the ReplicaSets this Deployment controls (after claiming)
    pods_by_set: Mapping[str, Sequence[Obj]]  # pods by the uid of their controlling ReplicaSet
    now: datetime
    selector_text: str = ""
    extended_status: bool = True  # kubeplane's CRD: status.selector too


@dataclass
class Plan:
    writes: list[Write] = field(default_factory=list)
    status: dict[str, Any] | None = None  # None: leave the status alone
    revision: str | None = None  # the Deployment's revision annotation, when it changes
    annotations: dict[str, str] = field(default_factory=dict)  # other annotations of the Deployment to set
    rollback_to: dict[str, Any] | None = None  # progressDeadlinePolicy Rollback: the template to write back
    events: list[tuple[str, str, str]] = field(default_factory=list)  # not tied to a write
    requeue_after: float | None = None
    new_name: str = ""  # the new ReplicaSet's name (for a failed create's condition)


class _Sync:
    """One run of syncDeployment over in-memory ReplicaSets; `plan` reads the result."""

    def __init__(self, observed: Observed) -> None:
        self.o = observed
        self.d = observed.deployment
        self.name = self.d["metadata"]["name"]
        self.now = observed.now
        self.sets = [RS.of(s) for s in observed.sets]
        self.status: dict[str, Any] = copy.deepcopy(dict(self.d.get("status") or {}))
        self.status_written = False
        self.plan = Plan()

    # writes
    def scale(self, rs: RS, to: int, operation: str | None = None) -> bool:
        """scaleReplicaSet(AndRecordEvent): new size and the replicas annotations; an event if the
        size changed. Returns whether it scaled."""
        replicas = replicas_of(self.d)
        wanted = {DESIRED_REPLICAS: str(replicas), MAX_REPLICAS: str(replicas + max_surge(self.d))}
        size_changes = rs.replicas != to
        annotations_change = any(rs.annotations.get(k) != v for k, v in wanted.items())
        if not size_changes and not annotations_change:
            return False
        before = rs.replicas
        rs.replicas = to
        rs.annotations.update(wanted)
        event = None
        if size_changes:
            operation = operation or ("up" if before < to else "down")
            event = ("Normal", "ScalingReplicaSet", f"Scaled {operation} replica set {rs.name} from {before} to {to}")
        self.plan.writes.append(Write("update", rs, event))
        return size_changes

    def scale_if_needed(self, rs: RS, to: int) -> bool:
        """scaleReplicaSetAndRecordEvent: nothing when the size is already right."""
        if rs.replicas == to:
            return False
        return self.scale(rs, to)

    # ReplicaSet selection
    def old_sets(self, new: RS | None) -> list[RS]:
        return [rs for rs in self.sets if new is None or rs is not new]

    def new_revision(self, old: Sequence[RS]) -> int:
        return max((rs.revision for rs in old), default=0) + 1

    def new_and_old(self, create: bool) -> tuple[RS | None, list[RS]]:
        """getAllReplicaSetsAndSyncRevision."""
        new = find_new(self.d, self.sets)
        old = self.old_sets(new)
        return self.new_set(new, old, create), old

    def new_set(self, existing: RS | None, old: list[RS], create: bool) -> RS | None:
        """getNewReplicaSet: bring an existing new ReplicaSet's annotations up to date, or create it."""
        revision = str(self.new_revision(old))
        deadline = progress_deadline(self.d) is not None
        if existing is not None:
            changed = self.revision_annotations(existing, revision, exists=True)
            if changed or existing.min_ready_seconds != min_ready_seconds(self.d):
                existing.min_ready_seconds = min_ready_seconds(self.d)
                self.plan.writes.append(Write("update", existing))
            self.set_revision(existing.annotations.get(REVISION, revision))
            if deadline and find_condition(self.status, PROGRESSING) is None:
                self.set_condition(PROGRESSING, "True", FOUND_NEW_RS, f"Found new replica set {quoted(existing.name)}")
            return existing
        if not create:
            return None
        obj = self.new_object()
        rs = RS.of(obj)
        rs.created = True
        rs.replicas = self.new_replicas([*old, rs], rs)
        self.revision_annotations(rs, revision, exists=False)
        self.plan.new_name = rs.name
        event = None
        if rs.replicas > 0:
            event = ("Normal", "ScalingReplicaSet", f"Scaled up replica set {rs.name} from 0 to {rs.replicas}")
        self.plan.writes.append(Write("create", rs, event))
        self.sets.append(rs)
        self.set_revision(revision)
        if deadline:
            self.set_condition(PROGRESSING, "True", NEW_RS_CREATED, f"Created new replica set {quoted(rs.name)}")
        return rs

    def new_object(self) -> dict[str, Any]:
        spec = self.d["spec"]
        template_hash_ = template_hash(self.d)
        template = copy.deepcopy(dict(spec["template"]))
        metadata = template.setdefault("metadata", {})
        metadata["labels"] = {**(metadata.get("labels") or {}), HASH_LABEL: template_hash_}
        selector = copy.deepcopy(dict(spec["selector"]))
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: template_hash_}
        return {
            "metadata": {
                "name": f"{self.name}-{template_hash_}",
                "namespace": self.d["metadata"]["namespace"],
                "labels": dict(metadata["labels"]),
            },
            "spec": {"replicas": 0, "minReadySeconds": min_ready_seconds(self.d), "selector": selector,
                     "template": template},
        }

    def revision_annotations(self, rs: RS, revision: str, *, exists: bool) -> bool:
        """SetNewReplicaSetAnnotations: the Deployment's annotations copied, the revision raised (the
        old one kept in revision-history when this ReplicaSet comes back), and for a new ReplicaSet
        the replicas annotations."""
        changed = False
        for key, value in ((self.d.get("metadata") or {}).get("annotations") or {}).items():
            if key in NOT_COPIED or rs.annotations.get(key) == value:
                continue
            rs.annotations[key] = value
            changed = True
        old_text = rs.annotations.get(REVISION)
        try:
            old_revision = int(old_text) if old_text else 0
        except ValueError:
            return False
        if old_revision < int(revision):
            rs.annotations[REVISION] = revision
            changed = True
            if old_text:
                history_text = rs.annotations.get(REVISION_HISTORY, "")
                if not history_text:
                    rs.annotations[REVISION_HISTORY] = old_text
                else:
                    kept = history_text.split(",")
                    total = len(history_text) + len(old_text) + 1
                    while total > MAX_REVISION_HISTORY_CHARS and kept:
                        total -= len(kept[0]) + 1
                        kept = kept[1:]
                    if total <= MAX_REVISION_HISTORY_CHARS:
                        rs.annotations[REVISION_HISTORY] = ",".join([*kept, old_text])
        if not exists:
            replicas = replicas_of(self.d)
            for key, value in ((DESIRED_REPLICAS, str(replicas)), (MAX_REPLICAS, str(replicas + max_surge(self.d)))):
                if rs.annotations.get(key) != value:
                    rs.annotations[key] = value
                    changed = True
        return changed

    def set_revision(self, revision: str) -> None:
        current = ((self.d.get("metadata") or {}).get("annotations") or {}).get(REVISION)
        if current != revision and self.plan.revision != revision:
            self.plan.revision = revision

    def new_replicas(self, all_sets: Sequence[RS], new: RS) -> int:
        """NewRSNewReplicas: rolling: up to replicas + surge in all, and never past replicas;
        Recreate: replicas."""
        replicas = replicas_of(self.d)
        if not is_rolling(self.d):
            return replicas
        current = sum(rs.replicas for rs in all_sets)
        most = replicas + fenceposts(self.d)[0]
        if current >= most:
            return new.replicas
        return new.replicas + min(most - current, replicas - new.replicas)

    # conditions (util.SetDeploymentCondition: same status and reason: no change)
    def set_condition(self, type_: str, status: str, reason: str, message: str,
                      transition_from: Obj | None = None) -> None:
        conditions = list(self.status.get("conditions") or [])
        current = find_condition(self.status, type_)
        if current is not None and current.get("status") == status and current.get("reason") == reason:
            return
        stamp = format_time(self.now)
        condition = {"type": type_, "status": status, "lastUpdateTime": stamp, "lastTransitionTime": stamp,
                     "reason": reason, "message": message}
        if transition_from is not None:
            condition.update(transition_from)
        elif current is not None and current.get("status") == status and current.get("lastTransitionTime"):
            condition["lastTransitionTime"] = current["lastTransitionTime"]
        self.status["conditions"] = [c for c in conditions if c.get("type") != type_] + [condition]

    def remove_condition(self, type_: str) -> None:
        if find_condition(self.status, type_) is not None:
            self.status["conditions"] = [c for c in self.status["conditions"] if c.get("type") != type_]

    # the sync
    def run(self) -> Plan:
        d = self.d
        selector = d["spec"].get("selector") or {}
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            self.plan.events.append(("Warning", "SelectingAll",
                                     "This deployment is selecting all pods. A non-empty selector is required."))
            if int(self.status.get("observedGeneration") or 0) < int(d["metadata"].get("generation") or 0):
                self.status["observedGeneration"] = d["metadata"].get("generation")
                self.plan.status = self.status
            return self.plan
        if d["metadata"].get("deletionTimestamp"):
            new, old = self.new_and_old(create=False)
            return self.finish_status([*old, *([new] if new else [])], new)
        self.paused_conditions()
        if paused(d):
            return self.scale_only()
        if self.scaling_event():
            return self.scale_only()
        if is_rolling(d):
            return self.rolling()
        return self.recreate()

    def paused_conditions(self) -> None:
        """checkPausedConditions: never over a ProgressDeadlineExceeded."""
        if progress_deadline(self.d) is None:
            return
        current = find_condition(self.status, PROGRESSING)
        if current is not None and current.get("reason") == TIMED_OUT:
            return
        paused_now = current is not None and current.get("reason") == PAUSED
        if paused(self.d) and not paused_now:
            self.set_condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused")
        elif not paused(self.d) and paused_now:
            self.set_condition(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed")

    def scaling_event(self) -> bool:
        """isScalingEvent: an active ReplicaSet was sized for another spec.replicas."""
        new, old = self.new_and_old(create=False)
        for rs in [*old, *([new] if new else [])]:
            if rs.replicas <= 0:
                continue
            desired = rs.annotations.get(DESIRED_REPLICAS)
            if desired is None:
                continue
            try:
                if int(desired) != replicas_of(self.d):
                    return True
            except ValueError:
                continue
        return False

    def scale_only(self) -> Plan:
        """sync: proportional scaling; history cleanup when paused."""
        new, old = self.new_and_old(create=False)
        self.proportional(new, old)
        if paused(self.d):
            self.cleanup(old)
        return self.finish_status([*old, *([new] if new else [])], new)

    def proportional(self, new: RS | None, old: list[RS]) -> None:
        """scale: one active (or the newest) ReplicaSet takes it all; a saturated new one empties the
        old ones; otherwise (rolling) the difference is shared out by size."""
        d = self.d
        replicas = replicas_of(d)
        latest = active_or_latest(new, old)
        if latest is not None:
            if latest.replicas != replicas:
                self.scale_if_needed(latest, replicas)
            return
        if new is not None and saturated(d, new):
            for rs in old:
                if rs.replicas > 0:
                    self.scale_if_needed(rs, 0)
            return
        if not is_rolling(d):
            return
        active = [rs for rs in [*old, *([new] if new else [])] if rs.replicas > 0]
        allowed = replicas + max_surge(d) if replicas > 0 else 0
        to_add = allowed - sum(rs.replicas for rs in active)
        operation = ""
        if to_add > 0:
            active = sorted_by_size(active, newer_first=True)
            operation = "up"
        elif to_add < 0:
            active = sorted_by_size(active, newer_first=False)
            operation = "down"
        added = 0
        sizes: dict[int, int] = {}
        for i, rs in enumerate(active):
            if to_add != 0:
                share = proportion(rs, d, to_add, added, self.status)
                sizes[i] = rs.replicas + share
                added += share
            else:
                sizes[i] = rs.replicas
        for i, rs in enumerate(active):
            if i == 0 and to_add != 0:
                sizes[i] = max(sizes[i] + to_add - added, 0)
            self.scale(rs, sizes[i], operation or ("up" if sizes[i] > rs.replicas else "down"))

    def cleanup(self, old: list[RS]) -> None:
        """cleanupDeployment: the oldest revisions beyond revisionHistoryLimit that hold no pods."""
        limit = history_limit(self.d)
        if limit is None:
            return
        alive = [rs for rs in old if not rs.obj["metadata"].get("deletionTimestamp") and not rs.created]
        excess = len(alive) - limit
        if excess <= 0:
            return
        for rs in sorted(alive, key=lambda r: (r.revision, *by_creation(r)))[:excess]:
            meta = rs.obj["metadata"]
            if (rs.count("replicas") != 0 or rs.replicas != 0
                    or int(meta.get("generation") or 0) > int(rs.status.get("observedGeneration") or 0)):
                continue
            self.plan.writes.append(Write("delete", rs))
            self.sets.remove(rs)

    def rolling(self) -> Plan:
        """rolloutRolling."""
        new, old = self.new_and_old(create=True)
        assert new is not None
        all_sets = [*old, new]
        if self.reconcile_new(all_sets, new):
            return self.rollout_status(all_sets, new)
        if self.reconcile_old(all_sets, [rs for rs in old if rs.replicas > 0], new):
            return self.rollout_status(all_sets, new)
        if complete(self.d, self.d.get("status") or {}):
            self.cleanup(old)
        return self.rollout_status(all_sets, new)

    def reconcile_new(self, all_sets: list[RS], new: RS) -> bool:
        replicas = replicas_of(self.d)
        if new.replicas == replicas:
            return False
        if new.replicas > replicas:
            return self.scale_if_needed(new, replicas)
        return self.scale_if_needed(new, self.new_replicas(all_sets, new))

    def reconcile_old(self, all_sets: list[RS], old: list[RS], new: RS) -> bool:
        if sum(rs.replicas for rs in old) == 0:
            return False
        total = sum(rs.replicas for rs in all_sets)
        min_available = replicas_of(self.d) - max_unavailable(self.d)
        new_unavailable = new.replicas - new.count("availableReplicas")
        most = total - min_available - new_unavailable
        if most <= 0:
            return False
        cleaned = self.cleanup_unhealthy(old, most)
        scaled = self.scale_down_old(all_sets, old)
        return cleaned + scaled > 0

    def cleanup_unhealthy(self, old: list[RS], most: int) -> int:
        """cleanupUnhealthyReplicas: the old ReplicaSets' unavailable pods go first, oldest set first."""
        done = 0
        for rs in sorted(old, key=by_creation):
            if done >= most:
                break
            if rs.replicas == 0 or rs.replicas == rs.count("availableReplicas"):
                continue
            count = min(most - done, rs.replicas - rs.count("availableReplicas"))
            self.scale(rs, rs.replicas - count, "down")
            done += count
        return done

    def scale_down_old(self, all_sets: list[RS], old: list[RS]) -> int:
        """scaleDownOldReplicaSetsForRollingUpdate: available pods above minAvailable, oldest set first."""
        min_available = replicas_of(self.d) - max_unavailable(self.d)
        available = sum(rs.count("availableReplicas") for rs in all_sets)
        if available <= min_available:
            return 0
        budget = available - min_available
        done = 0
        for rs in sorted(old, key=by_creation):
            if done >= budget:
                break
            if rs.replicas == 0:
                continue
            count = min(rs.replicas, budget - done)
            self.scale(rs, rs.replicas - count, "down")
            done += count
        return done

    def recreate(self) -> Plan:
        """rolloutRecreate: old ReplicaSets to 0, wait for their pods to be gone, then the new one."""
        new, old = self.new_and_old(create=False)
        all_sets = [*old, *([new] if new else [])]
        scaled = False
        for rs in old:
            if rs.replicas > 0 and self.scale_if_needed(rs, 0):
                scaled = True
        if scaled or self.old_pods_running(new, old):
            return self.rollout_status(all_sets, new)
        if new is None:
            new, old = self.new_and_old(create=True)
            assert new is not None
            all_sets = [*old, new]
        self.scale_if_needed(new, replicas_of(self.d))
        if complete(self.d, self.d.get("status") or {}):
            self.cleanup(old)
        return self.rollout_status(all_sets, new)

    def old_pods_running(self, new: RS | None, old: list[RS]) -> bool:
        if sum(rs.count("replicas") for rs in old) > 0:
            return True
        for uid, pods in self.o.pods_by_set.items():
            if new is not None and uid == new.uid:
                continue
            if any(((p.get("status") or {}).get("phase")) not in ("Failed", "Succeeded") for p in pods):
                return True
        return False

    # status
    def calculate(self, all_sets: Sequence[RS], new: RS | None) -> dict[str, Any]:
        d = self.d
        available = sum(rs.count("availableReplicas") for rs in all_sets)
        total = sum(rs.replicas for rs in all_sets)
        status: dict[str, Any] = {
            "observedGeneration": d["metadata"].get("generation", 0),
            "replicas": sum(rs.count("replicas") for rs in all_sets),
            "updatedReplicas": new.count("replicas") if new is not None else 0,
            "readyReplicas": sum(rs.count("readyReplicas") for rs in all_sets),
            "availableReplicas": available,
            "unavailableReplicas": max(total - available, 0),
        }
        if self.status.get("collisionCount") is not None:
            status["collisionCount"] = self.status["collisionCount"]
        if self.o.extended_status:
            status["selector"] = self.o.selector_text
        status["conditions"] = [dict(c) for c in self.status.get("conditions") or []]
        self.status = status
        if available >= replicas_of(d) - max_unavailable(d):
            self.set_condition(AVAILABLE, "True", MIN_AVAILABLE, "Deployment has minimum availability.")
        else:
            self.set_condition(AVAILABLE, "False", MIN_UNAVAILABLE, "Deployment does not have minimum availability.")
        return self.status

    def finish_status(self, all_sets: Sequence[RS], new: RS | None) -> Plan:
        """syncDeploymentStatus: counts and Available only."""
        self.calculate(all_sets, new)
        self.plan.status = self.status
        return self.plan

    def rollout_status(self, all_sets: Sequence[RS], new: RS | None) -> Plan:
        """syncRolloutStatus: counts, Available, Progressing and its deadline, ReplicaFailure."""
        d = self.d
        before = d.get("status") or {}
        status = self.calculate(all_sets, new)
        deadline = progress_deadline(d)
        if deadline is None:
            self.remove_condition(PROGRESSING)
        current = find_condition(before, PROGRESSING)
        finished = (status["replicas"] == status["updatedReplicas"] and current is not None
                    and current.get("reason") == NEW_RS_AVAILABLE)
        if deadline is not None and not finished:
            subject = f"ReplicaSet {quoted(new.name)}" if new is not None else f"Deployment {quoted(self.name)}"
            if complete(d, status):
                self.set_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, f"{subject} has successfully progressed.")
                self.remember_complete(new)
            elif progressing(before, status):
                ongoing = find_condition(self.status, PROGRESSING)
                keep = None
                if ongoing is not None and ongoing.get("status") == "True":
                    keep = {"lastTransitionTime": ongoing.get("lastTransitionTime")}
                self.remove_condition(PROGRESSING)
                self.set_condition(PROGRESSING, "True", RS_UPDATED, f"{subject} is progressing.", keep)
            elif timed_out(d, self.status, self.now):
                message = f"{subject} has timed out progressing."
                current_now = find_condition(self.status, PROGRESSING)
                if deadline_policy(d) and (current_now is None or current_now.get("reason") != TIMED_OUT):
                    message = self.roll_back(message, all_sets, new) if rolls_back(d) else \
                        self.explain(message, new)
                self.set_condition(PROGRESSING, "False", TIMED_OUT, message)
        failure = replica_failure(all_sets, new)
        if failure is not None:
            self.set_condition(REPLICA_FAILURE, failure["status"], failure["reason"], failure["message"],
                               {"lastTransitionTime": failure["lastTransitionTime"],
                                "lastUpdateTime": failure["lastUpdateTime"]})
        else:
            self.remove_condition(REPLICA_FAILURE)
        self.plan.status = self.status
        self.plan.requeue_after = stuck_requeue(d, self.status, self.now)
        return self.plan


    def remember_complete(self, new: RS | None) -> None:
        """progressDeadlinePolicy Rollback: note the revision that completed."""
        if not rolls_back(self.d) or new is None or not new.annotations.get(REVISION):
            return
        if ((self.d.get("metadata") or {}).get("annotations") or {}).get(LAST_COMPLETE) != new.annotations[REVISION]:
            self.plan.annotations[LAST_COMPLETE] = new.annotations[REVISION]

    def explain(self, message: str, new: RS | None) -> str:
        """★ progressDeadlinePolicy Report: upstream's condition, with the blocking pods named, and a
        ProgressDeadlineExceeded Warning saying the same."""
        blocking = blocking_message(self.o.pods_by_set.get(new.uid, []) if new is not None else [],
                                    min_ready_seconds(self.d), self.now)
        text = " ".join(part for part in (message, blocking) if part)
        self.plan.events.append(("Warning", TIMED_OUT, text))
        return text

    def roll_back(self, message: str, all_sets: Sequence[RS], new: RS | None) -> str:
        """★ progressDeadlinePolicy Rollback: the deadline just passed; write the template of the last
        revision that completed back into the Deployment (as `rollout undo` does), and say which pods
        blocked the rollout and why."""
        blocking = blocking_message(self.o.pods_by_set.get(new.uid, []) if new is not None else [],
                                    min_ready_seconds(self.d), self.now)
        wanted = ((self.d.get("metadata") or {}).get("annotations") or {}).get(LAST_COMPLETE)
        target = next((rs for rs in all_sets if rs is not new and wanted and rs.annotations.get(REVISION) == wanted),
                      None)
        if target is None:
            outcome = "No revision has completed, so there is nothing to roll back to."
        else:
            template = copy.deepcopy(dict((target.obj.get("spec") or {}).get("template") or {}))
            ((template.get("metadata") or {}).get("labels") or {}).pop(HASH_LABEL, None)
            self.plan.rollback_to = template
            outcome = f"Rolled back to revision {wanted}."
        text = " ".join(part for part in (message, outcome, blocking) if part)
        self.plan.events.append(("Warning", "ProgressDeadlineRollback" if target else TIMED_OUT, text))
        return text


def find_condition(status: Obj, type_: str) -> Mapping[str, Any] | None:
    found: Mapping[str, Any] | None = next(
        (c for c in status.get("conditions") or [] if c.get("type") == type_), None)
    return found


def active_or_latest(new: RS | None, old: Sequence[RS]) -> RS | None:
    """FindActiveOrLatest: the only active ReplicaSet, or the newest when none is active."""
    if new is None and not old:
        return None
    newest_first = sorted(old, key=by_creation, reverse=True)
    active = [rs for rs in [*newest_first, *([new] if new else [])] if rs.replicas > 0]
    if not active:
        return new if new is not None else newest_first[0]
    return active[0] if len(active) == 1 else None


def saturated(d: Obj, rs: RS) -> bool:
    """IsSaturated: sized for this spec.replicas and every replica available."""
    replicas = replicas_of(d)
    return (rs.annotations.get(DESIRED_REPLICAS) == str(replicas) and rs.replicas == replicas
            and rs.count("availableReplicas") == replicas)


def sorted_by_size(sets: list[RS], *, newer_first: bool) -> list[RS]:
    """ReplicaSetsBySizeNewer / BySizeOlder: larger first; among equals newer (or older) first."""
    ordered = sorted(sets, key=by_creation, reverse=newer_first)
    return sorted(ordered, key=lambda rs: -rs.replicas)


def proportion(rs: RS, d: Obj, to_add: int, added: int, status: Obj) -> int:
    """GetReplicaSetProportion."""
    if rs.replicas == 0 or to_add == 0 or to_add == added:
        return 0
    share = fraction(rs, d, status)
    allowed = to_add - added
    return min(share, allowed) if to_add > 0 else max(share, allowed)


def fraction(rs: RS, d: Obj, status: Obj) -> int:
    """getReplicaSetFraction: the set's size scaled by new max replicas / max replicas it was sized for."""
    replicas = replicas_of(d)
    if replicas == 0:
        return -rs.replicas
    most = replicas + max_surge(d)
    try:
        before = int(rs.annotations.get(MAX_REPLICAS) or 0)
    except ValueError:
        before = 0
    if before == 0:
        before = int(status.get("replicas") or 0)
        if before == 0:
            return 0
    return math.floor(rs.replicas * most / before + 0.5) - rs.replicas


def complete(d: Obj, status: Obj) -> bool:
    """DeploymentComplete: every replica updated and available, and this generation observed."""
    replicas = replicas_of(d)
    return (int(status.get("updatedReplicas") or 0) == replicas and int(status.get("replicas") or 0) == replicas
            and int(status.get("availableReplicas") or 0) == replicas
            and int(status.get("observedGeneration") or 0) >= int(d["metadata"].get("generation") or 0))


def progressing(old: Obj, new: Obj) -> bool:
    """DeploymentProgressing: more updated, fewer old, more ready or more available replicas."""
    def get(status: Obj, key: str) -> int:
        return int(status.get(key) or 0)
    old_old = get(old, "replicas") - get(old, "updatedReplicas")
    new_old = get(new, "replicas") - get(new, "updatedReplicas")
    return (get(new, "updatedReplicas") > get(old, "updatedReplicas") or new_old < old_old
            or get(new, "readyReplicas") > get(old, "readyReplicas")
            or get(new, "availableReplicas") > get(old, "availableReplicas"))


def timed_out(d: Obj, status: Obj, now: datetime) -> bool:
    """DeploymentTimedOut: no progress reported for progressDeadlineSeconds since lastUpdateTime."""
    deadline = progress_deadline(d)
    condition = find_condition(status, PROGRESSING)
    if deadline is None or condition is None or condition.get("reason") == NEW_RS_AVAILABLE:
        return False
    if condition.get("reason") == TIMED_OUT:
        return True
    since = parse_time(condition.get("lastUpdateTime"))
    return since is not None and since + timedelta(seconds=deadline) < now


def stuck_requeue(d: Obj, status: Obj, now: datetime) -> float | None:
    """requeueStuckDeployment: look again when the deadline would pass (plus a second).

    Two differences from upstream, which requeues rate-limited (from 5 ms) when less than a second
    is left: here the soonest is one second, and a Deployment whose last rollout finished
    (NewReplicaSetAvailable) is not requeued at all: DeploymentTimedOut ignores it, so looking again
    could not change anything (a pod of a finished rollout going unready would otherwise be polled
    without end)."""
    deadline = progress_deadline(d)
    # The condition this sync writes (upstream reads the stored one, but only calls this when the two
    # are equal; when the status changed it waits for the watch event of its own write instead).
    condition = find_condition(status, PROGRESSING)
    if deadline is None or condition is None:
        return None
    if complete(d, status) or condition.get("reason") in (TIMED_OUT, NEW_RS_AVAILABLE):
        return None
    since = parse_time(condition.get("lastUpdateTime"))
    if since is None:
        return None
    after = (since + timedelta(seconds=deadline) - now).total_seconds()
    return 1.0 if after < 1 else after + 1.0


def replica_failure(all_sets: Sequence[RS], new: RS | None) -> dict[str, Any] | None:
    """getReplicaFailures: the new ReplicaSet's ReplicaFailure first, else any old one's."""
    ordered = ([new] if new is not None else []) + [rs for rs in all_sets if rs is not new]
    for rs in ordered:
        for c in rs.status.get("conditions") or []:
            if c.get("type") == REPLICA_FAILURE:
                since = c.get("lastTransitionTime")
                return {"status": c.get("status"), "reason": c.get("reason", ""), "message": c.get("message", ""),
                        "lastTransitionTime": since, "lastUpdateTime": since}
    return None


def plan(observed: Observed) -> Plan:
    return _Sync(observed).run()


def collision_status(d: Obj) -> dict[str, Any]:
    """A create that met a same-named ReplicaSet with another template: count the collision."""
    status = dict(d.get("status") or {})
    status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
    return status


def create_failed_status(d: Obj, name: str, error: str, now: datetime) -> dict[str, Any] | None:
    """A failed create: Progressing False ReplicaSetCreateError (only with a progress deadline)."""
    if progress_deadline(d) is None:
        return None
    sync = _Sync(Observed(d, [], {}, now))
    message = f"Failed to create new replica set {quoted(name)}: {error}"
    sync.set_condition(PROGRESSING, "False", FAILED_RS_CREATE, message)
    return sync.status

