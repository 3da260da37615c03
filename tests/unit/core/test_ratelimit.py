import asyncio

import pytest

from operators.core import ratelimit
from operators.core.ratelimit import TokenBucket


def test_burst_then_qps(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: clock[0])
    bucket = TokenBucket(qps=10, burst=3)
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    # The fourth waits one token's time (0.1 s), the fifth two, in order.
    assert bucket.reserve() == pytest.approx(0.1)
    assert bucket.reserve() == pytest.approx(0.2)
    clock[0] += 10  # a long idle refills only up to the burst
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.reserve() == pytest.approx(0.1)


def test_settings():
    assert ratelimit.from_settings(None, None) is None
    assert ratelimit.from_settings(0, 100) is None
    bucket = ratelimit.from_settings(20, 30)
    assert bucket is not None and (bucket.qps, bucket.burst) == (20.0, 30)
    with pytest.raises(ValueError):
        TokenBucket(0, 1)


def test_each_controller_client_has_its_own_bucket_and_the_managers_fence(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kube.child (ControllerManager.client): kube-controller-manager's client per controller."""
    from kubernetes_asyncio import client as k8s_client

    from operators.core.kube import BURST_ENV, QPS_ENV, Kube

    async def scenario() -> None:
        monkeypatch.setenv(QPS_ENV, "5")
        monkeypatch.setenv(BURST_ENV, "10")
        kube = Kube(k8s_client.ApiClient(k8s_client.Configuration(host="http://127.0.0.1:1")))
        try:
            first, second = kube.child(), kube.child()
            assert first.limiter is not None and second.limiter is not None and first.limiter is not second.limiter
            fenced: list[str] = []
            assert first.fence is not None
            first.fence()  # no fence installed yet: nothing happens
            kube.fence = lambda: fenced.append("checked")  # installed after the children were made
            first.fence()
            second.fence()
            assert fenced == ["checked", "checked"]
        finally:
            await kube.close()

    asyncio.run(scenario())
