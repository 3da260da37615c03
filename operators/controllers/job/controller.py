"""The Job controller's I/O: informer handlers that enqueue, and the sync that acts.

Read side by side with pkg/controller/job/job_controller.go:

- handlers only enqueue: a Job on any change; a pod's controlling Job (kind, name and uid must match)
  on add, update and delete, settling the expectations as addPod/updatePod/deletePod do. A pod that
  still holds the job-tracking finalizer while its Job is gone is queued on its own
  (`orphan/<namespace>/<name>`): its finalizer is removed (syncOrphanPod), or it would never go;
- a Job whose spec.managedBy names another controller is left alone entirely (its pods' finalizers too);
- `sync` claims the pods (getPodsForJob: orphans the selector matches are adopted with the
  job-tracking finalizer in the same patch, pods no longer matched are released with it), observes
  the Job and the pods it controls, calls `logic.plan` once, and carries the plan out in the order
  that makes counting exactly-once survive a crash at any instant: the generated selector (alone;
  the next sync plans with it), the status listing newly finished pods in uncountedTerminatedPods,
  the finalizer removals, the creates and deletes, then the status that moves the uncounted pods
  into the counters, and only then the Events its conditions tell of; a finished Job with
  ttlSecondsAfterFinished is deleted once it expires (the TTL-after-finished controller's work, for
  kubeplane Jobs). Job writes carry the resourceVersion the sync planned from (409: plan again). A
  failed finalizer removal leaves the pod uncounted and the sync is retried:
  nothing is counted until its finalizer is gone.

kubeplane's Job (`batch.kubeplane.dev`); in drop-in mode also batch/v1's (kube-controller-manager's
job-controller off), with the same code: batch/v1's status has every field this controller writes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from operators.controllers import caches
from operators.controllers.common.expectations import Expectations
from operators.controllers.common.loop import Controller
from operators.controllers.common.ownership import OwnerGone, claim_pods, owners_selecting, resolve_controller_ref
from operators.controllers.common.podcontrol import PodControl, error_message
from operators.controllers.common.writes import Superseded
from operators.controllers.job import logic
from operators.controllers.manager import ControllerManager
from operators.core import pods as podutil
from operators.core.apis import PODS, Resource
from operators.core.events import EventRecorder
from operators.core.informer import ADDED, DELETED, MODIFIED, object_key
from operators.core.kube import JSON_PATCH, ApiError
from operators.core.owners import controller_ref
from operators.core.status import merge_diff
from operators.core.timeutil import now
from operators.core.workqueue import RetryLater

logger = logging.getLogger(__name__)

Obj = Mapping[str, Any]
WORKERS = 5  # kube-controller-manager's --concurrent-job-syncs
COMPONENT = "job-controller"
ORPHAN = "orphan/"


class JobController(Controller):
    workers = WORKERS

    def __init__(self, manager: ControllerManager, resource: Resource, name: str, *, builtin: bool = False) -> None:
        super().__init__(name)
        # batch/v1 Jobs (drop-in mode): kube-controller-manager's ttl-after-finished-controller expires
        # them, and their status has no nextRetryTime.
        self.builtin = builtin
        self.kube = manager.client()
        self.resource = resource
        self.jobs = manager.informers.informer(resource)
        self.pods = manager.informers.informer(PODS)
        self.jobs.add_handler(self._on_job)
        self.pods.add_handler(self._on_pod)
        self.expectations = Expectations()
        self.events = EventRecorder(self.kube, COMPONENT)
        self.recorders.append(self.events)
        self.pod_control = PodControl(self.kube, self.events, self.expectations, name)
        # finalizerExpectations: by Job uid, the pod uids whose finalizer removal was sent and that the
        # cache still shows with it.
        self.removing: dict[str, set[str]] = {}
        self.superseded = Superseded()

    def keys(self) -> list[str]:
        return list(self.jobs.store)

    # --- what the caches say ---------------------------------------------------------------------

    def resolve(self, namespace: str, ref: Obj | None) -> Obj | None:
        """The Job a controller reference names, if it is ours and still the same."""
        return resolve_controller_ref(self.jobs.get, self.resource, namespace, ref)

    async def claim_pods(self, job: Obj) -> list[Obj]:
        """getPodsForJob: the pods the Job controls and selects (finished and terminating ones too), orphans
        adopted with the job-tracking finalizer in the same patch, pods no longer selected released (and
        their finalizer)."""
        try:
            return await claim_pods(self.kube, job, self.resource, self.pods, finalizers=(logic.FINALIZER,))
        except OwnerGone as e:
            raise RetryLater(str(e)) from e

    def _selecting(self, pod: Obj) -> list[Obj]:
        return owners_selecting(self.jobs, pod)

    # --- handlers: enqueue only --------------------------------------------------------------------

    def _on_job(self, kind: str, job: Obj, old: Obj | None) -> None:
        if kind == DELETED:
            self.expectations.forget(job["metadata"]["uid"])
            self.removing.pop(job["metadata"]["uid"], None)
            self.superseded.forget(job["metadata"]["uid"])
            # Its pods lose their owner: release their finalizers.
            for pod in self.pods.by_index(caches.CONTROLLER, job["metadata"]["uid"]):
                if logic.has_finalizer(pod):
                    self.queue.add(ORPHAN + object_key(pod))
            return
        if kind == MODIFIED and old is not None and old["metadata"]["uid"] != job["metadata"]["uid"]:
            self.expectations.forget(old["metadata"]["uid"])
        self.queue.add(object_key(job))

    def _on_pod(self, kind: str, pod: Obj, old: Obj | None) -> None:
        namespace = pod["metadata"].get("namespace") or ""
        ref = controller_ref(pod)
        if ref is None or not self.resource.is_kind_of(ref):
            if old is not None and (previous := controller_ref(old)) is not None and self.resource.is_kind_of(previous):
                job = self.resolve(namespace, previous)
                if job is not None:
                    self.queue.add(object_key(job))
            if ref is None and kind != DELETED and not podutil.is_being_deleted(pod):
                # An orphan: every Job that selects it may adopt it (getPodJobs).
                for job in self._selecting(pod):
                    self.queue.add(object_key(job))
            return
        job = self.resolve(namespace, ref)
        if job is None:
            if kind != DELETED and logic.has_finalizer(pod):
                self.queue.add(ORPHAN + object_key(pod))
            return
        uid, name = job["metadata"]["uid"], pod["metadata"]["name"]
        if kind == DELETED or not logic.has_finalizer(pod):
            self.removing.get(uid, set()).discard(pod["metadata"]["uid"])
        if kind in (ADDED, MODIFIED):
            self.expectations.creation_observed(uid, name)
        if kind == DELETED or podutil.is_being_deleted(pod):
            self.expectations.deletion_observed(uid, name)
        self.queue.add(object_key(job))

    # --- the sync ----------------------------------------------------------------------------------

    async def sync(self, key: str) -> float | None:
        if key.startswith(ORPHAN):
            await self._release_orphan(key[len(ORPHAN):])
            return None
        job = self.jobs.get(key)
        if job is None:
            return None
        if (other := logic.managed_by_other(job)) is not None:
            logger.debug("%s %s is managed by %s: not synced", self.resource.kind, key, other)
            return None
        if self.superseded.behind(job):
            return None  # our own write's watch event is on its way and queues the Job again
        uid = job["metadata"]["uid"]
        owned = await self.claim_pods(job) if (job.get("spec") or {}).get("selector") is not None else []
        self.expectations.observe(uid, seen={p["metadata"]["name"] for p in owned},
                                  active={p["metadata"]["name"] for p in owned if podutil.is_active(p)})
        # Settle the finalizer expectations against the cache, as a second line beside the handler.
        holding = {p["metadata"]["uid"] for p in owned if logic.has_finalizer(p)}
        removing = self.removing.setdefault(uid, set())
        removing &= holding
        plan = logic.plan(logic.Observed(job=job, pods=owned, expectations_satisfied=self.expectations.satisfied(uid),
                                         now=now(), removing=frozenset(removing), extras=not self.builtin))
        version = str(job["metadata"].get("resourceVersion") or "")

        if plan.labels is not None:
            body = {**plan.labels, "metadata": {"resourceVersion": version}}
            await self._write(job, self.resource.object_path(job), body)
            return None
        if plan.record is not None:
            version = await self._write_status(job, job.get("status"), plan.record, version)

        failures: list[str] = []
        for pod in plan.finalize:
            error = await self._remove_finalizer(pod)
            if error is not None:
                failures.append(error)
            else:
                removing.add(pod["metadata"]["uid"])

        manage_error: str | None = None
        if plan.delete:
            manage_error = (await self.pod_control.delete_many(job, plan.delete)).error
        if plan.create:
            bodies = [logic.pod_from_template(job, self.resource, index,
                                              plan.replacing.get(index) if index is not None else None)
                      for index in plan.create]
            manage_error = (await self.pod_control.create_each(job, bodies)).error or manage_error
        if failures:
            # Step three waits: the pods whose finalizer stayed are counted by a later sync.
            raise RetryLater(f"removing the {logic.FINALIZER} finalizer failed: {failures[0]}")
        written = plan.record if plan.record is not None else job.get("status")
        await self._write_status(job, written, plan.status, version)
        # The plan's Events tell of conditions: only once the status that holds them is written.
        for event in plan.events:
            self.events.emit(job, event)
        if manage_error is not None:
            raise RetryLater(manage_error)
        expires = None if self.builtin else logic.ttl_remaining(job, now())
        if expires is not None and not plan.finalize and plan.record is None:
            if expires > 0:
                return expires if plan.requeue is None else min(plan.requeue, expires)
            await self._expire(job)
            return None
        return plan.requeue

    async def _expire(self, job: Obj) -> None:
        """The TTL-after-finished controller's delete: re-read the Job (the cache may be stale: the TTL
        may have been changed, the Job recreated), then delete it in the foreground with its uid as a
        precondition (ttlafterfinished_controller.go processJob)."""
        path = self.resource.object_path(job)
        try:
            fresh = await self.kube.get(path)
        except ApiError as e:
            if e.not_found:
                return
            raise
        remaining = logic.ttl_remaining(fresh, now())
        if remaining is None or remaining > 0 or fresh["metadata"]["uid"] != job["metadata"]["uid"]:
            return
        body = {"propagationPolicy": "Foreground", "preconditions": {"uid": fresh["metadata"]["uid"]}}
        try:
            await self.kube.delete(path, body)
        except ApiError as e:
            if not (e.not_found or e.conflict):
                raise

    async def _write(self, job: Obj, path: str, body: Any) -> str:
        try:
            written = await self.kube.patch(path, body)
        except ApiError as e:
            if e.not_found:
                return ""
            if e.conflict:
                raise RetryLater(f"{self.resource.kind} {object_key(job)} changed since this sync read it; "
                                 "planning again") from e
            raise
        version = str((written.get("metadata") or {}).get("resourceVersion") or "")
        planned = str(((body.get("metadata") if isinstance(body, dict) else None) or {}).get("resourceVersion") or "")
        self.superseded.wrote(job["metadata"]["uid"], planned, version)
        return version

    async def _write_status(self, job: Obj, old: Obj | None, new: dict[str, Any], version: str) -> str:
        diff = merge_diff(old, new)
        if not diff:
            return version
        patch = {"status": diff, "metadata": {"resourceVersion": version}}
        return await self._write(job, self.resource.object_path(job, "status"), patch) or version

    async def _remove_finalizer(self, pod: Obj) -> str | None:
        """A JSON patch that removes the finalizer at the index the cache saw, tested first (None: done)."""
        finalizers = list(pod["metadata"].get("finalizers") or [])
        if logic.FINALIZER not in finalizers:
            return None
        index = finalizers.index(logic.FINALIZER)
        path = f"/metadata/finalizers/{index}"
        ops = [{"op": "test", "path": path, "value": logic.FINALIZER}, {"op": "remove", "path": path}]
        try:
            await self.kube.patch(PODS.object_path(pod), ops, content_type=JSON_PATCH)
        except ApiError as e:
            if e.not_found:
                return None
            return error_message(e)
        except Exception as e:  # a reset connection: not done
            return error_message(e)
        return None

    async def _release_orphan(self, key: str) -> None:
        pod = self.pods.get(key)
        if pod is None or not logic.has_finalizer(pod):
            return
        namespace = pod["metadata"].get("namespace") or ""
        if self.resolve(namespace, controller_ref(pod)) is not None:
            return  # its Job is back in the cache: the Job's sync counts it
        error = await self._remove_finalizer(pod)
        if error is not None:
            raise RetryLater(f"removing the {logic.FINALIZER} finalizer of orphan pod {key} failed: {error}")


def build(manager: ControllerManager, resource: Resource, name: str, *, builtin: bool) -> JobController:
    """kubeplane's Job; in drop-in mode batch/v1's too (the API server has set its selector and labels;
    its TTL stays with kube-controller-manager's ttl-after-finished-controller, which keeps running)."""
    return JobController(manager, resource, name, builtin=builtin)
