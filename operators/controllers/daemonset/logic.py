"""The DaemonSet's decisions: one pure function from what a sync observed to what it should do.

Mirrors pkg/controller/daemon (daemon_controller.go, update.go, util/daemonset_util.go) for Kubernetes
1.34:

- which nodes: `should_run` is NodeShouldRunDaemonPod, built on the shared node-affinity (nodeSelector
  and required terms) and taint code the scheduler uses (`operators/core/selectors.py`, `taints.py`),
  with the tolerations every daemon pod gets;
- pods are made unbound: the template's required node terms are replaced by one `matchFields
  metadata.name In [node]` term, so a scheduler binds them; they carry `controller-revision-hash` and
  `pod-template-generation`; a pod's node is its nodeName, else that term's value (GetTargetNodeName);
- manage (podsShouldBeOnNode): a pod where one should run and none is; extra pods on a node deleted
  (the oldest kept); pods where none may continue deleted; a failed pod deleted (FailedDaemonPod) unless
  its node is in backoff, a succeeded one too; unscheduled pods whose node is gone deleted;
- rolling update (only once manage has nothing to do, as upstream's expectations make it): without
  surge, old pods deleted within maxUnavailable (unavailable ones first, always); with surge, a new pod
  beside an available old one within maxSurge, the old one deleted once the new is available
  (podsShouldBeOnNode's surge branch); both rounded up, both 0 making unavailable 1; OnDelete: nothing;
- status as updateDaemonSetStatus: per node the oldest pod counts; kubeplane's kind also gets
  `excludedNodes`, per reason (nodeName, nodeSelector, nodeAffinity, taints) how many nodes run no pod.

ControllerRevisions are the controller's (`controller.py`); this module gives their data and hash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from operators.controllers.common import history, podcontrol
from operators.core import pods as podutil
from operators.core import taints
from operators.core.apis import Resource
from operators.core.events import Event
from operators.core.intstr import scaled_value
from operators.core.selectors import RequiredNodeAffinity

Obj = Mapping[str, Any]
Pod = Mapping[str, Any]

HASH_LABEL = "controller-revision-hash"  # apps.DefaultDaemonSetUniqueLabelKey
GENERATION_LABEL = "pod-template-generation"  # extensions.DaemonSetTemplateGenerationKey
TEMPLATE_GENERATION = "deprecated.daemonset.template.generation"  # apps/v1's annotation
NAME_FIELD = "metadata.name"
BURST = 250  # kube-controller-manager's burstReplicas

FAILED_DAEMON_POD, SUCCEEDED_DAEMON_POD = "FailedDaemonPod", "SucceededDaemonPod"
SELECTING_ALL = "SelectingAll"

# AddOrUpdateDaemonPodTolerations: what every daemon pod tolerates (network-unavailable only with
# hostNetwork).
_EXISTS = "Exists"
DAEMON_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": _EXISTS, "effect": taints.NO_EXECUTE},
    {"key": "node.kubernetes.io/unreachable", "operator": _EXISTS, "effect": taints.NO_EXECUTE},
    {"key": "node.kubernetes.io/disk-pressure", "operator": _EXISTS, "effect": taints.NO_SCHEDULE},
    {"key": "node.kubernetes.io/memory-pressure", "operator": _EXISTS, "effect": taints.NO_SCHEDULE},
    {"key": "node.kubernetes.io/pid-pressure", "operator": _EXISTS, "effect": taints.NO_SCHEDULE},
    {"key": taints.TAINT_NODE_UNSCHEDULABLE, "operator": _EXISTS, "effect": taints.NO_SCHEDULE},
)
NETWORK_UNAVAILABLE = {"key": "node.kubernetes.io/network-unavailable", "operator": _EXISTS,
                       "effect": taints.NO_SCHEDULE}


def spec(ds: Obj) -> Obj:
    return ds.get("spec") or {}


def template_spec(ds: Obj) -> Obj:
    return (spec(ds).get("template") or {}).get("spec") or {}


def min_ready_seconds(ds: Obj) -> int:
    return int(spec(ds).get("minReadySeconds") or 0)


def template_generation(ds: Obj) -> int | None:
    """GetTemplateGeneration: apps/v1's annotation; for kubeplane's kind (which has none) the object's
    generation, which also changes with the template, so a pod made at it has the current template."""
    raw = ((ds.get("metadata") or {}).get("annotations") or {}).get(TEMPLATE_GENERATION)
    if raw is not None:
        try:
            return int(raw)
        except ValueError:
            return None
    generation = (ds.get("metadata") or {}).get("generation")
    return int(generation) if generation is not None else None


# --- which nodes ------------------------------------------------------------------------------------------

def _match(a: Obj, b: Obj) -> bool:
    """Toleration.MatchToleration: same key, operator (Equal by default), value and effect."""
    return ((a.get("key") or "") == (b.get("key") or "") and (a.get("operator") or "Equal") ==
            (b.get("operator") or "Equal") and (a.get("value") or "") == (b.get("value") or "")
            and (a.get("effect") or "") == (b.get("effect") or ""))


def with_daemon_tolerations(pod_spec: Obj) -> list[dict[str, Any]]:
    """The pod spec's tolerations with the daemon ones added (one that matches is replaced)."""
    found = [dict(t) for t in pod_spec.get("tolerations") or []]
    wanted = [*DAEMON_TOLERATIONS, *((NETWORK_UNAVAILABLE,) if pod_spec.get("hostNetwork") else ())]
    for toleration in wanted:
        for i, existing in enumerate(found):
            if _match(existing, toleration):
                found[i] = dict(toleration)
                break
        else:
            found.append(dict(toleration))
    return found


