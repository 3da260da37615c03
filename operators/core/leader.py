"""Leader election with a coordination.k8s.io/v1 Lease, the way kube-scheduler elects one active replica.

The protocol is client-go's `leaderelection` package, written for asyncio:

- every `retry_period` a candidate reads the Lease; it takes it when nobody holds it, when the holder
  released it (empty holderIdentity), or when the record has not changed for `lease_duration` *as this
  candidate observed it* (its own monotonic clock, so clocks across machines need not agree);
- writes are replaces with the read resourceVersion, so two candidates racing for an expired Lease
  cannot both win (one gets 409 Conflict and goes on following);
- the leader renews every `retry_period`; if it cannot renew for `renew_deadline` it has lost, and
  must stop acting at once (kube-scheduler exits: another replica may already be leading);
- on a clean shutdown the leader releases the Lease so a successor need not wait for it to expire.

Two guards keep a former leader from acting (client-go's per-attempt timeout, PR #65094, and more):
every attempt is bounded by what is left of the renew deadline, so a hung connection cannot keep an
attempt alive for aiohttp's five minutes; and `fence` (installed on the client by `install_fence`)
refuses every write once the last successful renewal is older than the renew deadline. A process
stopped past its Lease (SIGSTOP, a VM pause) therefore writes nothing when it wakes up, even before
its election loop has noticed the loss.

Defaults are kube-scheduler's: lease 15 s, renew deadline 10 s, retry every 2 s.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from operators.core.kube import ApiError, Kube, NotLeading
from operators.core.timeutil import format_micro_time
from operators.core.timeutil import now as utcnow

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseTiming:
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


_IDENTITY: str | None = None


def identity() -> str:
    """This process's candidate name: the host (the pod name in a cluster) plus a random suffix, so a
    restarted container never mistakes the previous incarnation's Lease for its own. One per process:
    every elector of the process campaigns under the same name."""
    global _IDENTITY
    if _IDENTITY is None:
        _IDENTITY = f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    return _IDENTITY


def may_acquire(spec: Mapping[str, Any], me: str, unchanged_for: float, timing: LeaseTiming) -> bool:
    """Whether `me` may write itself into a Lease whose spec is `spec`.

    `unchanged_for` is how long (by our clock) the record has looked exactly like this.
    """
    holder = spec.get("holderIdentity") or ""
    if not holder or holder == me:
        return True
    duration = float(spec.get("leaseDurationSeconds") or timing.lease_duration)
    return unchanged_for >= duration


def claimed_spec(spec: Mapping[str, Any], me: str, timing: LeaseTiming, now: str) -> dict[str, Any]:
    """The spec that records `me` as holder: a renewal keeps acquireTime, a takeover counts a transition."""
    renewing = spec.get("holderIdentity") == me
    transitions = int(spec.get("leaseTransitions") or 0)
    return {
        "holderIdentity": me,
        "leaseDurationSeconds": int(timing.lease_duration),
        "acquireTime": spec.get("acquireTime", now) if renewing else now,
        "renewTime": now,
        "leaseTransitions": transitions if renewing or not spec.get("holderIdentity") else transitions + 1,
    }


class LeaderElector:
    """Campaigns for one Lease; `leading` is set while this process holds it.

    `on_lost` runs once if leadership is lost after being won (not on release at shutdown).
    """

    def __init__(self, kube: Kube, namespace: str, name: str, *, on_lost: Callable[[], None],
                 timing: LeaseTiming = LeaseTiming(), me: str | None = None) -> None:
        self._kube = kube
        self._path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
        self._collection = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self.name = name
        self.namespace = namespace
        self._on_lost = on_lost
        self.timing = timing
        self.me = me or identity()
        self.leading = asyncio.Event()
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._last_renew = 0.0
        self._stopping = False

    def _observe(self, spec: Mapping[str, Any]) -> float:
        """Remember the record; return for how long it has been unchanged."""
        record = tuple(spec.get(k) for k in ("holderIdentity", "renewTime", "leaseDurationSeconds"))
        now = time.monotonic()
        if record != self._observed:
            self._observed, self._observed_at = record, now
        return now - self._observed_at

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; True when we hold the Lease afterwards."""
        now = format_micro_time(utcnow())
        try:
            lease = await self._kube.get(self._path)
        except ApiError as e:
            if e.status != 404:
                raise
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": claimed_spec({}, self.me, self.timing, now)}
            try:
                await self._kube.request("POST", self._collection, body=body, fenced=False)
            except ApiError as create_error:
                if create_error.status == 409:  # another candidate created it first
                    return False
                raise
            return True
        spec = lease.get("spec") or {}
        unchanged_for = self._observe(spec)
        if not may_acquire(spec, self.me, unchanged_for, self.timing):
            return False
        lease["spec"] = claimed_spec(spec, self.me, self.timing, now)
        try:  # carries the resourceVersion we read
            await self._kube.request("PUT", self._path, body=lease, fenced=False)
        except ApiError as e:
            if e.status == 409:
                return False
            raise
        return True

    def holds(self) -> bool:
        """Whether this process may act: it leads and renewed within the renew deadline (by its own
        monotonic clock, which keeps counting while the process is stopped)."""
        return self.leading.is_set() and time.monotonic() - self._last_renew < self.timing.renew_deadline

    def fence(self) -> None:
        """Raise NotLeading unless `holds()`: installed on the client, it guards every write."""
        if not self.holds():
            raise NotLeading(f"{self.me} does not hold Lease {self.namespace}/{self.name}")

    def _attempt_timeout(self) -> float:
        """What is left of the renew deadline while leading (at least a moment), else the deadline."""
        if self.leading.is_set():
            return max(0.2, self.timing.renew_deadline - (time.monotonic() - self._last_renew))
        return self.timing.renew_deadline

    async def run(self) -> None:
        """Campaign until cancelled; renew while leading; call on_lost if renewals fail for too long."""
        while not self._stopping:
            try:
                held = await asyncio.wait_for(self.try_acquire_or_renew(), timeout=self._attempt_timeout())
            except Exception as e:  # any failed attempt counts as not renewed; the renew deadline decides
                logger.warning("leader election: cannot reach Lease %s/%s: %s", self.namespace, self.name, e)
                held = False
            if held and not self.leading.is_set():
                logger.info("leader election: %s now leads (Lease %s/%s)", self.me, self.namespace, self.name)
                self.leading.set()
                self._last_renew = time.monotonic()
            elif held:
                self._last_renew = time.monotonic()
            elif self.leading.is_set() and time.monotonic() - self._last_renew >= self.timing.renew_deadline:
                logger.error("leader election: %s lost Lease %s/%s (no renewal for %.0f s)",
                             self.me, self.namespace, self.name, self.timing.renew_deadline)
                self.leading.clear()
                self._on_lost()
                return
            await asyncio.sleep(self.timing.retry_period)

    async def release(self) -> None:
        """Give the Lease up (clean shutdown), so a successor takes over without waiting for expiry."""
        self._stopping = True
        if not self.leading.is_set():
            return
        self.leading.clear()
        try:
            lease = await self._kube.get(self._path)
            if (lease.get("spec") or {}).get("holderIdentity") != self.me:
                return
            lease["spec"] = {**lease["spec"], "holderIdentity": "", "leaseDurationSeconds": 1,
                             "renewTime": format_micro_time(utcnow())}
            await self._kube.request("PUT", self._path, body=lease, fenced=False)
            logger.info("leader election: %s released Lease %s/%s", self.me, self.namespace, self.name)
        except Exception as e:  # shutting down: never let a failed release stop the clean-up
            logger.warning("leader election: could not release Lease %s/%s: %s", self.namespace, self.name, e)


