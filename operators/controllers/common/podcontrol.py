"""Pod control: how every workload controller creates and deletes pods (controller_utils.go's
RealPodControl, plus the slow-start batching the ReplicaSet, DaemonSet and Job share).

- `create_many` creates `count` copies of one pod body (`create_each` one pod per body: a Job's
  indexed pods) in batches of 1, 2, 4, ...: a template that
  fails (quota, admission) costs one call, not hundreds. The first failing batch stops the rest; every
  create that failed or was never attempted is taken off the expectations, so the owner is not
  wedged waiting for pods that will never come.
- `create_named` creates a pod with a fixed name (StatefulSet): 409 AlreadyExists means it exists.
- `delete_many` deletes pods at once; a pod already gone is no failure.
- Every outcome is an Event as upstream writes it: SuccessfulCreate "Created pod: NAME",
  FailedCreate "Error creating: ERR" (one per failed create), SuccessfulDelete "Deleted pod: NAME",
  FailedDelete "Error deleting: ERR". A create refused because the namespace is terminating is no
  failure worth an Event, a condition or a retry.
- Any exception from a call counts as that call failing (a reset connection, a timeout), never as
  something still in flight.

Results come back as `ManageResult`: what was done and the first error, which the caller turns into
its ReplicaFailure-style condition with upstream's message (the API server's message for a create,
"unable to delete pods: ..." for a delete).
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from operators.controllers.common.expectations import Expectations
from operators.core import metrics
from operators.core.apis import PODS, Resource
from operators.core.events import EventRecorder
from operators.core.kube import ApiError, Kube
from operators.core.owners import owner_reference

logger = logging.getLogger(__name__)

NAMESPACE_TERMINATING = "NamespaceTerminating"
SLOW_START_INITIAL_BATCH = 1  # controller.SlowStartInitialBatchSize


def pod_from_template(owner: Mapping[str, Any], resource: Resource, template: Mapping[str, Any]) -> dict[str, Any]:
    """controller.GetPodFromTemplate: the template's labels, annotations, finalizers and spec (a copy), a
    name generated from the owner's, and the owner as controller."""
    meta = template.get("metadata") or {}
    metadata: dict[str, Any] = {
        "generateName": f"{owner['metadata']['name']}-",
        "namespace": owner["metadata"]["namespace"],
        "labels": dict(meta.get("labels") or {}),
        "ownerReferences": [owner_reference(owner, resource)],
    }
    if meta.get("annotations"):
        metadata["annotations"] = dict(meta["annotations"])
    if meta.get("finalizers"):
        metadata["finalizers"] = list(meta["finalizers"])
    body_spec = copy.deepcopy(dict(template.get("spec") or {}))
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": body_spec}


def slow_start_batches(count: int, initial: int = SLOW_START_INITIAL_BATCH) -> list[int]:
    """Batch sizes 1, 2, 4, ... adding up to `count`."""
    sizes: list[int] = []
    size, remaining = initial, count
    while remaining > 0:
        batch = min(size, remaining)
        sizes.append(batch)
        remaining -= batch
        size *= 2
    return sizes


def error_message(error: BaseException) -> str:
    """What upstream's err.Error() shows: the API server's message, else the exception itself."""
    if isinstance(error, ApiError):
        return error.message
    return str(error) or type(error).__name__


def namespace_terminating(error: BaseException) -> bool:
    return isinstance(error, ApiError) and error.has_cause(NAMESPACE_TERMINATING)


@dataclass
class ManageResult:
    created: list[str] = field(default_factory=list)  # names of pods created
    deleted: list[str] = field(default_factory=list)
    error: str | None = None  # the first error, as the condition shows it

    @property
    def failed(self) -> bool:
        return self.error is not None