# Why a node gets no new daemon pod (kubeplane's status.excludedNodes keys, `kubeplane explain`).
NODE_NAME, NODE_SELECTOR, NODE_AFFINITY, TAINTS = "nodeName", "nodeSelector", "nodeAffinity", "taints"
EXCLUSIONS = (NODE_NAME, NODE_SELECTOR, NODE_AFFINITY, TAINTS)


@dataclass(frozen=True)
class Decision:
    """NodeShouldRunDaemonPod's answer for one node, with why: `run` a daemon pod should be made there,
    `stay` an existing one may stay; `excluded` the first check that said no (EXCLUSIONS), `taint` the
    taint not tolerated."""
    run: bool
    stay: bool
    excluded: str | None = None
    taint: Mapping[str, Any] | None = None


def decide(node: Obj, ds: Obj) -> Decision:
    """NodeShouldRunDaemonPod, in its order: nodeName, node affinity (the nodeSelector, then the required
    terms), then NoSchedule/NoExecute taints the daemon pod does not tolerate."""
    pod_spec = template_spec(ds)
    name = node["metadata"]["name"]
    if pod_spec.get("nodeName") and pod_spec.get("nodeName") != name:
        return Decision(False, False, NODE_NAME)
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (pod_spec.get("nodeSelector") or {}).items()):
        return Decision(False, False, NODE_SELECTOR)
    if not RequiredNodeAffinity.of({"spec": pod_spec}).matches(node):
        return Decision(False, False, NODE_AFFINITY)
    tolerations = with_daemon_tolerations(pod_spec)
    node_taints = taints.taints_of(node)
    untolerated = taints.find_untolerated_taint(node_taints, tolerations, taints.does_not_schedule)
    if untolerated is None:
        return Decision(True, True)
    stays = taints.find_untolerated_taint(node_taints, tolerations,
                                          lambda t: t.get("effect") == taints.NO_EXECUTE) is None
    return Decision(False, stays, TAINTS, untolerated)


def should_run(node: Obj, ds: Obj) -> tuple[bool, bool]:
    """NodeShouldRunDaemonPod: (should a daemon pod be made on the node, may an existing one stay)."""
    decision = decide(node, ds)
    return decision.run, decision.stay


