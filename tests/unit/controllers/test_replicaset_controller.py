"""The ReplicaSet controller's I/O (controller.py) against a scripted fake client: every failure of
a create or delete is counted (the previous code let a reset connection or a timeout escape the
failure accounting and manage nothing for five minutes), an owner gone at the adoption re-check ends
the sync (it used to go on from the stale cache), a terminating namespace is no failure, and a second
sync before the cache shows the new pods creates nothing."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from operators.controllers.replicaset.controller import ReplicaSetController
from operators.core.apis import PODS, REPLICASETS
from operators.core.kube import STRATEGIC_PATCH, ApiError
from operators.core.workqueue import RetryLater
from tests.unit.controllers.fakekube import ControllerWorld

NS = "ns"
RS_COLLECTION = REPLICASETS.path(NS)
POD_COLLECTION = PODS.path(NS)


def replicaset(replicas: int, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": REPLICASETS.api_version, "kind": "ReplicaSet",
        "metadata": {"name": "web", "namespace": NS, "uid": "rs-uid", "generation": 1, **meta},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "x"}]}}},
        "status": {},
    }


def orphan(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": NS, "labels": {"app": "web"}},
            "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}


class World(ControllerWorld):
    def __init__(self, rs: dict[str, Any], pods: list[dict[str, Any]] = ()) -> None:  # type: ignore[assignment]
        super().__init__("replicaset", [(RS_COLLECTION, rs), *((POD_COLLECTION, p) for p in pods)], f"{NS}/web")
        assert isinstance(self.controller, ReplicaSetController)

    def status(self) -> dict[str, Any]:
        return dict(self.kube.objects[f"{RS_COLLECTION}/web"].get("status") or {})

    def pods(self) -> list[str]:
        return sorted(k.rsplit("/", 1)[1] for k in self.kube.objects if k.startswith(POD_COLLECTION + "/"))


@pytest.mark.parametrize("error", [aiohttp.ClientConnectionError("Connection reset by peer"),
                                   TimeoutError("the API server did not answer")], ids=["reset", "timeout"])
async def test_transport_errors_count_as_failed_creates(error: BaseException) -> None:
    world = World(replicaset(7))
    await world.observe()
    world.kube.fail("POST", r"/pods$", error, times=2, after=1)  # the second batch (2 creates) fails
    with pytest.raises(RetryLater):
        await world.sync()
    assert len(world.kube.writes("POST", r"/pods$")) == 3  # 1, then a batch of 2; the rest skipped
    assert len(world.pods()) == 1
    assert world.controller.expectations.pending("rs-uid") == (1, 0)  # only the pod that exists
    await world.observe()
    assert world.controller.expectations.satisfied("rs-uid"), "a failed create must never stay expected"
    [condition] = world.status()["conditions"]
    assert condition["reason"] == "FailedCreate" and str(error) in condition["message"]
    assert len(world.events("FailedCreate")) == 2  # one per failed create, as RealPodControl
    # The next sync goes on where it stopped.
    await world.sync()
    assert len(world.pods()) == 1 + 6


def owned(name: str) -> dict[str, Any]:
    pod = orphan(name)
    pod["metadata"]["ownerReferences"] = [{"apiVersion": REPLICASETS.api_version, "kind": "ReplicaSet",
                                           "name": "web", "uid": "rs-uid", "controller": True}]
    return pod


async def test_a_failed_delete_is_not_awaited() -> None:
    world = World(replicaset(1), [owned("a"), owned("b"), owned("c")])
    await world.observe()
    world.kube.fail("DELETE", r"/pods/", aiohttp.ServerDisconnectedError(), times=2)
    with pytest.raises(RetryLater, match="unable to delete pods"):
        await world.sync()
    assert world.controller.expectations.pending("rs-uid") == (0, 0)


@pytest.mark.parametrize("fresh", [None, {"uid": "another-uid"}, {"deletionTimestamp": "2026-01-01T00:00:00Z"}],
                         ids=["deleted", "replaced", "being-deleted"])
async def test_an_owner_gone_at_the_adoption_recheck_ends_the_sync(fresh: dict[str, Any] | None) -> None:
    world = World(replicaset(3), [orphan("o")])
    await world.observe()
    path = f"{RS_COLLECTION}/web"
    if fresh is None:
        del world.kube.objects[path]  # gone from the API server; the cache still has it
    else:
        world.kube.objects[path] = replicaset(3, **fresh)
    with pytest.raises(RetryLater, match="gone or being deleted"):
        await world.sync()
    assert world.kube.writes("PATCH", r"/pods/") == [], "nothing adopted"
    assert world.kube.writes("POST", r"/pods$") == [], "nothing created from the stale cache"


async def test_adoption_patches_pods_with_a_uid_guarded_strategic_merge() -> None:
    world = World(replicaset(1), [orphan("o")])
    await world.observe()
    await world.sync()
    [patch] = world.kube.writes("PATCH", r"/pods/o$")
    assert patch.content_type == STRATEGIC_PATCH
    assert patch.body["metadata"]["uid"] == "uid-o"
    assert patch.body["metadata"]["ownerReferences"][0]["uid"] == "rs-uid"
    assert world.kube.writes("POST", r"/pods$") == []


async def test_an_adoptee_gone_is_replaced_in_the_same_sync() -> None:
    world = World(replicaset(1), [orphan("o")])
    await world.observe()
    del world.kube.objects[f"{POD_COLLECTION}/o"]  # deleted after the cache saw it: adoption gets 404
    await world.sync()
    assert len(world.kube.writes("POST", r"/pods$")) == 1  # upstream counts after claiming


async def test_a_terminating_namespace_is_no_failure() -> None:
    world = World(replicaset(2))
    await world.observe()
    terminating = ApiError(403, {"reason": "Forbidden", "message": "namespace ns is being terminated",
                                 "details": {"causes": [{"reason": "NamespaceTerminating"}]}})
    world.kube.fail("POST", r"/pods$", terminating, times=5)
    await world.sync()  # no RetryLater
    assert "conditions" not in world.status() and world.events("FailedCreate") == []
    assert world.controller.expectations.satisfied("rs-uid")


async def test_two_syncs_before_the_cache_catches_up_create_once() -> None:
    world = World(replicaset(3))
    await world.observe()
    await world.sync()
    await world.sync()  # the informer has not shown the three pods yet
    assert len(world.kube.writes("POST", r"/pods$")) == 3
    await world.observe()
    await world.sync()
    assert len(world.kube.writes("POST", r"/pods$")) == 3


async def test_status_written_only_when_it_changes() -> None:
    world = World(replicaset(0))
    await world.observe()
    await world.sync()
    writes = len(world.kube.writes("PATCH", r"/status$"))
    await world.observe()
    await world.sync()
    assert len(world.kube.writes("PATCH", r"/status$")) == writes