class PodControl:
    def __init__(self, kube: Kube, events: EventRecorder, expectations: Expectations, controller: str) -> None:
        self.kube = kube
        self.events = events
        self.expectations = expectations
        self.controller = controller  # the metrics label

    async def create_many(self, owner: Mapping[str, Any], body: Mapping[str, Any], count: int) -> ManageResult:
        """Create `count` pods from `body` (generateName set) in slow-start batches."""
        return await self.create_each(owner, [body] * count)

    async def create_each(self, owner: Mapping[str, Any], bodies: Sequence[Mapping[str, Any]]) -> ManageResult:
        """Create one pod per body (generateName set), in order, in slow-start batches (a Job's
        indexed pods differ in their index)."""
        owner_uid = owner["metadata"]["uid"]
        namespace = owner["metadata"]["namespace"]
        count = len(bodies)
        self.expectations.expect_creations(owner_uid, count)
        result = ManageResult()
        errors: list[BaseException] = []

        async def one(body: Mapping[str, Any]) -> None:
            try:
                pod = await self.kube.create(PODS.path(namespace), body)
            except Exception as e:
                self.expectations.creation_failed(owner_uid)
                if namespace_terminating(e):
                    return
                errors.append(e)
                self.events.warning(owner, "FailedCreate", f"Error creating: {error_message(e)}")
                return
            name = pod["metadata"]["name"]
            self.expectations.created(owner_uid, name)
            result.created.append(name)
            metrics.PODS_CREATED.labels(self.controller).inc()
            self.events.normal(owner, "SuccessfulCreate", f"Created pod: {name}")

        batches = slow_start_batches(count)
        done = 0
        for i, size in enumerate(batches):
            await asyncio.gather(*(one(body) for body in bodies[done:done + size]))
            done += size
            if errors:
                skipped = sum(batches[i + 1:])
                if skipped:
                    logger.info("slow start: %d create(s) failed; skipping %d for %s/%s", len(errors), skipped,
                                namespace, owner["metadata"]["name"])
                    self.expectations.creation_failed(owner_uid, skipped)
                break
        if errors:
            result.error = error_message(errors[0])
        return result

    async def create_named(self, owner: Mapping[str, Any], body: Mapping[str, Any]) -> tuple[bool, str | None]:
        """Create a pod with a fixed name: (True, None) created, (False, None) it exists already,
        (False, message) failed."""
        namespace = owner["metadata"]["namespace"]
        name = body["metadata"]["name"]
        try:
            await self.kube.create(PODS.path(namespace), body)
        except ApiError as e:
            if e.already_exists:
                return False, None
            if namespace_terminating(e):
                return False, None
            self.events.warning(owner, "FailedCreate", f"Error creating: {error_message(e)}")
            return False, error_message(e)
        except Exception as e:
            self.events.warning(owner, "FailedCreate", f"Error creating: {error_message(e)}")
            return False, error_message(e)
        metrics.PODS_CREATED.labels(self.controller).inc()
        self.events.normal(owner, "SuccessfulCreate", f"Created pod: {name}")
        return True, None

    async def delete_many(self, owner: Mapping[str, Any], victims: Sequence[Mapping[str, Any]]) -> ManageResult:
        owner_uid = owner["metadata"]["uid"]
        names = [p["metadata"]["name"] for p in victims]
        self.expectations.expect_deletions(owner_uid, names)
        result = ManageResult()
        errors: list[BaseException] = []

        async def one(pod: Mapping[str, Any]) -> None:
            name = pod["metadata"]["name"]
            try:
                await self.kube.delete(PODS.object_path(pod))
            except Exception as e:
                # The informer will not observe a deletion that did not happen.
                self.expectations.deletion_observed(owner_uid, name)
                if isinstance(e, ApiError) and e.not_found:
                    return
                errors.append(e)
                self.events.warning(owner, "FailedDelete", f"Error deleting: {error_message(e)}")
                return
            result.deleted.append(name)
            metrics.PODS_DELETED.labels(self.controller).inc()
            self.events.normal(owner, "SuccessfulDelete", f"Deleted pod: {name}")

        await asyncio.gather(*(one(p) for p in victims))
        if errors:
            result.error = f"unable to delete pods: {error_message(errors[0])}"
        return result
