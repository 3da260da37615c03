"""The CronJob controller's I/O: informer handlers that enqueue, and the sync that acts.

Read side by side with pkg/controller/cronjob/cronjob_controllerv2.go:

- handlers only enqueue: a CronJob on any change (a change of schedule or time zone is queued for
  its next scheduled time, as updateCronJob does, so an edit never starts a run at once); a Job's
  controlling CronJob (kind, name and uid must match), and its previous one when the reference changed;
- `sync` observes the CronJob and the Jobs it controls, reads what the cache cannot tell live (the
  CronJob itself when an unfinished Job is missing from status.active: the cache may be behind a
  status write; every listed Job the cache does not hold), calls `logic.plan` once, and carries the
  plan out: the history deletes, the Replace deletes, the run's Job, then one status write that
  carries the resourceVersion the sync planned from (409: plan again), then the Events the plan
  tells of. Jobs are deleted in the background with their uid as a precondition.

A crash between the Job's create and the status write loses nothing: the next sync plans the same
run, the create meets AlreadyExists, and the Job, ours, is recorded then.

kubeplane's CronJob (`batch.kubeplane.dev`) makes kubeplane Jobs. In drop-in mode the same code drives
batch/v1 CronJobs (kube-controller-manager's cronjob-controller off), which make batch/v1 Jobs; their
status then carries batch/v1's fields only (`logic.UPSTREAM_STATUS`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from operators.controllers import caches
from operators.controllers.common.loop import Controller
from operators.controllers.common.ownership import resolve_controller_ref
from operators.controllers.common.podcontrol import error_message
from operators.controllers.common.writes import Superseded
from operators.controllers.cronjob import logic
from operators.controllers.manager import ControllerManager
from operators.core import cron
from operators.core.apis import BATCH_JOBS, JOBS, Resource
from operators.core.events import EventRecorder
from operators.core.informer import DELETED, MODIFIED, object_key
from operators.core.kube import ApiError
from operators.core.owners import controller_ref, is_controlled_by
from operators.core.status import merge_diff
from operators.core.timeutil import now
from operators.core.workqueue import RetryLater

logger = logging.getLogger(__name__)

Obj = Mapping[str, Any]
WORKERS = 5  # kube-controller-manager's --concurrent-cron-job-syncs
COMPONENT = "cronjob-controller"


class CronJobController(Controller):
    workers = WORKERS

    def __init__(self, manager: ControllerManager, resource: Resource, jobs: Resource, name: str,
                 *, extended_status: bool = True) -> None:
        super().__init__(name)
        self.extended_status = extended_status
        self.kube = manager.client()
        self.resource = resource
        self.job_resource = jobs
        self.cronjobs = manager.informers.informer(resource)
        self.jobs = manager.informers.informer(jobs)
        self.cronjobs.add_handler(self._on_cronjob)
        self.jobs.add_handler(self._on_job)
        self.events = EventRecorder(self.kube, COMPONENT)
        self.recorders.append(self.events)
        self.superseded = Superseded()
        self.clock: Callable[[], datetime] = now

    def keys(self) -> list[str]:
        return list(self.cronjobs.store)

    # --- handlers: enqueue only --------------------------------------------------------------------

    def _on_cronjob(self, kind: str, cronjob: Obj, old: Obj | None) -> None:
        if kind == DELETED:
            self.superseded.forget(cronjob["metadata"]["uid"])
            return
        key = object_key(cronjob)
        if kind == MODIFIED and old is not None:
            before, after = logic.spec(old), logic.spec(cronjob)
            if (before.get("schedule"), before.get("timeZone")) != (after.get("schedule"), after.get("timeZone")):
                delay = self._delay(cronjob)
                if delay is not None:
                    self.queue.add_after(key, max(delay, 0.0))
                    return
        self.queue.add(key)

    def _delay(self, cronjob: Obj) -> float | None:
        try:
            schedule = cron.parse_standard(logic.schedule_text(cronjob)[0])
        except cron.CronError:
            return None  # the sync reports it
        return logic.next_schedule_delay(cronjob, self.clock(), schedule)

    def _resolve(self, namespace: str, ref: Obj | None) -> Obj | None:
        return resolve_controller_ref(self.cronjobs.get, self.resource, namespace, ref)

    def _on_job(self, kind: str, job: Obj, old: Obj | None) -> None:
        namespace = job["metadata"].get("namespace") or ""
        ref = controller_ref(job)
        if old is not None:
            previous = controller_ref(old)
            if previous is not None and previous != ref and (owner := self._resolve(namespace, previous)) is not None:
                self.queue.add(object_key(owner))
        owner = self._resolve(namespace, ref)
        if owner is not None:
            self.queue.add(object_key(owner))

    # --- the sync ----------------------------------------------------------------------------------

    async def sync(self, key: str) -> float | None:
        cached = self.cronjobs.get(key)
        if cached is None or self.superseded.behind(cached):
            return None
        cronjob: Obj = cached
        jobs = list(self.jobs.by_index(caches.CONTROLLER, cronjob["metadata"]["uid"]))
        listed = {ref.get("uid") for ref in logic.status(cronjob).get("active") or []}
        unlisted = {j["metadata"]["uid"] for j in jobs
                    if j["metadata"]["uid"] not in listed and logic.finished_condition(j) is None}
        if unlisted:
            # A Job we may have just recorded: the cache can be behind a status write. Read the
            # CronJob live, and plan from that copy if it lists the Job (syncCronJob's GetCronJob).
            fresh = await self._read(cronjob)
            if fresh is not None and unlisted & {ref.get("uid") for ref in logic.status(fresh).get("active") or []}:
                cronjob = fresh
        gone = await self._gone(cronjob, {j["metadata"]["uid"] for j in jobs})
        plan = logic.plan(logic.Observed(cronjob=cronjob, jobs=jobs, now=self.clock(), gone=frozenset(gone)))
        status = plan.status
        retry: str | None = None

        for job in plan.cleanup:
            error = await self._delete(cronjob, job["metadata"])
            retry = retry or error

        requeue = plan.requeue
        if plan.run is not None:
            failed = None
            for i, ref in enumerate(plan.replace):
                failed = await self._delete(cronjob, ref)
                if failed is not None:
                    # This Job and the ones not tried yet stay listed; no run until they are gone.
                    kept = [dict(r) for r in plan.replace[i:]]
                    status = {**status, "active": [*(status.get("active") or []), *kept]}
                    retry = f"could not replace job {ref.get('namespace')}/{ref.get('name')}: {failed}"
                    break
            if failed is None:
                status, create_error = await self._run(cronjob, status, plan.run)
                retry = retry or create_error

        await self._write_status(cronjob, status)
        for event in plan.events:
            self.events.emit(cronjob, event)
        if retry is not None:
            raise RetryLater(retry)
        return requeue

    async def _read(self, cronjob: Obj) -> Obj | None:
        try:
            fresh: Obj = await self.kube.get(self.resource.object_path(cronjob))
        except ApiError as e:
            if e.not_found:
                return None
            raise
        return fresh if fresh["metadata"]["uid"] == cronjob["metadata"]["uid"] else None

    async def _gone(self, cronjob: Obj, cached: set[str]) -> set[str]:
        """The listed Jobs neither cached nor found by a live GET (or found recreated, another uid)."""
        gone: set[str] = set()
        for ref in logic.status(cronjob).get("active") or []:
            if ref.get("uid") in cached:
                continue
            path = self.job_resource.path(ref.get("namespace") or cronjob["metadata"]["namespace"], ref.get("name"))
            try:
                found = await self.kube.get(path)
            except ApiError as e:
                if not e.not_found:
                    raise
                gone.add(str(ref.get("uid")))
                continue
            if found["metadata"].get("uid") != ref.get("uid"):
                gone.add(str(ref.get("uid")))
        return gone

    async def _delete(self, cronjob: Obj, ref: Mapping[str, Any]) -> str | None:
        """deleteJob: in the background, this uid only; SuccessfulDelete or FailedDelete (None: done)."""
        namespace = ref.get("namespace") or cronjob["metadata"]["namespace"]
        body = {"propagationPolicy": "Background", "preconditions": {"uid": ref.get("uid")}}
        try:
            await self.kube.delete(self.job_resource.path(namespace, ref.get("name")), body)
        except ApiError as e:
            if not (e.not_found or e.conflict):  # gone, or another Job by that name now: not ours to delete
                self.events.warning(cronjob, "FailedDelete", f"Deleted job: {error_message(e)}")
                return error_message(e)
        self.events.normal(cronjob, "SuccessfulDelete", f"Deleted job {ref.get('name')}")
        return None

    async def _run(self, cronjob: Obj, status: dict[str, Any], run: logic.Run) -> tuple[dict[str, Any], str | None]:
        """Create the run's Job; the status that records it, and the error to retry on (if any)."""
        body = logic.job_from_template(cronjob, run.scheduled, self.resource, self.job_resource)
        collection = self.job_resource.path(cronjob["metadata"]["namespace"])
        try:
            job = await self.kube.create(collection, body)
        except ApiError as e:
            if e.has_cause("NamespaceTerminating"):
                return status, f"namespace {cronjob['metadata']['namespace']} is terminating"
            if not e.already_exists:
                self.events.warning(cronjob, "FailedCreate", f"Error creating job: {error_message(e)}")
                return status, error_message(e)
            try:
                job = await self.kube.get(f"{collection}/{run.name}")
            except ApiError as again:
                return status, error_message(again)
            if not is_controlled_by(job, cronjob):
                logger.info("%s %s: Job %s already exists and is not controlled by it", self.resource.kind,
                            object_key(cronjob), run.name)
                return status, None
            if any(ref.get("uid") == job["metadata"].get("uid") for ref in status.get("active") or []):
                return status, None
            return logic.record_run(status, job, run.scheduled), None
        self.events.normal(cronjob, "SuccessfulCreate", f"Created job {job['metadata']['name']}")
        return logic.record_run(status, job, run.scheduled), None

    async def _write_status(self, cronjob: Obj, new: Mapping[str, Any]) -> None:
        if not self.extended_status:  # batch/v1 has no place for kubeplane's additions
            new = {k: v for k, v in new.items() if k in logic.UPSTREAM_STATUS}
        diff = merge_diff(cronjob.get("status"), new)
        if not diff:
            return
        planned = str(cronjob["metadata"].get("resourceVersion") or "")
        patch = {"status": diff, "metadata": {"resourceVersion": planned}}
        try:
            written = await self.kube.patch(self.resource.object_path(cronjob, "status"), patch)
        except ApiError as e:
            if e.not_found:
                return
            if e.conflict:
                raise RetryLater(f"{self.resource.kind} {object_key(cronjob)} changed since this sync read it; "
                                 "planning again") from e
            raise
        version = str((written.get("metadata") or {}).get("resourceVersion") or "")
        self.superseded.wrote(cronjob["metadata"]["uid"], planned, version)


def build(manager: ControllerManager, resource: Resource, name: str, *, builtin: bool) -> CronJobController:
    """kubeplane's CronJob makes kubeplane Jobs; batch/v1's (drop-in) makes batch/v1 Jobs."""
    return CronJobController(manager, resource, BATCH_JOBS if builtin else JOBS, name, extended_status=not builtin)
