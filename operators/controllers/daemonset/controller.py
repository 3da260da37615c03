"""The DaemonSet controller's I/O: handlers that enqueue, and the sync that acts.

Read side by side with pkg/controller/daemon/daemon_controller.go and update.go:

- handlers only enqueue and settle expectations: a DaemonSet's own changes; a pod's (its controller,
  or for an orphan every DaemonSet of its namespace that selects it); a node added or removed, or its
  labels or taints changed, wakes every DaemonSet (heartbeats are ignored, as shouldIgnoreNodeUpdate);
- `sync` (syncDaemonSet) skips a DaemonSet being deleted, claims its pods, brings its ControllerRevision
  up to date (constructHistory: the current one found by its data, renumbered after a rollback, or
  created; a name taken by different data bumps status.collisionCount), calls `logic.plan` once,
  carries it out (pods created for nodes in slow-start batches, deleted, failed-pod backoff per node),
  writes the status, and prunes history beyond revisionHistoryLimit (cleanupHistory).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from operators.controllers import caches
from operators.controllers.common import history
from operators.controllers.common.expectations import Expectations
from operators.controllers.common.loop import Controller
from operators.controllers.common.ownership import (
    OwnerGone,
    claim_pods,
    owners_of_change,
    owners_selecting,
    resolve_controller_ref,
)
from operators.controllers.common.podcontrol import PodControl
from operators.controllers.daemonset import logic
from operators.controllers.manager import ControllerManager
from operators.core import pods as podutil
from operators.core.apis import CONTROLLER_REVISIONS, NODES, PODS, Resource
from operators.core.events import EventRecorder
from operators.core.informer import ADDED, DELETED, MODIFIED, object_key
from operators.core.kube import ApiError
from operators.core.owners import controller_ref
from operators.core.status import merge_diff
from operators.core.timeutil import now
from operators.core.workqueue import RetryLater

logger = logging.getLogger(__name__)

Obj = Mapping[str, Any]
WORKERS = 2  # kube-controller-manager's --concurrent-daemonset-syncs
COMPONENT = "daemonset-controller"
BACKOFF_INITIAL, BACKOFF_MAX = 1.0, 15 * 60.0  # failedPodsBackoff


class Backoff:
    """flowcontrol.Backoff as the DaemonSet uses it: per key a delay that doubles on each step within
    twice the maximum since the last one, and starts over after that."""

    def __init__(self, initial: float = BACKOFF_INITIAL, cap: float = BACKOFF_MAX) -> None:
        self.initial, self.cap = initial, cap
        self.entries: dict[str, tuple[float, float]] = {}  # key -> (delay, last step)

    def in_backoff(self, key: str, at: float) -> float | None:
        """IsInBackOffSinceUpdate: the delay (Get) while `at` is within it of the last step, else None."""
        entry = self.entries.get(key)
        if entry is None or at - entry[1] >= entry[0]:
            return None
        return entry[0]

    def step(self, key: str, at: float) -> None:
        """Next."""
        entry = self.entries.get(key)
        if entry is None or at - entry[1] > 2 * self.cap:
            self.entries[key] = (self.initial, at)
        else:
            self.entries[key] = (min(entry[0] * 2, self.cap), at)


class DaemonSetController(Controller):
    workers = WORKERS

    def __init__(self, manager: ControllerManager, resource: Resource, name: str, *, builtin: bool = False) -> None:
        super().__init__(name)
        self.kube = manager.client()
        self.resource = resource
        self.builtin = builtin  # apps/v1: no excludedNodes in its status
        self.sets = manager.informers.informer(resource)
        self.pods = manager.informers.informer(PODS)
        self.nodes = manager.informers.informer(NODES)
        self.revisions = manager.informers.informer(CONTROLLER_REVISIONS)
        self.sets.add_handler(self._on_set)
        self.pods.add_handler(self._on_pod)
        self.nodes.add_handler(self._on_node)
        self.expectations = Expectations()
        self.events = EventRecorder(self.kube, COMPONENT)
        self.recorders.append(self.events)
        self.pod_control = PodControl(self.kube, self.events, self.expectations, name)
        self.backoff = Backoff()

    def keys(self) -> list[str]:
        return list(self.sets.store)

    # --- handlers: enqueue only ----------------------------------------------------------------------

    def _enqueue(self, ds: Obj) -> None:
        self.queue.add(object_key(ds))

    def _on_set(self, kind: str, ds: Obj, old: Obj | None) -> None:
        if kind == DELETED:
            self.expectations.forget(ds["metadata"]["uid"])
        elif kind == MODIFIED and old is not None and old["metadata"]["uid"] != ds["metadata"]["uid"]:
            self.expectations.forget(old["metadata"]["uid"])
        self._enqueue(ds)

    def _resolve(self, pod: Obj) -> Obj | None:
        return resolve_controller_ref(self.sets.get, self.resource, pod["metadata"].get("namespace") or "",
                                      controller_ref(pod))

    def _selecting(self, pod: Obj) -> list[Obj]:
        return owners_selecting(self.sets, pod)

    def _on_pod(self, kind: str, pod: Obj, old: Obj | None) -> None:
        ds, wake = owners_of_change(kind, pod, old, self._resolve, self._selecting)
        if ds is not None:
            uid, name = ds["metadata"]["uid"], pod["metadata"]["name"]
            if kind == ADDED:
                self.expectations.creation_observed(uid, name)
            if kind == DELETED or podutil.is_being_deleted(pod):
                self.expectations.creation_observed(uid, name)
                self.expectations.deletion_observed(uid, name)
        for owner in wake:
            self._enqueue(owner)
        if ds is None:
            return
        if old is not None and not podutil.is_ready(old) and podutil.is_ready(pod):
            min_ready = logic.min_ready_seconds(ds)
            if min_ready > 0:
                self.queue.add_after(object_key(ds), min_ready + 1.0)

    def _on_node(self, kind: str, node: Obj, old: Obj | None) -> None:
        if kind == MODIFIED and old is not None and \
                (old["metadata"].get("labels") or {}) == (node["metadata"].get("labels") or {}) and \
                (old.get("spec") or {}).get("taints") == (node.get("spec") or {}).get("taints"):
            return  # shouldIgnoreNodeUpdate: only what decides where daemon pods run matters
        for key in list(self.sets.store):
            self.queue.add(key)

    # --- the sync ----------------------------------------------------------------------------------

    async def claim_pods(self, ds: Obj) -> list[Obj]:
        """getDaemonPods: the pods the DaemonSet controls, orphans it selects adopted, pods it no longer
        selects released."""
        try:
            return await claim_pods(self.kube, ds, self.resource, self.pods)
        except OwnerGone as e:
            raise RetryLater(str(e)) from e

    async def sync(self, key: str) -> float | None:
        ds = self.sets.get(key)
        if ds is None or ds["metadata"].get("deletionTimestamp"):
            return None  # a DaemonSet being deleted: its history may be gone, its status is not computed
        uid = ds["metadata"]["uid"]
        owned = await self.claim_pods(ds)
        self.expectations.observe(uid, seen={p["metadata"]["name"] for p in owned},
                                  active={p["metadata"]["name"] for p in owned if podutil.is_active(p)})
        current, old = await self._history(ds)
        hash_ = str((current["metadata"].get("labels") or {}).get(logic.HASH_LABEL) or "")
        at = now()
        clock = at.timestamp()
        generation = int((ds.get("status") or {}).get("observedGeneration") or 0)
        nodes = list(self.nodes.store.values())
        backoff: dict[str, float] = {}
        for node in nodes:
            delay = self.backoff.in_backoff(f"{uid}/{generation}/{node['metadata']['name']}", clock)
            if delay is not None:
                backoff[node["metadata"]["name"]] = delay
        plan = logic.plan(logic.Observed(ds=ds, nodes=nodes, pods=owned, hash=hash_,
                                         expectations_satisfied=self.expectations.satisfied(uid), now=at,
                                         backoff=backoff))
        for event in plan.events:
            self.events.emit(ds, event)
        if plan.selecting_all:
            return None
        for node_name in plan.backoff:
            self.backoff.step(f"{uid}/{generation}/{node_name}", clock)

        error: str | None = None
        if plan.delete:
            error = (await self.pod_control.delete_many(ds, plan.delete)).error
        if plan.create:
            bodies = [logic.pod_for_node(ds, self.resource, node, hash_) for node in plan.create]
            error = (await self.pod_control.create_each(ds, bodies)).error or error
        await self._write_status(ds, plan.status if self.builtin else {**plan.status, "excludedNodes": plan.excluded})
        if error is not None:
            raise RetryLater(error)
        await self._cleanup_history(ds, old, owned)
        return plan.requeue

    async def _write_status(self, ds: Obj, status: dict[str, Any]) -> None:
        diff = merge_diff(ds.get("status"), status)
        if not diff:
            return
        try:
            await self.kube.patch(self.resource.object_path(ds, "status"), {"status": diff})
        except ApiError as e:
            if not e.not_found:
                raise

    # --- history (ControllerRevisions) -------------------------------------------------------------

    def _revisions(self, ds: Obj) -> list[Obj]:
        return list(self.revisions.by_index(caches.CONTROLLER, ds["metadata"]["uid"]))

    async def _history(self, ds: Obj) -> tuple[Obj, list[Obj]]:
        """constructHistory: (the current revision, the others)."""
        data = logic.revision_data(ds)
        revisions = self._revisions(ds)
        current = history.equal_revisions(revisions, data)
        old = [r for r in revisions if r not in current]
        next_number = max((history.revision_number(r) for r in old), default=0) + 1
        if not current:
            return await self._snapshot(ds, data, next_number), old
        # dedupCurHistories: the highest-numbered equal revision is the current one.
        chosen = history.sort_revisions(current)[-1]
        if history.revision_number(chosen) < next_number:
            chosen = await history.renumber(self.kube, chosen, next_number)
        return chosen, old

    async def _snapshot(self, ds: Obj, data: dict[str, Any], number: int) -> Obj:
        hash_ = logic.template_hash(ds)
        labels = dict(((ds.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {})
        labels[logic.HASH_LABEL] = hash_
        return await history.create_revision(self.kube, ds, self.resource, data, hash_, number, labels)

    async def _cleanup_history(self, ds: Obj, old: list[Obj], pods: list[Obj]) -> None:
        """cleanupHistory: the oldest revisions beyond revisionHistoryLimit that no pod uses."""
        keep = int((ds.get("spec") or {}).get("revisionHistoryLimit", 10))
        excess = len(old) - keep
        if excess <= 0:
            return
        live = {str(h) for p in pods if (h := (p["metadata"].get("labels") or {}).get(logic.HASH_LABEL))}
        doomed: list[Obj] = []
        for revision in history.sort_revisions(old):
            if excess <= 0:
                break
            if (revision["metadata"].get("labels") or {}).get(logic.HASH_LABEL) in live:
                continue
            doomed.append(revision)
            excess -= 1
        await history.delete_revisions(self.kube, doomed)


def build(manager: ControllerManager, resource: Resource, name: str, *, builtin: bool) -> DaemonSetController:
    """kubeplane's DaemonSet; in drop-in mode apps/v1's too, with the same code (its status has the same
    fields; its template generation is the annotation the apps/v1 registry keeps)."""
    return DaemonSetController(manager, resource, name, builtin=builtin)
