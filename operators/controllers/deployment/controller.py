"""The Deployment controller's I/O: informer handlers that enqueue, and the sync that acts.

Read side by side with pkg/controller/deployment/deployment_controller.go:

- handlers only enqueue: a Deployment on any change; a ReplicaSet's controller (kind, name and uid
  must match) on add, update and delete, and for an orphan every Deployment of its namespace whose
  selector matches it (and the previous controller when the reference changed); a pod's deletion
  wakes a Recreate Deployment once none of its pods is left;
- `sync` claims the ReplicaSets (adopting matching orphans after a fresh read of the Deployment,
  releasing those that no longer match), calls `logic.plan` once, and carries the plan's writes out
  in order: the new ReplicaSet's create (a same-named one with another template is a hash
  collision: status.collisionCount goes up and the sync starts again), ReplicaSet updates guarded by
  their resourceVersion (as upstream's Update), history deletes guarded by uid; then the
  Deployment's revision annotation, then its status. The first failed write ends the sync and it is
  retried with backoff, planned afresh from the caches.

The same class drives kubeplane's Deployment (`apps.kubeplane.dev`, owning kubeplane ReplicaSets) and
in drop-in mode the built-in apps/v1 Deployment (owning apps/v1 ReplicaSets).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from operators.controllers import caches
from operators.controllers.common.loop import Controller
from operators.controllers.common.ownership import OwnerGone, Patcher, claim, owners_selecting, resolve_controller_ref
from operators.controllers.deployment import logic
from operators.controllers.manager import ControllerManager
from operators.core import apis
from operators.core.apis import PODS, Resource
from operators.core.events import EventRecorder
from operators.core.informer import ADDED, DELETED, object_key
from operators.core.kube import JSON_PATCH, ApiError
from operators.core.owners import controller_ref, owner_reference
from operators.core.selectors import Selector, SelectorError, from_label_selector
from operators.core.status import status_patch
from operators.core.timeutil import now
from operators.core.workqueue import RetryLater

logger = logging.getLogger(__name__)

Obj = Mapping[str, Any]
WORKERS = 5  # kube-controller-manager's --concurrent-deployment-syncs
COMPONENT = "deployment-controller"


def _semantic(status: Obj | None) -> dict[str, Any]:
    """A status with zero values dropped: the API server omits them for built-in kinds."""
    return {k: v for k, v in (status or {}).items() if v not in (None, 0, "", [], {})}


class DeploymentController(Controller):
    workers = WORKERS

    def __init__(self, manager: ControllerManager, resource: Resource, sets: Resource, name: str, *,
                 extended_status: bool = True) -> None:
        super().__init__(name)
        self.kube = manager.client()
        self.resource = resource
        self.sets_resource = sets
        self.extended_status = extended_status
        self.deployments = manager.informers.informer(resource)
        self.sets = manager.informers.informer(sets)
        self.pods = manager.informers.informer(PODS)
        self.deployments.add_handler(self._on_deployment)
        self.sets.add_handler(self._on_set)
        self.pods.add_handler(self._on_pod)
        self.events = EventRecorder(self.kube, COMPONENT)
        self.recorders.append(self.events)
        self._selectors: dict[str, Selector | None] = {}

    def keys(self) -> list[str]:
        return list(self.deployments.store)

    # --- what the caches say ---------------------------------------------------------------------

    def selector(self, d: Obj) -> Selector | None:
        uid = d["metadata"]["uid"]
        if uid not in self._selectors:
            try:
                self._selectors[uid] = from_label_selector((d.get("spec") or {}).get("selector"))
            except SelectorError as e:
                logger.error("%s %s: invalid selector: %s", self.resource.kind, object_key(d), e)
                self._selectors[uid] = None
        return self._selectors[uid]

    def resolve(self, namespace: str, ref: Obj | None) -> Obj | None:
        """resolveControllerRef, from this controller's cache."""
        return resolve_controller_ref(self.deployments.get, self.resource, namespace, ref)

    def selecting(self, rs: Obj) -> list[Obj]:
        """getDeploymentsForReplicaSet: the Deployments of its namespace whose selector matches it."""
        return owners_selecting(self.deployments, rs, self.selector)

    # --- handlers: enqueue only --------------------------------------------------------------------

    def _enqueue(self, d: Obj) -> None:
        self.queue.add(object_key(d))

    def _on_deployment(self, kind: str, d: Obj, old: Obj | None) -> None:
        if kind == DELETED or (old is not None and old["metadata"]["uid"] != d["metadata"]["uid"]):
            self._selectors.pop((old or d)["metadata"]["uid"], None)
        self._enqueue(d)

    def _on_set(self, kind: str, rs: Obj, old: Obj | None) -> None:
        namespace = rs["metadata"].get("namespace") or ""
        ref = controller_ref(rs)
        if old is not None and controller_ref(old) != ref:
            previous = self.resolve(namespace, controller_ref(old))
            if previous is not None:
                self._enqueue(previous)
        if ref is not None:
            d = self.resolve(namespace, ref)
            if d is not None:
                self._enqueue(d)
            return
        if kind == DELETED:
            return
        labels_changed = old is not None and \
            (old["metadata"].get("labels") or {}) != (rs["metadata"].get("labels") or {})
        if kind == ADDED or labels_changed or (old is not None and controller_ref(old) is not None):
            for d in self.selecting(rs):
                self._enqueue(d)

    def _on_pod(self, kind: str, pod: Obj, old: Obj | None) -> None:
        """deletePod: a Recreate Deployment waits for its old pods to be gone."""
        if kind != DELETED:
            return
        namespace = pod["metadata"].get("namespace") or ""
        ref = controller_ref(pod)
        if ref is None or not self.sets_resource.is_kind_of(ref):
            return
        rs = self.sets.get(f"{namespace}/{ref.get('name')}")
        if rs is None or rs["metadata"]["uid"] != ref.get("uid"):
            return
        d = self.resolve(namespace, controller_ref(rs))
        if d is None or logic.is_rolling(d):
            return
        for sibling in self.sets.by_index(caches.CONTROLLER, d["metadata"]["uid"]):
            if self.pods.by_index(caches.CONTROLLER, sibling["metadata"]["uid"]):
                return
        self._enqueue(d)

    # --- the sync ----------------------------------------------------------------------------------

    async def sync(self, key: str) -> float | None:
        d = self.deployments.get(key)
        if d is None:
            return None
        selector = self.selector(d)
        if selector is None:
            return None
        meta = d["metadata"]
        candidates = [*self.sets.by_index(caches.CONTROLLER, meta["uid"]),
                      *self.sets.by_index(caches.ORPHAN, meta["namespace"])]
        empty = selector.empty()
        claimed = claim(d, candidates, lambda rs: not empty and selector.matches(rs["metadata"].get("labels") or {}))
        sets = list(claimed.owned)
        if not empty:
            sets += await self._claim(d, claimed.adopt, claimed.release)
        pods_by_set = {rs["metadata"]["uid"]: self.pods.by_index(caches.CONTROLLER, rs["metadata"]["uid"])
                       for rs in sets}
        observed = logic.Observed(d, sets, pods_by_set, now(), selector_text=str(selector),
                                  extended_status=self.extended_status)
        plan = logic.plan(observed)
        versions: dict[str, str] = {}  # a ReplicaSet written twice in one sync: the second builds on the first
        for write in plan.writes:
            await self._write(d, write, plan, versions)
            if write.event is not None:
                self._event(d, *write.event)
        for event in plan.events:
            self._event(d, *event)
        # Every write to the Deployment carries the version this sync planned from (then its own previous
        # write's), as upstream's Update/UpdateStatus: a plan made from a cache that lags the server (say,
        # before it saw this controller's last status) is refused and made again, never written over it.
        version = _version(d, "")
        annotations = {**plan.annotations, **({logic.REVISION: plan.revision} if plan.revision is not None else {})}
        if annotations:
            version = await self._patch_deployment(d, version, {"metadata": {"annotations": annotations}})
        if plan.rollback_to is not None:
            # progressDeadlinePolicy Rollback: what `rollout undo` writes, guarded by the uid and version.
            try:
                written = await self.kube.patch(self.resource.object_path(d), [
                    {"op": "test", "path": "/metadata/uid", "value": d["metadata"]["uid"]},
                    {"op": "test", "path": "/metadata/resourceVersion", "value": version},
                    {"op": "replace", "path": "/spec/template", "value": plan.rollback_to},
                ], content_type=JSON_PATCH)
            except ApiError as e:
                raise RetryLater(f"rolling back {self.resource.kind} {d['metadata']['name']}: {e.message}") from e
            version = _version(written, version)
        if plan.status is not None:
            await self._write_status(d, plan.status, version)
        return plan.requeue_after

    def _event(self, d: Obj, type_: str, reason: str, message: str) -> None:
        (self.events.warning if type_ == "Warning" else self.events.normal)(d, reason, message)

    async def _claim(self, d: Obj, adopt: list[Obj], release: list[Obj]) -> list[Obj]:
        if not adopt and not release:
            return []
        patcher = Patcher(self.kube, d, self.resource, self.sets_resource)
        await asyncio.gather(*(patcher.release(rs) for rs in release))
        try:
            adopted = await asyncio.gather(*(patcher.adopt(rs) for rs in adopt))
        except OwnerGone as e:
            raise RetryLater(str(e)) from e
        return [rs for rs, ok in zip(adopt, adopted, strict=True) if ok]

    async def _write(self, d: Obj, write: logic.Write, plan: logic.Plan, versions: dict[str, str]) -> None:
        rs = write.rs
        if write.kind == "create":
            await self._create(d, rs, plan)
        elif write.kind == "update":
            # As upstream's Update: refused if the object changed since the version this sync planned
            # from (or since this sync's own previous write of it).
            # The plan's writes of one ReplicaSet share its final state: once sent, a later write of the
            # same set has nothing new to say (its event is still posted).
            state = json.dumps([rs.annotations, rs.replicas, rs.min_ready_seconds], sort_keys=True)
            if versions.get(f"sent:{rs.uid}") == state:
                return
            guard = versions.get(rs.uid, rs.obj["metadata"]["resourceVersion"])
            body = {"metadata": {"annotations": rs.annotations, "resourceVersion": guard},
                    "spec": {"replicas": rs.replicas, "minReadySeconds": rs.min_ready_seconds}}
            try:
                written = await self.kube.patch(self.sets_resource.object_path(rs.obj), body)
                versions[rs.uid] = _version(written, guard)
                versions[f"sent:{rs.uid}"] = state
            except ApiError as e:
                raise RetryLater(f"updating {self.sets_resource.kind} {rs.name}: {e.message}") from e
        elif write.kind == "delete":
            try:
                await self.kube.delete(self.sets_resource.object_path(rs.obj),
                                       {"preconditions": {"uid": rs.uid}})
            except ApiError as e:
                if not e.not_found:
                    raise RetryLater(f"deleting {self.sets_resource.kind} {rs.name}: {e.message}") from e

    async def _create(self, d: Obj, rs: logic.RS, plan: logic.Plan) -> None:
        obj: dict[str, Any] = {
            "apiVersion": self.sets_resource.api_version, "kind": self.sets_resource.kind,
            **{k: v for k, v in rs.obj.items() if k not in ("apiVersion", "kind")},
        }
        obj["metadata"] = {**obj["metadata"], "annotations": rs.annotations,
                           "ownerReferences": [owner_reference(d, self.resource)]}
        obj["spec"] = {**obj["spec"], "replicas": rs.replicas}
        namespace = d["metadata"]["namespace"]
        try:
            await self.kube.create(self.sets_resource.path(namespace), obj)
            return
        except ApiError as e:
            error = e
        if error.status == 409:
            try:
                existing = await self.kube.get(self.sets_resource.path(namespace, rs.name))
            except ApiError as e:
                raise RetryLater(f"reading {self.sets_resource.kind} {rs.name}: {e.message}") from e
            ref = controller_ref(existing)
            if ref is not None and ref.get("uid") == d["metadata"]["uid"] and logic.equal_ignore_hash(
                    (existing.get("spec") or {}).get("template") or {}, d["spec"]["template"]):
                raise RetryLater(f"{self.sets_resource.kind} {rs.name} exists already: the cache had not seen it")
            # A hash collision: the next hash includes the raised collision count.
            await self._write_status(d, logic.collision_status(d), _version(d, ""))
            raise RetryLater(f"hash collision on {self.sets_resource.kind} {rs.name}")
        if error.status == 403:
            raise RetryLater(f"creating {self.sets_resource.kind} {rs.name}: {error.message}") from error
        message = f"Failed to create new replica set {logic.quoted(rs.name)}: {error.message}"
        status = logic.create_failed_status(d, rs.name, error.message, now())
        if status is not None:
            await self._write_status(d, status, _version(d, ""))
        self.events.warning(d, logic.FAILED_RS_CREATE, message)
        raise RetryLater(message) from error

    async def _patch_deployment(self, d: Obj, version: str, body: dict[str, Any]) -> str:
        """A merge patch of the Deployment guarded by `version`; the version it leaves."""
        metadata = {**body.get("metadata", {}), **({"resourceVersion": version} if version else {})}
        guarded = {**body, "metadata": metadata}
        try:
            return _version(await self.kube.patch(self.resource.object_path(d), guarded), version)
        except ApiError as e:
            self._raise_unless_gone(d, e)
            return version

    async def _write_status(self, d: Obj, status: dict[str, Any], version: str) -> None:
        if _semantic(d.get("status")) == _semantic(status):
            return
        patch = status_patch(d.get("status"), status)
        if patch is None:
            return
        if version:
            patch["metadata"] = {"resourceVersion": version}
        try:
            await self.kube.patch(self.resource.object_path(d, "status"), patch)
        except ApiError as e:
            self._raise_unless_gone(d, e)

    def _raise_unless_gone(self, d: Obj, error: ApiError) -> None:
        """A guarded write of the Deployment failed: a conflict plans again; only a deleted object is fine."""
        if error.conflict:
            raise RetryLater(f"{self.resource.kind} {d['metadata']['name']} changed since this sync read it; "
                             "planning again") from error
        if not error.not_found:
            raise error


def _version(written: Any, fallback: str) -> str:
    """The resourceVersion of an object (one read, or the answer to a write), else `fallback`."""
    return str(((written or {}).get("metadata") or {}).get("resourceVersion") or fallback) \
        if isinstance(written, Mapping) else fallback


def build(manager: ControllerManager, resource: Resource, name: str, *, builtin: bool) -> DeploymentController:
    sets = apis.APPS_REPLICASETS if builtin else apis.REPLICASETS
    return DeploymentController(manager, resource, sets, name, extended_status=not builtin)
