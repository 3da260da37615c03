"""The scheduling framework: plugin extension points and one scheduling cycle, without I/O.

This is pkg/scheduler/framework/runtime/framework.go plus the algorithm half of
schedule_one.go, over plain JSON pods and a `Snapshot`:

    PreFilter -> Filter (each node, stopping once enough feasible nodes are found)
      -> [no node fits]  PostFilter (preemption) -> Result with upstream's failure message
      -> [one node fits] that node
      -> [more]          PreScore -> Score -> NormalizeScore -> x weight -> sum -> best total

Reserve/Unreserve and Permit are protocols the caller drives after `schedule_one` (assuming the
pod in the cache belongs between Filter and Reserve, and the permit wait to the binding cycle).

Where upstream is nondeterministic, kubeplane is deterministic and says how:
- nodes are in node-name order (upstream interleaves zones in informer order);
- the filter pass starts at `start_index` and visits nodes one by one, stopping at exactly
  `num_feasible_nodes_to_find` feasible nodes (upstream checks 16 nodes in parallel and may
  look at a few more); the next cycle's start index is returned, as nextStartNodeIndex;
- among nodes with the best total score upstream picks one at random (reservoir sampling);
  here `tie_break` chooses: `at_random` (upstream's) in the running scheduler, by default the first
  in node-name order.
"""

from __future__ import annotations

import itertools
import json
import operator
import random
import sys
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter, methodcaller
from typing import Any, NamedTuple, Protocol, cast, runtime_checkable

from operators.scheduler import helpers
from operators.scheduler.messages import NO_NODES_REGISTERED, fit_error_message
from operators.scheduler.snapshot import NodeInfo, PodInfo, Snapshot
from operators.scheduler.status import Code, Diagnosis, NodeToStatus, Status, is_success

Pod = Mapping[str, Any]

MAX_NODE_SCORE = 100
MIN_NODE_SCORE = 0
MAX_CUSTOM_PRIORITY_SCORE = 10
# schedule_one.go: score at least this many feasible nodes, and at least this share of them.
MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5

# Plugin names (pkg/scheduler/framework/plugins/names).
NODE_UNSCHEDULABLE = "NodeUnschedulable"
NODE_NAME = "NodeName"
TAINT_TOLERATION = "TaintToleration"
NODE_AFFINITY = "NodeAffinity"
NODE_PORTS = "NodePorts"
NODE_RESOURCES_FIT = "NodeResourcesFit"
POD_TOPOLOGY_SPREAD = "PodTopologySpread"
INTER_POD_AFFINITY = "InterPodAffinity"
DEFAULT_PREEMPTION = "DefaultPreemption"
NODE_RESOURCES_BALANCED_ALLOCATION = "NodeResourcesBalancedAllocation"

# apis/config/v1/default_plugins.go, in its order (which is the order filters run in), without
# the queue-sort, scheduling-gates, volume, DRA, ImageLocality and binder plugins.
DEFAULT_PLUGINS: tuple[str, ...] = (
    NODE_UNSCHEDULABLE,
    NODE_NAME,
    TAINT_TOLERATION,
    NODE_AFFINITY,
    NODE_PORTS,
    NODE_RESOURCES_FIT,
    POD_TOPOLOGY_SPREAD,
    INTER_POD_AFFINITY,
    DEFAULT_PREEMPTION,
    NODE_RESOURCES_BALANCED_ALLOCATION,
)
DEFAULT_WEIGHTS: Mapping[str, int] = {
    TAINT_TOLERATION: 3,
    NODE_AFFINITY: 2,
    POD_TOPOLOGY_SPREAD: 2,
    INTER_POD_AFFINITY: 2,
    NODE_RESOURCES_FIT: 1,
    NODE_RESOURCES_BALANCED_ALLOCATION: 1,
}

# Extension point names, as in KubeSchedulerConfiguration's `plugins` section.
PRE_FILTER = "preFilter"
FILTER = "filter"
POST_FILTER = "postFilter"
PRE_SCORE = "preScore"
SCORE = "score"
RESERVE = "reserve"
PERMIT = "permit"

# CycleState key under which `schedule_one` passes its `now` to plugins that need a clock.
NOW_KEY = "kubeplane.dev/now"

LEAST_ALLOCATED = "LeastAllocated"
MOST_ALLOCATED = "MostAllocated"
REQUESTED_TO_CAPACITY_RATIO = "RequestedToCapacityRatio"


# Configuration.


@dataclass(frozen=True)
class ResourceSpec:
    name: str
    weight: int = 1


DEFAULT_RESOURCES: tuple[ResourceSpec, ...] = (ResourceSpec("cpu", 1), ResourceSpec("memory", 1))


@dataclass(frozen=True)
class ScoringStrategy:
    """NodeResourcesFit's scoring: LeastAllocated (spread, the default), MostAllocated (bin
    packing) or RequestedToCapacityRatio with `shape` points (utilization 0..100, score 0..10)."""

    type: str = LEAST_ALLOCATED
    resources: tuple[ResourceSpec, ...] = DEFAULT_RESOURCES
    shape: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class PluginArgs:
    """The other plugins' arguments, with upstream's defaults."""

    # NodeResourcesFit
    ignored_resources: frozenset[str] = frozenset()
    ignored_resource_groups: frozenset[str] = frozenset()
    # NodeResourcesBalancedAllocation
    balanced_allocation_resources: tuple[ResourceSpec, ...] = DEFAULT_RESOURCES
    # InterPodAffinity
    hard_pod_affinity_weight: int = 1
    ignore_preferred_terms_of_existing_pods: bool = False
    # PodTopologySpread: "System" (hostname maxSkew 3 + zone maxSkew 5, ScheduleAnyway, for pods
    # selected by a Service/RC/RS/StatefulSet) or "List" (default_constraints).
    spread_defaulting_type: str = "System"
    default_constraints: tuple[Mapping[str, Any], ...] = ()
    # DefaultPreemption
    min_candidate_nodes_percentage: int = 10
    min_candidate_nodes_absolute: int = 100
    # NodeAffinity: a node selector / preferred terms added to every pod of the profile.
    added_affinity: Mapping[str, Any] | None = None


PluginFactory = Callable[["Handle"], "Plugin"]