def target_node(pod: Pod) -> str | None:
    """GetTargetNodeName: the pod's nodeName, else the value of its `matchFields metadata.name In`
    requirement (None: neither, and the pod is not counted on any node)."""
    name = (pod.get("spec") or {}).get("nodeName")
    if name:
        return str(name)
    required = (((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution") or {}
    for term in required.get("nodeSelectorTerms") or []:
        for requirement in term.get("matchFields") or []:
            if requirement.get("key") == NAME_FIELD and requirement.get("operator") == "In":
                values = requirement.get("values") or []
                return str(values[0]) if len(values) == 1 else None
    return None


def is_updated(pod: Pod, hash_: str, generation: int | None) -> bool:
    """IsPodUpdated: the pod carries the current revision's hash, or the template's generation."""
    labels = pod["metadata"].get("labels") or {}
    return bool(hash_ and labels.get(HASH_LABEL) == hash_) or \
        (generation is not None and labels.get(GENERATION_LABEL) == str(generation))


def oldest_first(pods_: Sequence[Pod]) -> list[Pod]:
    """podByCreationTimestampAndPhase: bound pods first, then the oldest, then by name."""
    def key(pod: Pod) -> tuple[bool, str, str]:
        meta = pod["metadata"]
        return not (pod.get("spec") or {}).get("nodeName"), str(meta.get("creationTimestamp") or ""), meta["name"]
    return sorted(pods_, key=key)


# --- the pod and the revision ---------------------------------------------------------------------------

def revision_data(ds: Obj) -> dict[str, Any]:
    """getPatch: what a ControllerRevision holds, the template with a replace directive."""
    return history.template_patch(ds)


def template_hash(ds: Obj) -> str:
    """ComputeHash(template, collisionCount): the revision's name suffix and the pods' hash label."""
    collisions = (ds.get("status") or {}).get("collisionCount")
    return history.hash_of(spec(ds).get("template") or {}, int(collisions) if collisions is not None else None)


def pod_for_node(ds: Obj, resource: Resource, node: str, hash_: str) -> dict[str, Any]:
    """CreatePodTemplate plus ReplaceDaemonSetPodNodeNameNodeAffinity: the template for one node, unbound."""
    pod = podcontrol.pod_from_template(ds, resource, spec(ds).get("template") or {})
    body_spec = pod["spec"]
    body_spec["tolerations"] = with_daemon_tolerations(body_spec)
    affinity = dict(body_spec.get("affinity") or {})
    node_affinity = dict(affinity.get("nodeAffinity") or {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": NAME_FIELD, "operator": "In", "values": [node]}]}]}
    affinity["nodeAffinity"] = node_affinity
    body_spec["affinity"] = affinity
    labels = pod["metadata"]["labels"]
    generation = template_generation(ds)
    if generation is not None:
        labels[GENERATION_LABEL] = str(generation)
    if hash_:
        labels[HASH_LABEL] = hash_
    return pod


# --- the plan -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Observed:
    ds: Obj
    nodes: Sequence[Obj]
    pods: Sequence[Pod]  # the pods the DaemonSet controls
    hash: str  # the current revision's hash label
    expectations_satisfied: bool
    now: datetime
    # Nodes whose failed-pod deletion is in backoff, with the delay left (failedPodsBackoff).
    backoff: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    create: tuple[str, ...] = ()  # node names
    delete: tuple[Pod, ...] = ()
    backoff: tuple[str, ...] = ()  # nodes whose failed-pod backoff steps on (a failed pod deleted)
    events: tuple[Event, ...] = ()
    status: dict[str, Any] = field(default_factory=dict)
    requeue: float | None = None
    selecting_all: bool = False
    excluded: dict[str, int] = field(default_factory=dict)  # kubeplane's status.excludedNodes


def by_node(pods_: Sequence[Pod]) -> dict[str, list[Pod]]:
    """getNodesToDaemonPods: pods by target node (terminal pods being deleted left out)."""
    found: dict[str, list[Pod]] = {}
    for pod in pods_:
        if podutil.is_terminal(pod) and podutil.is_being_deleted(pod):
            continue
        node = target_node(pod)
        if node is not None:
            found.setdefault(node, []).append(pod)
    return found


def surge_and_unavailable(ds: Obj, desired: int) -> tuple[int, int]:
    """SurgeCount and UnavailableCount (RollingUpdate only, both rounded up); both 0 makes
    unavailable 1 when anything is desired (updatedDesiredNodeCounts)."""
    strategy = spec(ds).get("updateStrategy") or {}
    if (strategy.get("type") or "RollingUpdate") != "RollingUpdate":
        return 0, 0
    rolling = strategy.get("rollingUpdate") or {}
    surge = scaled_value(rolling.get("maxSurge"), desired, True, default=0)
    unavailable = scaled_value(rolling.get("maxUnavailable"), desired, True, default=1)
    if desired > 0 and surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


Fits = Mapping[str, tuple[bool, bool]]  # node name -> should_run, decided once per plan


def _manage(observed: Observed, fits: Fits, placed: Mapping[str, list[Pod]], surge: int,
            events: list[Event], requeues: list[float]) -> tuple[list[str], list[Pod], list[str]]:
    ds, now = observed.ds, observed.now
    create: list[str] = []
    delete: list[Pod] = []
    stepped: list[str] = []
    namespace = ds["metadata"]["namespace"]
    for node in observed.nodes:
        name = node["metadata"]["name"]
        run, stay = fits[name]
        here = placed.get(name)
        if run and not here:
            create.append(name)
        elif stay:
            running: list[Pod] = []
            for pod in here or []:
                if podutil.is_being_deleted(pod):
                    continue
                phase = (pod.get("status") or {}).get("phase")
                if phase == "Failed":
                    if name in observed.backoff:
                        requeues.append(observed.backoff[name])
                        continue
                    stepped.append(name)
                    events.append(Event("Warning", FAILED_DAEMON_POD, f"Found failed daemon pod {namespace}/"
                                        f"{pod['metadata']['name']} on node {name}, will try to kill it"))
                    delete.append(pod)
                elif phase == "Succeeded":
                    events.append(Event("Normal", SUCCEEDED_DAEMON_POD, f"Found succeeded daemon pod {namespace}/"
                                        f"{pod['metadata']['name']} on node {name}, will try to delete it"))
                    delete.append(pod)
                else:
                    running.append(pod)
            if surge == 0:
                delete.extend(oldest_first(running)[1:])
                continue
            if len(running) <= 1:
                if not running and run:
                    create.append(name)
                continue
            # Surging: at most the oldest new and the oldest old pod stay, and the old one only while it
            # is ready and the new one is not available yet.
            newest: Pod | None = None
            oldest: Pod | None = None
            generation = template_generation(ds)
            for pod in oldest_first(running):
                if is_updated(pod, observed.hash, generation):
                    if newest is None:
                        newest = pod
                        continue
                elif oldest is None:
                    oldest = pod
                    continue
                delete.append(pod)
            if newest is not None and oldest is not None and (
                    not podutil.is_ready(oldest) or podutil.is_available(newest, min_ready_seconds(ds), now)):
                delete.append(oldest)
        elif here:
            delete.extend(p for p in here if not podutil.is_being_deleted(p))
    # getUnscheduledPodsWithoutNode: never bound, and their node is gone.
    names = {n["metadata"]["name"] for n in observed.nodes}
    for target, pods_ in placed.items():
        if target not in names:
            delete.extend(p for p in pods_ if not (p.get("spec") or {}).get("nodeName"))
    return create, delete, stepped


def _updated_pods_on_node(pods_: Sequence[Pod], hash_: str, generation: int | None,
                          ) -> tuple[Pod | None, Pod | None, bool]:
    """findUpdatedPodsOnNode: (new pod, old pod, at most one of each)."""
    new: Pod | None = None
    old: Pod | None = None
    for pod in pods_:
        if podutil.is_being_deleted(pod):
            continue
        if is_updated(pod, hash_, generation):
            if new is not None:
                return None, None, False
            new = pod
        else:
            if old is not None:
                return None, None, False
            old = pod
    return new, old, True


def _rolling_update(observed: Observed, fits: Fits, placed: Mapping[str, list[Pod]], surge: int,
                    unavailable: int) -> tuple[list[str], list[Pod]]:
    """rollingUpdate: (nodes for a new pod beside an old one, old pods to delete)."""
    ds, now = observed.ds, observed.now
    min_ready = min_ready_seconds(ds)
    generation = template_generation(ds)
    desired_nodes = [name for name, (run, _) in fits.items() if run]
    every = {name: placed.get(name, []) for name in [*placed, *desired_nodes]}
    if surge == 0:
        counted = 0
        replace: list[Pod] = []
        candidates: list[Pod] = []
        for name in sorted(every):
            new, old, ok = _updated_pods_on_node(every[name], observed.hash, generation)
            if not ok or (new is None) == (old is None):
                counted += 1  # the manage loop settles this node: count it as unavailable
            elif new is not None:
                if not podutil.is_available(new, min_ready, now):
                    counted += 1
            elif old is not None and not podutil.is_available(old, min_ready, now):
                replace.append(old)
                counted += 1
            elif old is not None and counted < unavailable:
                candidates.append(old)
        room = min(max(unavailable - counted, 0), len(candidates))
        return [], [*replace, *candidates[:room]]

    delete: list[Pod] = []
    cannot_run: list[Pod] = []  # available old pods on nodes that may no longer run one
    candidates_new: list[str] = []
    allowed_new: list[str] = []
    surging = available = 0
    for name in sorted(every):
        new, old, ok = _updated_pods_on_node(every[name], observed.hash, generation)
        if not ok:
            surging += 1  # the manage loop settles this node: count it as a surge
            continue
        if old is not None:
            available += 1 if podutil.is_available(old, min_ready, now) else 0
        elif new is not None:
            available += 1 if podutil.is_available(new, min_ready, now) else 0
        if old is None:
            continue
        runs = fits.get(name, (False, False))[0]
        if new is None:
            if not podutil.is_available(old, min_ready, now):
                if runs:
                    allowed_new.append(name)  # an unavailable old pod gets its replacement at once
                else:
                    delete.append(old)
            elif not runs:
                cannot_run.append(old)
            elif surging < surge:
                candidates_new.append(name)
        elif not podutil.is_available(new, min_ready, now):
            surging += 1  # surged here, waiting for the new pod to become available
        else:
            delete.append(old)  # the new pod is available: the old one goes
    # With surge the owner expects full availability: a pod on a node that may no longer run one goes
    # only as far as pods elsewhere are available beyond the desired number.
    spare = min(max(available - len(desired_nodes), 0), len(cannot_run))
    delete.extend(cannot_run[:spare])
    room = min(max(surge - surging, 0), len(candidates_new))
    return [*allowed_new, *candidates_new[:room]], delete


def excluded_nodes(decisions: Mapping[str, Decision]) -> dict[str, int]:
    """kubeplane's status.excludedNodes: per reason, how many nodes get no daemon pod."""
    counts = dict.fromkeys(EXCLUSIONS, 0)
    for decision in decisions.values():
        if decision.excluded is not None:
            counts[decision.excluded] += 1
    return counts


def status_of(observed: Observed, fits: Fits, placed: Mapping[str, list[Pod]], observe_generation: bool,
              ) -> dict[str, Any]:
    """updateDaemonSetStatus: per node, the oldest pod counts."""
    ds, now = observed.ds, observed.now
    min_ready = min_ready_seconds(ds)
    generation = template_generation(ds)
    desired = current = misscheduled = ready = updated = available = 0
    for node in observed.nodes:
        run, _ = fits[node["metadata"]["name"]]
        here = placed.get(node["metadata"]["name"]) or []
        if not run:
            misscheduled += 1 if here else 0
            continue
        desired += 1
        if not here:
            continue
        current += 1
        pod = oldest_first(here)[0]
        if podutil.is_ready(pod):
            ready += 1
            if podutil.is_available(pod, min_ready, now):
                available += 1
        if is_updated(pod, observed.hash, generation):
            updated += 1
    old = ds.get("status") or {}
    status: dict[str, Any] = {
        "desiredNumberScheduled": desired, "currentNumberScheduled": current, "numberMisscheduled": misscheduled,
        "numberReady": ready, "updatedNumberScheduled": updated, "numberAvailable": available,
        "numberUnavailable": desired - available,
        "observedGeneration": ds["metadata"].get("generation") if observe_generation else old.get("observedGeneration"),
    }
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        status["conditions"] = old["conditions"]
    return {k: v for k, v in status.items() if v is not None}


def selects_all(ds: Obj) -> bool:
    selector = spec(ds).get("selector")
    return selector is not None and not selector.get("matchLabels") and not selector.get("matchExpressions")


def plan(observed: Observed) -> Plan:
    ds = observed.ds
    if selects_all(ds):
        return Plan(events=(Event("Warning", SELECTING_ALL,
                                  "This daemon set is selecting all pods. A non-empty selector is required."),),
                    selecting_all=True)
    placed = by_node(observed.pods)
    decisions = {n["metadata"]["name"]: decide(n, ds) for n in observed.nodes}
    fits = {name: (d.run, d.stay) for name, d in decisions.items()}
    excluded = excluded_nodes(decisions)
    if not observed.expectations_satisfied:
        return Plan(status=status_of(observed, fits, placed, observe_generation=False), excluded=excluded)
    desired = sum(1 for run, _ in fits.values() if run)
    surge, unavailable = surge_and_unavailable(ds, desired)
    events: list[Event] = []
    requeues: list[float] = []
    create, delete, stepped = _manage(observed, fits, placed, surge, events, requeues)
    if not create and not delete and (spec(ds).get("updateStrategy") or {}).get("type", "RollingUpdate") \
            == "RollingUpdate":
        create, delete = _rolling_update(observed, fits, placed, surge, unavailable)
    status = status_of(observed, fits, placed, observe_generation=True)
    min_ready = min_ready_seconds(ds)
    if min_ready > 0 and status["numberReady"] != status["numberAvailable"]:
        requeues.append(float(min_ready))
    unique = list({p["metadata"]["name"]: p for p in delete}.values())
    return Plan(create=tuple(create[:BURST]), delete=tuple(unique[:BURST]), backoff=tuple(stepped),
                events=tuple(events), status=status, requeue=min(requeues) if requeues else None,
                excluded=excluded)
