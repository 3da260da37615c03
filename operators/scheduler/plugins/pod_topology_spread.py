"""PodTopologySpread.

Filter (whenUnsatisfiable: DoNotSchedule): for each constraint the node must carry the topology
key ("node(s) didn't match pod topology spread constraints (missing required label)",
UnschedulableAndUnresolvable) and placing the pod there must keep
    matching pods in the node's domain + 1 if the pod matches its own selector - global minimum
at or below maxSkew ("node(s) didn't match pod topology spread constraints", Unschedulable).
The global minimum is the smallest count over eligible domains, or 0 while there are fewer
eligible domains than minDomains (default 1). A node's domain is eligible when the node has
every constraint's key and passes the inclusion policies: nodeAffinityPolicy (default Honor:
the pod's nodeSelector/required node affinity must match) and nodeTaintsPolicy (default Ignore;
Honor leaves out nodes with untolerated NoSchedule/NoExecute taints). Only pods in the incoming
pod's namespace and not terminating are counted; matchLabelKeys add the pod's own values for
those keys to the selector.

Score (whenUnsatisfiable: ScheduleAnyway): a node scores, per constraint,
    matching pods in its domain x log(number of domains + 2) + (maxSkew - 1)
(hostname domains counted per node), rounded; then min/max are flipped so the node with the
fewest matching pods gets 100: 100 x (max + min - score) / max.

Pods without constraints get the system defaults (hostname maxSkew 3 and zone maxSkew 5,
ScheduleAnyway) with a selector built from the Services selecting the pod and its
ReplicationController/ReplicaSet/StatefulSet owner, when the snapshot has them; with
`spread_defaulting_type="List"` the profile's `default_constraints` are used instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from operators.core import pods as podutil
from operators.core import taints
from operators.core.owners import controller_ref
from operators.core.selectors import (
    RequiredNodeAffinity,
    Selector,
    SelectorError,
    from_label_selector,
    from_set,
    merge_set_with_selector,
)
from operators.scheduler import helpers
from operators.scheduler.framework import (
    MAX_NODE_SCORE,
    POD_TOPOLOGY_SPREAD,
    CycleState,
    Handle,
    NodeScore,
    Pod,
    PreFilterExtensions,
    PreFilterResult,
    ScoreExtensions,
)
from operators.scheduler.plugins.common import go_round
from operators.scheduler.snapshot import NodeInfo, PodInfo, Snapshot
from operators.scheduler.status import Status

ERR_REASON_CONSTRAINTS_NOT_MATCH = "node(s) didn't match pod topology spread constraints"
ERR_REASON_NODE_LABEL_NOT_MATCH = ERR_REASON_CONSTRAINTS_NOT_MATCH + " (missing required label)"
DO_NOT_SCHEDULE = "DoNotSchedule"
SCHEDULE_ANYWAY = "ScheduleAnyway"
HONOR = "Honor"
IGNORE = "Ignore"
SYSTEM_DEFAULTING = "System"
LIST_DEFAULTING = "List"
_MAX_INT32 = 2**31 - 1
_PRE_FILTER_KEY = "PreFilter" + POD_TOPOLOGY_SPREAD
_PRE_SCORE_KEY = "PreScore" + POD_TOPOLOGY_SPREAD

SYSTEM_DEFAULT_CONSTRAINTS: tuple[Mapping[str, Any], ...] = (
    {"topologyKey": helpers.LABEL_HOSTNAME, "whenUnsatisfiable": SCHEDULE_ANYWAY, "maxSkew": 3},
    {"topologyKey": helpers.LABEL_TOPOLOGY_ZONE, "whenUnsatisfiable": SCHEDULE_ANYWAY, "maxSkew": 5},
)


@dataclass(frozen=True)
class Constraint:
    max_skew: int
    topology_key: str
    selector: Selector
    min_domains: int = 1
    node_affinity_policy: str = HONOR
    node_taints_policy: str = IGNORE

    def includes(self, pod: Pod, node: helpers.Obj, required: RequiredNodeAffinity) -> bool:
        """matchNodeInclusionPolicies."""
        if self.node_affinity_policy == HONOR and not required.matches(node):
            return False
        if self.node_taints_policy == HONOR:
            taint = taints.find_untolerated_taint(
                taints.taints_of(node), taints.tolerations_of(pod), taints.does_not_schedule
            )
            if taint is not None:
                return False
        return True


def filter_constraints(
    constraints: Sequence[Mapping[str, Any]], pod_labels: Mapping[str, str], action: str
) -> list[Constraint]:
    """The constraints with this whenUnsatisfiable, parsed, with upstream's defaults."""
    result: list[Constraint] = []
    for c in constraints:
        if c.get("whenUnsatisfiable") != action:
            continue
        selector = from_label_selector(c.get("labelSelector"))
        own = {k: pod_labels[k] for k in c.get("matchLabelKeys") or [] if k in pod_labels}
        if own:
            selector = merge_set_with_selector(own, selector)
        min_domains = c.get("minDomains")
        result.append(
            Constraint(
                max_skew=int(c.get("maxSkew") or 0),
                topology_key=c.get("topologyKey") or "",
                selector=selector,
                min_domains=int(min_domains) if min_domains is not None else 1,
                node_affinity_policy=c.get("nodeAffinityPolicy") or HONOR,
                node_taints_policy=c.get("nodeTaintsPolicy") or IGNORE,
            )
        )
    return result


