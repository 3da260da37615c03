"""The workload controllers operator: `kubeplane run controllers`.

Kopf provides the operator frame (signals, the liveness endpoint, logging); the controllers run
under one `ControllerManager` kept in Kopf's `memo`:

- `memo.controllers`: which controllers to run (`--controllers`, kube-controller-manager's syntax;
  default `*`);
- `memo.drop_in`: also drive the built-in kinds (apps/v1 ReplicaSet, ...) whose
  kube-controller-manager controllers are turned off (`--drop-in`);
- `memo.namespaces`: watch only these namespaces (`-n`);
- `memo.manager`: the running manager.

No controller reads a Kopf index or handler: they all share the manager's informers.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from operators.controllers.manager import ControllerManager
from operators.controllers.registry import default_registry
from operators.core.settings import configure_common

logger = logging.getLogger(__name__)


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    configure_common(settings)
    logging.getLogger("operators").setLevel(logging.DEBUG if logging.getLogger().isEnabledFor(logging.DEBUG)
                                            else logging.INFO)
    registry = default_registry()
    selection = memo.get("controllers") or "*"
    drop_in = bool(memo.get("drop_in"))
    manager = await ControllerManager.connect(namespaces=memo.get("namespaces") or ())
    # As kube-controller-manager skips a controller whose resource is not served: a CRD that is not
    # installed (yet) stops its own controller, never every controller's cache sync.
    builders = []
    for registration in registry.select(selection):
        own = registration.resource is None or await manager.serves(registration.resource)
        if not own:
            assert registration.resource is not None
            logger.error("controller %s not started: the API server does not serve %s; install its CRD "
                         "(crds/%s_%s.yaml, or the Helm chart) and restart the operator", registration.name,
                         registration.resource, registration.resource.group, registration.resource.plural)
        builders.extend(registration.builders(drop_in, own=own))
    manager.build(builders)
    manager.start()
    memo.manager = manager
    logger.info("controllers operator: %s%s", ", ".join(manager.controllers),
                f" (drop-in: kube-controller-manager's {', '.join(registry.replaced(selection))} must be off)"
                if drop_in else "")


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    manager: ControllerManager | None = memo.get("manager")
    if manager is not None:
        await manager.stop()


@kopf.on.probe(id="controllers")
async def probe(memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    """Reported on the liveness endpoint: caches synced, leading, acting."""
    manager: ControllerManager | None = memo.get("manager")
    if manager is None:
        return {"started": False}
    return {"started": True, "synced": manager.informers.synced, "leading": manager.leading,
            "acting": manager.acting}
