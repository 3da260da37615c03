"""backup_run._list_scopes: a few namespaces listed at once, their pages handed to one reader.

`list_items` is replaced by a scripted lister (a pure unit test: no API server); the facts are which
pages arrive, which failures end the backup and which only report, and that no listing outlives it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from operators.backup import backup_run
from operators.backup.backup_run import LIST_CONCURRENCY, Results
from operators.backup.discovery import ApiResource
from operators.core.kube import ApiError

CONFIGMAPS = ApiResource("", "v1", "configmaps", "ConfigMap", True)


class Lister:
    """Each scope's pages, or the ApiError status a scope fails with after its first page."""

    def __init__(self, pages: dict[str | None, int], failing: dict[str | None, int] | None = None) -> None:
        self.pages, self.failing = pages, failing or {}
        self.running = 0
        self.most_running = 0
        self.ended: list[str | None] = []  # scopes whose listing ended (finished, failed or cancelled)

    async def __call__(self, kube: Any, resource: ApiResource, scope: str | None = None,
                       label_selector: str | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            for i in range(self.pages[scope]):
                await asyncio.sleep(0)
                yield [{"metadata": {"namespace": scope, "name": f"{scope}-{i}"}}]
                if scope in self.failing:
                    raise ApiError(self.failing[scope], {"message": "refused"})
        finally:
            self.running -= 1
            self.ended.append(scope)


async def read_all(lister: Lister, scopes: list[str | None], results: Results,
                   monkeypatch: pytest.MonkeyPatch, stop_after: int | None = None) -> list[str]:
    monkeypatch.setattr(backup_run, "list_items", lister)
    names: list[str] = []
    pages = backup_run._list_scopes(None, CONFIGMAPS, scopes, results)  # type: ignore[arg-type]
    try:
        async for page in pages:
            names += [item["metadata"]["name"] for item in page]
            if stop_after is not None and len(names) >= stop_after:
                break
    finally:
        await pages.aclose()
    return names


def test_every_page_of_every_scope_arrives_once_with_a_few_scopes_listed_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    scopes: list[str | None] = [f"ns-{i}" for i in range(10)]
    lister = Lister({scope: 3 for scope in scopes})
    names = asyncio.run(read_all(lister, scopes, Results(), monkeypatch))
    assert sorted(names) == sorted(f"{scope}-{i}" for scope in scopes for i in range(3))
    assert 1 < lister.most_running <= LIST_CONCURRENCY


def test_a_scope_that_may_not_be_listed_is_reported_and_the_others_go_on(monkeypatch: pytest.MonkeyPatch) -> None:
    scopes: list[str | None] = ["a", "b", "c"]
    results = Results()
    names = asyncio.run(read_all(Lister({"a": 2, "b": 2, "c": 2}, {"b": 403, "c": 404}), scopes, results,
                                 monkeypatch))
    assert sorted(names) == ["a-0", "a-1", "b-0", "c-0"]
    assert results.errors == {"b": ["cannot list configmaps: refused"]}  # 403: the backup is PartiallyFailed
    assert results.warnings == {"c": ["cannot list configmaps: refused"]}


def test_any_other_failure_is_raised_to_the_reader_and_stops_every_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    scopes: list[str | None] = ["a", "b", "c", "d"]
    lister = Lister({scope: 50 for scope in scopes}, {"b": 500})

    async def scenario() -> None:
        with pytest.raises(ApiError) as error:
            await read_all(lister, scopes, Results(), monkeypatch)
        assert error.value.status == 500
        # Checked before asyncio.run ends (which would cancel whatever was left).
        assert lister.running == 0 and sorted(lister.ended) == ["a", "b", "c", "d"]

    asyncio.run(scenario())


def test_a_reader_that_stops_early_stops_the_listings(monkeypatch: pytest.MonkeyPatch) -> None:
    scopes: list[str | None] = [f"ns-{i}" for i in range(8)]
    lister = Lister({scope: 100 for scope in scopes})

    async def scenario() -> None:
        names = await read_all(lister, scopes, Results(), monkeypatch, stop_after=5)
        assert len(names) == 5
        assert lister.running == 0 and lister.ended  # nothing left listing once the reader is gone

    asyncio.run(scenario())


# --- _pages: one cluster-wide page first, namespace by namespace only when the type needs more ------

class Kube:
    """The cluster-wide page list_in_one_page answers: items, None (more than a page) or a refusal."""

    def __init__(self, whole: list[dict[str, Any]] | int | None) -> None:
        self.whole, self.asked = whole, 0

    async def list_in_one_page(self, kube: Any, resource: ApiResource) -> list[dict[str, Any]] | None:
        self.asked += 1
        if isinstance(self.whole, int):
            raise ApiError(self.whole, {"message": "refused"})
        return self.whole


async def pages_of(whole: Kube, lister: Lister, scopes: list[str | None], results: Results,
                   monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setattr(backup_run, "list_items", lister)
    monkeypatch.setattr(backup_run, "list_in_one_page", whole.list_in_one_page)
    return [item["metadata"]["name"]
            async for page in backup_run._pages(None, CONFIGMAPS, scopes, results)  # type: ignore[arg-type]
            for item in page]


def item(namespace: str, name: str) -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": name}}


def test_a_type_held_in_one_cluster_wide_page_is_not_listed_namespace_by_namespace(
        monkeypatch: pytest.MonkeyPatch) -> None:
    whole = Kube([item("a", "a-0"), item("other", "o-0"), item("b", "b-0"), item("b", "b-1")])
    lister = Lister({"a": 1, "b": 2})
    names = asyncio.run(pages_of(whole, lister, ["a", "b"], Results(), monkeypatch))
    assert names == ["a-0", "b-0", "b-1"]  # only the backup's namespaces; "other" is not taken
    assert whole.asked == 1 and lister.ended == []


def test_an_empty_type_costs_one_request(monkeypatch: pytest.MonkeyPatch) -> None:
    whole, lister = Kube([]), Lister({f"ns-{i}": 0 for i in range(256)})
    assert asyncio.run(pages_of(whole, lister, list(lister.pages), Results(), monkeypatch)) == []
    assert whole.asked == 1 and lister.ended == []


def test_a_type_past_one_page_is_listed_namespace_by_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    whole, lister = Kube(None), Lister({"a": 2, "b": 1})
    names = asyncio.run(pages_of(whole, lister, ["a", "b"], Results(), monkeypatch))
    assert sorted(names) == ["a-0", "a-1", "b-0"] and sorted(lister.ended) == ["a", "b"]  # type: ignore[type-var]


def test_a_refused_cluster_wide_list_falls_back_and_the_namespaces_report_their_own_refusals(
        monkeypatch: pytest.MonkeyPatch) -> None:
    results = Results()
    names = asyncio.run(pages_of(Kube(403), Lister({"a": 1, "b": 1}, {"b": 403}), ["a", "b"], results, monkeypatch))
    assert sorted(names) == ["a-0", "b-0"]
    assert results.errors == {"b": ["cannot list configmaps: refused"]}


def test_one_scope_is_listed_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    whole, lister = Kube([item("a", "from-the-cluster-wide-page")]), Lister({"a": 1})
    assert asyncio.run(pages_of(whole, lister, ["a"], Results(), monkeypatch)) == ["a-0"]
    assert whole.asked == 0
