"""The HorizontalPodAutoscaler controller's I/O: a handler that enqueues, and the sync that acts.

Read side by side with pkg/controller/podautoscaler/horizontal.go (reconcileAutoscaler):

- every HPA is synced when it changes and then every sync period (15 s, kube-controller-manager's
  --horizontal-pod-autoscaler-sync-period; `KUBEPLANE_HPA_SYNC_PERIOD` here);
- `sync` reads the target's scale subresource (whatever resource serves it: the resource is found by
  discovery from scaleTargetRef's apiVersion and kind), the pods its selector picks (from the shared pod
  cache), and each metric (`metrics.py`); `logic.decide` decides once; the scale is written when the
  count changes (an update of the scale subresource, guarded by the resourceVersion it was read at), then
  one status write, then the Events.
- What upstream keeps in memory (recommendations, scale events) lives in status as well: a restarted
  controller, or a new leader, reads it back the first time it syncs an HPA, so the stabilization windows
  and rate limits hold across restarts. `status.nextScaleDownTime` says when a held-back scale-down may
  come.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from operators.controllers import caches
from operators.controllers.common.loop import Controller
from operators.controllers.common.podcontrol import error_message
from operators.controllers.hpa import logic
from operators.controllers.hpa.metrics import DEFAULT_METRICS, Metrics, propose
from operators.controllers.manager import ControllerManager
from operators.core.apis import PODS, Resource
from operators.core.events import EventRecorder
from operators.core.informer import DELETED, object_key
from operators.core.kube import ApiError
from operators.core.selectors import SelectorError, parse
from operators.core.status import merge_diff
from operators.core.timeutil import now
from operators.core.workqueue import RetryLater

logger = logging.getLogger(__name__)

Obj = Mapping[str, Any]
WORKERS = 5  # kube-controller-manager's --concurrent-horizontal-pod-autoscaler-syncs
COMPONENT = "horizontal-pod-autoscaler"
SYNC_PERIOD = float(os.environ.get("KUBEPLANE_HPA_SYNC_PERIOD", "15"))
DISCOVERY_TTL = 60.0  # seconds a discovered resource list is trusted


class ScaleTargetError(Exception):
    """The target's scale cannot be read: the Event's message, and the condition's after SCALE_UNREADABLE."""


SCALE_UNREADABLE = "the HPA controller was unable to get the target's current scale: "


