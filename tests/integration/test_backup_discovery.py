"""Discovery and paged listing against the real API server."""

from __future__ import annotations

from typing import Any

from operators.backup.discovery import PAGE_SIZE, discover, list_items
from operators.core.kube import Kube
from tests.integration.conftest import kubectl


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
