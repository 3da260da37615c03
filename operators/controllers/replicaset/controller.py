"""The ReplicaSet controller's I/O: informer handlers that enqueue, and the sync that acts.

Read side by side with pkg/controller/replicaset/replica_set.go:

- handlers (`_on_set`, `_on_pod`) only enqueue and settle expectations, as addPod/updatePod/deletePod
  do: a pod's controller reference finds its set (kind, name and uid must match); an orphan wakes
  every set of its namespace whose selector matches it; a pod turning Ready wakes its set again after
  minReadySeconds + 1 s;
- `sync` observes (the set, the pods it controls and the namespace's orphans, the related pods for
  the deletion ranking), calls `logic.plan` once, carries the plan out (releases, adoptions after a
  fresh read of the set, creates in slow-start batches or deletes, through PodControl), writes the
  status the plan computes, and returns when to look again.

The same class drives kubeplane's ReplicaSet (`apps.kubeplane.dev`), and in drop-in mode the
built-in apps/v1 ReplicaSet, whose status has no `selector` or `terminatingReplicas` fields, and the
core/v1 ReplicationController, whose selector is a plain label map (upstream, too, runs the
ReplicationController through the ReplicaSet controller's code, `replication_controller.go`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from operators.controllers import caches
from operators.controllers.common.expectations import Expectations
from operators.controllers.common.loop import Controller
from operators.controllers.common.ownership import OwnerGone, Patcher, owners_selecting, resolve_controller_ref
from operators.controllers.common.podcontrol import PodControl
from operators.controllers.manager import ControllerManager
from operators.controllers.replicaset import logic
from operators.core import pods as podutil
from operators.core.apis import PODS, REPLICATION_CONTROLLERS, Resource
from operators.core.events import EventRecorder
from operators.core.informer import ADDED, DELETED, MODIFIED, object_key
from operators.core.kube import ApiError
from operators.core.owners import controller_ref, controller_uid
from operators.core.selectors import Selector, SelectorError, from_label_selector, from_set
from operators.core.status import status_patch
from operators.core.timeutil import now
from operators.core.workqueue import RetryLater

logger = logging.getLogger(__name__)

Obj = Mapping[str, Any]
WORKERS = 5  # kube-controller-manager's --concurrent-replicaset-syncs (and -rc-syncs)
COMPONENTS = {REPLICATION_CONTROLLERS: "replication-controller"}  # the Events' source; else:
COMPONENT = "replicaset-controller"


def _semantic(status: Obj | None) -> dict[str, Any]:
    """A status with zero values dropped: the API server omits them for built-in kinds."""
    return {k: v for k, v in (status or {}).items() if v not in (None, 0, "", [], {})}


class ReplicaSetController(Controller):
    workers = WORKERS

    def __init__(self, manager: ControllerManager, resource: Resource, name: str, *,
                 extended_status: bool = True) -> None:
        super().__init__(name)
        self.kube = manager.client()
        self.resource = resource
        self.extended_status = extended_status
        self.sets = manager.informers.informer(resource)
        self.pods = manager.informers.informer(PODS)
        self.sets.add_handler(self._on_set)
        self.pods.add_handler(self._on_pod)
        self.expectations = Expectations()
        self.events = EventRecorder(self.kube, COMPONENTS.get(resource, COMPONENT))
        self.recorders.append(self.events)
        self.pod_control = PodControl(self.kube, self.events, self.expectations, name)
        self._selectors: dict[str, Selector | None] = {}  # by set uid: selectors are immutable

    def keys(self) -> list[str]:
        return list(self.sets.store)

    # --- what the caches say ---------------------------------------------------------------------

    def selector(self, rs: Obj) -> Selector | None:
        uid = rs["metadata"]["uid"]
        if uid not in self._selectors:
            raw = (rs.get("spec") or {}).get("selector")
            try:
                # A ReplicationController's selector is a label map (defaulted to the template's labels).
                self._selectors[uid] = from_set(raw or {}) if self.resource == REPLICATION_CONTROLLERS \
                    else from_label_selector(raw)
            except SelectorError as e:
                logger.error("%s %s: invalid selector: %s", self.resource.kind, object_key(rs), e)
                self._selectors[uid] = None
        return self._selectors[uid]

    def resolve(self, namespace: str, ref: Obj | None) -> Obj | None:
        """resolveControllerRef: the set a controller reference names, if it is ours and still the same."""
        return resolve_controller_ref(self.sets.get, self.resource, namespace, ref)

    def sets_selecting(self, pod: Obj) -> list[Obj]:
        """getPodReplicaSets: the sets of the pod's namespace whose (non-empty) selector matches it."""
        return owners_selecting(self.sets, pod, self.selector)

    def candidates(self, rs: Obj) -> list[Obj]:
        """FilterPodsByOwner: the pods the set controls, and the orphans of its namespace."""
        meta = rs["metadata"]
        owned = self.pods.by_index(caches.CONTROLLER, meta["uid"])
        return [*owned, *self.pods.by_index(caches.ORPHAN, meta["namespace"])]

    def related_pods(self, rs: Obj) -> list[Obj]:
        """getIndirectlyRelatedPods: the pods of every set with the same controller (none for a bare set)."""
        owner = controller_uid(rs)
        if owner is None:
            return []
        related: list[Obj] = []
        for sibling in self.sets.by_index(caches.CONTROLLER, owner):
            related.extend(self.pods.by_index(caches.CONTROLLER, sibling["metadata"]["uid"]))
        return related

    # --- handlers: enqueue only --------------------------------------------------------------------

    def _enqueue(self, rs: Obj) -> None:
        self.queue.add(object_key(rs))

    def _on_set(self, kind: str, rs: Obj, old: Obj | None) -> None:
        if kind == DELETED:
            self.expectations.forget(rs["metadata"]["uid"])
            self._selectors.pop(rs["metadata"]["uid"], None)
        elif kind == MODIFIED and old is not None and old["metadata"]["uid"] != rs["metadata"]["uid"]:
            self.expectations.forget(old["metadata"]["uid"])  # deleted and recreated under the same name
            self._selectors.pop(old["metadata"]["uid"], None)
        self._enqueue(rs)

    def _on_pod(self, kind: str, pod: Obj, old: Obj | None) -> None:
        namespace = pod["metadata"].get("namespace") or ""
        if kind == DELETED or (kind == ADDED and podutil.is_being_deleted(pod)):
            self._pod_gone(pod)
            return
        if kind == ADDED:
            rs = self.resolve(namespace, controller_ref(pod))
            if rs is not None:
                self.expectations.creation_observed(rs["metadata"]["uid"], pod["metadata"]["name"])
                self._enqueue(rs)
            elif controller_ref(pod) is None:
                for candidate in self.sets_selecting(pod):
                    self._enqueue(candidate)
            return
        assert old is not None
        change = logic.pod_transition(old, pod)
        if podutil.is_being_deleted(pod):
            self._pod_gone(pod)
            if change.labels_changed:
                self._pod_gone(old)
            return
        if change.controller_changed and change.old_controller is not None:
            previous = self.resolve(namespace, change.old_controller)
            if previous is not None:
                self._enqueue(previous)
        ref = controller_ref(pod)
        if ref is not None:
            rs = self.resolve(namespace, ref)
            if rs is None:
                return
            self._enqueue(rs)
            min_ready = logic.min_ready_seconds(rs)
            if change.became_ready and min_ready > 0:
                self.queue.add_after(object_key(rs), min_ready + 1.0)
            return
        if change.labels_changed or change.controller_changed:
            for candidate in self.sets_selecting(pod):
                self._enqueue(candidate)

    def _pod_gone(self, pod: Obj) -> None:
        rs = self.resolve(pod["metadata"].get("namespace") or "", controller_ref(pod))
        if rs is None:
            return
        uid, name = rs["metadata"]["uid"], pod["metadata"]["name"]
        self.expectations.creation_observed(uid, name)
        self.expectations.deletion_observed(uid, name)
        self._enqueue(rs)

    # --- the sync ----------------------------------------------------------------------------------

    async def sync(self, key: str) -> float | None:
        rs = self.sets.get(key)
        if rs is None:
            return None
        selector = self.selector(rs)
        if selector is None:
            return None  # upstream logs and drops an unparsable selector; the schema refuses one
        uid = rs["metadata"]["uid"]
        candidates = self.candidates(rs)
        owned = [p for p in candidates if controller_uid(p) == uid]
        self.expectations.observe(uid, seen={p["metadata"]["name"] for p in owned},
                                  active={p["metadata"]["name"] for p in owned if podutil.is_active(p)})
        observed = logic.Observed(
            rs=rs, selector=selector, candidates=candidates, related=self.related_pods(rs),
            expectations_satisfied=self.expectations.satisfied(uid), now=now(),
            extended_status=self.extended_status,
        )
        plan = logic.plan(observed)
        plan = await self._claim(rs, plan)

        error: str | None = None
        if plan.create:
            error = (await self.pod_control.create_many(rs, logic.pod_from_template(rs, self.resource),
                                                        plan.create)).error
        elif plan.delete:
            error = (await self.pod_control.delete_many(rs, plan.delete)).error

        status = plan.status(error)
        if _semantic(rs.get("status")) != _semantic(status):
            patch = status_patch(rs.get("status"), status)
            if patch is not None:
                try:
                    await self.kube.patch(self.resource.object_path(rs, "status"), patch)
                except ApiError as e:
                    if not e.not_found:
                        raise
        if error is not None:
            raise RetryLater(error)
        return plan.requeue_after(error)

    async def _claim(self, rs: Obj, plan: logic.Plan) -> logic.Plan:
        """Carry out the plan's releases and adoptions; a set gone since the cache saw it ends the sync."""
        if not plan.adopt and not plan.release:
            return plan
        patcher = Patcher(self.kube, rs, self.resource, PODS)
        await asyncio.gather(*(patcher.release(p) for p in plan.release))
        if not plan.adopt:
            return plan
        try:
            adopted = await asyncio.gather(*(patcher.adopt(p) for p in plan.adopt))
        except OwnerGone as e:
            raise RetryLater(str(e)) from e
        gone = [p for p, ok in zip(plan.adopt, adopted, strict=True) if not ok]
        return plan.without(gone) if gone else plan


def build(manager: ControllerManager, resource: Resource, name: str, *, builtin: bool) -> ReplicaSetController:
    return ReplicaSetController(manager, resource, name, extended_status=not builtin)
