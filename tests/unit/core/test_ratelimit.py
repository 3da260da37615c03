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