def default_selector(pod: Pod, snapshot: Snapshot) -> Selector:
    """helper.DefaultSelector: the selectors of the Services that select the pod, merged, plus
    its controller's (ReplicationController v1, ReplicaSet/StatefulSet apps/v1) selector."""
    namespace, labels = helpers.namespace_of(pod), helpers.labels_of(pod)
    label_set: dict[str, str] = {}
    for service in snapshot.services:
        if helpers.namespace_of(service) != namespace:
            continue
        service_selector = helpers.spec(service).get("selector")
        if service_selector is None:
            continue  # a Service without a selector selects nothing
        if from_set(service_selector).matches(labels):
            label_set.update(service_selector)
    selector = from_set(label_set)
    owner = controller_ref(pod)
    if owner is None:
        return selector
    api_version, kind, name = owner.get("apiVersion", ""), owner.get("kind", ""), owner.get("name", "")
    if (api_version, kind) == ("v1", "ReplicationController"):
        rc = snapshot.controller(kind, namespace, name)
        if rc is not None and rc.get("apiVersion", "v1") == "v1":
            label_set.update(helpers.spec(rc).get("selector") or {})
            selector = from_set(label_set)
    elif (api_version, kind) in (("apps/v1", "ReplicaSet"), ("apps/v1", "StatefulSet")):
        workload = snapshot.controller(kind, namespace, name)
        if workload is not None and workload.get("apiVersion", "apps/v1") == "apps/v1":
            try:
                other = from_label_selector(helpers.spec(workload).get("selector"))
            except SelectorError:
                return selector
            if not other.nothing:
                selector = selector.add(*other.requirements)
    return selector


def count_matching(pods: Sequence[PodInfo], selector: Selector, namespace: str) -> int:
    """Pods in `namespace`, not terminating, matching `selector`; an empty selector counts none."""
    if selector.empty():
        return 0
    return sum(
        1
        for p in pods
        if not podutil.is_being_deleted(p.pod)
        and helpers.namespace_of(p.pod) == namespace
        and selector.matches(helpers.labels_of(p.pod))
    )


def _has_all_keys(labels: Mapping[str, str], constraints: Sequence[Constraint]) -> bool:
    return all(c.topology_key in labels for c in constraints)


class CriticalPaths:
    """The two domains with the fewest matching pods (the first holds the minimum), kept up to
    date as pods are added and removed during preemption, as upstream's criticalPaths (whose
    second entry is not guaranteed to be the second smallest)."""

    __slots__ = ("nums", "values")

    def __init__(self) -> None:
        self.values = ["", ""]
        self.nums = [_MAX_INT32, _MAX_INT32]

    def min_match(self) -> int:
        return self.nums[0]

    def update(self, value: str, num: int) -> None:
        index = 0 if value == self.values[0] else 1 if value == self.values[1] else -1
        if index >= 0:
            self.nums[index] = num
            if self.nums[0] > self.nums[1]:
                self.values.reverse()
                self.nums.reverse()
        elif num < self.nums[0]:
            self.values = [value, self.values[0]]
            self.nums = [num, self.nums[0]]
        elif num < self.nums[1]:
            self.values[1], self.nums[1] = value, num

    def clone(self) -> CriticalPaths:
        copied = CriticalPaths()
        copied.values, copied.nums = list(self.values), list(self.nums)
        return copied


@dataclass
class _PreFilterState:
    constraints: list[Constraint] = field(default_factory=list)
    critical_paths: list[CriticalPaths] = field(default_factory=list)
    match_num: list[dict[str, int]] = field(default_factory=list)

    def clone(self) -> _PreFilterState:
        return _PreFilterState(
            self.constraints, [p.clone() for p in self.critical_paths], [dict(m) for m in self.match_num]
        )

    def min_match_num(self, index: int, min_domains: int) -> int:
        if len(self.match_num[index]) < min_domains:
            return 0  # fewer eligible domains than minDomains: the global minimum is 0
        return self.critical_paths[index].min_match()


