"""The scheduler operator's gang scheduling I/O with fake indexes and a fake API: reserved members
wait without binding, the member completing the group releases them all, a timeout unreserves and
requeues them, and the PodGroup's status is written only when it changes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from operators.scheduler import gang
from operators.scheduler.operator import Scheduler
from tests.unit.scheduler.builders import node, pod

NS = "ns"
GROUP = (NS, "trio")


class FakeIndex(dict[Any, list[dict[str, Any]]]):
    def put(self, key: Any, value: dict[str, Any]) -> None:
        self.setdefault(key, []).append(value)


class FakeKube:
    def __init__(self) -> None:
        self.created: list[tuple[str, Any]] = []
        self.patched: list[tuple[str, Any]] = []

    async def create(self, path: str, body: Any) -> Any:
        self.created.append((path, body))
        return {}

    async def patch(self, path: str, body: Any, *, content_type: str = "") -> Any:
        self.patched.append((path, body))
        return {}

    async def delete(self, path: str, body: Any = None) -> Any:
        return {}

    async def close(self) -> None:
        pass


def member(i: int, cpu: str = "900m") -> dict[str, Any]:
    body = pod(f"trio-{i}", NS, labels={gang.POD_GROUP_LABEL: "trio"}, requests=[{"cpu": cpu}])
    body["spec"]["schedulerName"] = "kubeplane-scheduler"
    return body


class World:
    def __init__(self, members: int, min_member: int = 3, cpu: str = "2") -> None:
        self.kube = FakeKube()
        self.nodes, self.pending, self.groups, self.members = FakeIndex(), FakeIndex(), FakeIndex(), FakeIndex()
        self.namespaces = FakeIndex({NS: [{}]})
        self.nodes.put("n1", node("n1", capacity={"cpu": cpu, "memory": "8Gi"}))
        self.groups.put(GROUP, {"metadata": {"name": "trio", "namespace": NS},
                                "spec": {"minMember": min_member, "scheduleTimeoutSeconds": 5}, "status": {}})
        for i in range(members):
            self.add_member(member(i))
        self.scheduler = Scheduler(
            self.kube,  # type: ignore[arg-type]
            nodes=self.nodes, pods_by_node=FakeIndex(), nominated=FakeIndex(), pending=self.pending,
            namespaces=self.namespaces, pod_groups=self.groups, group_members=self.members,
        )

    def add_member(self, body: dict[str, Any]) -> None:
        self.pending.put((NS, body["metadata"]["name"]), body)
        self.members.put(GROUP, body)

    def bindings(self) -> list[str]:
        return sorted(path.split("/")[-2] for path, _ in self.kube.created if path.endswith("/binding"))

    def status_writes(self) -> list[Any]:
        return [body["status"] for path, body in self.kube.patched if "/podgroups/" in path]


@pytest.fixture
def world() -> Iterator[World]:
    yield World(3)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_members_wait_until_the_group_is_placed_then_bind_together(world: World) -> None:
    world.nodes["n1"] = [node("n1", capacity={"cpu": "4", "memory": "8Gi"})]
    s = world.scheduler
    s.schedule((NS, "trio-0"))
    s.schedule((NS, "trio-1"))
    await settle()
    assert world.bindings() == []
    assert sorted(s.waiting[GROUP].pods) == [(NS, "trio-0"), (NS, "trio-1")]
    assert len(s.cache.assumed) == 2  # reserved: the room is held
    await s.write_group_status(GROUP)
    assert world.status_writes()[-1] == {"phase": "Scheduling", "scheduled": 0, "running": 0,
                                         "message": "2 of minMember 3 pods placed (0 bound, 2 waiting)"}
    s.schedule((NS, "trio-2"))
    await settle()
    assert world.bindings() == ["trio-0", "trio-1", "trio-2"]
    assert GROUP not in s.waiting


async def test_timeout_unreserves_requeues_and_reports(world: World) -> None:
    s = world.scheduler
    for i in range(3):
        s.schedule((NS, f"trio-{i}"))
    await settle()
    assert world.bindings() == []
    assert sorted(s.waiting[GROUP].pods) == [(NS, "trio-0"), (NS, "trio-1")]  # trio-2: Insufficient cpu
    s.gang_timeout(GROUP)
    await settle()
    assert not s.cache.assumed and GROUP not in s.waiting
    assert (NS, "trio-0") in s.queue and (NS, "trio-1") in s.queue
    message = 'pod group "trio": only 2 of minMember 3 pods could be placed within 5s; reservations released'
    pod_status = [b["status"]["conditions"][0]["message"] for p, b in world.kube.patched if p.endswith("/status")
                  and "/pods/trio-0" in p]
    assert pod_status == [message]
    await s.write_group_status(GROUP)
    assert world.status_writes() == [{"phase": "Unschedulable", "scheduled": 0, "running": 0, "message": message}]
    # Written only when it changes.
    world.groups[GROUP][0]["status"] = dict(world.status_writes()[-1])
    await s.write_group_status(GROUP)
    assert len(world.status_writes()) == 1


async def test_too_few_members_are_rejected_before_filtering() -> None:
    w = World(2)
    w.scheduler.schedule((NS, "trio-0"))
    await settle()
    assert w.bindings() == [] and not w.scheduler.cache.assumed
    assert (w.scheduler.explain(NS, "trio-0") or {})["message"] == 'pod group "trio" has 2 pods, fewer than minMember 3'
    assert w.scheduler.group_failures[GROUP][0] == "preFilter"
    # A third member lifts the rejection.
    w.add_member(member(2, cpu="100m"))
    w.nodes["n1"] = [node("n1", capacity={"cpu": "4", "memory": "8Gi"})]
    w.scheduler.cache.invalidate()
    w.scheduler.schedule((NS, "trio-0"))
    assert GROUP not in w.scheduler.group_failures


async def test_a_deleted_waiting_member_waits_no_more(world: World) -> None:
    s = world.scheduler
    s.schedule((NS, "trio-0"))
    body = world.pending[(NS, "trio-0")][0]
    s.on_pod_event("DELETED", body)
    assert GROUP not in s.waiting and not s.cache.assumed
