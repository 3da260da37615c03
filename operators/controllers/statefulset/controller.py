"""The StatefulSet controller's I/O: handlers that enqueue, and the sync that acts.

Read side by side with pkg/controller/statefulset/stateful_set.go and stateful_pod_control.go:

- handlers only enqueue: a StatefulSet's own changes; a pod's (its controller, or for an orphan every
  StatefulSet of its namespace that selects it); a pod turning ready again after minReadySeconds;
- `sync` skips a StatefulSet being deleted, claims its pods (selected *and* named `<set>-<ordinal>`),
  finds or makes its ControllerRevisions (getStatefulSetRevisions: the update revision is the newest
  one with the template's data, an older equal one renumbered, or a new one; the current one is named
  by status.currentRevision), calls `logic.plan` once, carries out its steps in order (claims before
  pods; consecutive creations of a Parallel set in slow-start batches; the first failure ends the
  sync), writes the status, and prunes history beyond revisionHistoryLimit (truncateHistory).

There are no expectations, as upstream has none for StatefulSets: pods have fixed names, so a create the
cache has not seen yet fails with AlreadyExists instead of making a second pod, and OrderedReady makes
one change per sync.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from functools import partial
from typing import Any

from operators.controllers import caches
from operators.controllers.common import history
from operators.controllers.common.loop import Controller
from operators.controllers.common.ownership import (
    OwnerGone,
    claim_pods,
    owners_of_change,
    owners_selecting,
    resolve_controller_ref,
)
from operators.controllers.common.podcontrol import error_message, namespace_terminating, slow_start_batches
from operators.controllers.manager import ControllerManager
from operators.controllers.statefulset import logic
from operators.core import metrics
from operators.core import pods as podutil
from operators.core.apis import CONTROLLER_REVISIONS, PERSISTENT_VOLUME_CLAIMS, PODS, Resource
from operators.core.events import EventRecorder
from operators.core.informer import object_key
from operators.core.kube import ApiError
from operators.core.owners import controller_ref
from operators.core.selectors import SelectorError, from_label_selector
from operators.core.status import merge_diff
from operators.core.timeutil import now
from operators.core.workqueue import RetryLater

logger = logging.getLogger(__name__)

Obj = Mapping[str, Any]
WORKERS = 5  # kube-controller-manager's --concurrent-statefulset-syncs
COMPONENT = "statefulset-controller"


class StepFailed(Exception):
    """A step of the plan failed; the message is what the sync reports."""


class StatefulSetController(Controller):
    workers = WORKERS

    def __init__(self, manager: ControllerManager, resource: Resource, name: str, *, builtin: bool = False) -> None:
        super().__init__(name)
        self.kube = manager.client()
        self.resource = resource
        self.builtin = builtin  # apps/v1: its status has no selector (the scale subresource computes it)
        self.sets = manager.informers.informer(resource)
        self.pods = manager.informers.informer(PODS)
        self.revisions = manager.informers.informer(CONTROLLER_REVISIONS)
        self.claims = manager.informers.informer(PERSISTENT_VOLUME_CLAIMS)
        self.sets.add_handler(self._on_set)
        self.pods.add_handler(self._on_pod)
        self.events = EventRecorder(self.kube, COMPONENT)
        self.recorders.append(self.events)

    def keys(self) -> list[str]:
        return list(self.sets.store)

    # --- handlers: enqueue only ----------------------------------------------------------------------

    def _enqueue(self, sts: Obj) -> None:
        self.queue.add(object_key(sts))

    def _on_set(self, kind: str, sts: Obj, old: Obj | None) -> None:
        self._enqueue(sts)

    def _resolve(self, pod: Obj) -> Obj | None:
        return resolve_controller_ref(self.sets.get, self.resource, pod["metadata"].get("namespace") or "",
                                      controller_ref(pod))

    def _selecting(self, pod: Obj) -> list[Obj]:
        return owners_selecting(self.sets, pod)

    def _on_pod(self, kind: str, pod: Obj, old: Obj | None) -> None:
        sts, wake = owners_of_change(kind, pod, old, self._resolve, self._selecting)
        for owner in wake:
            self._enqueue(owner)
        if sts is None:
            return
        if old is not None and not podutil.is_ready(old) and podutil.is_ready(pod):
            min_ready = logic.min_ready_seconds(sts)
            if min_ready > 0:
                self.queue.add_after(object_key(sts), min_ready + 1.0)

    # --- the sync ----------------------------------------------------------------------------------

    async def sync(self, key: str) -> float | None:
        sts = self.sets.get(key)
        if sts is None or sts["metadata"].get("deletionTimestamp"):
            return None  # being deleted: the garbage collector takes its pods (and claims it owns)
        try:
            selector = from_label_selector((sts.get("spec") or {}).get("selector"))
        except SelectorError as e:
            self.events.warning(sts, "InvalidSelector", f"invalid label selector: {e}")
            return None
        try:
            owned = await claim_pods(self.kube, sts, self.resource, self.pods, member=partial(logic.is_member, sts))
        except OwnerGone as e:
            raise RetryLater(str(e)) from e
        revisions = history.sort_revisions(self.revisions.by_index(caches.CONTROLLER, sts["metadata"]["uid"]))
        current, update = await self._revisions(sts, revisions)
        namespace = sts["metadata"]["namespace"]
        claims = {c["metadata"]["name"]: c for c in self.claims.by_index(caches.NAMESPACE, namespace)}
        at = now()  # one clock reading per sync: the plan's and the condition's
        plan = logic.plan(logic.Observed(
            sts=sts, resource=self.resource, pods=owned, claims=claims, now=at,
            current=logic.Revision(current["metadata"]["name"], logic.template_of(current)),
            update=logic.Revision(update["metadata"]["name"], logic.template_of(update))))
        for event in plan.events:
            self.events.emit(sts, event)
        error: str | None = None
        try:
            await self._carry_out(sts, plan)
        except StepFailed as e:
            error = str(e)
        status = plan.status
        if not self.builtin:  # apps/v1 has neither; upstream writes no condition
            status = {**status, "selector": str(selector), "conditions": logic.progressing_condition(sts, plan, at)}
        await self._write_status(sts, status)
        live = {current["metadata"]["name"], update["metadata"]["name"], *(logic.revision_of(p) for p in owned)}
        keep = int((sts.get("spec") or {}).get("revisionHistoryLimit", 10))
        await history.delete_revisions(self.kube, history.to_truncate(revisions, keep, live))
        if error is not None:
            raise RetryLater(error)
        return plan.requeue

    async def _write_status(self, sts: Obj, status: dict[str, Any]) -> None:
        diff = merge_diff(sts.get("status"), status)
        if not diff:
            return
        try:
            await self.kube.patch(self.resource.object_path(sts, "status"), {"status": diff})
        except ApiError as e:
            if not e.not_found:
                raise

    # --- history ---------------------------------------------------------------------------------------

    async def _revisions(self, sts: Obj, revisions: list[Obj]) -> tuple[Obj, Obj]:
        """getStatefulSetRevisions: (current, update)."""
        data = logic.revision_data(sts)
        equal = history.equal_revisions(revisions, data)
        number = history.next_revision(revisions)
        if equal and equal[-1] is revisions[-1]:
            update = revisions[-1]
        elif equal:
            update = await history.renumber(self.kube, equal[-1], number)
        else:
            collisions = (sts.get("status") or {}).get("collisionCount")
            template = (sts.get("spec") or {}).get("template") or {}
            hash_ = history.hash_of(template, int(collisions) if collisions is not None else None)
            labels = {**((template.get("metadata") or {}).get("labels") or {}), logic.REVISION_LABEL: hash_}
            update = await history.create_revision(self.kube, sts, self.resource, data, hash_, number, labels)
        wanted = (sts.get("status") or {}).get("currentRevision")
        current = next((r for r in revisions if r["metadata"]["name"] == wanted), update)
        return current, update

    # --- carrying the plan out -------------------------------------------------------------------------

    async def _carry_out(self, sts: Obj, plan: logic.Plan) -> None:
        steps = list(plan.steps)
        i = 0
        while i < len(steps):
            if steps[i].action != "create":
                await self._step(sts, steps[i])
                i += 1
                continue
            j = i
            while j < len(steps) and steps[j].action == "create":
                j += 1
            # Creations in slow-start batches (1, 2, 4, ...); a batch with a failure ends the sync.
            done = i
            for size in slow_start_batches(j - i):
                results = await asyncio.gather(*(self._step(sts, s) for s in steps[done:done + size]),
                                               return_exceptions=True)
                done += size
                for result in results:
                    if isinstance(result, BaseException):
                        raise result
            i = j

    def _pod_event(self, sts: Obj, verb: str, pod: Obj, error: str | None = None) -> None:
        """recordPodEvent."""
        name, owner = pod["metadata"]["name"], sts["metadata"]["name"]
        if error is None:
            self.events.normal(sts, f"Successful{verb.title()}", f"{verb} Pod {name} in StatefulSet {owner} successful")
        else:
            self.events.warning(sts, f"Failed{verb.title()}",
                                f"{verb} Pod {name} in StatefulSet {owner} failed error: {error}")

    async def _step(self, sts: Obj, step: logic.Step) -> None:
        pod = step.pod
        if step.blocked:
            message = "; ".join(f"pvc {name} is being deleted" for name in step.blocked)
            self._pod_event(sts, "create" if step.action == "create" else "update", pod, message)
            raise StepFailed(message)
        if step.claims:
            await self._create_claims(sts, step, pod)
        if step.action == "create":
            await self._create_pod(sts, pod)
        elif step.action == "delete":
            await self._delete_pod(sts, pod)
        elif step.action == "update" and step.labels:
            try:
                await self.kube.patch(PODS.object_path(pod), {"metadata": {"labels": dict(step.labels)}})
            except ApiError as e:
                if e.not_found:
                    return
                self._pod_event(sts, "update", pod, error_message(e))
                raise StepFailed(error_message(e)) from e
            self._pod_event(sts, "update", pod)
        if step.fixes:
            await self._fix_claims(sts, step)

    async def _create_claims(self, sts: Obj, step: logic.Step, pod: Obj) -> None:
        errors: list[str] = []
        for body in step.claims:
            name = body["metadata"]["name"]
            try:
                await self.kube.create(PERSISTENT_VOLUME_CLAIMS.path(body["metadata"]["namespace"]), body)
            except ApiError as e:
                if e.already_exists:
                    errors.append(f"failed to create PVC {name}: {error_message(e)}")
                    continue
                if namespace_terminating(e):
                    raise StepFailed(error_message(e)) from e
                errors.append(f"failed to create PVC {name}: {error_message(e)}")
                self.events.warning(sts, "FailedCreate", f"create Claim {name} for Pod {pod['metadata']['name']} "
                                    f"in StatefulSet {sts['metadata']['name']} failed error: {error_message(e)}")
                continue
            self.events.normal(sts, "SuccessfulCreate", f"create Claim {name} Pod {pod['metadata']['name']} "
                               f"in StatefulSet {sts['metadata']['name']} success")
        if errors:
            message = "; ".join(errors)
            self._pod_event(sts, "create" if step.action == "create" else "update", pod, message)
            raise StepFailed(message)

    async def _create_pod(self, sts: Obj, pod: Obj) -> None:
        try:
            await self.kube.create(PODS.path(sts["metadata"]["namespace"]), pod)
        except ApiError as e:
            if e.already_exists:  # the cache is behind: the pod's event brings the next sync
                raise StepFailed(f"pod {pod['metadata']['name']} already exists") from e
            if not namespace_terminating(e):
                self._pod_event(sts, "create", pod, error_message(e))
            raise StepFailed(error_message(e)) from e
        metrics.PODS_CREATED.labels(self.name).inc()
        self._pod_event(sts, "create", pod)

    async def _delete_pod(self, sts: Obj, pod: Obj) -> None:
        try:
            await self.kube.delete(PODS.object_path(pod))
        except ApiError as e:
            if e.not_found:
                return
            self._pod_event(sts, "delete", pod, error_message(e))
            raise StepFailed(error_message(e)) from e
        metrics.PODS_DELETED.labels(self.name).inc()
        self._pod_event(sts, "delete", pod)

    async def _fix_claims(self, sts: Obj, step: logic.Step) -> None:
        """UpdatePodClaimForRetentionPolicy: owner references as the retention policy wants them."""
        namespace = sts["metadata"]["namespace"]
        for fix in step.fixes:
            if fix.conflicting:
                self.events.warning(sts, logic.CONFLICTING_CONTROLLER,
                                    f"PersistentVolumeClaim {fix.name} has a conflicting OwnerReference that acts "
                                    "as a manging controller, the retention policy is ignored for this claim")
            patch = {"metadata": {"ownerReferences": list(fix.owner_references),
                                  "resourceVersion": fix.resource_version}}
            try:
                await self.kube.patch(PERSISTENT_VOLUME_CLAIMS.path(namespace, fix.name), patch)
            except ApiError as e:
                if e.not_found:
                    continue
                message = f"could not update claim {fix.name} for delete policy ownerRefs: {error_message(e)}"
                self._pod_event(sts, "update", step.pod, message)
                raise StepFailed(message) from e


def build(manager: ControllerManager, resource: Resource, name: str, *, builtin: bool) -> StatefulSetController:
    """kubeplane's StatefulSet; in drop-in mode apps/v1's too, with the same code."""
    return StatefulSetController(manager, resource, name, builtin=builtin)