@dataclass
class _PreScoreState:
    constraints: list[Constraint]
    ignored_nodes: set[str]
    pod_counts: list[dict[str, int]]
    weights: list[float]

    def clone(self) -> _PreScoreState:
        return self


class _Extensions:
    def __init__(self, plugin: PodTopologySpread) -> None:
        self.plugin = plugin

    def add_pod(self, state: CycleState, pod: Pod, pod_info: PodInfo, node_info: NodeInfo) -> Status | None:
        return self._update(state, pod, pod_info, node_info, 1)

    def remove_pod(self, state: CycleState, pod: Pod, pod_info: PodInfo, node_info: NodeInfo) -> Status | None:
        return self._update(state, pod, pod_info, node_info, -1)

    @staticmethod
    def _update(state: CycleState, pod: Pod, pod_info: PodInfo, node_info: NodeInfo, delta: int) -> Status | None:
        pre = state.get(_PRE_FILTER_KEY)
        if not isinstance(pre, _PreFilterState):
            return Status.error(f"reading {_PRE_FILTER_KEY!r} from cycleState: not found")
        updated = pod_info.pod
        if helpers.namespace_of(updated) != helpers.namespace_of(pod):
            return None
        labels = node_info.labels
        if not _has_all_keys(labels, pre.constraints):
            return None
        required = RequiredNodeAffinity.of(pod)
        for i, constraint in enumerate(pre.constraints):
            if not constraint.selector.matches(helpers.labels_of(updated)):
                continue
            if not constraint.includes(pod, node_info.node, required):
                continue
            value = labels.get(constraint.topology_key, "")
            pre.match_num[i][value] = pre.match_num[i].get(value, 0) + delta
            pre.critical_paths[i].update(value, pre.match_num[i][value])
        return None


