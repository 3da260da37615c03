"""The Job's decisions: one pure function from what a sync observed to what it should do.

Mirrors pkg/controller/job (job_controller.go, indexed_job_utils.go, backoff_utils.go) for Kubernetes
1.34, for the fields kubeplane's Job supports (see the package README for what is not there yet):

- a Job without a selector gets one first: `batch.kubernetes.io/controller-uid: <uid>` and the labels
  the API server adds for batch/v1, and backoffLimit's default (`plan_labels`); no pod is made before
  it is written;
- pods carry the `batch.kubernetes.io/job-tracking` finalizer; a finished pod is counted exactly once,
  in three steps across syncs and restarts (trackJobStatusAndRemoveFinalizers): its uid goes into
  status.uncountedTerminatedPods (written first), then its finalizer is removed, then its uid moves
  from the uncounted lists into succeeded/failed. `Plan.finalize` is step two, `Plan.status` holds
  steps one and three;
- a failed pod is one in phase Failed, or being deleted and not Succeeded (podReplacementPolicy
  TerminatingOrFailed, the default without a podFailurePolicy);
- the Job fails (FailureTarget, then Failed) when failed > backoffLimit (BackoffLimitExceeded),
  when its restartPolicy is OnFailure and its active pods' restarts reach the limit, or when it has
  been active longer than activeDeadlineSeconds (DeadlineExceeded); it succeeds (SuccessCriteriaMet,
  then Complete, CompletionsReached) when succeeded reaches completions (NonIndexed), every index
  has succeeded (Indexed), or, without completions, a pod has succeeded and none is active;
  the final condition comes only once nothing is uncounted and no pod is terminating;
- with backoffLimitPerIndex (Indexed) each index is retried on its own: its pods carry the index's
  failure count, a failed pod keeps its finalizer until its replacement exists, an index past its
  limit (or matching a FailIndex rule) goes into status.failedIndexes and is not retried; the Job
  fails when more than maxFailedIndexes indexes failed (MaxFailedIndexesExceeded), or once every
  index is done with some failed (FailedIndexes); an Indexed Job with a successPolicy succeeds when a
  rule is met (SuccessPolicy);
- otherwise it keeps min(parallelism, completions - succeeded) pods active (Indexed: the lowest
  indexes neither succeeded, failed nor active), at most 500 creates or deletes per sync, and waits
  out the pod-failure backoff (10 s doubling per failure since the last success, capped at 10
  minutes; per index with backoffLimitPerIndex) before it creates again; a suspended Job deletes its
  active pods.

`plan(observed)` returns a `Plan`; the controller carries it out and writes `Plan.status(...)`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from operators.controllers.job import policy
from operators.controllers.job.indexes import format_intervals, parse_intervals
from operators.core import conditions, pods
from operators.core.apis import Resource
from operators.core.events import Event
from operators.core.owners import owner_reference
from operators.core.pods import Pod
from operators.core.timeutil import format_time, parse_time

Obj = Mapping[str, Any]

BURST = 500  # maxPodCreateDeletePerSync
FINALIZER = "batch.kubernetes.io/job-tracking"
CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID, LEGACY_JOB_NAME = "controller-uid", "job-name"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
DEFAULT_BACKOFF_LIMIT = 6
MAX_INT32 = 2**31 - 1  # backoffLimit's default with backoffLimitPerIndex
INDEX_FAILURE_COUNT = "batch.kubernetes.io/job-index-failure-count"
INDEX_IGNORED_FAILURE_COUNT = "batch.kubernetes.io/job-index-ignored-failure-count"
BACKOFF_BASE = 10.0  # DefaultJobPodFailureBackOff
BACKOFF_MAX = 600.0  # MaxJobPodFailureBackOff

# Condition types, reasons and messages (batch/v1 and job_controller.go).
COMPLETE, FAILED, SUSPENDED = "Complete", "Failed", "Suspended"
SUCCESS_CRITERIA_MET, FAILURE_TARGET = "SuccessCriteriaMet", "FailureTarget"
COMPLETIONS_REACHED, COMPLETIONS_REACHED_MESSAGE = "CompletionsReached", "Reached expected number of succeeded pods"
BACKOFF_LIMIT_EXCEEDED, BACKOFF_LIMIT_MESSAGE = "BackoffLimitExceeded", "Job has reached the specified backoff limit"
DEADLINE_EXCEEDED, DEADLINE_MESSAGE = "DeadlineExceeded", "Job was active longer than specified deadline"
JOB_SUSPENDED, JOB_RESUMED = "JobSuspended", "JobResumed"
POD_FAILURE_POLICY = "PodFailurePolicy"
SUCCESS_POLICY = "SuccessPolicy"
MAX_FAILED_INDEXES_EXCEEDED = "MaxFailedIndexesExceeded"
MAX_FAILED_INDEXES_MESSAGE = "Job has exceeded the specified maximal number of failed indexes"
FAILED_INDEXES, FAILED_INDEXES_MESSAGE = "FailedIndexes", "Job has failed indexes"


# --- the spec, as the API server defaults it ---------------------------------------------------------

def spec(job: Obj) -> Obj:
    return job.get("spec") or {}


def parallelism(job: Obj) -> int:
    value = spec(job).get("parallelism")
    return 1 if value is None else int(value)


def completions(job: Obj) -> int | None:
    """spec.completions; batch/v1 defaults it to 1 when parallelism is unset too, the CRD does not
    know that rule, so it is applied here."""
    s = spec(job)
    if s.get("completions") is not None:
        return int(s["completions"])
    return 1 if s.get("parallelism") is None else None


def indexed(job: Obj) -> bool:
    return spec(job).get("completionMode") == "Indexed"


def backoff_limit(job: Obj) -> int:
    """spec.backoffLimit: 6 by default, or no limit (MaxInt32) when backoffLimitPerIndex is set
    (SetDefaults_Job)."""
    value = spec(job).get("backoffLimit")
    if value is None:
        return MAX_INT32 if backoff_limit_per_index(job) is not None else DEFAULT_BACKOFF_LIMIT
    return int(value)


def backoff_limit_per_index(job: Obj) -> int | None:
    """spec.backoffLimitPerIndex, for an Indexed Job (hasBackoffLimitPerIndex)."""
    value = spec(job).get("backoffLimitPerIndex")
    return None if value is None or not indexed(job) else int(value)


JOB_CONTROLLER_NAME = "kubernetes.io/job-controller"  # batch.JobControllerName: the built-in controller's


def managed_by_other(job: Obj) -> str | None:
    """managedByExternalController: the controller named by spec.managedBy when it is not the Job
    controller (kubeplane's answers to upstream's name, so ported manifests keep their meaning)."""
    name = spec(job).get("managedBy")
    return str(name) if name is not None and name != JOB_CONTROLLER_NAME else None


def suspended(job: Obj) -> bool:
    return bool(spec(job).get("suspend"))


def restart_policy(job: Obj) -> str:
    return str(((spec(job).get("template") or {}).get("spec") or {}).get("restartPolicy") or "")


def is_finished(job: Obj) -> bool:
    """IsJobFinished: Complete or Failed is True."""
    return any(c.get("type") in (COMPLETE, FAILED) and c.get("status") == "True"
               for c in (job.get("status") or {}).get("conditions") or [])


def ttl_remaining(job: Obj, now: datetime) -> float | None:
    """Seconds until a finished Job with ttlSecondsAfterFinished may be deleted (<= 0: now; None: never).
    The clock starts at the Complete or Failed condition's transition (ttlafterfinished's
    getFinishAndExpireTime)."""
    ttl = spec(job).get("ttlSecondsAfterFinished")
    if ttl is None or job["metadata"].get("deletionTimestamp"):
        return None
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in (COMPLETE, FAILED) and condition.get("status") == "True":
            finished_at = parse_time(condition.get("lastTransitionTime"))
            if finished_at is None:
                return None
            return (finished_at + timedelta(seconds=int(ttl)) - now).total_seconds()
    return None


def _true(job: Obj, type_: str) -> Mapping[str, Any] | None:
    found = conditions.find((job.get("status") or {}).get("conditions"), type_)
    return found if found is not None and found.get("status") == "True" else None


# --- labels and the selector --------------------------------------------------------------------------

def plan_labels(job: Obj) -> dict[str, Any] | None:
    """The merge patch that gives a Job without a selector its generated selector and template labels
    (batch/v1's PrepareForCreate), or None when it has a selector."""
    if spec(job).get("selector") is not None:
        return None
    meta = job["metadata"]
    labels = {CONTROLLER_UID: meta["uid"], JOB_NAME: meta["name"],
              LEGACY_CONTROLLER_UID: meta["uid"], LEGACY_JOB_NAME: meta["name"]}
    patch: dict[str, Any] = {"selector": {"matchLabels": {CONTROLLER_UID: meta["uid"]}},
                             "template": {"metadata": {"labels": labels}}}
    if spec(job).get("backoffLimit") is None:
        # SetDefaults_Job's backoffLimit, which depends on backoffLimitPerIndex (a CRD schema default
        # cannot): written in the same patch so the Job shows it; backoff_limit() assumes it anyway.
        patch["backoffLimit"] = backoff_limit(job)
    return {"spec": patch}


# --- indexes ------------------------------------------------------------------------------------------

def completion_index(pod: Pod) -> int | None:
    """The pod's index, from the annotation (or the label); None when absent or invalid."""
    meta = pod["metadata"]
    raw = (meta.get("annotations") or {}).get(COMPLETION_INDEX) or (meta.get("labels") or {}).get(COMPLETION_INDEX)
    if raw is None or not str(raw).isdigit():
        return None
    return int(raw)


def first_pending_indexes(done: set[int], active: set[int], count: int, total: int) -> list[int]:
    """The lowest `count` indexes below `total` that have neither succeeded nor an active pod."""
    found: list[int] = []
    for i in range(total):
        if len(found) >= count:
            break
        if i not in done and i not in active:
            found.append(i)
    return found


# --- pods ---------------------------------------------------------------------------------------------

def has_finalizer(pod: Pod) -> bool:
    return FINALIZER in (pod["metadata"].get("finalizers") or [])


def only_replace_failed(job: Obj) -> bool:
    """podReplacementPolicy Failed (its default when a podFailurePolicy is set): a pod is failed only
    in phase Failed, and a terminating pod is not replaced until it is."""
    policy = spec(job).get("podReplacementPolicy")
    return policy == "Failed" or (policy is None and bool(spec(job).get("podFailurePolicy")))


def is_failed(pod: Pod, job: Obj) -> bool:
    """isPodFailed: phase Failed, or (podReplacementPolicy TerminatingOrFailed) being deleted before it
    succeeded."""
    phase = (pod.get("status") or {}).get("phase")
    if phase == "Failed":
        return True
    return not only_replace_failed(job) and pods.is_being_deleted(pod) and phase != "Succeeded"


def counts_as_failure(pod: Pod, job: Obj) -> bool:
    """A failed pod that counts (towards backoffLimit and status.failed): not Ignored by the policy."""
    return is_failed(pod, job) and policy.match(job, pod).action != policy.IGNORE


def is_succeeded(pod: Pod) -> bool:
    return (pod.get("status") or {}).get("phase") == "Succeeded"


def finish_time(pod: Pod) -> datetime | None:
    """getFinishedTime: the last container's finishedAt, else the Ready=False transition, else the
    deletion timestamp."""
    status = pod.get("status") or {}
    latest: datetime | None = None
    for c in status.get("containerStatuses") or []:
        finished = parse_time(((c.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        if finished is not None and (latest is None or finished > latest):
            latest = finished
    if latest is not None:
        return latest
    ready = pods.ready_condition(pod)
    if ready is not None and ready.get("status") == "False":
        found = parse_time(ready.get("lastTransitionTime"))
        if found is not None:
            return found
    return parse_time(pod["metadata"].get("deletionTimestamp"))


def backoff_policy(job: Obj) -> tuple[float, float]:
    """(first wait, longest wait) of the pod-failure backoff: upstream's 10 s and 600 s, unless the
    kubeplane-only spec.backoffPolicy says otherwise (its maxSeconds defaults to the larger of 600 and
    initialSeconds)."""
    raw = spec(job).get("backoffPolicy") or {}
    base = float(raw.get("initialSeconds") or BACKOFF_BASE)
    cap = float(raw["maxSeconds"]) if raw.get("maxSeconds") else max(BACKOFF_MAX, base)
    return base, cap


def retry_after(pods_seen: Sequence[Pod], job: Obj) -> tuple[datetime | None, bool]:
    """(when the next pod may be created by the backoff the pods' failures ask for, whether a success
    finished after every visible failure). The first is None when no failure came after the last
    success: 10 s doubling per such failure, capped at 10 minutes, from the last one's finish time."""
    last_success: datetime | None = None
    failures: list[datetime] = []
    for pod in pods_seen:
        when = finish_time(pod)
        if when is None:
            continue
        if is_succeeded(pod):
            last_success = when if last_success is None or when > last_success else last_success
        elif counts_as_failure(pod, job):
            failures.append(when)
    recent = [f for f in failures if last_success is None or f > last_success]
    if not recent:
        return None, last_success is not None
    base, cap = backoff_policy(job)
    delay = min(base * 2 ** (len(recent) - 1), cap)
    return max(recent) + timedelta(seconds=delay), False


def backoff_remaining(pods_seen: Sequence[Pod], now: datetime, job: Obj) -> float:
    """Seconds until the next pod may be created by the pods' failures (0: create now)."""
    until, _ = retry_after(pods_seen, job)
    return 0.0 if until is None else max((until - now).total_seconds(), 0.0)


def next_retry(job: Obj, pods_seen: Sequence[Pod], now: datetime, stored: bool) -> datetime | None:
    """When the Job may create again after pod failures (None: now). With `stored` (kubeplane's Jobs),
    status.nextRetryTime counts too, so a wait survives a restart and the failed pods' deletion,
    unless a success finished after every failure the pods still show (a success resets the
    backoff, as upstream)."""
    until, reset = retry_after(pods_seen, job)
    kept = parse_time((job.get("status") or {}).get("nextRetryTime")) if stored and not reset else None
    if kept is not None and (until is None or kept > until):
        until = kept
    return until if until is not None and until > now else None


# --- backoffLimitPerIndex (indexed_job_utils.go, backoff_utils.go) ------------------------------------

def _count(pod: Pod, key: str) -> int:
    raw = ((pod["metadata"].get("annotations") or {}).get(key))
    try:
        value = int(str(raw))
    except ValueError:
        return 0
    return value if 0 <= value <= MAX_INT32 else 0


def index_failure_count(pod: Pod) -> int:
    """The failures its index had before this pod (the job-index-failure-count annotation)."""
    return _count(pod, INDEX_FAILURE_COUNT)


def absolute_failure_count(pod: Pod) -> int:
    """getIndexAbsoluteFailureCount: counted and ignored failures of its index before this pod."""
    return _count(pod, INDEX_FAILURE_COUNT) + _count(pod, INDEX_IGNORED_FAILURE_COUNT)


def is_index_failed(job: Obj, pod: Pod) -> bool:
    """isIndexFailed: the pod failed and either matched a FailIndex rule, or its failure counts and
    its index had already failed backoffLimitPerIndex times."""
    if not is_failed(pod, job):
        return False
    action = policy.match(job, pod).action
    if action == policy.FAIL_INDEX:
        return True
    limit = spec(job).get("backoffLimitPerIndex")
    return action != policy.IGNORE and limit is not None and index_failure_count(pod) >= int(limit)


def new_index_failure_counts(job: Obj, replaced: Pod | None) -> tuple[int, int]:
    """getNewIndexFailureCounts: the counts a replacement for `replaced` carries (0, 0 for a first pod)."""
    if replaced is None:
        return 0, 0
    counted, ignored = _count(replaced, INDEX_FAILURE_COUNT), _count(replaced, INDEX_IGNORED_FAILURE_COUNT)
    if policy.match(job, replaced).action == policy.IGNORE:
        return counted, ignored + 1
    return counted + 1, ignored


def remaining_for_index(last_failed: Pod | None, now: datetime, base: float = BACKOFF_BASE,
                        cap: float = BACKOFF_MAX) -> float:
    """getRemainingTimePerIndex: the index's backoff (10 s doubling per failure of the index, counted
    and ignored, capped at 10 minutes) left after its last failed pod finished (0: create now)."""
    if last_failed is None:
        return 0.0
    failures = absolute_failure_count(last_failed) + 1
    finished = finish_time(last_failed)
    if finished is None:
        return 0.0
    delay = base
    for _ in range(1, failures):
        delay *= 2
        if delay >= cap:
            delay = cap
            break
    return max((finished + timedelta(seconds=delay) - now).total_seconds(), 0.0)


def delayed_per_index(job: Obj, pods_: Sequence[Pod], done: set[int], failed: set[int], active: set[int],
                      total: int) -> dict[int, Pod]:
    """getPodsWithDelayedDeletionPerIndex: per pending index, its newest failed pod (the highest failure
    count, then the latest finish), whose finalizer stays until a replacement carries its count on."""
    found: dict[int, Pod] = {}
    for pod in pods_:
        if not is_failed(pod, job):
            continue
        index = completion_index(pod)
        if index is None or index >= total or index in done or index in failed or index in active:
            continue
        last = found.get(index)
        if last is None:
            found[index] = pod
            continue
        finished, last_finished = finish_time(pod), finish_time(last)
        later = finished is None or last_finished is None or finished >= last_finished
        if absolute_failure_count(last) <= absolute_failure_count(pod) and later:
            found[index] = pod
    return found


def pod_from_template(job: Obj, resource: Resource, index: int | None, replacing: Pod | None = None,
                      ) -> dict[str, Any]:
    """The pod a Job makes: the template with the tracking finalizer and the Job as controller; for an
    Indexed Job the index as annotation, label, hostname and JOB_COMPLETION_INDEX; with
    backoffLimitPerIndex the index's failure counts, carried on from the pod it replaces."""
    template = spec(job).get("template") or {}
    meta = template.get("metadata") or {}
    name = job["metadata"]["name"]
    labels = dict(meta.get("labels") or {})
    annotations = dict(meta.get("annotations") or {})
    body_spec = copy.deepcopy(template.get("spec") or {})
    generate = f"{name}-"
    if index is not None:
        generate = f"{name}-{index}-"
        annotations[COMPLETION_INDEX] = str(index)
        labels[COMPLETION_INDEX] = str(index)
        body_spec.setdefault("hostname", f"{name}-{index}")
        env = {"name": COMPLETION_INDEX_ENV,
               "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}}}
        for key in ("initContainers", "containers"):
            for container in body_spec.get(key) or []:
                container["env"] = [e for e in container.get("env") or [] if e.get("name") != COMPLETION_INDEX_ENV]
                container["env"].append(env)
    if index is not None and backoff_limit_per_index(job) is not None:
        counted, ignored = new_index_failure_counts(job, replacing)
        annotations[INDEX_FAILURE_COUNT] = str(counted)
        if ignored > 0:
            annotations[INDEX_IGNORED_FAILURE_COUNT] = str(ignored)
    metadata: dict[str, Any] = {
        "generateName": generate,
        "namespace": job["metadata"]["namespace"],
        "labels": labels,
        "finalizers": [*(meta.get("finalizers") or []), FINALIZER],
        "ownerReferences": [owner_reference(job, resource)],
    }
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": body_spec}


# --- the plan -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Observed:
    job: Obj
    pods: Sequence[Pod]  # the pods the Job controls (its selector matching), finished and terminating too
    expectations_satisfied: bool
    now: datetime
    # Pods whose finalizer removal was sent and the cache does not show yet (upstream's
    # finalizerExpectations): their uids may already be counted, so they are not new.
    removing: frozenset[str] = frozenset()
    # kubeplane's own Jobs: status.nextRetryTime is kept (batch/v1's status has no such field).
    extras: bool = True


@dataclass(frozen=True)
class Plan:
    observed: Observed
    labels: dict[str, Any] | None = None  # the selector patch: written alone, before anything else
    record: dict[str, Any] | None = None  # step one: the status listing newly finished pods as uncounted
    finalize: tuple[Pod, ...] = ()  # step two: the uncounted pods that still hold the finalizer
    create: tuple[int | None, ...] = ()  # one entry per pod to create: its index (None: NonIndexed)
    replacing: Mapping[int, Pod] = field(default_factory=dict)  # per index: the failed pod a create replaces
    delete: tuple[Pod, ...] = ()
    status: dict[str, Any] = field(default_factory=dict)  # step three: counted, and everything else
    events: tuple[Event, ...] = ()
    requeue: float | None = None


def _uncounted(job: Obj) -> tuple[set[str], set[str]]:
    raw = (job.get("status") or {}).get("uncountedTerminatedPods") or {}
    return set(raw.get("succeeded") or []), set(raw.get("failed") or [])


def _restarts(active: Sequence[Pod]) -> int:
    return sum(int(c.get("restartCount") or 0) for p in active
               for key in ("initContainerStatuses", "containerStatuses")
               for c in (p.get("status") or {}).get(key) or [])


def exceeds_backoff_limit(job: Obj, failed: int, active: Sequence[Pod]) -> bool:
    """failed > backoffLimit, or (restartPolicy OnFailure) the active pods' restarts reach it
    (pastBackoffLimitOnFailure: any restart when the limit is 0)."""
    limit = backoff_limit(job)
    if failed > limit:
        return True
    if restart_policy(job) != "OnFailure":
        return False
    restarts = _restarts(active)
    return restarts > 0 if limit == 0 else restarts >= limit


def plan(observed: Observed) -> Plan:
    job, now = observed.job, observed.now
    labels = plan_labels(job)
    if labels is not None:
        return Plan(observed, labels=labels)
    old = job.get("status") or {}
    total = completions(job)
    is_indexed = indexed(job) and total is not None
    finished = is_finished(job)

    # Counting. A pod is counted once its uid left the uncounted lists for the counters; the plan's
    # numbers are the effective ones (counted, uncounted and newly finished), as upstream decides on.
    # An Indexed Job's successes are counted by index instead (completedIndexes is idempotent), so
    # their uids are never listed. A finished Job counts nothing more.
    known_s, known_f = _uncounted(job)
    new_s: set[str] = set()
    new_f: set[str] = set()
    completed: set[int] = parse_intervals(old.get("completedIndexes"), total) if is_indexed else set()
    old_completed = set(completed)
    finishing: list[Pod] = []  # finished pods whose finalizer goes this sync
    for pod in observed.pods:
        uid = pod["metadata"]["uid"]
        if not has_finalizer(pod) or uid in observed.removing:
            continue
        if finished:
            finishing.append(pod)
            continue
        if is_succeeded(pod):
            index = completion_index(pod)
            if is_indexed:
                if index is not None and total is not None and index < total:
                    completed.add(index)
            elif uid not in known_s:
                new_s.add(uid)
            finishing.append(pod)
        elif is_failed(pod, job):
            if uid not in known_f and policy.match(job, pod).action != policy.IGNORE:
                new_f.add(uid)
            finishing.append(pod)
    # backoffLimitPerIndex: the indexes that failed for good (kept in status.failedIndexes, written
    # with the uncounted record, before any finalizer goes), and per pending index the failed pod whose
    # finalizer waits for its replacement (it carries the index's failure count on).
    per_index = backoff_limit_per_index(job) if is_indexed else None
    failed_indexes: set[int] = set()
    delayed: dict[int, Pod] = {}
    if per_index is not None and total is not None:
        failed_indexes = parse_intervals(old.get("failedIndexes"), total)
        valid = [p for p in observed.pods if has_finalizer(p) and p["metadata"]["uid"] not in observed.removing
                 and p["metadata"]["uid"] not in known_s | known_f]
        failed_indexes |= {i for p in valid if (i := completion_index(p)) is not None and i < total
                           and is_index_failed(job, p)}
        active_indexes = {i for p in observed.pods if pods.is_active(p) and (i := completion_index(p)) is not None}
        if not finished:
            delayed = delayed_per_index(job, valid, completed, failed_indexes, active_indexes, total)
        waiting = {p["metadata"]["uid"] for p in delayed.values()}
        finishing = [p for p in finishing if p["metadata"]["uid"] not in waiting]
        new_f -= waiting
    old_failed_indexes = old.get("failedIndexes")

    def tally() -> tuple[dict[str, Any] | None, tuple[Pod, ...], int, int]:
        uncounted_s, uncounted_f = known_s | new_s, known_f | new_f
        record = None
        indexes_failed = format_intervals(failed_indexes) if per_index is not None else None
        if new_s or new_f or completed != old_completed or indexes_failed != old_failed_indexes:
            record = {**old, "uncountedTerminatedPods": {"succeeded": sorted(uncounted_s),
                                                         "failed": sorted(uncounted_f)}}
            if is_indexed:
                record["completedIndexes"] = format_intervals(completed)
                record["succeeded"] = len(completed)
            if indexes_failed is not None:
                record["failedIndexes"] = indexes_failed
        finalize = tuple(sorted(finishing, key=lambda p: str(p["metadata"]["name"])))
        succeeded = len(completed) if is_indexed else int(old.get("succeeded") or 0) + len(uncounted_s)
        failed = int(old.get("failed") or 0) + len(uncounted_f)
        if finished:
            succeeded, failed = int(old.get("succeeded") or 0), int(old.get("failed") or 0)
        return record, finalize, succeeded, failed

    record, finalize, succeeded, failed = tally()

    active = [p for p in observed.pods if pods.is_active(p)]
    terminating = sum(1 for p in observed.pods if pods.is_terminating(p))
    current: list[dict[str, Any]] = [dict(c) for c in old.get("conditions") or []]
    events: list[Event] = []
    start_time = old.get("startTime")
    completion_time = old.get("completionTime")
    requeue: float | None = None
    retry_at: datetime | None = None  # status.nextRetryTime
    create: list[int | None] = []
    delete: list[Pod] = []
    is_suspended = suspended(job) and not finished

    if not finished:
        # Suspension (and resumption, which restarts the clock of activeDeadlineSeconds).
        was_suspended = _true(job, SUSPENDED) is not None
        if is_suspended and not was_suspended:
            current = conditions.set_condition(current, SUSPENDED, "True", JOB_SUSPENDED, "Job suspended", now,
                                               stamps=("lastProbeTime",))
            events.append(Event("Normal", "Suspended", "Job suspended"))
        elif not is_suspended and was_suspended:
            current = conditions.set_condition(current, SUSPENDED, "False", JOB_RESUMED, "Job resumed", now,
                                               stamps=("lastProbeTime",))
            events.append(Event("Normal", "Resumed", "Job resumed"))
            start_time = None
        if start_time is None and not is_suspended:
            start_time = format_time(now)

        # Terminal decisions: an interim condition first (FailureTarget / SuccessCriteriaMet), the final
        # one (Failed / Complete) once no pod is active or terminating.
        target = _true(job, FAILURE_TARGET) or _true(job, SUCCESS_CRITERIA_MET)
        interim: tuple[str, str, str] | None = None
        if target is not None:
            interim = (str(target["type"]), str(target.get("reason", "")), str(target.get("message", "")))
        else:
            deadline = spec(job).get("activeDeadlineSeconds")
            started = parse_time(start_time)
            elapsed = (now - started).total_seconds() if started is not None else 0.0
            fail_job = next((m.message for p in sorted(observed.pods, key=lambda p: str(p["metadata"]["name"]))
                             if is_failed(p, job) and (m := policy.match(job, p)).action == policy.FAIL_JOB), None)
            if fail_job is not None:
                interim = (FAILURE_TARGET, POD_FAILURE_POLICY, fail_job)
            elif exceeds_backoff_limit(job, failed, active):
                interim = (FAILURE_TARGET, BACKOFF_LIMIT_EXCEEDED, BACKOFF_LIMIT_MESSAGE)
            elif deadline is not None and not is_suspended and elapsed >= int(deadline):
                interim = (FAILURE_TARGET, DEADLINE_EXCEEDED, DEADLINE_MESSAGE)
            elif per_index is not None and (most := spec(job).get("maxFailedIndexes")) is not None \
                    and len(failed_indexes) > int(most):
                interim = (FAILURE_TARGET, MAX_FAILED_INDEXES_EXCEEDED, MAX_FAILED_INDEXES_MESSAGE)
            elif per_index is not None and total is not None and failed_indexes \
                    and len(failed_indexes) + len(completed) >= total:
                interim = (FAILURE_TARGET, FAILED_INDEXES, FAILED_INDEXES_MESSAGE)
            elif is_indexed and (matched := policy.success_policy_match(job, completed, total)) is not None:
                interim = (SUCCESS_CRITERIA_MET, SUCCESS_POLICY, matched)
            elif (total is not None and succeeded >= total) or (total is None and succeeded > 0 and not active):
                interim = (SUCCESS_CRITERIA_MET, COMPLETIONS_REACHED, COMPLETIONS_REACHED_MESSAGE)
            elif deadline is not None and not is_suspended:
                requeue = max(int(deadline) - elapsed, 0.0)

        if interim is not None or job["metadata"].get("deletionTimestamp"):
            # A Job that reached its target (or is being deleted) releases every pod's finalizer; on a
            # failure target every pod that did not succeed counts as failed, unless the policy
            # ignores it (trackJobStatusAndRemoveFinalizers, canRemoveFinalizer).
            taken = {p["metadata"]["uid"] for p in finishing}
            failing = interim is not None and interim[0] == FAILURE_TARGET
            for pod in observed.pods:
                uid = pod["metadata"]["uid"]
                if not has_finalizer(pod) or uid in observed.removing or uid in taken:
                    continue
                finishing.append(pod)
                if failing and not is_succeeded(pod) and uid not in known_f \
                        and policy.match(job, pod).action != policy.IGNORE:
                    new_f.add(uid)
            record, finalize, succeeded, failed = tally()

        if interim is not None:
            type_, reason, message = interim
            if target is None:
                current = conditions.set_condition(current, type_, "True", reason, message, now,
                                                   stamps=("lastProbeTime",))
            delete = active[:BURST]
            if not active and terminating == 0:
                final = COMPLETE if type_ == SUCCESS_CRITERIA_MET else FAILED
                current = conditions.set_condition(current, final, "True", reason, message, now,
                                                   stamps=("lastProbeTime",))
                if final == COMPLETE:
                    completion_time = format_time(now)
                    events.append(Event("Normal", "Completed", "Job completed"))
                else:
                    events.append(Event("Warning", reason, message))
        elif is_suspended:
            delete = active[:BURST]
        elif observed.expectations_satisfied and not job["metadata"].get("deletionTimestamp"):
            want = parallelism(job) if total is None else min(parallelism(job), max(total - succeeded, 0))
            if total is None and succeeded > 0:
                want = min(want, len(active))  # once a pod succeeded, no new ones
            if len(active) > want:
                # Newest and least ready first (controller.ActivePodsWithRanks).
                delete = pods.rank_for_deletion(active, [], now)[:min(len(active) - want, BURST)]
            elif len(active) < want:
                # With backoffLimitPerIndex each index waits out its own backoff, not the Job's.
                retry_at = next_retry(job, observed.pods, now, observed.extras) if per_index is None else None
                if retry_at is not None:
                    wait = (retry_at - now).total_seconds()
                    requeue = wait if requeue is None else min(requeue, wait)
                else:
                    missing = want - len(active) - (terminating if only_replace_failed(job) else 0)
                    missing = min(max(missing, 0), BURST)
                    if is_indexed and total is not None:
                        busy = {i for p in active if (i := completion_index(p)) is not None}
                        if only_replace_failed(job):
                            busy |= {i for p in observed.pods if pods.is_terminating(p)
                                     and (i := completion_index(p)) is not None}
                        pending = first_pending_indexes(completed | failed_indexes, busy, missing, total)
                        if per_index is not None and pending:
                            # getPodCreationInfoForIndependentIndexes: the indexes out of backoff now,
                            # or (none) a requeue for the soonest.
                            base, cap = backoff_policy(job)
                            left = {i: remaining_for_index(delayed.get(i), now, base, cap) for i in pending}
                            pending = [i for i in pending if left[i] <= 0]
                            if not pending:
                                soonest = min(left.values())
                                requeue = soonest if requeue is None else min(requeue, soonest)
                                retry_at = now + timedelta(seconds=soonest)
                        create = list(pending)
                    else:
                        create = [None] * missing
        elif not job["metadata"].get("deletionTimestamp"):
            # Waiting for the cache to show this controller's own pod changes: a backoff still runs.
            kept = parse_time(old.get("nextRetryTime")) if observed.extras else None
            retry_at = kept if kept is not None and kept > now else None

    gone = {p["metadata"]["uid"] for p in delete}
    status: dict[str, Any] = {
        "active": len([p for p in active if p["metadata"]["uid"] not in gone]),
        "ready": sum(1 for p in active if pods.is_ready(p) and p["metadata"]["uid"] not in gone),
        "terminating": terminating,
        "succeeded": succeeded,
        "failed": failed,
        "uncountedTerminatedPods": {},
    }
    if start_time is not None:
        status["startTime"] = start_time
    if completion_time is not None:
        status["completionTime"] = completion_time
    if is_indexed:
        status["completedIndexes"] = format_intervals(completed)
    if per_index is not None:
        status["failedIndexes"] = format_intervals(failed_indexes)
    if current:
        status["conditions"] = current
    if retry_at is not None and observed.extras:
        status["nextRetryTime"] = format_time(retry_at)
    replacing = {i: delayed[i] for i in create if i is not None and i in delayed}
    return Plan(observed, record=record, finalize=finalize, create=tuple(create), delete=tuple(delete),
                status=status, events=tuple(events), requeue=requeue, replacing=replacing)
