"""operators.core.informer against the real API server: list, watch, resume, and relist after 410 Gone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from operators.core.informer import Informer
from operators.core.kube import Kube
from tests.integration.conftest import kubectl

Seen = list[tuple[str, str]]


@pytest.fixture
async def kube(cluster: Any) -> AsyncIterator[Kube]:
    async with await Kube.connect() as client:
        yield client


def configmap_informer(kube: Kube, namespace: str) -> tuple[Informer, Seen]:
    seen: Seen = []

    def handler(kind: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        seen.append((kind, obj["metadata"]["name"]))

    path = f"/api/v1/namespaces/{namespace}/configmaps"
    return Informer(kube, path, handler, name="configmaps", page_size=2), seen


async def until(condition: Callable[[], bool], seconds: float = 15) -> None:
    for _ in range(int(seconds * 20)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


def create(namespace: str, *names: str) -> None:
    for name in names:
        kubectl("create", "configmap", name, "-n", namespace, f"--from-literal=name={name}")


async def test_lists_in_pages_then_watches_every_change(kube: Kube, namespace: str) -> None:
    create(namespace, "a", "b", "c")
    informer, seen = configmap_informer(kube, namespace)
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.synced.wait(), 15)
        # Three pages of two (kube-root-ca.crt is there too), one list.
        assert {name for kind, name in seen if kind == "ADDED"} == {"a", "b", "c", "kube-root-ca.crt"}
        assert informer.lists == 1
        seen.clear()
        await asyncio.to_thread(create, namespace, "d")
        await asyncio.to_thread(kubectl, "label", "configmap", "a", "-n", namespace, "x=1")
        await asyncio.to_thread(kubectl, "delete", "configmap", "b", "-n", namespace)
        await until(lambda: ("DELETED", "b") in seen)
        assert seen == [("ADDED", "d"), ("MODIFIED", "a"), ("DELETED", "b")]
        assert sorted(informer.store) == [f"{namespace}/{n}" for n in ("a", "c", "d", "kube-root-ca.crt")]
        assert informer.store[f"{namespace}/a"]["metadata"]["labels"] == {"x": "1"}
    finally:
        task.cancel()


async def test_listing_again_replays_what_happened_while_nobody_watched(kube: Kube, namespace: str) -> None:
    # What the informer does after a 410 Gone (tests/unit/core/test_informer.py drives that path).
    create(namespace, "keep", "gone", "same")
    informer, seen = configmap_informer(kube, namespace)
    await informer.relist()
    kubectl("delete", "configmap", "gone", "-n", namespace)
    kubectl("label", "configmap", "keep", "-n", namespace, "x=1")
    create(namespace, "new")
    seen.clear()
    await informer.relist()
    assert sorted(seen) == [("ADDED", "new"), ("DELETED", "gone"), ("MODIFIED", "keep")]  # not "same"
    assert informer.lists == 2


async def test_resumes_from_the_last_version_without_listing_again(kube: Kube, namespace: str) -> None:
    create(namespace, "a")
    informer, seen = configmap_informer(kube, namespace)
    version = await informer.relist()
    create(namespace, "b")
    seen.clear()
    watch = asyncio.create_task(informer.watch(version))
    await until(lambda: ("ADDED", "b") in seen)
    watch.cancel()
    # Resuming from the version of the last event seen replays nothing twice.
    last = informer.store[f"{namespace}/b"]["metadata"]["resourceVersion"]
    create(namespace, "c")
    seen.clear()
    watch = asyncio.create_task(informer.watch(last))
    await until(lambda: ("ADDED", "c") in seen)
    await asyncio.sleep(0.5)
    watch.cancel()
    assert seen == [("ADDED", "c")]
    assert informer.lists == 1
