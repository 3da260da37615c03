"""The ReplicaSet controller's I/O: Kopf handlers that enqueue, and the sync that acts.

Handlers never reconcile: they put `(namespace, name)` on the work queue. One `sync` per key
observes (indexes), decides (logic.py), acts (API calls), then writes status, like upstream's
syncReplicaSet. Pod events find their ReplicaSet through the controller reference, or, for
orphans, through every ReplicaSet in the namespace whose selector matches.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from operators.controllers.informers import PodIndex
from operators.controllers.replicaset import logic
from operators.core import metrics
from operators.core import pods as podutil
from operators.core.events import EventRecorder
from operators.core.expectations import Expectations
from operators.core.kube import STRATEGIC_PATCH, ApiError, Kube, resource_path
from operators.core.labels import selector_matches
from operators.core.leader import LeaderElector, campaign, elector_for, shut_down, when_leading
from operators.core.pods import Pod
from operators.core.timeutil import now
from operators.core.workqueue import RetryLater, WorkQueue

logger = logging.getLogger(__name__)

Key = tuple[str, str]
ReplicaSetIndex = kopf.Index[Key, dict[str, Any]]

WORKERS = 5  # kube-controller-manager's --concurrent-replicaset-syncs
RESYNC_SECONDS = 60.0


class ReplicaSetController:
    def __init__(self, kube: Kube, replicasets: ReplicaSetIndex, pods: PodIndex) -> None:
        self.kube = kube
        self.replicasets = replicasets
        self.pods = pods
        self.queue: WorkQueue[Key] = WorkQueue("replicaset")
        self.events = EventRecorder(kube, "replicaset-controller")
        self.expectations = Expectations()
        # Set by the first handler call: Kopf runs handlers only once every index is complete.
        self.synced = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.leader: LeaderElector | None = None

    def start(self) -> None:
        # One active replica (a Lease, as kube-controller-manager elects one): standbys keep their
        # informers and queue filled, and start syncing the moment they lead.
        self.leader = elector_for(self.kube, "kubeplane-controllers")
        self.tasks = [
            asyncio.create_task(when_leading(self.leader, lambda: self.queue.run_workers(self.sync, WORKERS)),
                                name="replicaset workers"),
            asyncio.create_task(self.resync_forever(), name="replicaset resync"),
            asyncio.create_task(self.events.run(), name="replicaset events"),
            *campaign(self.leader),
        ]

    async def stop(self) -> None:
        await shut_down(self.tasks, self.leader, self.kube)

    # --- observing -----------------------------------------------------------------------------

    def get(self, key: Key) -> dict[str, Any] | None:
        store = self.replicasets.get(key)
        return next(iter(store), None) if store is not None else None

    def pods_in(self, namespace: str) -> list[Pod]:
        return list(self.pods.get(namespace, []))

    def enqueue_for_pod(self, pod: Mapping[str, Any]) -> None:
        namespace = pod["metadata"]["namespace"]
        ref = podutil.controller_ref(pod)
        if ref is not None:
            if logic.is_our_kind(ref):
                key = (namespace, ref["name"])
                self.expectations.pod_seen(key, pod["metadata"]["name"])
                self.queue.add(key)
            return
        # An orphan: every ReplicaSet that could adopt it takes a look.
        labels = pod["metadata"].get("labels")
        for key, store in self.replicasets.items():
            if key[0] != namespace:
                continue
            for rs in store:
                if selector_matches(rs["spec"].get("selector"), labels):
                    self.queue.add(key)

    async def resync_forever(self) -> None:
        """Level-triggered safety net: every ReplicaSet is looked at periodically even without events."""
        await self.synced.wait()
        while True:
            await asyncio.sleep(RESYNC_SECONDS)
            for key in list(self.replicasets.keys()):
                self.queue.add(key)

    # --- the sync ------------------------------------------------------------------------------

    async def sync(self, key: Key) -> float | None:
        rs = self.get(key)
        if rs is None:
            self.expectations.forget(key)
            return None
        namespace = key[0]
        claim = logic.claim_pods(rs, self.pods_in(namespace))
        owned = list(claim.owned)
        if claim.adopt and await self._can_adopt(rs):
            owned.extend(await self._patch_pods(rs, claim.adopt, logic.adopt_patch))
        if claim.release:
            await self._patch_pods(rs, claim.release, logic.release_patch)

        active = [p for p in owned if podutil.is_active(p)]
        terminating = [p for p in owned if podutil.is_terminating(p)]
        self.expectations.observe(
            key,
            seen={p["metadata"]["name"] for p in owned},
            active={p["metadata"]["name"] for p in active},
        )
        manage_error: tuple[str, str] | None = None
        if self.expectations.satisfied(key) and not rs["metadata"].get("deletionTimestamp"):
            manage_error = await self._manage_replicas(rs, key, active)

        status = logic.compute_status(rs, active, terminating, manage_error, now())
        patch = logic.status_patch(rs.get("status"), status)
        if patch is not None:
            try:
                path = resource_path(logic.GROUP, logic.VERSION, logic.PLURAL, *key) + "/status"
                await self.kube.patch(path, patch)
            except ApiError as e:
                if not e.not_found:
                    raise
        if manage_error is not None:
            raise RetryLater(f"{manage_error[0]}: {manage_error[1]}")
        return logic.requeue_for_availability(rs, status)

    async def _can_adopt(self, rs: Mapping[str, Any]) -> bool:
        """Upstream re-reads the owner before adopting: a cached, since-deleted owner must not adopt."""
        meta = rs["metadata"]
        try:
            fresh = await self.kube.get(
                resource_path(logic.GROUP, logic.VERSION, logic.PLURAL, meta["namespace"], meta["name"])
            )
        except ApiError as e:
            if e.not_found:
                return False
            raise
        fresh_meta = fresh["metadata"]
        return bool(fresh_meta["uid"] == meta["uid"] and not fresh_meta.get("deletionTimestamp"))

    async def _patch_pods(
        self, rs: Mapping[str, Any], targets: list[Pod], make: Callable[[Mapping[str, Any], Pod], Any]
    ) -> list[Pod]:
        """Apply an adopt or release patch to each pod; return those that took it."""

        async def one(pod: Pod) -> Pod | None:
            meta = pod["metadata"]
            try:
                await self.kube.patch(
                    resource_path("", "v1", "pods", meta["namespace"], meta["name"]),
                    make(rs, pod),
                    content_type=STRATEGIC_PATCH,
                )
            except ApiError as e:
                # Gone, or replaced by a pod with another uid (422 from the uid precondition).
                if e.not_found or e.status == 422:
                    return None
                raise
            return pod

        results = await asyncio.gather(*(one(p) for p in targets))
        return [p for p in results if p is not None]

    async def _manage_replicas(
        self, rs: Mapping[str, Any], key: Key, active: list[Pod]
    ) -> tuple[str, str] | None:
        plan = logic.plan_replicas(int(rs["spec"].get("replicas", 1)), active, now())
        if plan.create:
            return await self._create_pods(rs, key, plan.create)
        if plan.delete:
            return await self._delete_pods(rs, key, list(plan.delete))
        return None

    async def _create_pods(self, rs: Mapping[str, Any], key: Key, count: int) -> tuple[str, str] | None:
        self.expectations.expect_creations(key, count)
        template = logic.pod_from_template(rs)
        path = resource_path("", "v1", "pods", key[0])
        errors: list[ApiError] = []

        async def one() -> None:
            try:
                pod = await self.kube.create(path, template)
            except ApiError as e:
                self.expectations.creation_failed(key)
                errors.append(e)
                return
            self.expectations.created(key, pod["metadata"]["name"])
            metrics.PODS_CREATED.labels("replicaset").inc()
            self.events.normal(rs, reason="SuccessfulCreate", message=f"Created pod: {pod['metadata']['name']}")

        batches = logic.slow_start_batches(count)
        for i, size in enumerate(batches):
            await asyncio.gather(*(one() for _ in range(size)))
            if errors:
                # Stop at the first failing batch; the creates never attempted are no longer expected.
                for _ in range(sum(batches[i + 1 :])):
                    self.expectations.creation_failed(key)
                break
        # As upstream: a namespace being deleted is no failure worth a condition, an Event or a retry.
        reportable = [e for e in errors if not e.has_cause("NamespaceTerminating")]
        if not reportable:
            return None
        message = f"Error creating: {reportable[0].message}"
        self.events.warning(rs, reason="FailedCreate", message=message)
        return "FailedCreate", message

    async def _delete_pods(
        self, rs: Mapping[str, Any], key: Key, victims: list[Pod]
    ) -> tuple[str, str] | None:
        names = [p["metadata"]["name"] for p in victims]
        self.expectations.expect_deletions(key, names)
        errors: list[ApiError] = []

        async def one(name: str) -> None:
            try:
                await self.kube.delete(resource_path("", "v1", "pods", key[0], name))
            except ApiError as e:
                if e.not_found:
                    return
                self.expectations.deletion_failed(key, name)
                errors.append(e)
                return
            metrics.PODS_DELETED.labels("replicaset").inc()
            self.events.normal(rs, reason="SuccessfulDelete", message=f"Deleted pod: {name}")

        await asyncio.gather(*(one(n) for n in names))
        if not errors:
            return None
        message = f"Error deleting: {errors[0].message}"
        self.events.warning(rs, reason="FailedDelete", message=message)
        return "FailedDelete", message


# --- Kopf wiring --------------------------------------------------------------------------------

_controller: ReplicaSetController | None = None


def _trim_rs(body: Mapping[str, Any]) -> dict[str, Any]:
    metadata = {k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"}
    return {
        "apiVersion": body.get("apiVersion"), "kind": body.get("kind"),
        "metadata": metadata, "spec": dict(body.get("spec") or {}), "status": dict(body.get("status") or {}),
    }


@kopf.index(logic.GROUP, logic.VERSION, logic.PLURAL)
async def kubeplane_replicasets(body: kopf.Body, **_: Any) -> dict[Key, dict[str, Any]]:
    return {(body.metadata.namespace or "", body.metadata.name or ""): _trim_rs(body)}


@kopf.on.startup()
async def start_replicaset_controller(**kwargs: Any) -> None:
    # Kopf passes every index to every handler by the indexing function's name.
    global _controller
    kube = await Kube.connect()
    _controller = ReplicaSetController(kube, kwargs["kubeplane_replicasets"], kwargs["pods_by_namespace"])
    _controller.start()


@kopf.on.cleanup()
async def stop_replicaset_controller(**_: Any) -> None:
    if _controller is not None:
        await _controller.stop()


@kopf.on.event(logic.GROUP, logic.VERSION, logic.PLURAL)
async def replicaset_event(body: kopf.Body, **_: Any) -> None:
    assert _controller is not None
    _controller.synced.set()
    _controller.queue.add((body.metadata.namespace or "", body.metadata.name or ""))


@kopf.on.event("", "v1", "pods")
async def pod_event(body: kopf.Body, **_: Any) -> None:
    assert _controller is not None
    _controller.synced.set()
    _controller.enqueue_for_pod(body)
