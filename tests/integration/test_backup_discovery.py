"""Discovery and paged listing against the real API server."""

from __future__ import annotations

from typing import Any

import pytest

from operators.backup import discovery
from operators.backup.discovery import PAGE_SIZE, discover, list_in_one_page, list_items
from operators.core.kube import Kube
from tests.faults.apirelay import ApiRelay
from tests.integration.conftest import KUBECONFIG, kubectl


async def test_discovers_core_groups_and_custom_resources(cluster: Any) -> None:
    async with await Kube.connect() as kube:
        resources = {r.group_resource: r for r in await discover(kube)}
    assert resources["configmaps"].path("ns") == "/api/v1/namespaces/ns/configmaps"
    assert resources["deployments.apps"].api_version == "apps/v1"
    assert resources["replicasets.apps.kubeplane.dev"].namespaced
    assert not resources["namespaces"].namespaced
    assert "pods/status" not in resources and "bindings" not in resources  # subresources, create-only


async def test_lists_in_pages(cluster: Any, namespace: str) -> None:
    count = PAGE_SIZE + 20
    manifest = "".join(
        f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i}, labels: {{batch: b}}}}\n"
        for i in range(count)
    )
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest, timeout=180)
    async with await Kube.connect() as kube:
        configmaps = {r.group_resource: r for r in await discover(kube)}["configmaps"]
        pages = [page async for page in list_items(kube, configmaps, namespace, label_selector="batch=b")]
    assert [len(p) for p in pages] == [PAGE_SIZE, 20]
    assert pages[0][0]["kind"] == "ConfigMap" and pages[0][0]["apiVersion"] == "v1"


async def test_an_expired_continue_token_lists_again_without_repeating_items(
        cluster: Any, namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second page's continue token answered 410 Expired (landed by the relay), as after an etcd
    compaction in a long backup: the listing starts over and yields every ConfigMap exactly once, one of
    them created in between too."""
    monkeypatch.setattr(discovery, "PAGE_SIZE", 3)
    manifest = "".join(f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i}, labels: {{batch: b}}}}\n"
                       for i in range(8))
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest)
    path = f"/api/v1/namespaces/{namespace}/configmaps$"
    with ApiRelay(KUBECONFIG) as relay:
        monkeypatch.setenv("KUBECONFIG", str(relay.kubeconfig))
        relay.fail("GET", path, status=410, query="continue=", times=1)
        async with await Kube.connect() as kube:
            configmaps = {r.group_resource: r for r in await discover(kube)}["configmaps"]
            names: list[str] = []
            async for page in discovery.list_items(kube, configmaps, namespace, label_selector="batch=b"):
                names += [i["metadata"]["name"] for i in page]
                if len(names) == 3:  # after the first page: created while the listing runs
                    kubectl("create", "configmap", "cm-9", "-n", namespace)
                    kubectl("label", "configmap", "cm-9", "-n", namespace, "batch=b")
        # The first page, its continue refused, then the list again from the start (its first page skipped).
        actions = [s.action for s in relay.seen("GET", path)]
        assert actions[:2] == ["forwarded", "fail"] and set(actions[2:]) == {"forwarded"} and len(actions) >= 5
    assert sorted(names) == [f"cm-{i}" for i in (0, 1, 2, 3, 4, 5, 6, 7, 9)]
    assert len(names) == len(set(names)), names


async def test_a_type_is_read_in_one_cluster_wide_page_only_while_it_fits_in_one(
        cluster: Any, namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with await Kube.connect() as kube:
        resources = {r.group_resource: r for r in await discover(kube)}
        # No PodTemplates anywhere in the test cluster: one empty page, items self-describing when there are some.
        assert await list_in_one_page(kube, resources["podtemplates"]) == []
        kubectl("create", "configmap", "one-page", "-n", namespace)
        total = len(await kube.list_all("/api/v1/configmaps"))
        monkeypatch.setattr(discovery, "PAGE_SIZE", total + 50)
        whole = await list_in_one_page(kube, resources["configmaps"])
        assert whole is not None and any(i["metadata"]["name"] == "one-page" for i in whole)
        assert all(i["kind"] == "ConfigMap" and i["apiVersion"] == "v1" for i in whole)
        monkeypatch.setattr(discovery, "PAGE_SIZE", max(1, total // 2))  # more than a page: None
        assert await list_in_one_page(kube, resources["configmaps"]) is None
