"""The informer's recovery paths, driven by a scripted client: a watch that ends resumes from the
last version seen; 410 Gone (as an ERROR event or as the answer) lists again and replays the
difference; other failures back off and keep the version. (tests/integration/test_informer.py runs
the normal paths against the real API server.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from operators.core import informer as informer_module
from operators.core.informer import Informer
from operators.core.kube import ApiError


def cm(name: str, version: int) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(version)}}


class ScriptedKube:
    """Each list answers the next entry of `lists`; each watch plays the next entry of `watches`
    (a list of events, or an exception to raise), then the test ends by cancelling."""

    def __init__(self, lists: list[tuple[list[dict[str, Any]], str]], watches: list[Any]) -> None:
        self.lists = lists
        self.watches = watches
        self.watched_from: list[str] = []

    async def list_versioned(self, path: str, *, limit: int = 500) -> tuple[list[dict[str, Any]], str]:
        return self.lists.pop(0)

    async def watch(self, path: str, *, read_timeout: float, **params: Any) -> AsyncIterator[dict[str, Any]]:
        self.watched_from.append(params["resourceVersion"])
        if not self.watches:
            await asyncio.Event().wait()  # the last watch stays open
        script = self.watches.pop(0)
        if isinstance(script, Exception):
            raise script
        for event in script:
            yield event


async def run_until_idle(informer: Informer, kube: ScriptedKube) -> None:
    task = asyncio.create_task(informer.run())
    for _ in range(200):
        await asyncio.sleep(0)
        if not kube.watches and not kube.lists:
            break
    for _ in range(20):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(informer_module, "BACKOFF_SECONDS", (0.0, 0.0))


def recorder() -> tuple[list[tuple[str, str, str | None]], Any]:
    seen: list[tuple[str, str, str | None]] = []

    def handler(kind: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        seen.append((kind, obj["metadata"]["name"], old["metadata"]["resourceVersion"] if old else None))

    return seen, handler


async def test_a_watch_that_ends_resumes_from_the_last_version_seen() -> None:
    kube = ScriptedKube(
        lists=[([cm("a", 5)], "10")],
        watches=[
            [{"type": "ADDED", "object": cm("b", 11)}, {"type": "BOOKMARK", "object": cm("", 15)}],
            [{"type": "MODIFIED", "object": cm("a", 16)}],
        ],
    )
    seen, handler = recorder()
    informer = Informer(kube, "/x", handler)  # type: ignore[arg-type]
    await run_until_idle(informer, kube)
    assert kube.watched_from == ["10", "15", "16"]  # a bookmark moves the version on too
    assert seen == [("ADDED", "a", None), ("ADDED", "b", None), ("MODIFIED", "a", "5")]
    assert informer.lists == 1


@pytest.mark.parametrize("gone", ["event", "answer"])
async def test_gone_lists_again_and_replays_the_difference(gone: str) -> None:
    error = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old resource version"}
    kube = ScriptedKube(
        lists=[([cm("keep", 1), cm("gone", 2), cm("same", 3)], "10"), ([cm("keep", 12), cm("same", 3), cm("new", 13)],
                                                                       "20")],
        watches=[[{"type": "ERROR", "object": error}] if gone == "event" else ApiError(410, error)],
    )
    seen, handler = recorder()
    informer = Informer(kube, "/x", handler)  # type: ignore[arg-type]
    await run_until_idle(informer, kube)
    assert seen[3:] == [("DELETED", "gone", "2"), ("MODIFIED", "keep", "1"), ("ADDED", "new", None)]
    assert sorted(informer.store) == ["ns/keep", "ns/new", "ns/same"]
    assert kube.watched_from == ["10", "20"]


async def test_other_failures_keep_the_version_and_a_bad_handler_does_not_stop_the_stream() -> None:
    kube = ScriptedKube(
        lists=[([], "10")],
        watches=[OSError("connection reset"), ApiError(500, None, "oops"),
                 [{"type": "ADDED", "object": cm("boom", 11)}, {"type": "ADDED", "object": cm("fine", 12)}]],
    )
    seen, handler = recorder()

    def picky(kind: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if obj["metadata"]["name"] == "boom":
            raise RuntimeError("handler bug")
        handler(kind, obj, old)

    informer = Informer(kube, "/x", picky)  # type: ignore[arg-type]
    await run_until_idle(informer, kube)
    assert kube.watched_from == ["10", "10", "10", "12"]
    assert seen == [("ADDED", "fine", None)]
    assert sorted(informer.store) == ["ns/boom", "ns/fine"]


async def test_a_change_the_transform_drops_is_not_told_on_watch_or_relist() -> None:
    def node(name: str, version: int, heartbeat: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        return {"metadata": {"name": name, "resourceVersion": str(version), "labels": labels or {}},
                "status": {"heartbeat": heartbeat}}

    def trim(obj: dict[str, Any]) -> dict[str, Any]:  # keeps the labels only, as trim_node drops conditions
        return {"metadata": {"name": obj["metadata"]["name"], "labels": obj["metadata"]["labels"]}}

    kube = ScriptedKube(
        lists=[([node("a", 1, "t0"), node("b", 2, "t0")], "10"),
               ([node("a", 20, "t3"), node("b", 21, "t3", {"zone": "z"})], "30")],
        watches=[[{"type": "MODIFIED", "object": node("a", 11, "t1")},
                  {"type": "MODIFIED", "object": node("a", 12, "t2", {"disk": "ssd"})}],
                 ApiError(410, None, "gone")],
    )
    seen_events: list[tuple[str, str, dict[str, str]]] = []

    def record(kind: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        seen_events.append((kind, obj["metadata"]["name"], obj["metadata"]["labels"]))

    informer = Informer(kube, "/x", record, transform=trim)  # type: ignore[arg-type]
    await run_until_idle(informer, kube)
    # The heartbeat of "a" on the watch is not told; its relabel is. After the 410, the relist
    # compares what the consumer sees: "a" lost its label (told), "b" gained one (told).
    assert seen_events == [
        ("ADDED", "a", {}), ("ADDED", "b", {}),
        ("MODIFIED", "a", {"disk": "ssd"}),
        ("MODIFIED", "a", {}), ("MODIFIED", "b", {"zone": "z"}),
    ]
