"""A client-side rate limit: client-go's token bucket (flowcontrol.NewTokenBucketRateLimiter).

`qps` tokens are added per second up to `burst`; each request takes one, waiting for it when the
bucket is empty. Waits are reservations (golang.org/x/time/rate's Wait): concurrent callers queue in
order, each sleeping only until its own token is due, never blocking the event loop.
"""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    def __init__(self, qps: float, burst: int) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError("qps must be > 0 and burst >= 1")
        self.qps = float(qps)
        self.burst = int(burst)
        self._tokens = float(burst)
        self._last = time.monotonic()
        self.waited = 0.0  # total seconds callers spent waiting (for metrics and benchmarks)

    def reserve(self) -> float:
        """Take a token now; return how long the caller must wait before using it (0: at once)."""
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.qps)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    async def acquire(self) -> None:
        delay = self.reserve()
        if delay > 0:
            self.waited += delay
            await asyncio.sleep(delay)


def from_settings(qps: float | None, burst: int | None) -> TokenBucket | None:
    """None (no limit) when qps is unset or 0 or negative, as `--kube-api-qps=0` reads."""
    if not qps or qps <= 0:
        return None
    return TokenBucket(qps, burst if burst and burst > 0 else max(1, int(qps)))
