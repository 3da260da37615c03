"""The client's retries (operators/core/kube.py), with the faults landed by the API relay
(tests/faults/apirelay.py) on the real API server: as client-go's rest.Request, a 429 or 5xx carrying
Retry-After is tried again after that many seconds (any verb: the server did not act), an answer without
it is final, a GET whose connection broke is tried again and a write is not (it may have landed). Every
attempt of a write passes the Lease fence again: a retry never writes for a process no longer leading.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from operators.core.kube import ApiError, Kube, NotLeading
from tests.faults.apirelay import ApiRelay
from tests.integration.conftest import KUBECONFIG, kubectl


@pytest.fixture
async def relayed(cluster: Path) -> AsyncIterator[tuple[ApiRelay, Kube]]:
    with ApiRelay(KUBECONFIG) as relay:
        before = os.environ.get("KUBECONFIG")
        os.environ["KUBECONFIG"] = str(relay.kubeconfig)
        try:
            async with await Kube.connect() as kube:
                yield relay, kube
        finally:
            if before is None:
                os.environ.pop("KUBECONFIG", None)
            else:
                os.environ["KUBECONFIG"] = before


def configmap(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}}


async def test_429_and_5xx_with_retry_after_are_retried_others_are_final(
        relayed: tuple[ApiRelay, Kube], namespace: str) -> None:
    relay, kube = relayed
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    relay.fail("GET", f"{path}$", status=429, retry_after=1, times=2)
    assert (await kube.get(path))["kind"] == "ConfigMapList"
    assert [s.action for s in relay.seen("GET", f"{path}$")] == ["fail", "fail", "forwarded"]

    relay.fail("POST", f"{path}$", status=503, retry_after=0, times=1)
    await kube.create(path, configmap("a"))
    assert [s.action for s in relay.seen("POST", f"{path}$")] == ["fail", "forwarded"]
    assert json.loads(kubectl("get", "configmap", "a", "-n", namespace, "-o", "json").stdout)["data"] == {"k": "v"}

    # Without Retry-After (or a 4xx other than 429 with it), the answer is the caller's to handle.
    relay.fail("PATCH", f"{path}/a$", status=500, times=1)
    relay.fail("PUT", f"{path}/a$", status=409, retry_after=1, times=1)
    with pytest.raises(ApiError) as failed:
        await kube.request("PATCH", f"{path}/a", body={"data": {"k": "w"}}, content_type="application/merge-patch+json")
    assert failed.value.status == 500
    with pytest.raises(ApiError) as conflict:
        await kube.request("PUT", f"{path}/a", body=configmap("a"))
    assert conflict.value.status == 409
    assert len(relay.seen("PATCH", f"{path}/a$")) == 1 and len(relay.seen("PUT", f"{path}/a$")) == 1

    # Ten retries at most, as client-go: the eleventh answer is final.
    relay.fail("GET", f"{path}/a$", status=429, retry_after=0, times=None)
    with pytest.raises(ApiError) as exhausted:
        await kube.get(f"{path}/a")
    assert exhausted.value.status == 429 and len(relay.seen("GET", f"{path}/a$")) == 11


async def test_a_broken_connection_retries_reads_not_writes(relayed: tuple[ApiRelay, Kube], namespace: str) -> None:
    relay, kube = relayed
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    relay.reset("GET", f"{path}$", times=1)
    assert (await kube.get(path))["kind"] == "ConfigMapList"
    assert [s.action for s in relay.seen("GET", f"{path}$")] == ["reset", "forwarded"]

    relay.reset("POST", f"{path}$", times=1)
    with pytest.raises(aiohttp.ClientConnectionError):
        await kube.create(path, configmap("b"))
    assert [s.action for s in relay.seen("POST", f"{path}$")] == ["reset"]


async def test_a_retried_write_passes_the_fence_again(relayed: tuple[ApiRelay, Kube], namespace: str) -> None:
    relay, kube = relayed
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    checks = 0

    def fence() -> None:
        # Leading for the first attempt's check (no rate limiter here: one check per attempt), not after.
        nonlocal checks
        checks += 1
        if checks > 1:
            raise NotLeading("the Lease was lost while the write waited to be retried")
    kube.limiter = None
    kube.fence = fence
    relay.fail("POST", f"{path}$", status=429, retry_after=1, times=1)
    with pytest.raises(NotLeading):
        await kube.create(path, configmap("c"))
    assert [s.action for s in relay.seen("POST", f"{path}$")] == ["fail"]
    assert kubectl("get", "configmap", "c", "-n", namespace, check=False).returncode != 0
