"""Which controllers exist, by name, and how to build each one.

A `Registration` names a controller (kube-controller-manager's names, without `-controller`), the
kubeplane kind it drives, the built-in kind it can drive in drop-in mode, and the
kube-controller-manager controllers that must then be turned off. Adding a controller is adding a
registration: the manager, the operator and the CLI take it from here.

Selection follows kube-controller-manager's `--controllers`: `*` is every controller, `name` adds
one, `-name` removes one (`*,-replicaset`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from operators.controllers.common.loop import Controller
from operators.controllers.manager import ControllerManager
from operators.core import apis
from operators.core.apis import Resource

# build(manager, resource, controller name, builtin=...) -> Controller
Builder = Callable[..., Controller]


@dataclass(frozen=True)
class Registration:
    name: str
    build: Builder
    resource: Resource | None  # the kubeplane kind (None: drop-in only)
    builtin: Resource | None = None  # the built-in kind it drives in drop-in mode
    replaces: tuple[str, ...] = ()  # kube-controller-manager controllers to turn off in drop-in mode

    def builders(self, drop_in: bool, *, own: bool = True) -> list[Callable[[ControllerManager], Controller]]:
        """One builder per kind this controller drives: its own (unless `own` is False: its CRD is not
        served), and the built-in one in drop-in mode."""
        found: list[Callable[[ControllerManager], Controller]] = []
        if self.resource is not None and own:
            resource = self.resource
            found.append(lambda m: self.build(m, resource, self.name, builtin=False))
        if drop_in and self.builtin is not None:
            builtin = self.builtin
            found.append(lambda m: self.build(m, builtin, f"{self.name}-{builtin.group or 'core'}-{builtin.version}",
                                              builtin=True))
        return found


@dataclass
class Registry:
    entries: dict[str, Registration] = field(default_factory=dict)

    def register(self, registration: Registration) -> None:
        if registration.name in self.entries:
            raise ValueError(f"controller {registration.name!r} is registered twice")
        self.entries[registration.name] = registration

    def select(self, spec: Sequence[str] | str = ("*",)) -> list[Registration]:
        """The registrations a `--controllers` list selects, in registration order."""
        items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
        chosen: set[str] = set()
        for item in items:
            name = item.lstrip("-")
            if name != "*" and name not in self.entries:
                raise ValueError(f"unknown controller {name!r}; known: {', '.join(self.entries)}")
            if item == "*":
                chosen |= set(self.entries)
            elif item.startswith("-"):
                chosen.discard(name)
            else:
                chosen.add(name)
        return [r for n, r in self.entries.items() if n in chosen]

    def builders(self, spec: Sequence[str] | str = ("*",), *, drop_in: bool = False,
                 ) -> list[Callable[[ControllerManager], Controller]]:
        return [b for r in self.select(spec) for b in r.builders(drop_in)]

    def replaced(self, spec: Sequence[str] | str = ("*",)) -> list[str]:
        """The kube-controller-manager controllers the selection replaces in drop-in mode."""
        return [name for r in self.select(spec) for name in r.replaces]

    def __iter__(self) -> Iterator[Registration]:
        return iter(self.entries.values())


def default_registry() -> Registry:
    """kubeplane's controllers."""
    from operators.controllers.cronjob import controller as cronjob
    from operators.controllers.daemonset import controller as daemonset
    from operators.controllers.deployment import controller as deployment
    from operators.controllers.hpa import controller as hpa
    from operators.controllers.job import controller as job
    from operators.controllers.replicaset import controller as replicaset
    from operators.controllers.statefulset import controller as statefulset

    registry = Registry()
    registry.register(Registration(
        "replicaset", replicaset.build, apis.REPLICASETS, builtin=apis.APPS_REPLICASETS,
        replaces=("replicaset-controller",),
    ))
    # Drop-in only: there is no kubeplane ReplicationController, the built-in one runs on the
    # ReplicaSet's code as it does upstream.
    registry.register(Registration(
        "replicationcontroller", replicaset.build, None, builtin=apis.REPLICATION_CONTROLLERS,
        replaces=("replicationcontroller-controller",),
    ))
    registry.register(Registration(
        "deployment", deployment.build, apis.DEPLOYMENTS, builtin=apis.APPS_DEPLOYMENTS,
        replaces=("deployment-controller",),
    ))
    registry.register(Registration(
        "daemonset", daemonset.build, apis.DAEMONSETS, builtin=apis.APPS_DAEMONSETS, replaces=("daemonset-controller",),
    ))
    registry.register(Registration(
        "statefulset", statefulset.build, apis.STATEFULSETS, builtin=apis.APPS_STATEFULSETS,
        replaces=("statefulset-controller",),
    ))
    registry.register(Registration(
        "job", job.build, apis.JOBS, builtin=apis.BATCH_JOBS, replaces=("job-controller",),
    ))
    registry.register(Registration(
        "cronjob", cronjob.build, apis.CRONJOBS, builtin=apis.BATCH_CRONJOBS, replaces=("cronjob-controller",),
    ))
    registry.register(Registration(
        "horizontal-pod-autoscaler", hpa.build, apis.HORIZONTAL_POD_AUTOSCALERS, builtin=apis.AUTOSCALING_HPAS,
        replaces=("horizontal-pod-autoscaler-controller",),
    ))
    return registry
