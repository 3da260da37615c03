"""The Deployment controller's I/O (controller.py) against a scripted fake client: the new ReplicaSet
is created with the Deployment as controller and its annotations; a same-named ReplicaSet with another
template is a hash collision (status.collisionCount + 1, next hash differs); a refused create sets
Progressing False ReplicaSetCreateError with an event; a ReplicaSet update carries the resourceVersion
it was planned from (or its own previous write's); the revision annotation goes on the Deployment by
a merge patch, and every write to the Deployment is guarded by the version the sync planned from."""

from __future__ import annotations

from typing import Any

import pytest

from operators.controllers.deployment import logic
from operators.controllers.deployment.controller import DeploymentController
from operators.core.apis import DEPLOYMENTS, REPLICASETS
from operators.core.kube import ApiError
from operators.core.workqueue import RetryLater
from tests.unit.controllers.fakekube import ControllerWorld

NS = "ns"
TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}


def deployment(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": DEPLOYMENTS.api_version, "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS, "uid": "d-uid", "generation": 1,
                     "annotations": {"team": "a"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE,
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                 "progressDeadlineSeconds": 600, "revisionHistoryLimit": 10},
        "status": status,
    }


class World(ControllerWorld):
    def __init__(self, d: dict[str, Any], sets: list[dict[str, Any]] = ()) -> None:  # type: ignore[assignment]
        super().__init__("deployment", [(DEPLOYMENTS.path(NS), d), *((REPLICASETS.path(NS), rs) for rs in sets)],
                         f"{NS}/web")
        assert isinstance(self.controller, DeploymentController)

    def deployment(self) -> dict[str, Any]:
        return self.kube.objects[f"{DEPLOYMENTS.path(NS)}/web"]



async def test_the_new_replica_set_is_created_owned_and_annotated_and_the_revision_noted() -> None:
    world = World(deployment())
    await world.observe()
    planned_from = world.deployment()["metadata"]["resourceVersion"]
    await world.sync()
    [create] = world.kube.writes("POST", REPLICASETS.path(NS) + "$")
    rs = create.body
    assert rs["apiVersion"] == REPLICASETS.api_version and rs["kind"] == "ReplicaSet"
    [ref] = rs["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["uid"], ref["controller"], ref["blockOwnerDeletion"]) == (
        "Deployment", "d-uid", True, True)
    assert rs["metadata"]["annotations"] == {"team": "a", logic.REVISION: "1", logic.DESIRED_REPLICAS: "3",
                                             logic.MAX_REPLICAS: "4"}
    assert rs["spec"]["replicas"] == 3
    [annotate] = world.kube.writes("PATCH", "/deployments/web$")
    assert annotate.body == {"metadata": {"annotations": {logic.REVISION: "1"}, "resourceVersion": planned_from}}
    assert world.events("ScalingReplicaSet") == [f"Scaled up replica set {rs['metadata']['name']} from 0 to 3"]
    progressing = logic.find_condition(world.deployment()["status"], logic.PROGRESSING)
    assert progressing is not None and progressing["reason"] == logic.NEW_RS_CREATED


async def test_a_same_named_replica_set_with_another_template_is_a_hash_collision() -> None:
    name = f"web-{logic.template_hash(deployment())}"
    squatter = {"metadata": {"name": name, "namespace": NS, "labels": {"app": "other"}},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "other"}},
                         "template": {"metadata": {"labels": {"app": "other"}}, "spec": {}}}}
    world = World(deployment(), [squatter])
    await world.observe()
    with pytest.raises(RetryLater, match="hash collision"):
        await world.sync()
    assert world.deployment()["status"]["collisionCount"] == 1
    assert logic.template_hash(world.deployment()) != name.removeprefix("web-")


async def test_a_refused_create_is_a_condition_and_an_event() -> None:
    world = World(deployment())
    await world.observe()
    world.kube.fail("POST", "/replicasets$", ApiError(422, {"reason": "Invalid", "message": "quota says no"}))
    with pytest.raises(RetryLater):
        await world.sync()
    progressing = logic.find_condition(world.deployment()["status"], logic.PROGRESSING)
    assert progressing is not None and (progressing["status"], progressing["reason"]) == (
        "False", logic.FAILED_RS_CREATE)
    assert "quota says no" in progressing["message"]
    assert [m for m in world.events(logic.FAILED_RS_CREATE) if "quota says no" in m]


