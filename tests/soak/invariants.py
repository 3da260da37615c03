"""What the soak checks, as pure functions of what its watches recorded (so each check is unit-tested
on event sequences that break it: tests/unit/test_soak_invariants.py).

- `pod_violations`: from every event of the soak's pod watch, in order:
  - **over-created**: a ReplicaSet created more pods than its scale requests asked for. Nothing but the
    controller deletes the soak's pods, so a correct controller (upstream's expectations) creates at most
    the sum of every increase of spec.replicas (from 0); a create repeated after a restart, a retry of a
    create that landed, or a stale cache shows up as one more.
  - **double binding**: a pod whose spec.nodeName changed once set.
  - **node overcommitted**: at some event, the CPU requests of the pods bound to a node (terminating
    ones included: they hold their resources until gone, as the scheduler counts them) exceed its
    allocatable CPU.
- `phase_violations`: a Backup or Restore that reached Completed and later showed another phase, or was
  deleted, while nothing but the operators touched it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from operators.scheduler.resources import milli_value_of, parse_quantity

Event = tuple[str, dict[str, Any]]  # (ADDED/MODIFIED/DELETED, the object as of that event)


@dataclass(frozen=True)
class Violation:
    what: str
    detail: str

    def __str__(self) -> str:
        return f"{self.what}: {self.detail}"


def controller_of(obj: Mapping[str, Any]) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("name"))
    return None


def cpu_requests(pod: Mapping[str, Any]) -> int:
    """Milli-CPU the pod's containers request (what the soak's pods set; init containers are not used)."""
    total = 0
    for container in (pod.get("spec") or {}).get("containers") or []:
        request = ((container.get("resources") or {}).get("requests") or {}).get("cpu")
        if request is not None:
            total += milli_value_of(parse_quantity(request))
    return total


def pod_violations(events: Iterable[Event], allowed_creations: Mapping[str, int],
                   allocatable_cpu: Mapping[str, int]) -> list[Violation]:
    """`allowed_creations`: owner name -> the sum of every increase of its spec.replicas;
    `allocatable_cpu`: node name -> milli-CPU (nodes not named are not checked)."""
    violations: list[Violation] = []
    created: Counter[str] = Counter()
    seen: set[str] = set()
    bound: dict[str, str] = {}  # uid -> node
    usage: dict[str, dict[str, int]] = defaultdict(dict)  # node -> uid -> milli-CPU
    overcommitted: set[str] = set()
    for kind, pod in events:
        meta = pod.get("metadata") or {}
        uid, name = str(meta.get("uid", "")), str(meta.get("name", ""))
        if uid not in seen:
            seen.add(uid)
            owner = controller_of(pod)
            if owner is not None:
                created[owner] += 1
        node = (pod.get("spec") or {}).get("nodeName") or ""
        if node:
            first = bound.setdefault(uid, node)
            if first != node:
                violations.append(Violation("double binding", f"pod {name} bound to {first}, then to {node}"))
        if kind == "DELETED":
            for pods in usage.values():
                pods.pop(uid, None)
            continue
        if node and node in allocatable_cpu:
            usage[node][uid] = cpu_requests(pod)
            used = sum(usage[node].values())
            if used > allocatable_cpu[node] and node not in overcommitted:
                overcommitted.add(node)
                violations.append(Violation(
                    "node overcommitted",
                    f"{node}: {used}m CPU requested by {len(usage[node])} pods, {allocatable_cpu[node]}m allocatable "
                    f"(at pod {name})"))
    for owner, count in sorted(created.items()):
        allowed = allowed_creations.get(owner, 0)
        if count > allowed:
            violations.append(Violation(
                "over-created", f"ReplicaSet {owner} created {count} pods; its scale requests asked for {allowed}"))
    return violations


def creations_allowed(replica_history: Iterable[int]) -> int:
    """The sum of every increase in a sequence of spec.replicas values, starting from 0."""
    total, last = 0, 0
    for replicas in replica_history:
        total += max(0, replicas - last)
        last = replicas
    return total


def phase_violations(kind: str, events: Iterable[Event]) -> list[Violation]:
    violations: list[Violation] = []
    completed: set[str] = set()
    for event, obj in events:
        name = str((obj.get("metadata") or {}).get("name", ""))
        phase = (obj.get("status") or {}).get("phase")
        if name in completed:
            if event == "DELETED":
                violations.append(Violation(f"completed {kind} deleted", f"{kind} {name} was Completed, then deleted"))
                completed.discard(name)
            elif phase != "Completed":
                violations.append(Violation(f"completed {kind} changed", f"{kind} {name}: Completed, then {phase}"))
                completed.discard(name)
        elif phase == "Completed" and event != "DELETED":
            completed.add(name)
    return violations


def ever_completed(events: Iterable[Event]) -> list[str]:
    names: list[str] = []
    for event, obj in events:
        name = str((obj.get("metadata") or {}).get("name", ""))
        if event != "DELETED" and (obj.get("status") or {}).get("phase") == "Completed" and name not in names:
            names.append(name)
    return names