class HPAController(Controller):
    workers = WORKERS
    resync_seconds = None  # every HPA requeues itself each sync period

    def __init__(self, manager: ControllerManager, resource: Resource, name: str, *,
                 extended_status: bool = True, sync_period: float = SYNC_PERIOD) -> None:
        super().__init__(name)
        self.kube = manager.client()
        self.resource = resource
        self.extended_status = extended_status
        self.sync_period = sync_period
        self.hpas = manager.informers.informer(resource)
        self.pods = manager.informers.informer(PODS)
        self.hpas.add_handler(self._on_hpa)
        self.events = EventRecorder(self.kube, COMPONENT)
        self.recorders.append(self.events)
        self.metrics = Metrics(self.kube.get, self._plural)
        self.state: dict[str, logic.State] = {}  # by HPA uid
        self._discovery: dict[str, tuple[float, list[Obj]]] = {}
        self.clock: Callable[[], datetime] = now

    def keys(self) -> list[str]:
        return list(self.hpas.store)

    def _on_hpa(self, kind: str, hpa: Obj, old: Obj | None) -> None:
        if kind == DELETED:
            self.state.pop(hpa["metadata"]["uid"], None)
            return
        if old is not None and old.get("spec") == hpa.get("spec"):
            return  # our own status write: the sync period brings it back
        self.queue.add(object_key(hpa))

    # --- the sync ----------------------------------------------------------------------------------

    async def sync(self, key: str) -> float | None:
        hpa = self.hpas.get(key)
        if hpa is None:
            return None
        uid = hpa["metadata"]["uid"]
        state = self.state.get(uid)
        if state is None:
            state = logic.state_from_status(hpa) if self.extended_status else logic.State()
        at = self.clock()
        try:
            path, scale = await self._scale(hpa)
        except ScaleTargetError as err:
            await self._scale_unreadable(hpa, state, at, str(err))
            return self.sync_period
        spec_replicas = int((scale.get("spec") or {}).get("replicas") or 0)
        status_replicas = int((scale.get("status") or {}).get("replicas") or 0)
        selector = str((scale.get("status") or {}).get("selector") or "")
        pods = self._pods(hpa["metadata"]["namespace"], selector)
        proposals = []
        specs = (hpa.get("spec") or {}).get("metrics") or DEFAULT_METRICS
        if spec_replicas != 0 or logic.min_replicas(hpa) == 0:
            for spec in specs:
                proposals.append(await propose(self.metrics, hpa, spec, spec_replicas, status_replicas, pods,
                                               selector, at))
        decision = logic.decide(hpa, spec_replicas, proposals, state, at)
        targets = logic.targets(specs, [p.status for p in proposals])
        if decision.rescale:
            try:
                await self.kube.request("PUT", path, body={
                    **scale, "spec": {**(scale.get("spec") or {}), "replicas": decision.desired}})
            except ApiError as e:
                if e.conflict:
                    raise RetryLater(f"the scale of {key}'s target changed since this sync read it") from e
                await self._rescale_failed(hpa, spec_replicas, decision, targets, error_message(e), at, state)
                raise RetryLater(f"failed to rescale {path}: {error_message(e)}") from e
        self.state[uid] = decision.state
        replicas = decision.desired if decision.rescale else spec_replicas
        await self._write(hpa, {**logic.status(hpa, spec_replicas, decision, at), "targets": targets},
                          decision.state, at, replicas)
        for event in decision.events:
            self.events.emit(hpa, event)
        return self.sync_period

    async def _rescale_failed(self, hpa: Obj, current: int, decision: logic.Decision, targets: str, error: str,
                              at: datetime, state: logic.State) -> None:
        """The scale update was refused: a FailedRescale Warning, AbleToScale False, the current replicas and
        metrics in status (setCurrentReplicasAndMetricsInStatus); the state before this sync is kept."""
        self.events.warning(hpa, "FailedRescale", f"New size: {decision.desired}; reason: {decision.reason}; "
                                                  f"error: {error}")
        able = ("False", "FailedUpdateScale", f"the HPA controller was unable to update the target scale: {error}")
        failed = logic.Decision(current, False, "", {**decision.conditions, logic.ABLE_TO_SCALE: able}, (),
                                decision.metrics, state, failed=True)
        await self._write(hpa, {**logic.status(hpa, current, failed, at), "targets": targets}, state, at, current)

    def _pods(self, namespace: str, selector: str) -> list[Obj]:
        if not selector:
            return []
        try:
            chosen = parse(selector)
        except SelectorError:
            return []
        return [p for p in self.pods.by_index(caches.NAMESPACE, namespace)
                if chosen.matches(p["metadata"].get("labels"))]

    async def _plural(self, api_version: str, kind: str) -> str | None:
        """The resource `kind` is served as (Object metrics name it so)."""
        found = await self._mapping(api_version, kind)
        return found[1] if found else None

    async def _mapping(self, api_version: str, kind: str) -> tuple[str, str] | None:
        """The group version and resource serving `kind` of `api_version`'s group, by discovery (a RESTMapper's
        job). Like upstream's RESTMappings(GroupKind), the version does not have to be served: a reference
        to apps/v1beta2 finds apps/v1 (the ref's own version first when served, then the group's preferred
        one, then the rest). The cached lists first, then fresh ones (a CRD created since)."""
        group = api_version.rpartition("/")[0]
        for fresh in (False, True):
            versions = [api_version]
            if group:
                versions += [v for v in await self._group_versions(group, fresh) if v != api_version]
            for version in versions:
                resources = await self._discover(version, fresh)
                plural = next((r["name"] for r in resources if r.get("kind") == kind and "/" not in r["name"]), None)
                if plural is not None:
                    return version, str(plural)
        return None

    async def _group_versions(self, group: str, fresh: bool) -> list[str]:
        """The versions `group` is served at, its preferred one first."""
        key = f"group:{group}"
        cached = self._discovery.get(key)
        if cached is not None and not fresh and time.monotonic() - cached[0] < DISCOVERY_TTL:
            return [str(v["groupVersion"]) for v in cached[1]]
        try:
            body = await self.kube.get(f"/apis/{group}")
        except ApiError as e:
            if not e.not_found:
                raise
            body = {}
        preferred = (body.get("preferredVersion") or {}).get("groupVersion")
        versions = sorted(body.get("versions") or [], key=lambda v: v.get("groupVersion") != preferred)
        self._discovery[key] = (time.monotonic(), versions)
        return [str(v["groupVersion"]) for v in versions]

    async def _resource_path(self, namespace: str, ref: Obj) -> str:
        """The scale subresource's path of scaleTargetRef."""
        api_version = str(ref.get("apiVersion") or "")
        kind, name = str(ref.get("kind") or ""), str(ref.get("name") or "")
        found = await self._mapping(api_version, kind)
        if found is None:
            raise ScaleTargetError(f"no matches for kind \"{kind}\" in group \"{api_version.rpartition('/')[0]}\"")
        version, plural = found
        if not any(r["name"] == f"{plural}/scale" for r in await self._discover(version, False)):
            raise ScaleTargetError(f"{kind} {api_version} has no scale subresource")
        base = f"/apis/{version}" if "/" in version else f"/api/{version}"
        return f"{base}/namespaces/{namespace}/{plural}/{name}/scale"

    async def _discover(self, api_version: str, fresh: bool) -> list[Obj]:
        cached = self._discovery.get(api_version)
        if cached is not None and not fresh and time.monotonic() - cached[0] < DISCOVERY_TTL:
            return cached[1]
        base = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        try:
            body = await self.kube.get(base)
        except ApiError as e:
            if e.not_found:
                body = {}
            else:
                raise
        resources = list(body.get("resources") or [])
        self._discovery[api_version] = (time.monotonic(), resources)
        return resources

    async def _scale(self, hpa: Obj) -> tuple[str, dict[str, Any]]:
        ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        path = await self._resource_path(hpa["metadata"]["namespace"], ref)
        try:
            scale: dict[str, Any] = await self.kube.get(path)
        except ApiError as e:
            raise ScaleTargetError(error_message(e)) from e
        return path, scale

    async def _scale_unreadable(self, hpa: Obj, state: logic.State, at: datetime, error: str) -> None:
        """A FailedGetScale Warning (the bare error) and AbleToScale False (the error after SCALE_UNREADABLE);
        the rest of status kept."""
        reason, message = "FailedGetScale", SCALE_UNREADABLE + error
        self.events.warning(hpa, reason, error)
        old = hpa.get("status") or {}
        status = {
            "currentReplicas": int(old.get("currentReplicas") or 0),
            "desiredReplicas": int(old.get("desiredReplicas") or 0),
            "conditions": logic.conditions_list(old.get("conditions") or [],
                                                {logic.ABLE_TO_SCALE: ("False", reason, message)}, at),
        }
        if old.get("lastScaleTime"):
            status["lastScaleTime"] = old["lastScaleTime"]
        status["targets"] = logic.targets((hpa.get("spec") or {}).get("metrics") or DEFAULT_METRICS, [])
        await self._write(hpa, status, state, at, None)

    async def _write(self, hpa: Obj, status: dict[str, Any], state: logic.State, at: datetime,
                     replicas: int | None) -> None:
        new = dict(status)
        if not self.extended_status:
            new.pop("targets", None)
        else:
            new.update(logic.state_to_status(state))
            hold = logic.next_scale_down(hpa, replicas, state, at) if replicas is not None else None
            new["nextScaleDownTime"], new["nextScaleDownReason"] = hold if hold else (None, None)
        diff = merge_diff(hpa.get("status"), {k: v for k, v in new.items() if v is not None})
        if not diff:
            return
        try:
            await self.kube.patch(self.resource.object_path(hpa, "status"), {"status": diff})
        except ApiError as e:
            if not e.not_found:
                raise


def build(manager: ControllerManager, resource: Resource, name: str, *, builtin: bool) -> HPAController:
    """kubeplane's HPA, or autoscaling/v2's in drop-in mode (status then carries upstream's fields only)."""
    return HPAController(manager, resource, name, extended_status=not builtin)