class PodTopologySpread:
    name = POD_TOPOLOGY_SPREAD

    def __init__(self, handle: Handle) -> None:
        args = handle.profile.args
        self.snapshot = handle.snapshot
        if args.spread_defaulting_type == SYSTEM_DEFAULTING:
            if args.default_constraints:
                raise ValueError("defaultConstraints: must be empty when defaultingType is System")
            self.default_constraints: tuple[Mapping[str, Any], ...] = SYSTEM_DEFAULT_CONSTRAINTS
            self.system_defaulted = True
        elif args.spread_defaulting_type == LIST_DEFAULTING:
            self.default_constraints = tuple(args.default_constraints)
            self.system_defaulted = False
        else:
            raise ValueError(f"defaultingType: unsupported value {args.spread_defaulting_type!r}")

    def _defaults(self, pod: Pod, action: str) -> list[Constraint]:
        constraints = filter_constraints(self.default_constraints, helpers.labels_of(pod), action)
        if not constraints:
            return []
        selector = default_selector(pod, self.snapshot)
        if selector.empty():
            return []
        return [replace(c, selector=selector) for c in constraints]

    def constraints(self, pod: Pod, action: str) -> list[Constraint]:
        own = helpers.spec(pod).get("topologySpreadConstraints") or []
        if own:
            return filter_constraints(own, helpers.labels_of(pod), action)
        return self._defaults(pod, action)

    # Filtering.

    def pre_filter(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[PreFilterResult | None, Status | None]:
        try:
            constraints = self.constraints(pod, DO_NOT_SCHEDULE)
        except SelectorError as exc:
            return None, Status.error(f"obtaining pod's hard topology spread constraints: {exc}")
        if not constraints:
            return None, Status.skip()
        pre = _PreFilterState(constraints, [], [{} for _ in constraints])
        required = RequiredNodeAffinity.of(pod)
        namespace = helpers.namespace_of(pod)
        for node in nodes:
            labels = node.labels
            if not _has_all_keys(labels, constraints):
                continue
            for i, constraint in enumerate(constraints):
                if not constraint.includes(pod, node.node, required):
                    continue
                value = labels[constraint.topology_key]
                pre.match_num[i][value] = pre.match_num[i].get(value, 0) + count_matching(
                    node.pods, constraint.selector, namespace
                )
        for counts in pre.match_num:
            paths = CriticalPaths()
            for value, num in counts.items():
                paths.update(value, num)
            pre.critical_paths.append(paths)
        state.write(_PRE_FILTER_KEY, pre)
        return None, None

    def pre_filter_extensions(self) -> PreFilterExtensions | None:
        return _Extensions(self)

    def filter(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> Status | None:
        pre = state.get(_PRE_FILTER_KEY)
        if not isinstance(pre, _PreFilterState):
            return Status.error(f"reading {_PRE_FILTER_KEY!r} from cycleState: not found")
        if not pre.constraints:
            return None
        labels, pod_labels = node_info.labels, helpers.labels_of(pod)
        for i, constraint in enumerate(pre.constraints):
            if constraint.topology_key not in labels:
                return Status.unresolvable(ERR_REASON_NODE_LABEL_NOT_MATCH)
            value = labels[constraint.topology_key]
            minimum = pre.min_match_num(i, constraint.min_domains)
            self_match = 1 if constraint.selector.matches(pod_labels) else 0
            skew = pre.match_num[i].get(value, 0) + self_match - minimum
            if skew > constraint.max_skew:
                status = Status.unschedulable(ERR_REASON_CONSTRAINTS_NOT_MATCH)
                status.details.update(topologyKey=constraint.topology_key, skew=skew, maxSkew=constraint.max_skew)
                return status
        return None

    # Scoring.

    def pre_score(self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]) -> Status | None:
        all_nodes = self.snapshot.node_list()
        if not all_nodes:
            return Status.skip()
        own = bool(helpers.spec(pod).get("topologySpreadConstraints"))
        require_all = own or not self.system_defaulted
        try:
            constraints = self.constraints(pod, SCHEDULE_ANYWAY)
        except SelectorError as exc:
            return Status.error(f"obtaining pod's soft topology spread constraints: {exc}")
        if not constraints:
            return Status.skip()
        pre = _PreScoreState(constraints, set(), [{} for _ in constraints], [])
        sizes = [0] * len(constraints)
        for node in nodes:
            labels = node.labels
            if require_all and not _has_all_keys(labels, constraints):
                pre.ignored_nodes.add(node.name)
                continue
            for i, constraint in enumerate(constraints):
                if constraint.topology_key == helpers.LABEL_HOSTNAME:
                    continue  # counted per node in Score
                value = labels.get(constraint.topology_key, "")
                if value not in pre.pod_counts[i]:
                    pre.pod_counts[i][value] = 0
                    sizes[i] += 1
        for i, constraint in enumerate(constraints):
            size = sizes[i]
            if constraint.topology_key == helpers.LABEL_HOSTNAME:
                size = len(nodes) - len(pre.ignored_nodes)
            pre.weights.append(math.log(size + 2))

        required = RequiredNodeAffinity.of(pod)
        namespace = helpers.namespace_of(pod)
        for node in all_nodes:
            labels = node.labels
            if require_all and not _has_all_keys(labels, constraints):
                continue
            for i, constraint in enumerate(constraints):
                if not constraint.includes(pod, node.node, required):
                    continue
                value = labels.get(constraint.topology_key, "")
                if value not in pre.pod_counts[i]:
                    continue
                pre.pod_counts[i][value] += count_matching(node.pods, constraint.selector, namespace)
        state.write(_PRE_SCORE_KEY, pre)
        return None

    def score(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> tuple[int, Status | None]:
        pre = state.get(_PRE_SCORE_KEY)
        if not isinstance(pre, _PreScoreState):
            return 0, Status.error(f"error reading {_PRE_SCORE_KEY!r} from cycleState: not found")
        if node_info.name in pre.ignored_nodes:
            return 0, None
        labels = node_info.labels
        total = 0.0
        namespace = helpers.namespace_of(pod)
        for i, constraint in enumerate(pre.constraints):
            if constraint.topology_key not in labels:
                continue
            if constraint.topology_key == helpers.LABEL_HOSTNAME:
                count = count_matching(node_info.pods, constraint.selector, namespace)
            else:
                count = pre.pod_counts[i].get(labels[constraint.topology_key], 0)
            total += float(count) * pre.weights[i] + float(constraint.max_skew - 1)
        return go_round(total), None

    def score_extensions(self) -> ScoreExtensions | None:
        return self

    def normalize_score(self, state: CycleState, pod: Pod, scores: list[NodeScore]) -> Status | None:
        pre = state.get(_PRE_SCORE_KEY)
        if not isinstance(pre, _PreScoreState):
            return Status.error(f"error reading {_PRE_SCORE_KEY!r} from cycleState: not found")
        counted = [s.score for s in scores if s.name not in pre.ignored_nodes]
        lowest = min(counted) if counted else 0
        highest = max([0, *counted])
        for s in scores:
            if s.name in pre.ignored_nodes:
                s.score = 0
            elif highest == 0:
                s.score = MAX_NODE_SCORE
            else:
                s.score = MAX_NODE_SCORE * (highest + lowest - s.score) // highest
        return None