def enabled() -> bool:
    """KUBEPLANE_LEADER_ELECT=false turns election off (kube-scheduler's --leader-elect=false)."""
    return os.environ.get("KUBEPLANE_LEADER_ELECT", "true").lower() not in ("0", "false", "no")


def timing_from_env() -> LeaseTiming:
    """KUBEPLANE_LEADER_LEASE_SECONDS (default 15) scales all three periods as kube-scheduler's
    defaults relate (renew deadline 2/3 of the lease, retry 2/15 of it): tests use short leases."""
    lease = float(os.environ.get("KUBEPLANE_LEADER_LEASE_SECONDS") or 15)
    return LeaseTiming(lease_duration=lease, renew_deadline=lease * 2 / 3, retry_period=lease * 2 / 15)


def exit_process() -> None:
    """What a component does when it loses its Lease: stop at once (SIGTERM: Kopf shuts down
    cleanly), and let the Deployment start a fresh candidate. Another replica may be acting already."""
    os.kill(os.getpid(), signal.SIGTERM)


def elector_for(kube: Kube, component: str, on_lost: Callable[[], None] = exit_process) -> LeaderElector | None:
    """The elector for one operator (Lease `component` in the operator's namespace), or None when
    election is off; it fences every write of `kube`. The namespace: KUBEPLANE_NAMESPACE, else the
    pod's (POD_NAMESPACE), else kubeplane-system."""
    if not enabled():
        return None
    namespace = os.environ.get("KUBEPLANE_NAMESPACE") or os.environ.get("POD_NAMESPACE") or "kubeplane-system"
    elector = LeaderElector(kube, namespace, component, on_lost=on_lost, timing=timing_from_env())
    install_fence(kube, elector)
    return elector


def install_fence(kube: Kube, elector: LeaderElector | None) -> None:
    """Make every write through `kube` pass `elector.fence` (nothing without an elector)."""
    kube.fence = elector.fence if elector is not None else None


def campaign(elector: LeaderElector | None) -> list[asyncio.Task[None]]:
    """The election loop as a task to keep with the operator's others (none without an elector)."""
    return [] if elector is None else [asyncio.create_task(elector.run(), name="leader election")]


async def shut_down(tasks: Iterable[asyncio.Task[Any]], elector: LeaderElector | None, kube: Kube) -> None:
    """An operator's clean stop: cancel its tasks and wait for them, give the Lease up so a standby
    leads at once, then close the client."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if elector is not None:
        await elector.release()
    await kube.close()


async def when_leading(elector: LeaderElector | None, work: Callable[[], Awaitable[None]]) -> None:
    """Run `work` once this process leads (at once without an elector). Standbys keep their caches
    warm and their queues filling, and act on nothing."""
    if elector is not None:
        logger.info("leader election: waiting to lead (Lease %s/%s)", elector.namespace, elector.name)
        await elector.leading.wait()
    await work()