@dataclass(frozen=True)
class Profile:
    """A scheduler profile: which plugins run (in order), score weights (unset or 0 means 1),
    plugins switched off at single extension points, NodeResourcesFit's scoring strategy and
    percentageOfNodesToScore (None or 0: adaptive)."""

    scheduler_name: str = "kubeplane-scheduler"
    plugins: tuple[str, ...] = DEFAULT_PLUGINS
    weights: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    disabled: Mapping[str, frozenset[str]] = field(default_factory=dict)
    scoring_strategy: ScoringStrategy = field(default_factory=ScoringStrategy)
    percentage_of_nodes_to_score: int | None = None
    args: PluginArgs = field(default_factory=PluginArgs)
    registry: Mapping[str, PluginFactory] | None = None

    def weight(self, plugin: str) -> int:
        return self.weights.get(plugin) or 1


def default_profile() -> Profile:
    return Profile()


def num_feasible_nodes_to_find(percentage: int | None, num_all_nodes: int) -> int:
    """How many feasible nodes to find before scoring (numFeasibleNodesToFind): all of them below
    100 nodes; otherwise the configured percentage, or adaptively 50% - 1% per 125 nodes, never
    under 5%; and never fewer than 100 nodes."""
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND:
        return num_all_nodes
    percent = percentage or 0
    if percent == 0:
        percent = max(50 - num_all_nodes // 125, MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
    return max(num_all_nodes * percent // 100, MIN_FEASIBLE_NODES_TO_FIND)


# Per-cycle state.


@runtime_checkable
class StateData(Protocol):
    def clone(self) -> StateData: ...


class CycleState(dict[str, Any]):
    """Data plugins keep for the rest of one cycle, keyed by plugin-chosen strings.

    Values that implement `clone()` are copied by `clone()` (preemption simulates removing pods
    on a copy), others are shared.
    """

    def __init__(self) -> None:
        super().__init__()
        self.skip_filter_plugins: set[str] = set()
        self.skip_score_plugins: set[str] = set()

    def read(self, key: str) -> Any:
        return self[key]

    def write(self, key: str, value: Any) -> None:
        self[key] = value

    def clone(self) -> CycleState:
        copied = CycleState()
        for key, value in self.items():
            # What isinstance(value, StateData) tells, without a Protocol check's cost (preemption clones
            # the state once per candidate node).
            clone = getattr(type(value), "clone", None)
            copied[key] = clone(value) if clone is not None else value
        copied.skip_filter_plugins = set(self.skip_filter_plugins)
        copied.skip_score_plugins = set(self.skip_score_plugins)
        return copied


@dataclass(frozen=True)
class PreFilterResult:
    """Nodes a PreFilter plugin narrows the search to; None means every node."""

    node_names: frozenset[str] | None = None

    def all_nodes(self) -> bool:
        return self.node_names is None

    def merge(self, other: PreFilterResult | None) -> PreFilterResult | None:
        if other is None or other.all_nodes():
            return None if self.all_nodes() else self
        if self.all_nodes():
            return other
        assert self.node_names is not None and other.node_names is not None
        return PreFilterResult(self.node_names & other.node_names)


MODE_NOOP = "Noop"
MODE_OVERRIDE = "Override"


@dataclass(frozen=True)
class PostFilterResult:
    """What PostFilter (preemption) decided: nominate `nominated_node_name` ("" clears the
    nomination) when mode is Override; `detail` is the plugin's own record (for explain)."""

    nominated_node_name: str = ""
    mode: str = MODE_OVERRIDE
    victims: tuple[Pod, ...] = ()
    detail: Any = None


@dataclass
class NodeScore:
    name: str
    score: int


# Plugin protocols. A plugin is any object with a `name` and the methods of the extension points
# it serves; plugins return None for success.


@runtime_checkable
class Plugin(Protocol):
    @property
    def name(self) -> str: ...


class PreFilterExtensions(Protocol):
    """Keep PreFilter state right when pods are added or removed hypothetically (nominated pods,
    preemption victims)."""

    def add_pod(self, state: CycleState, pod: Pod, pod_info: PodInfo, node_info: NodeInfo) -> Status | None: ...

    def remove_pod(self, state: CycleState, pod: Pod, pod_info: PodInfo, node_info: NodeInfo) -> Status | None: ...


@runtime_checkable
class PreFilterPlugin(Plugin, Protocol):
    def pre_filter(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[PreFilterResult | None, Status | None]: ...

    def pre_filter_extensions(self) -> PreFilterExtensions | None: ...


@runtime_checkable
class FilterPlugin(Plugin, Protocol):
    def filter(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> Status | None: ...


class NodeStatic(Protocol):
    """A plugin whose Filter verdict and Score read only the pod's spec and the Node object, never
    the pods on the node. `static_key(pod)` sums up what it reads of the pod; the framework then
    remembers its results per Node object (Snapshot.static_memo), so a burst of alike pods costs
    these plugins one evaluation per node, not one per pod per node."""

    name: str

    def static_key(self, pod: Pod) -> Hashable: ...


class NodeLocal(Protocol):
    """A plugin (`node_local = True`) whose Filter verdict and Score read only the pod and the one
    NodeInfo they are given, never other nodes or cluster state. When every active filter (or
    scorer) of a cycle is node-local and nobody is nominated, the framework remembers each node's
    verdict (and raw scores) for the pod's alike kind in `NodeInfo.alike_memo`, which a change of the
    node's pods clears and a rebuilt NodeInfo starts without: the next pod of a ReplicaSet with the
    same spec re-evaluates only the nodes that changed since (the idea of Kubernetes 1.35's
    opportunistic batching, kept exact: every node is still visited in the same order, only its
    result is reused)."""

    name: str
    node_local: bool


# What node-local plugins read of a pod's spec (NodeResourcesFit and BalancedAllocation: requests,
# overhead, pod-level resources, sidecars; NodePorts: ports; NodeAffinity: nodeSelector and affinity;
# TaintToleration and NodeUnschedulable: tolerations; NodeName: nodeName), and of each container. A pod's
# volumes and mounts (its kube-api-access-<random> token volume) and its name are left out, so the pods
# of one template are alike. A new node-local plugin that reads more must add it here.
ALIKE_SPEC_FIELDS = ("nodeName", "nodeSelector", "affinity", "tolerations", "overhead", "resources", "priority",
                     "preemptionPolicy")
ALIKE_CONTAINER_FIELDS = ("resources", "ports", "restartPolicy")


def alike_signature(pod: Pod) -> str:
    """What node-local plugins can read of `pod` (see ALIKE_SPEC_FIELDS), and its whole status (in-place
    resize reads it), as one string: equal for the pods of one owner's template."""
    spec = pod.get("spec") or {}
    shape: dict[str, Any] = {key: spec[key] for key in ALIKE_SPEC_FIELDS if key in spec}
    for kind in ("containers", "initContainers"):
        shape[kind] = [[container.get(key) for key in ALIKE_CONTAINER_FIELDS] for container in spec.get(kind) or ()]
    return json.dumps([shape, pod.get("status")], sort_keys=True, separators=(",", ":"), default=str)


@runtime_checkable
class PostFilterPlugin(Plugin, Protocol):
    def post_filter(
        self, state: CycleState, pod: Pod, node_to_status: NodeToStatus
    ) -> tuple[PostFilterResult | None, Status | None]: ...


@runtime_checkable
class PreScorePlugin(Plugin, Protocol):
    def pre_score(self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]) -> Status | None: ...


class ScoreExtensions(Protocol):
    def normalize_score(self, state: CycleState, pod: Pod, scores: list[NodeScore]) -> Status | None: ...


class NormalizesValues(Protocol):
    """ScoreExtensions that can also normalize plain scores in node order (no NodeScore per node):
    the framework prefers `normalize_values` when an extension has it. Both must agree."""

    def normalize_values(self, state: CycleState, pod: Pod, values: list[int]) -> tuple[list[int], Status | None]: ...


@runtime_checkable
class ScorePlugin(Plugin, Protocol):
    def score(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> tuple[int, Status | None]: ...

    def score_extensions(self) -> ScoreExtensions | None: ...


class ScoresInBulk(Protocol):
    """A Score plugin that can score many nodes in one call, with the same values `score` gives
    one by one (it saves a call per node, which matters when the value is remembered)."""

    def score_nodes(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[list[int], Status | None]: ...


@runtime_checkable
class ReservePlugin(Plugin, Protocol):
    def reserve(self, state: CycleState, pod: Pod, node_name: str) -> Status | None: ...

    def unreserve(self, state: CycleState, pod: Pod, node_name: str) -> None: ...


@runtime_checkable
class PermitPlugin(Plugin, Protocol):
    def permit(self, state: CycleState, pod: Pod, node_name: str) -> tuple[Status | None, float]:
        """Success, a rejection, or Wait with a timeout in seconds (the wait is the caller's)."""
        ...


@dataclass
class Handle:
    """What plugins get at construction: the cycle's snapshot, the profile and the framework."""

    snapshot: Snapshot
    profile: Profile
    framework: Framework | None = None


def _in_tree_registry() -> Mapping[str, PluginFactory]:
    from operators.scheduler.plugins import REGISTRY  # the plugins import this module


    return REGISTRY


# Results.


class PluginScore(NamedTuple):
    """One plugin's score of one node (a NamedTuple: run_score makes one per plugin per scored
    node, and a tuple is much cheaper to build than a frozen dataclass)."""

    plugin: str
    raw: int
    normalized: int
    weight: int

    @property
    def weighted(self) -> int:
        return self.normalized * self.weight


@dataclass
class NodeScores:
    node: str
    plugins: list[PluginScore] = field(default_factory=list)
    total: int = 0


class ScoreTable(Mapping[str, NodeScores]):
    """Every scored node's scores, kept as run_score computed them: one column per plugin.

    Choosing the host needs only the totals; the per-node rows (`NodeScores`) are built when
    someone reads them (`explain`), because building them for every node of every attempt cost
    more than a sixth of a scheduling cycle."""

    def __init__(self, nodes: list[str], plugins: list[str], weights: list[int], raw: list[list[int]],
                 normalized: list[list[int]], totals: list[int]) -> None:
        self.nodes = nodes
        self.totals = totals
        self._plugins = plugins
        self._weights = weights
        self._raw = raw
        self._normalized = normalized
        self._index: dict[str, int] | None = None  # built by the first lookup (explain)

    @classmethod
    def empty(cls) -> ScoreTable:
        return cls([], [], [], [], [], [])

    def best(self) -> list[str]:
        """The nodes with the highest total, in name order."""
        top = max(self.totals)
        if self.totals.count(top) == 1:
            return [self.nodes[self.totals.index(top)]]
        return sorted(itertools.compress(self.nodes, map(top.__eq__, self.totals)))

    def __getitem__(self, node: str) -> NodeScores:
        if self._index is None:
            self._index = {name: i for i, name in enumerate(self.nodes)}
        i = self._index[node]
        return NodeScores(node, [
            PluginScore(plugin, raw[i], normalized[i], weight)
            for plugin, weight, raw, normalized in zip(self._plugins, self._weights, self._raw, self._normalized,
                                                       strict=True)
        ], self.totals[i])

    def __iter__(self) -> Iterator[str]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)


FEASIBLE = "Feasible"
REJECTED = "Rejected"
NOT_EVALUATED = "NotEvaluated"


@dataclass(frozen=True)
class Verdict:
    """One node's filter outcome: Feasible, Rejected (with the rejecting status and plugin), or
    NotEvaluated (enough feasible nodes were found before reaching it)."""

    outcome: str
    status: Status | None = None

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"outcome": self.outcome}
        if self.status is not None:
            result.update(self.status.as_dict())
        return result


# Node-static results kept per node before its memo starts over.
STATIC_MEMO_KEYS = 64
# Alike-pod results kept per NodeInfo before its memo starts over (a verdict and a score row per kind).
ALIKE_MEMO_KEYS = 32
_UNKNOWN: Any = object()
_ALIKE_MEMO = attrgetter("alike_memo")
_NAME = attrgetter("name")
_ALIKE_SIGNATURE = "kubeplane/alike-signature"  # CycleState key: the pod's signature, computed once per cycle

# Verdicts are immutable, so every node without a status shares these two.
_NOT_EVALUATED_VERDICT = Verdict(NOT_EVALUATED)
_FEASIBLE_VERDICT = Verdict(FEASIBLE)


@dataclass
class FilterOutcome:
    feasible: list[NodeInfo]
    diagnosis: Diagnosis
    verdicts: dict[str, Verdict]
    next_start_index: int
    error: Status | None = None


TieBreak = Callable[[Sequence[str]], str]


def first_by_name(candidates: Sequence[str]) -> str:
    """The default tie-break: the first best node in node-name order (deterministic, for tests and
    `explain --dry-run`)."""
    return min(candidates)


def at_random(candidates: Sequence[str]) -> str:
    """Upstream's tie-break (selectHost's reservoir sampling: each best node equally likely), which the
    running scheduler uses so equal nodes share a burst of pods instead of one taking them in turn."""
    return random.choice(list(candidates))


@dataclass
class Result:
    """One scheduling attempt, with everything `kubeplane scheduler explain` shows.

    `status` is Success with `suggested_host`, Unschedulable with `message` (upstream's
    FitError text, preemption outcome included) or Error. `verdicts` has every node;
    `scores` every scored node with each plugin's raw, normalized and weighted score.
    `nominated_node` is what preemption decided: None leaves status.nominatedNodeName alone,
    "" clears it, a name sets it; `victims` are the pods to evict for it.
    """

    pod: str
    status: Status
    suggested_host: str | None = None
    message: str = ""
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    scores: Mapping[str, NodeScores] = field(default_factory=dict)
    feasible_nodes: list[str] = field(default_factory=list)
    evaluated_nodes: int = 0
    num_all_nodes: int = 0
    next_start_index: int = 0
    diagnosis: Diagnosis = field(default_factory=Diagnosis)
    nominated_node: str | None = None
    victims: list[Pod] = field(default_factory=list)
    post_filter_detail: Any = None
    state: CycleState = field(default_factory=CycleState)

    def explain(self) -> dict[str, Any]:
        """A JSON-able account of the attempt."""
        nodes: dict[str, Any] = {}
        for name, verdict in self.verdicts.items():
            entry = verdict.as_dict()
            scored = self.scores.get(name)
            if scored is not None:
                entry["scores"] = {
                    s.plugin: {"raw": s.raw, "normalized": s.normalized, "weight": s.weight, "weighted": s.weighted}
                    for s in scored.plugins
                }
                entry["total"] = scored.total
            nodes[name] = entry
        result: dict[str, Any] = {
            "pod": self.pod,
            "result": self.status.code.value,
            "node": self.suggested_host,
            "message": self.message,
            "nodes": nodes,
            "feasibleNodes": len(self.feasible_nodes),
            "evaluatedNodes": self.evaluated_nodes,
            "allNodes": self.num_all_nodes,
        }
        if self.nominated_node is not None:
            result["nominatedNode"] = self.nominated_node
            result["victims"] = [f"{helpers.namespace_of(v)}/{helpers.name_of(v)}" for v in self.victims]
        return result


# The framework.


_PROTOCOLS: tuple[tuple[str, type], ...] = (
    (PRE_FILTER, PreFilterPlugin),
    (FILTER, FilterPlugin),
    (POST_FILTER, PostFilterPlugin),
    (PRE_SCORE, PreScorePlugin),
    (SCORE, ScorePlugin),
    (RESERVE, ReservePlugin),
    (PERMIT, PermitPlugin),
)
_POINTS_BY_CLASS: dict[type, frozenset[str]] = {}


def _extension_points(plugin: Plugin) -> frozenset[str]:
    """The extension points a plugin serves (by the methods it has), cached per class."""
    cls = type(plugin)
    points = _POINTS_BY_CLASS.get(cls)
    if points is None:
        points = frozenset(point for point, protocol in _PROTOCOLS if isinstance(plugin, protocol))
        _POINTS_BY_CLASS[cls] = points
    return points


def _plugin_list(names: Sequence[str]) -> str:
    """Go's %v of a sorted []string: [A B]."""
    return "[" + " ".join(sorted(names)) + "]"


class Framework:
    """The plugins of one profile bound to one snapshot, run at each extension point in the
    profile's order."""

    def __init__(self, profile: Profile, snapshot: Snapshot) -> None:
        self.profile = profile
        self.snapshot = snapshot
        registry = profile.registry if profile.registry is not None else _in_tree_registry()
        handle = Handle(snapshot, profile, self)
        self.plugins: list[Plugin] = []
        for name in profile.plugins:
            if name not in registry:
                raise ValueError(f"unknown scheduler plugin \"{name}\"")
            self.plugins.append(registry[name](handle))

        def at(point: str) -> list[Any]:
            off = profile.disabled.get(point, frozenset())
            return [p for p in self.plugins if p.name not in off and point in _extension_points(p)]

        self.pre_filter_plugins: list[PreFilterPlugin] = at(PRE_FILTER)
        self.filter_plugins: list[FilterPlugin] = at(FILTER)
        self.post_filter_plugins: list[PostFilterPlugin] = at(POST_FILTER)
        self.pre_score_plugins: list[PreScorePlugin] = at(PRE_SCORE)
        self.score_plugins: list[ScorePlugin] = at(SCORE)
        self.reserve_plugins: list[ReservePlugin] = at(RESERVE)
        self.permit_plugins: list[PermitPlugin] = at(PERMIT)
        self.weights = {p.name: profile.weight(p.name) for p in self.score_plugins}
        for name, weight in self.weights.items():
            if weight < 0:
                raise ValueError(f"score plugin \"{name}\" has a negative weight")

    # PreFilter.

    def run_pre_filter(self, state: CycleState, pod: Pod) -> tuple[PreFilterResult | None, Status | None, set[str]]:
        """All PreFilter plugins; Skip switches the plugin's Filter off for this cycle. The first
        UnschedulableAndUnresolvable or Error stops the run; Unschedulable is remembered while the
        rest still run (preemption needs their state)."""
        nodes = self.snapshot.node_list()
        result: PreFilterResult | None = None
        plugins_with_nodes: set[str] = set()
        returned: Status | None = None
        for plugin in self.pre_filter_plugins:
            narrowed, status = plugin.pre_filter(state, pod, nodes)
            if status is not None and status.is_skip():
                state.skip_filter_plugins.add(plugin.name)
                continue
            if not is_success(status):
                assert status is not None
                status.plugin = plugin.name
                if status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                    return None, status, set()
                if status.code is Code.UNSCHEDULABLE:
                    returned = status
                    continue
                error = Status.error(f"running PreFilter plugin \"{plugin.name}\": {status.message()}")
                return None, error.with_plugin(plugin.name), set()
            if narrowed is not None and not narrowed.all_nodes():
                plugins_with_nodes.add(plugin.name)
            result = narrowed if result is None else result.merge(narrowed)
            if result is not None and not result.all_nodes() and not result.node_names:
                if len(plugins_with_nodes) == 1:
                    message = f"node(s) didn't satisfy plugin {next(iter(plugins_with_nodes))}"
                else:
                    names = _plugin_list(list(plugins_with_nodes))
                    message = f"node(s) didn't satisfy plugin(s) {names} simultaneously"
                return result, Status.unresolvable(message), plugins_with_nodes
        return result, returned, plugins_with_nodes

    def _extensions(self, state: CycleState) -> list[tuple[str, PreFilterExtensions]]:
        result: list[tuple[str, PreFilterExtensions]] = []
        for plugin in self.pre_filter_plugins:
            extensions = plugin.pre_filter_extensions()
            if extensions is not None and plugin.name not in state.skip_filter_plugins:
                result.append((plugin.name, extensions))
        return result

    def run_pre_filter_extension_add_pod(
        self, state: CycleState, pod: Pod, pod_info: PodInfo, node_info: NodeInfo
    ) -> Status | None:
        for name, extensions in self._extensions(state):
            status = extensions.add_pod(state, pod, pod_info, node_info)
            if not is_success(status):
                assert status is not None
                return Status.error(f"running AddPod on PreFilter plugin \"{name}\": {status.message()}")
        return None

    def run_pre_filter_extension_remove_pod(
        self, state: CycleState, pod: Pod, pod_info: PodInfo, node_info: NodeInfo
    ) -> Status | None:
        for name, extensions in self._extensions(state):
            status = extensions.remove_pod(state, pod, pod_info, node_info)
            if not is_success(status):
                assert status is not None
                return Status.error(f"running RemovePod on PreFilter plugin \"{name}\": {status.message()}")
        return None

    # Node-static results (see NodeStatic).

    def _static_results(self, node: NodeInfo) -> dict[Any, Any]:
        """The remembered node-static results for this node, valid for its current Node object."""
        memo = self.snapshot.static_memo
        entry = memo.get(node.name)
        if entry is None or entry[0] is not node.node or entry[1] is not self.profile:
            entry = memo[node.name] = (node.node, self.profile, {})
        elif len(entry[2]) > STATIC_MEMO_KEYS:
            entry[2].clear()  # many different pods: start over rather than grow without bound
        return entry[2]

    @staticmethod
    def _static_prefix(filters: Sequence[FilterPlugin]) -> int:
        """How many filters, from the first, are node-static (only a prefix can be remembered:
        the first filter that rejects a node names the reason, so the order must stay)."""
        count = 0
        for plugin in filters:
            if not callable(getattr(plugin, "static_key", None)):
                break
            count += 1
        return count

    # Alike pods (see NodeLocal).

    def _alike_key(self, what: str, state: CycleState, pod: Pod, plugins: Sequence[Plugin]) -> str | None:
        """The key under which `plugins`' results for this pod are remembered per NodeInfo, or None
        when they cannot be (a plugin reads more than the pod and the node, or pods are nominated)."""
        if not plugins or self.snapshot.nominated or not all(getattr(p, "node_local", False) for p in plugins):
            return None
        snapshot = self.snapshot
        if snapshot.alike_profile is not self.profile:
            snapshot.alike_profile = self.profile
            snapshot.alike_epoch += 1
        signature = state.get(_ALIKE_SIGNATURE)
        if signature is None:
            signature = state[_ALIKE_SIGNATURE] = alike_signature(pod)
        names = ",".join(p.name for p in plugins)
        # Interned: every NodeInfo's memo holds this very string, so each lookup compares identities.
        return sys.intern(f"alike\x00{what}\x00{snapshot.alike_epoch}\x00{names}\x00{signature}")

    # Filter.

    def _active_filters(self, state: CycleState) -> list[FilterPlugin]:
        """The Filter plugins PreFilter did not switch off for this cycle, in order."""
        skipped = state.skip_filter_plugins
        return [p for p in self.filter_plugins if p.name not in skipped]

    def run_filter(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> Status | None:
        """Filter plugins in order; the first that does not pass decides the node's status."""
        return self._run_filters(self._active_filters(state), state, pod, node_info)

    @staticmethod
    def _run_filters(
        filters: Sequence[FilterPlugin], state: CycleState, pod: Pod, node_info: NodeInfo
    ) -> Status | None:
        for plugin in filters:
            status = plugin.filter(state, pod, node_info)
            if not is_success(status):
                assert status is not None
                if not status.is_rejected():
                    status = Status.error(f"running \"{plugin.name}\" filter plugin: {status.message()}")
                status.plugin = plugin.name
                return status
        return None

    def run_filter_with_nominated_pods(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> Status | None:
        """Filters with the node's nominated pods of equal or higher priority counted as placed,
        and (if that passes and there were such pods) again without them: the pod must fit either
        way, since those pods may or may not end up there."""
        status: Status | None = None
        pods_added = False
        for attempt in range(2):
            state_to_use, node_to_use = state, node_info
            if attempt == 0:
                added = self._add_nominated_pods(state, pod, node_info)
                if isinstance(added, Status):
                    return added
                pods_added, state_to_use, node_to_use = added
            elif not pods_added or not is_success(status):
                break
            status = self.run_filter(state_to_use, pod, node_to_use)
            if not is_success(status) and status is not None and not status.is_rejected():
                return status
        return status

    def _add_nominated_pods(
        self, state: CycleState, pod: Pod, node_info: NodeInfo
    ) -> tuple[bool, CycleState, NodeInfo] | Status:
        nominated = self.snapshot.nominated_pods_for(node_info.name)
        if not nominated:
            return False, state, node_info
        priority, key = helpers.pod_priority(pod), helpers.pod_key(pod)
        node_out, state_out = node_info.clone(), state.clone()
        added = False
        for info in nominated:
            if helpers.pod_priority(info.pod) >= priority and info.key != key:
                node_out.add_pod(info)
                status = self.run_pre_filter_extension_add_pod(state_out, pod, info, node_out)
                if not is_success(status):
                    assert status is not None
                    return status
                added = True
        return added, state_out, node_out

    def find_nodes_that_fit(self, state: CycleState, pod: Pod, start_index: int = 0) -> FilterOutcome:
        """PreFilter, then Filter over the nodes from `start_index` on (findNodesThatFitPod)."""
        all_nodes = self.snapshot.node_list()
        diagnosis = Diagnosis()
        verdicts = dict.fromkeys(self.snapshot.nodes, _NOT_EVALUATED_VERDICT)  # keyed by node name, in order
        narrowed, status, plugins_with_nodes = self.run_pre_filter(state, pod)
        diagnosis.unschedulable_plugins = set(plugins_with_nodes)
        if not is_success(status):
            assert status is not None
            if not status.is_rejected():
                return FilterOutcome([], diagnosis, verdicts, start_index, error=status)
            diagnosis.node_to_status.absent = status
            diagnosis.pre_filter_msg = status.message()
            diagnosis.add_plugin_status(status)
            for name in verdicts:
                verdicts[name] = Verdict(REJECTED, status)
            return FilterOutcome([], diagnosis, verdicts, start_index)

        nominated_node = (pod.get("status") or {}).get("nominatedNodeName") or ""
        if nominated_node and nominated_node in self.snapshot.nodes:
            # The node preemption made room on is likely the only one that fits: try it first.
            node = self.snapshot.nodes[nominated_node]
            trial = Diagnosis()
            feasible, error, _ = self._pass_filters(state, pod, [node], 0, 1, trial, {})
            if error is None and feasible:
                verdicts[nominated_node] = _FEASIBLE_VERDICT
                return FilterOutcome(feasible, diagnosis, verdicts, start_index)

        nodes = all_nodes
        if narrowed is not None and narrowed.node_names is not None:
            wanted = narrowed.node_names
            nodes = [n for n in all_nodes if n.name in wanted]
            absent = Status.unresolvable(f"node(s) didn't satisfy plugin(s) {_plugin_list(list(plugins_with_nodes))}")
            diagnosis.node_to_status.absent = absent
            for name in verdicts:
                if name not in wanted:
                    verdicts[name] = Verdict(REJECTED, absent)
        to_find = num_feasible_nodes_to_find(self.profile.percentage_of_nodes_to_score, len(nodes))
        if not self.score_plugins:
            to_find = 1
        feasible, error, processed = self._pass_filters(
            state, pod, nodes, start_index, to_find, diagnosis, verdicts
        )
        next_start = (start_index + processed) % len(all_nodes) if all_nodes else 0
        return FilterOutcome(feasible, diagnosis, verdicts, next_start, error=error)

    def _pass_filters(
        self,
        state: CycleState,
        pod: Pod,
        nodes: Sequence[NodeInfo],
        start_index: int,
        to_find: int,
        diagnosis: Diagnosis,
        verdicts: dict[str, Verdict],
    ) -> tuple[list[NodeInfo], Status | None, int]:
        """(feasible nodes, an Error status if a filter failed, nodes processed)."""
        feasible: list[NodeInfo] = []
        if not nodes:
            return feasible, None, 0
        if not self.filter_plugins:
            for i in range(min(to_find, len(nodes))):
                node = nodes[(start_index + i) % len(nodes)]
                feasible.append(node)
                verdicts[node.name] = _FEASIBLE_VERDICT
            return feasible, None, len(feasible)
        rejected = 0
        # Without nominated pods anywhere, filtering with them is filtering once: take the short
        # way, with the cycle's active filters listed once instead of once per node.
        filters = None if self.snapshot.nominated else self._active_filters(state)
        alike = self._alike_key("filter", state, pod, filters) if filters else None
        static: Sequence[FilterPlugin] = ()
        rest: Sequence[FilterPlugin] = filters or ()
        key = ""
        if filters:
            prefix = self._static_prefix(filters)
            static, rest = filters[:prefix], filters[prefix:]
            if static:
                # One string: its hash is computed once, a tuple's at every lookup.
                key = "\x00".join(["filter", *(f"{p.name}={cast(NodeStatic, p).static_key(pod)}" for p in static)])
        count = len(nodes)
        offset = start_index % count
        ordered = nodes if not offset else [*nodes[offset:], *nodes[:offset]]
        position = 0
        while position < count and len(feasible) < to_find:
            # A stretch of exactly as many nodes as are still wanted: it cannot overshoot.
            stretch = ordered[position:position + to_find - len(feasible)]
            position += len(stretch)
            marks: Sequence[int]
            if alike is not None:
                # Alike pods: the stretch's remembered verdicts are read in C, and the runs of nodes
                # remembered feasible between the others are taken whole; only the others (nodes that
                # changed since the last alike pod, nodes that did not fit) are looked at one by one.
                statuses: list[Any] = list(map(methodcaller("get", alike, _UNKNOWN), map(_ALIKE_MEMO, stretch)))
                marks = [] if statuses.count(None) == len(stretch) else [
                    index for index, status in enumerate(statuses) if status is not None]
            else:
                statuses, marks = [_UNKNOWN] * len(stretch), range(len(stretch))
            taken = 0
            for mark in itertools.chain(marks, (len(stretch),)):
                if mark > taken:
                    run = stretch[taken:mark]
                    feasible.extend(run)
                    verdicts.update(zip(map(_NAME, run), itertools.repeat(_FEASIBLE_VERDICT)))
                if mark == len(stretch):
                    break
                taken = mark + 1
                node, status = stretch[mark], statuses[mark]
                if status is _UNKNOWN:
                    if filters is None:
                        status = self.run_filter_with_nominated_pods(state, pod, node)
                    else:
                        if static:
                            results = self._static_results(node)
                            status = results.get(key, _UNKNOWN)
                            if status is _UNKNOWN:
                                status = self._run_filters(static, state, pod, node)
                                if status is None or status.code is not Code.ERROR:
                                    results[key] = status
                            if status is None and rest:
                                status = self._run_filters(rest, state, pod, node)
                        else:
                            status = self._run_filters(filters, state, pod, node)
                        if alike is not None and (status is None or status.code is not Code.ERROR):
                            remembered = node.alike_memo
                            if len(remembered) > ALIKE_MEMO_KEYS:
                                remembered.clear()
                            remembered[alike] = status
                if status is None or status.code is Code.SUCCESS:
                    feasible.append(node)
                    verdicts[node.name] = _FEASIBLE_VERDICT
                elif status.code is Code.ERROR:
                    return feasible, status, len(feasible) + rejected
                else:
                    rejected += 1
                    diagnosis.node_to_status.set(node.name, status)
                    diagnosis.add_plugin_status(status)
                    verdicts[node.name] = Verdict(REJECTED, status)
        return feasible, None, len(feasible) + rejected

    # PostFilter.

    def run_post_filter(
        self, state: CycleState, pod: Pod, node_to_status: NodeToStatus
    ) -> tuple[PostFilterResult | None, Status]:
        """PostFilter plugins until one succeeds, errs or says UnschedulableAndUnresolvable."""
        result: PostFilterResult | None = None
        reasons: list[str] = []
        rejector = ""
        for plugin in self.post_filter_plugins:
            outcome, status = plugin.post_filter(state, pod, node_to_status)
            if is_success(status):
                return outcome, status if status is not None else Status.success()
            assert status is not None
            if status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                return outcome, status.with_plugin(plugin.name)
            if not status.is_rejected():
                return None, Status(Code.ERROR, list(status.reasons), plugin.name)
            if outcome is not None and outcome.mode != MODE_NOOP:
                result = outcome
            reasons.extend(status.reasons)
            rejector = rejector or plugin.name
        return result, Status(Code.UNSCHEDULABLE, reasons, rejector)

    # Scoring.

    def run_pre_score(self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]) -> Status | None:
        for plugin in self.pre_score_plugins:
            status = plugin.pre_score(state, pod, nodes)
            if status is not None and status.is_skip():
                state.skip_score_plugins.add(plugin.name)
                continue
            if not is_success(status):
                assert status is not None
                return Status.error(f"running PreScore plugin \"{plugin.name}\": {status.message()}")
        return None

    def run_score(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[ScoreTable, Status | None]:
        """Each plugin scores each node, normalizes over the nodes, and is weighted."""
        plugins = [p for p in self.score_plugins if p.name not in state.skip_score_plugins]
        names = list(map(_NAME, nodes))
        alike = self._alike_key("score", state, pod, plugins)
        if alike is None:
            raw, failure = self._raw_scores(state, pod, plugins, nodes)
            if failure is not None:
                return ScoreTable.empty(), failure
        else:
            # Each node's row of raw scores, remembered for alike pods; only the missing rows are computed.
            rows: list[tuple[int, ...] | None] = list(map(methodcaller("get", alike), map(_ALIKE_MEMO, nodes)))
            missing = [node for node, row in zip(nodes, rows, strict=True) if row is None] if None in rows else []
            if missing:
                columns, failure = self._raw_scores(state, pod, plugins, missing)
                if failure is not None:
                    return ScoreTable.empty(), failure
                fresh = iter(zip(*columns, strict=True))
                for index, row in enumerate(rows):
                    if row is None:
                        rows[index] = row = next(fresh)
                        remembered = nodes[index].alike_memo
                        if len(remembered) > ALIKE_MEMO_KEYS:
                            remembered.clear()
                        remembered[alike] = row
            raw = [list(column) for column in zip(*cast(list[tuple[int, ...]], rows), strict=True)]
            if not raw:
                raw = [[] for _ in plugins]
        normalized: list[list[int]] = []
        for plugin, values in zip(plugins, raw, strict=True):
            extensions = plugin.score_extensions()
            if extensions is None:
                normalized.append(values)
                continue
            if callable(getattr(extensions, "normalize_values", None)):
                values, status = cast(NormalizesValues, extensions).normalize_values(state, pod, values)
                if not is_success(status):
                    assert status is not None
                    return ScoreTable.empty(), _score_failure(plugin, status)
                normalized.append(values)
                continue
            scores = [NodeScore(name, value) for name, value in zip(names, values, strict=True)]
            status = extensions.normalize_score(state, pod, scores)
            if not is_success(status):
                assert status is not None
                return ScoreTable.empty(), _score_failure(plugin, status)
            normalized.append([s.score for s in scores])
        if any(min(values) < MIN_NODE_SCORE or max(values) > MAX_NODE_SCORE for values in normalized if values):
            # Report the first out-of-range score in (node, plugin) order, as upstream does.
            for index in range(len(nodes)):
                for plugin, values in zip(plugins, normalized, strict=True):
                    if not MIN_NODE_SCORE <= values[index] <= MAX_NODE_SCORE:
                        return ScoreTable.empty(), Status.error(
                            f"plugin \"{plugin.name}\" returns an invalid score {values[index]}, it should in the "
                            f"range of [{MIN_NODE_SCORE}, {MAX_NODE_SCORE}] after normalizing"
                        )
        totals = [0] * len(nodes)
        weights = [self.weights[plugin.name] for plugin in plugins]
        for weight, values in zip(weights, normalized, strict=True):
            # Column by column, in C: this runs over every scored node of every cycle.
            totals = list(map(operator.add, totals, map(operator.mul, values, itertools.repeat(weight))))
        return ScoreTable(names, [p.name for p in plugins], weights, raw, normalized, totals), None

    def _raw_scores(
        self, state: CycleState, pod: Pod, plugins: Sequence[ScorePlugin], nodes: Sequence[NodeInfo]
    ) -> tuple[list[list[int]], Status | None]:
        """Each plugin's raw score of each node, a column per plugin (or the failure)."""
        raw: list[list[int]] = []
        remembered_per_node: list[dict[Any, Any]] | None = None  # looked up once, shared by the static plugins
        for plugin in plugins:
            score = plugin.score
            values: list[int] = []
            static_key = getattr(plugin, "static_key", None)
            if callable(static_key):
                key = f"score\x00{plugin.name}={static_key(pod)}"
                if remembered_per_node is None:
                    remembered_per_node = [self._static_results(node) for node in nodes]
                for node, results in zip(nodes, remembered_per_node, strict=True):
                    value = results.get(key)
                    if value is None:
                        value, status = score(state, pod, node)
                        if status is not None and status.code is not Code.SUCCESS:
                            return [], _score_failure(plugin, status)
                        results[key] = value
                    values.append(value)
            elif callable(getattr(plugin, "score_nodes", None)):
                values, status = cast(ScoresInBulk, plugin).score_nodes(state, pod, nodes)
                if status is not None and status.code is not Code.SUCCESS:
                    return [], _score_failure(plugin, status)
            else:
                for node in nodes:
                    value, status = score(state, pod, node)
                    if status is not None and status.code is not Code.SUCCESS:
                        return [], _score_failure(plugin, status)
                    values.append(value)
            raw.append(values)
        return raw, None

    # Reserve and Permit (driven by the caller after the pod is assumed).

    def run_reserve(self, state: CycleState, pod: Pod, node_name: str) -> Status | None:
        for plugin in self.reserve_plugins:
            status = plugin.reserve(state, pod, node_name)
            if not is_success(status):
                assert status is not None
                if not status.is_rejected():
                    status = Status.error(f"running Reserve plugin \"{plugin.name}\": {status.message()}")
                return status.with_plugin(plugin.name)
        return None

    def run_unreserve(self, state: CycleState, pod: Pod, node_name: str) -> None:
        """In reverse order, as upstream."""
        for plugin in reversed(self.reserve_plugins):
            plugin.unreserve(state, pod, node_name)

    def run_permit(self, state: CycleState, pod: Pod, node_name: str) -> tuple[Status | None, dict[str, float]]:
        """(status, plugin -> wait timeout). A rejection or error stops at once; otherwise Wait
        if any plugin asked to wait."""
        waits: dict[str, float] = {}
        for plugin in self.permit_plugins:
            status, timeout = plugin.permit(state, pod, node_name)
            if is_success(status):
                continue
            assert status is not None
            if status.is_rejected():
                return status.with_plugin(plugin.name), {}
            if status.is_wait():
                waits[plugin.name] = timeout
                continue
            return Status.error(f"running Permit plugin \"{plugin.name}\": {status.message()}").with_plugin(
                plugin.name
            ), {}
        if waits:
            return Status(Code.WAIT, ["one or more plugins asked to wait and no plugin rejected pod"]), waits
        return None, {}


def _score_failure(plugin: ScorePlugin, status: Status) -> Status:
    return Status.error(f"plugin \"{plugin.name}\" failed with: {status.message()}")


def framework_for(profile: Profile, snapshot: Snapshot) -> Framework:
    """The profile's framework on this snapshot, built once (plugins keep no state between cycles:
    CycleState carries it, as upstream's framework instance lives as long as its profile)."""
    entry = snapshot.frameworks.get(id(profile))
    if entry is None or entry[0] is not profile:
        if len(snapshot.frameworks) > 16:
            snapshot.frameworks.clear()  # profiles replaced again and again: start over
        entry = snapshot.frameworks[id(profile)] = (profile, Framework(profile, snapshot))
    return cast(Framework, entry[1])


def schedule_one(
    pod: Pod,
    snapshot: Snapshot,
    profile: Profile | None = None,
    *,
    start_index: int = 0,
    tie_break: TieBreak = first_by_name,
    now: datetime | None = None,
) -> Result:
    """Decide where `pod` goes (schedulePod plus PostFilter on failure). Pure: the snapshot is
    not changed (preemption works on copies); assuming the pod and evicting victims are the
    caller's. `now` stands in for "not started yet" pods' start times in preemption."""
    profile = profile if profile is not None else default_profile()
    framework = framework_for(profile, snapshot)
    state = CycleState()
    if now is not None:
        state.write(NOW_KEY, now)
    key = f"{helpers.namespace_of(pod)}/{helpers.name_of(pod)}"
    all_nodes = snapshot.node_list()
    result = Result(pod=key, status=Status.success(), num_all_nodes=len(all_nodes), state=state)
    if not all_nodes:
        result.status = Status.unresolvable(NO_NODES_REGISTERED)
        result.message = NO_NODES_REGISTERED
        result.next_start_index = start_index
        return result

    outcome = framework.find_nodes_that_fit(state, pod, start_index)
    result.verdicts = outcome.verdicts
    result.diagnosis = outcome.diagnosis
    result.next_start_index = outcome.next_start_index
    result.feasible_nodes = [n.name for n in outcome.feasible]
    result.evaluated_nodes = len(outcome.feasible) + len(outcome.diagnosis.node_to_status)
    if outcome.error is not None:
        result.status = outcome.error
        result.message = outcome.error.message()
        return result

    if not outcome.feasible:
        diagnosis = outcome.diagnosis
        if framework.post_filter_plugins:
            post, post_status = framework.run_post_filter(state, pod, diagnosis.node_to_status)
            diagnosis.post_filter_msg = post_status.message()
            if post is not None and post.mode == MODE_OVERRIDE:
                result.nominated_node = post.nominated_node_name
                result.post_filter_detail = post.detail
                result.victims = list(post.victims)
        result.message = fit_error_message(len(all_nodes), diagnosis)
        result.status = Status(Code.UNSCHEDULABLE, [result.message])
        return result

    if len(outcome.feasible) == 1:
        result.suggested_host = outcome.feasible[0].name
        return result

    if not framework.score_plugins:
        result.scores = {n.name: NodeScores(n.name, [], 1) for n in outcome.feasible}
    else:
        status = framework.run_pre_score(state, pod, outcome.feasible)
        if status is not None:
            result.status, result.message = status, status.message()
            return result
        scored, status = framework.run_score(state, pod, outcome.feasible)
        if status is not None:
            result.status, result.message = status, status.message()
            return result
        result.scores = scored
        result.suggested_host = tie_break(scored.best())
        return result
    best = max(s.total for s in result.scores.values())
    result.suggested_host = tie_break(sorted(name for name, s in result.scores.items() if s.total == best))
    return result

