"""The Job controller's I/O (job/controller.py) on the scripted fake client: the order of its writes is
what makes counting exactly-once survive a failure at any step."""

from __future__ import annotations

from typing import Any

import pytest

from operators.controllers.job import logic
from operators.controllers.job.controller import JobController
from operators.core.apis import JOBS, PODS
from operators.core.kube import JSON_PATCH, ApiError
from operators.core.workqueue import RetryLater
from tests.unit.controllers.fakekube import ControllerWorld

NS = "ns"
JOB_COLLECTION = JOBS.path(NS)
POD_COLLECTION = PODS.path(NS)
UID = "job-uid"


def job(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": JOBS.api_version, "kind": "Job",
        "metadata": {"name": "pi", "namespace": NS, "uid": UID},
        "spec": {"completions": 2, "parallelism": 2,
                 "template": {"metadata": {"labels": {"app": "pi"}},
                              "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}},
                 **spec},
        "status": {},
    }


class World(ControllerWorld):
    def __init__(self, j: dict[str, Any]) -> None:
        super().__init__("job", [(JOB_COLLECTION, j)], f"{NS}/pi")
        assert isinstance(self.controller, JobController)

    def job(self) -> dict[str, Any]:
        return self.kube.objects[f"{JOB_COLLECTION}/pi"]

    def pods(self) -> list[dict[str, Any]]:
        return [v for k, v in sorted(self.kube.objects.items()) if k.startswith(POD_COLLECTION + "/")]

    def finish(self, pod: dict[str, Any], phase: str) -> None:
        pod["metadata"]["uid"] = pod["metadata"].get("uid") or f"uid-{pod['metadata']['name']}"
        pod["status"] = {"phase": phase, "containerStatuses": [
            {"name": "c", "state": {"terminated": {"exitCode": 0, "finishedAt": "2026-01-01T00:00:00Z"}}}]}


async def _started(world: World) -> list[dict[str, Any]]:
    await world.observe()
    await world.sync()  # the selector and labels
    selector = world.job()["spec"]["selector"]
    assert selector == {"matchLabels": {logic.CONTROLLER_UID: UID}}
    assert world.job()["spec"]["template"]["metadata"]["labels"][logic.JOB_NAME] == "pi"
    assert not world.pods(), "no pod before the selector is written"
    await world.observe()
    await world.sync()
    pods = world.pods()
    assert len(pods) == 2 and all(p["metadata"]["finalizers"] == [logic.FINALIZER] for p in pods)
    return pods


async def test_a_failed_finalizer_removal_leaves_the_pod_uncounted_and_a_retry_counts_it_once() -> None:
    world = World(job())
    pods = await _started(world)
    for p in pods:
        world.finish(p, "Succeeded")
    await world.observe()
    world.kube.fail("PATCH", r"/pods/", ApiError(500, {"message": "etcd timeout"}), times=1)
    with pytest.raises(RetryLater):
        await world.sync()
    status = world.job()["status"]
    # Step one landed, step three did not: both uids listed, nothing counted yet.
    assert sorted(status["uncountedTerminatedPods"]["succeeded"]) == sorted(p["metadata"]["uid"] for p in pods)
    assert not status.get("succeeded")
    assert sum(1 for p in world.pods() if p["metadata"]["finalizers"]) == 1

    await world.observe()
    await world.sync()
    status = world.job()["status"]
    assert status["succeeded"] == 2 and status["uncountedTerminatedPods"] == {}
    assert not any(p["metadata"]["finalizers"] for p in world.pods())
    await world.observe()
    await world.sync()
    status = world.job()["status"]
    assert status["succeeded"] == 2, "counted once, not again"
    assert [(c["type"], c["status"]) for c in status["conditions"]] == [("SuccessCriteriaMet", "True"),
                                                                        ("Complete", "True")]
    assert world.events("Completed") == ["Job completed"]


async def test_a_status_conflict_before_the_finalizers_removes_none() -> None:
    """A stale cache: the uncounted record is refused (409), so no finalizer goes and nothing is lost."""
    world = World(job())
    pods = await _started(world)
    for p in pods:
        world.finish(p, "Failed")
    await world.observe()
    world.job()["metadata"]["resourceVersion"] = "999"  # someone wrote the Job since the cache saw it
    with pytest.raises(RetryLater):
        await world.sync()
    assert all(p["metadata"]["finalizers"] == [logic.FINALIZER] for p in world.pods())
    assert not [c for c in world.kube.calls if c.content_type == JSON_PATCH]


async def test_an_expired_job_is_deleted_in_the_foreground_with_its_uid_as_precondition() -> None:
    world = World(job(ttlSecondsAfterFinished=0))
    await _started(world)
    for p in world.pods():
        world.finish(p, "Succeeded")
    for _ in range(3):  # count, then Complete, then the TTL
        await world.observe()
        await world.sync()
    deletes = world.kube.writes("DELETE", r"/jobs/pi$")
    assert [d.body for d in deletes] == [{"propagationPolicy": "Foreground", "preconditions": {"uid": UID}}]


async def test_a_sync_from_a_cache_behind_its_own_write_waits_for_the_watch() -> None:
    """After its status write, the cache still shows the version the write replaced: the next sync makes
    no call (it would only meet a 409) and returns; once the cache shows the write, syncs act again."""
    world = World(job())
    pods = await _started(world)
    world.finish(pods[0], "Succeeded")
    await world.observe()
    await world.sync()  # records, releases the finalizer, counts: writes the Job's status
    calls = len(world.kube.calls)
    await world.sync()  # same cache: behind the write
    assert len(world.kube.calls) == calls, [c.method + " " + c.path for c in world.kube.calls[calls:]]
    await world.observe()
    world.finish(pods[1], "Succeeded")
    await world.observe()
    await world.sync()
    assert world.job()["status"]["succeeded"] == 2


@pytest.mark.parametrize(("managed_by", "acts"), [("example.com/other-controller", False),
                                                  ("kubernetes.io/job-controller", True), (None, True)])
async def test_a_job_managed_by_another_controller_is_left_alone(managed_by: str | None, acts: bool) -> None:
    world = World(job(**({"managedBy": managed_by} if managed_by else {})))
    await world.observe()
    await world.sync()
    await world.observe()
    await world.sync()
    assert bool(world.kube.writes()) == acts
    assert bool(world.pods()) == acts


async def test_orphans_are_adopted_with_the_finalizer_and_unselected_pods_released() -> None:
    """getPodsForJob: an orphan the selector matches is adopted with the job-tracking finalizer in the
    same strategic merge patch (guarded by its uid); a pod the Job controls but no longer selects is
    released, its finalizer with it."""
    world = World(job())
    pods = await _started(world)
    labels = world.job()["spec"]["template"]["metadata"]["labels"]
    world.kube.put(POD_COLLECTION, {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "stray", "namespace": NS, "labels": dict(labels)}, "spec": {}, "status": {"phase": "Running"}})
    pods[0]["metadata"]["labels"] = {"moved": "away"}
    await world.observe()
    await world.sync()
    adopt = [c for c in world.kube.writes("PATCH", "/pods/stray$")]
    assert len(adopt) == 1 and adopt[0].content_type == "application/strategic-merge-patch+json"
    meta = adopt[0].body["metadata"]
    assert meta["uid"] == "uid-stray" and meta["finalizers"] == [logic.FINALIZER]
    assert meta["ownerReferences"][0]["uid"] == UID and meta["ownerReferences"][0]["controller"] is True
    release = [c for c in world.kube.writes("PATCH", f"/pods/{pods[0]['metadata']['name']}$")
               if "ownerReferences" in (c.body.get("metadata") or {})]
    assert len(release) == 1
    assert release[0].body["metadata"]["ownerReferences"] == [{"$patch": "delete", "uid": UID}]
    assert release[0].body["metadata"]["$deleteFromPrimitiveList/finalizers"] == [logic.FINALIZER]
