"""A differential harness: one scenario, run against the upstream kind (kube-controller-manager) and
the kubeplane kind (kubeplane's controllers), in two namespaces of the same cluster, and the two
trajectories compared.

A scenario is a function of a `Side`. It acts (`side.apply`, `side.kubectl`, ...), waits for the
controller to settle, and records facts at each step (`side.record(step, **facts)`); the harness runs
it once per flavour and compares the records step by step. Facts are what could differ between two
implementations: which pods survive a scale-down, who owns what after adoption or release, condition
type/status/reason/message, event reasons, how many pods were ever created (counted from a watch, so
a pod created and deleted within a moment still counts). Never uids, hashes or timestamps: `normalise`
masks generated name suffixes and namespaces in messages.

Both sides use the same object names (`web`), so names and messages compare as they are.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.integration.conftest import ENV, apply, kubectl, kubectl_json
from tests.kubectl import wait_for
from tests.watch import Watch


@dataclass(frozen=True)
class Flavour:
    name: str  # "upstream" or "kubeplane"
    api_version: str
    resource: str  # the kubectl resource name of the workload kind

    def manifest(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """The same manifest with this flavour's apiVersion (the port is the apiVersion, nothing else)."""
        ported = copy.deepcopy(dict(manifest))
        ported["apiVersion"] = self.api_version
        return ported


UPSTREAM_RS = Flavour("upstream", "apps/v1", "replicasets.apps")
KUBEPLANE_RS = Flavour("kubeplane", "apps.kubeplane.dev/v1alpha1", "replicasets.apps.kubeplane.dev")

GENERATED = re.compile(r"\b([a-z0-9]([-a-z0-9]*[a-z0-9])?)-[bcdfghjklmnpqrstvwxz2456789]{5}\b")


def normalise(text: str, namespace: str) -> str:
    """Mask what legitimately differs between the two runs: the namespace and generated suffixes."""
    return GENERATED.sub(r"\1-XXXXX", text.replace(namespace, "NAMESPACE"))


@dataclass
class Side:
    flavour: Flavour
    namespace: str
    pods: Watch
    events: Watch
    records: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    # --- acting ------------------------------------------------------------------------------------

    def apply_workload(self, manifest: Mapping[str, Any]) -> None:
        """Apply the scenario's workload manifest as this flavour."""
        apply(self.flavour.manifest(manifest), self.namespace)

    def apply(self, manifest: Mapping[str, Any]) -> None:
        """Apply anything else (pods, quotas) as it is."""
        apply(dict(manifest), self.namespace)

    def kubectl(self, *args: str, check: bool = True) -> str:
        return kubectl(*args, "-n", self.namespace, check=check).stdout

    def get(self, name: str, resource: str | None = None) -> dict[str, Any]:
        return dict(kubectl_json("get", resource or self.flavour.resource, name, "-n", self.namespace))

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.get(name).get("status") or {})

    # --- observing ---------------------------------------------------------------------------------

    def live_pods(self) -> dict[str, dict[str, Any]]:
        """Pods that exist and are not being deleted, by name (from the watch)."""
        return {n: p for n, p in self.pods.snapshot().items() if not p["metadata"].get("deletionTimestamp")}

    def active_pods(self) -> dict[str, dict[str, Any]]:
        return {n: p for n, p in self.live_pods().items()
                if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")}

    def owners(self) -> dict[str, list[str]]:
        """Each live pod's controller, as `Kind/name` (or nothing)."""
        return {n: [f"{r['kind']}/{r['name']}" for r in p["metadata"].get("ownerReferences") or []
                    if r.get("controller")] for n, p in sorted(self.live_pods().items())}

    def ownership(self) -> list[tuple[str, list[str]]]:
        """`owners()` with generated names masked, as a sorted list (comparable across the runs)."""
        return sorted((normalise(n, self.namespace), o) for n, o in self.owners().items())

    def event_reasons(self, name: str) -> Counter[str]:
        """Reasons of the Events about the object `name`, with their counts (aggregated ones summed)."""
        reasons: Counter[str] = Counter()
        for event in self.events.snapshot().values():
            if event.get("involvedObject", {}).get("name") == name:
                reasons[event.get("reason", "")] += int(event.get("count") or 1)
        return reasons

    def event_messages(self, name: str, reason: str) -> set[str]:
        return {normalise(e.get("message", ""), self.namespace) for e in self.events.snapshot().values()
                if e.get("involvedObject", {}).get("name") == name and e.get("reason") == reason}

    def conditions(self, name: str) -> list[tuple[str, str, str, str]]:
        return sorted((c.get("type", ""), c.get("status", ""), c.get("reason", ""),
                       normalise(c.get("message", ""), self.namespace))
                      for c in self.status(name).get("conditions") or [])

    def created_count(self) -> int:
        """Distinct pods ever created in the namespace (uids seen by the watch)."""
        return len(self.pods.ever_added)

    def record(self, step: str, **facts: Any) -> None:
        self.records.append((step, json.loads(json.dumps(facts, default=_jsonable, sort_keys=True))))

    def wait(self, predicate: Callable[[], Any], what: str, timeout: float = 120) -> Any:
        return wait_for(predicate, timeout=timeout, what=f"[{self.flavour.name}] {what}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, Counter):
        return dict(sorted(value.items()))
    raise TypeError(f"cannot record {type(value).__name__}")


@contextmanager
def side(flavour: Flavour) -> Iterator[Side]:
    namespace = f"d-{flavour.name[:4]}-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", namespace)
    try:
        with Watch(ENV, f"/api/v1/namespaces/{namespace}/pods") as pods, \
                Watch(ENV, f"/api/v1/namespaces/{namespace}/events") as events:
            yield Side(flavour, namespace, pods, events)
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def run(scenario: Callable[[Side], None], flavours: tuple[Flavour, Flavour]) -> dict[str, list[tuple[str, Any]]]:
    """Run `scenario` once per flavour (one after the other); return each side's records."""
    results: dict[str, list[tuple[str, Any]]] = {}
    for flavour in flavours:
        with side(flavour) as s:
            scenario(s)
            results[flavour.name] = s.records
    return results


def run_together(scenario: Callable[[Side], None], flavours: tuple[Flavour, Flavour],
                 ) -> dict[str, list[tuple[str, Any]]]:
    """`run`, both flavours at the same time (one thread each): for scenarios that wait for the clock
    (a CronJob's next minute), so one wait serves both."""
    from concurrent.futures import ThreadPoolExecutor

    def one(flavour: Flavour) -> list[tuple[str, Any]]:
        with side(flavour) as s:
            scenario(s)
            return s.records

    with ThreadPoolExecutor(max_workers=len(flavours)) as pool:
        futures = {f.name: pool.submit(one, f) for f in flavours}
        return {name: future.result() for name, future in futures.items()}


def assert_same(results: Mapping[str, list[tuple[str, Any]]]) -> None:
    """Every step recorded the same facts on both sides; on a difference, show both, step by step."""
    (name_a, a), (name_b, b) = results.items()
    assert [step for step, _ in a] == [step for step, _ in b], "the scenario recorded different steps"
    differences = []
    for (step, facts_a), (_, facts_b) in zip(a, b, strict=True):
        for key in sorted(set(facts_a) | set(facts_b)):
            if facts_a.get(key) != facts_b.get(key):
                differences.append(f"  {step} / {key}:\n    {name_a}: {facts_a.get(key)!r}\n    "
                                   f"{name_b}: {facts_b.get(key)!r}")
    assert not differences, "the trajectories differ:\n" + "\n".join(differences)
