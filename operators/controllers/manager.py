"""The controller manager: what kube-controller-manager is to its controllers, for kubeplane's.

One per process. It owns

- one API client (`Kube`) shared by every controller, informer and Event recorder;
- one Lease (`kubeplane-controllers`) and one candidate identity: the process leads or it does not,
  whatever number of controllers it runs; every write passes the Lease's fence;
- the shared informers (`caches.SharedInformers`), started once every controller has added its
  handlers and indexes;
- the start order: informers list (WaitForCacheSync), then the process waits to lead, then every
  controller's workers, resync and Event recorder run; standbys keep their caches and queues warm
  and act on nothing;
- one stop path: on leadership loss the acting task is cancelled at once and the process exits (a
  Deployment starts a fresh candidate); on shutdown everything is cancelled and the Lease released.

Controllers are built from the registry (`registry.py`) by name; the manager knows nothing of any
particular kind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence

from operators.controllers.caches import SharedInformers
from operators.controllers.common.loop import Controller
from operators.core import leader
from operators.core.apis import Resource
from operators.core.kube import ApiError, Kube

logger = logging.getLogger(__name__)

LEASE_NAME = "kubeplane-controllers"


class ControllerManager:
    def __init__(self, kube: Kube, *, elect: bool = True, namespaces: Sequence[str] = ()) -> None:
        self.kube = kube
        self.informers = SharedInformers(kube, namespaces)
        self.controllers: dict[str, Controller] = {}
        self.elector = leader.elector_for(kube, LEASE_NAME, on_lost=self._lost) if elect else None
        self._tasks: list[asyncio.Task[None]] = []
        self._acting: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, *, elect: bool = True, namespaces: Sequence[str] = ()) -> ControllerManager:
        return cls(await Kube.connect(), elect=elect, namespaces=namespaces)

    async def serves(self, resource: Resource) -> bool:
        """Whether the API server serves `resource` (API discovery; a CRD not installed is not served)."""
        path = f"/apis/{resource.group}/{resource.version}" if resource.group else f"/api/{resource.version}"
        try:
            found = await self.kube.get(path)
        except ApiError as e:
            if e.not_found:
                return False
            raise
        return any(r.get("name") == resource.plural for r in found.get("resources") or [])

    def client(self) -> Kube:
        """A client for one controller: the manager's connection and Lease fence, a rate limiter of its
        own at the process's --kube-api-qps/--kube-api-burst, as kube-controller-manager gives each
        controller its own client. The informers and the Lease keep the manager's."""
        return self.kube.child()

    def add(self, controller: Controller) -> None:
        if controller.name in self.controllers:
            raise ValueError(f"controller {controller.name!r} registered twice")
        self.controllers[controller.name] = controller

    def build(self, builders: Iterable[Callable[[ControllerManager], Controller]]) -> None:
        for build in builders:
            self.add(build(self))

    @property
    def leading(self) -> bool:
        return self.elector is None or self.elector.holds()

    @property
    def acting(self) -> bool:
        return self._acting is not None and not self._acting.done()

    def start(self) -> None:
        """Start the informers, the election, and (once synced and leading) the controllers."""
        self._tasks = [*self.informers.start(), *leader.campaign(self.elector)]
        self._acting = asyncio.create_task(self._act(), name="controllers")
        self._tasks.append(self._acting)

    async def _act(self) -> None:
        await self.informers.wait_synced()
        if self.elector is not None:
            logger.info("leader election: waiting to lead (Lease %s/%s)", self.elector.namespace, self.elector.name)
            await self.elector.leading.wait()
        logger.info("running controllers: %s", ", ".join(self.controllers))
        work = [asyncio.create_task(c.run(), name=f"controller {c.name}") for c in self.controllers.values()]
        work += [asyncio.create_task(r.run(), name=f"events {c.name}")
                 for c in self.controllers.values() for r in c.recorders]
        try:
            await asyncio.gather(*work)
        finally:
            for task in work:
                task.cancel()
            await asyncio.gather(*work, return_exceptions=True)

    def _lost(self) -> None:
        """Leadership lost: stop acting now (in-flight syncs are cancelled), then exit."""
        if self._acting is not None:
            self._acting.cancel()
        leader.exit_process()

    async def stop(self) -> None:
        await leader.shut_down(self._tasks, self.elector, self.kube)