async def test_scaling_a_replica_set_carries_the_resource_version_it_was_planned_from() -> None:
    d = deployment()
    d["spec"]["replicas"] = 5
    name = f"web-{logic.template_hash(d)}"
    template = {**TEMPLATE, "metadata": {"labels": {"app": "web", "pod-template-hash": name[4:]}}}
    rs = {"metadata": {"name": name, "namespace": NS, "labels": template["metadata"]["labels"],
                       "annotations": {logic.REVISION: "1",
                                                                      logic.DESIRED_REPLICAS: "3",
                                                                      logic.MAX_REPLICAS: "4"},
                       "ownerReferences": [{"apiVersion": DEPLOYMENTS.api_version, "kind": "Deployment",
                                            "name": "web", "uid": "d-uid", "controller": True}]},
          "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template},
          "status": {"replicas": 3, "availableReplicas": 3, "readyReplicas": 3}}
    world = World(d, [rs])
    await world.observe()
    version = world.kube.objects[f"{REPLICASETS.path(NS)}/{name}"]["metadata"]["resourceVersion"]
    await world.sync()
    # Upstream writes twice in this sync: the Deployment's annotations copied (getNewReplicaSet), then
    # the scale (a scaling event: the only active set takes it all). The plan's writes share the set's
    # final state, so one patch says it all, guarded by the version the plan was made from.
    [update] = world.kube.writes("PATCH", f"/replicasets/{name}$")
    assert update.body["metadata"]["resourceVersion"] == version
    assert update.body["spec"]["replicas"] == 5
    assert update.body["metadata"]["annotations"]["team"] == "a"
    assert update.body["metadata"]["annotations"][logic.DESIRED_REPLICAS] == "5"
    assert world.events("ScalingReplicaSet") == [f"Scaled up replica set {name} from 3 to 5"]
    assert world.kube.objects[f"{REPLICASETS.path(NS)}/{name}"]["spec"]["replicas"] == 5


async def test_a_sync_from_a_stale_cache_cannot_overwrite_a_newer_status() -> None:
    """The watch of the Deployment lags its own last write (a busy API server, a slow informer): the
    cache still says the last rollout finished (NewReplicaSetAvailable) while the server already holds
    the NewReplicaSetCreated this controller wrote when it created the new set. A sync planned from the
    stale copy must not write it back, or the Deployment would never time out (a finished rollout is
    exempt from the deadline). As upstream's UpdateStatus, the write carries the version it was planned
    from and a conflict sends the key round again."""
    d = deployment(observedGeneration=1, replicas=3, updatedReplicas=3, readyReplicas=3, availableReplicas=3,
                   conditions=[{"type": logic.PROGRESSING, "status": "True", "reason": logic.NEW_RS_AVAILABLE,
                                "message": 'ReplicaSet "web-old" has successfully progressed.',
                                "lastUpdateTime": "2026-01-01T00:00:00Z",
                                "lastTransitionTime": "2026-01-01T00:00:00Z"}])
    world = World(d)
    await world.observe()
    await world.sync()  # creates the new set, writes NewReplicaSetCreated
    written = logic.find_condition(world.deployment()["status"], logic.PROGRESSING)
    assert written is not None and written["reason"] == logic.NEW_RS_CREATED
    # The informers see the new ReplicaSet, not yet the Deployment's new status.
    await world.controller.sets.relist()
    stale = world.controller.deployments.get(world.key)
    assert stale is not None and logic.find_condition(stale["status"], logic.PROGRESSING)["reason"] == \
        logic.NEW_RS_AVAILABLE
    with pytest.raises(RetryLater, match="changed"):
        await world.sync()
    kept = logic.find_condition(world.deployment()["status"], logic.PROGRESSING)
    assert kept is not None and kept["reason"] == logic.NEW_RS_CREATED
