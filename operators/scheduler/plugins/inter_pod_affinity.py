"""InterPodAffinity.

Filter, in this order:
1. the pod's required affinity: for every term, the node must carry the term's topology key and
   its domain (key=value) must already hold a pod matching the term ("node(s) didn't match pod
   affinity rules", UnschedulableAndUnresolvable) - except that when no pod anywhere matches
   and the pod matches all its own terms, it may go first (the first pod of a group that is
   attracted to itself);
2. the pod's required anti-affinity: no domain of the node may hold a matching pod ("node(s)
   didn't match pod anti-affinity rules", Unschedulable);
3. placed pods' required anti-affinity: no placed pod whose anti-affinity term matches the
   incoming pod may share a domain with the node ("node(s) didn't satisfy existing pods
   anti-affinity rules", Unschedulable).

A term's namespaces are its `namespaces` plus those its namespaceSelector selects (namespace
labels come from the snapshot; {} selects all); with neither, the pod's own namespace. Placed
pods' terms are checked against the incoming pod's namespace labels.

Score: per topology domain, + weight for each preferred affinity term of the pod matched by a
pod there, - weight for each preferred anti-affinity term, + hardPodAffinityWeight (1) for each
placed pod whose required affinity matches the incoming pod, and +/- the weights of placed pods'
preferred terms that match it. A node sums its domains' values; scores are then scaled
min..max -> 0..100 (all equal -> 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from operators.core.selectors import NOTHING
from operators.scheduler import helpers
from operators.scheduler.framework import (
    INTER_POD_AFFINITY,
    MAX_NODE_SCORE,
    CycleState,
    Handle,
    NodeScore,
    Pod,
    PreFilterExtensions,
    PreFilterResult,
    ScoreExtensions,
)
from operators.scheduler.snapshot import AffinityTerm, NodeInfo, PodInfo, Snapshot, WeightedAffinityTerm
from operators.scheduler.status import Status

ERR_REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
ERR_REASON_AFFINITY = "node(s) didn't match pod affinity rules"
ERR_REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
_PRE_FILTER_KEY = "PreFilter" + INTER_POD_AFFINITY
_PRE_SCORE_KEY = "PreScore" + INTER_POD_AFFINITY
_POD_INFO_KEY = "PodInfo" + INTER_POD_AFFINITY


def _incoming_pod_info(state: CycleState, pod: Pod) -> PodInfo:
    """The incoming pod parsed once per cycle (PreFilter and PreScore both need it)."""
    cached = state.get(_POD_INFO_KEY)
    if isinstance(cached, tuple) and cached[0] is pod:
        info: PodInfo = cached[1]
        return info
    info = PodInfo.of(pod)
    state.write(_POD_INFO_KEY, (pod, info))
    return info

TopologyPair = tuple[str, str]


class TopologyCounts(dict[TopologyPair, int]):
    """Matched-term counts per (topology key, value); entries that drop to zero disappear."""

    def bump(self, node_labels: Mapping[str, str], topology_key: str, value: int) -> None:
        if topology_key in node_labels:
            pair = (topology_key, node_labels[topology_key])
            count = self.get(pair, 0) + value
            if count == 0:
                self.pop(pair, None)
            else:
                self[pair] = count

    def add_affinity_terms(
        self, terms: Sequence[AffinityTerm], pod: Pod, node_labels: Mapping[str, str], value: int
    ) -> None:
        """Counts the pod once per term, in the domains of every term, if it matches all terms."""
        if pod_matches_all_terms(terms, pod):
            for term in terms:
                self.bump(node_labels, term.topology_key, value)

    def add_anti_affinity_terms(
        self,
        terms: Sequence[AffinityTerm],
        pod: Pod,
        namespace_labels: Mapping[str, str] | None,
        node_labels: Mapping[str, str],
        value: int,
    ) -> None:
        """Counts the pod in the domain of each term it matches."""
        for term in terms:
            if term.matches(pod, namespace_labels):
                self.bump(node_labels, term.topology_key, value)

    def clone(self) -> TopologyCounts:
        return TopologyCounts(self)


def pod_matches_all_terms(terms: Sequence[AffinityTerm], pod: Pod) -> bool:
    """True iff there are terms and the pod matches each (namespaceSelectors already merged)."""
    return bool(terms) and all(t.matches(pod, None) for t in terms)


def _merge_namespaces(term: AffinityTerm, snapshot: Snapshot) -> AffinityTerm:
    """The incoming pod's terms: namespaces selected by a non-empty namespaceSelector become
    listed namespaces and the selector then selects nothing. ({} stays: it selects all.)"""
    if term.namespace_selector.empty():
        return term
    selected = {
        name for name, labels in snapshot.namespace_labels.items() if term.namespace_selector.matches(labels)
    }
    return replace(term, namespaces=term.namespaces | selected, namespace_selector=NOTHING)


@dataclass
class _PreFilterState:
    pod_info: PodInfo
    affinity_terms: tuple[AffinityTerm, ...]
    anti_affinity_terms: tuple[AffinityTerm, ...]
    namespace_labels: Mapping[str, str] | None
    existing_anti_affinity_counts: TopologyCounts = field(default_factory=TopologyCounts)
    affinity_counts: TopologyCounts = field(default_factory=TopologyCounts)
    anti_affinity_counts: TopologyCounts = field(default_factory=TopologyCounts)

    def clone(self) -> _PreFilterState:
        return replace(
            self,
            existing_anti_affinity_counts=self.existing_anti_affinity_counts.clone(),
            affinity_counts=self.affinity_counts.clone(),
            anti_affinity_counts=self.anti_affinity_counts.clone(),
        )

    def update_with_pod(self, info: PodInfo, node_labels: Mapping[str, str], multiplier: int) -> None:
        incoming = self.pod_info.pod
        self.existing_anti_affinity_counts.add_anti_affinity_terms(
            info.required_anti_affinity_terms, incoming, self.namespace_labels, node_labels, multiplier
        )
        self.affinity_counts.add_affinity_terms(self.affinity_terms, info.pod, node_labels, multiplier)
        self.anti_affinity_counts.add_anti_affinity_terms(
            self.anti_affinity_terms, info.pod, None, node_labels, multiplier
        )


@dataclass
class _PreScoreState:
    topology_score: dict[str, dict[str, int]]

    def clone(self) -> _PreScoreState:
        return self


class _Extensions:
    def __init__(self, plugin: InterPodAffinity) -> None:
        self.plugin = plugin

    def add_pod(self, state: CycleState, pod: Pod, pod_info: PodInfo, node_info: NodeInfo) -> Status | None:
        return self._update(state, pod_info, node_info, 1)

    def remove_pod(self, state: CycleState, pod: Pod, pod_info: PodInfo, node_info: NodeInfo) -> Status | None:
        return self._update(state, pod_info, node_info, -1)

    @staticmethod
    def _update(state: CycleState, pod_info: PodInfo, node_info: NodeInfo, multiplier: int) -> Status | None:
        pre = state.get(_PRE_FILTER_KEY)
        if not isinstance(pre, _PreFilterState):
            return Status.error(f"error reading {_PRE_FILTER_KEY!r} from cycleState: not found")
        pre.update_with_pod(pod_info, node_info.labels, multiplier)
        return None


class InterPodAffinity:
    name = INTER_POD_AFFINITY

    def __init__(self, handle: Handle) -> None:
        self.snapshot = handle.snapshot
        self.hard_pod_affinity_weight = handle.profile.args.hard_pod_affinity_weight
        self.ignore_preferred_terms_of_existing_pods = handle.profile.args.ignore_preferred_terms_of_existing_pods
        if not 0 <= self.hard_pod_affinity_weight <= MAX_NODE_SCORE:
            raise ValueError("hardPodAffinityWeight: Invalid value: not in valid range [0, 100]")

    # Filtering.

    def pre_filter(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[PreFilterResult | None, Status | None]:
        info = _incoming_pod_info(state, pod)
        if info.parse_errors:
            return None, Status.unresolvable(f"parsing pod: {'; '.join(info.parse_errors)}")
        namespace_labels = self.snapshot.namespace_labels_of(helpers.namespace_of(pod))
        pre = _PreFilterState(
            pod_info=info,
            affinity_terms=tuple(_merge_namespaces(t, self.snapshot) for t in info.required_affinity_terms),
            anti_affinity_terms=tuple(_merge_namespaces(t, self.snapshot) for t in info.required_anti_affinity_terms),
            namespace_labels=namespace_labels,
        )
        for node in self.snapshot.have_pods_with_required_anti_affinity():
            for existing in node.pods_with_required_anti_affinity:
                pre.existing_anti_affinity_counts.add_anti_affinity_terms(
                    existing.required_anti_affinity_terms, pod, namespace_labels, node.labels, 1
                )
        if pre.affinity_terms or pre.anti_affinity_terms:
            for node in nodes:
                for existing in node.pods:
                    pre.affinity_counts.add_affinity_terms(pre.affinity_terms, existing.pod, node.labels, 1)
                    pre.anti_affinity_counts.add_anti_affinity_terms(
                        pre.anti_affinity_terms, existing.pod, None, node.labels, 1
                    )
        if not pre.existing_anti_affinity_counts and not pre.affinity_terms and not pre.anti_affinity_terms:
            return None, Status.skip()
        state.write(_PRE_FILTER_KEY, pre)
        return None, None

    def pre_filter_extensions(self) -> PreFilterExtensions | None:
        return _Extensions(self)

    def filter(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> Status | None:
        pre = state.get(_PRE_FILTER_KEY)
        if not isinstance(pre, _PreFilterState):
            return Status.error(f"error reading {_PRE_FILTER_KEY!r} from cycleState: not found")
        labels = node_info.labels
        if not _satisfies_affinity(pre, labels):
            return Status.unresolvable(ERR_REASON_AFFINITY)
        if not _satisfies_anti_affinity(pre, labels):
            return Status.unschedulable(ERR_REASON_ANTI_AFFINITY)
        if not _satisfies_existing_anti_affinity(pre, labels):
            return Status.unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY)
        return None

    # Scoring.

    def pre_score(self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]) -> Status | None:
        affinity = helpers.spec(pod).get("affinity") or {}
        has_preferred = bool(
            ((affinity.get("podAffinity") or {}).get("preferredDuringSchedulingIgnoredDuringExecution"))
            or ((affinity.get("podAntiAffinity") or {}).get("preferredDuringSchedulingIgnoredDuringExecution"))
        )
        if self.ignore_preferred_terms_of_existing_pods and not has_preferred:
            return Status.skip()
        info = _incoming_pod_info(state, pod)
        if info.parse_errors:
            return Status.error(f"failed to parse pod: {'; '.join(info.parse_errors)}")
        preferred = [
            WeightedAffinityTerm(_merge_namespaces(t.term, self.snapshot), t.weight)
            for t in info.preferred_affinity_terms
        ]
        preferred_anti = [
            WeightedAffinityTerm(_merge_namespaces(t.term, self.snapshot), t.weight)
            for t in info.preferred_anti_affinity_terms
        ]
        namespace_labels = self.snapshot.namespace_labels_of(helpers.namespace_of(pod))
        candidates = self.snapshot.node_list() if has_preferred else self.snapshot.have_pods_with_affinity()
        topology_score: dict[str, dict[str, int]] = {}
        contributed = False

        def process(term: AffinityTerm, weight: int, target: Pod, ns_labels: Mapping[str, str] | None,
                    node_labels: Mapping[str, str], multiplier: int) -> bool:
            if term.matches(target, ns_labels) and term.topology_key in node_labels:
                values = topology_score.setdefault(term.topology_key, {})
                value = node_labels[term.topology_key]
                values[value] = values.get(value, 0) + weight * multiplier
                return True
            return False

        for node in candidates:
            node_labels = node.labels
            if not node_labels:
                continue
            pods = node.pods if has_preferred else node.pods_with_affinity
            for existing in pods:
                hits = False
                for weighted in preferred:
                    hits |= process(weighted.term, weighted.weight, existing.pod, None, node_labels, 1)
                for weighted in preferred_anti:
                    hits |= process(weighted.term, weighted.weight, existing.pod, None, node_labels, -1)
                if self.hard_pod_affinity_weight > 0:
                    for term in existing.required_affinity_terms:
                        hits |= process(term, self.hard_pod_affinity_weight, pod, namespace_labels, node_labels, 1)
                for weighted in existing.preferred_affinity_terms:
                    hits |= process(weighted.term, weighted.weight, pod, namespace_labels, node_labels, 1)
                for weighted in existing.preferred_anti_affinity_terms:
                    hits |= process(weighted.term, weighted.weight, pod, namespace_labels, node_labels, -1)
                contributed |= hits
        if not contributed:
            return Status.skip()
        state.write(_PRE_SCORE_KEY, _PreScoreState(topology_score))
        return None

    def score(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> tuple[int, Status | None]:
        pre = state.get(_PRE_SCORE_KEY)
        if not isinstance(pre, _PreScoreState):
            return 0, Status.error(f"failed to read {_PRE_SCORE_KEY!r} from cycleState: not found")
        labels = node_info.labels
        total = 0
        for key, values in pre.topology_score.items():
            if key in labels:
                total += values.get(labels[key], 0)
        return total, None

    def score_extensions(self) -> ScoreExtensions | None:
        return self

    def normalize_score(self, state: CycleState, pod: Pod, scores: list[NodeScore]) -> Status | None:
        pre = state.get(_PRE_SCORE_KEY)
        if not isinstance(pre, _PreScoreState):
            return Status.error(f"failed to read {_PRE_SCORE_KEY!r} from cycleState: not found")
        if not pre.topology_score:
            return None
        lowest = min((s.score for s in scores), default=0)
        highest = max((s.score for s in scores), default=0)
        spread = highest - lowest
        for s in scores:
            scaled = float(MAX_NODE_SCORE) * (float(s.score - lowest) / float(spread)) if spread > 0 else 0.0
            s.score = math.trunc(scaled)
        return None


def _satisfies_affinity(pre: _PreFilterState, labels: Mapping[str, str]) -> bool:
    pods_exist = True
    for term in pre.affinity_terms:
        if term.topology_key not in labels:
            return False  # every topology key must be on the node
        if pre.affinity_counts.get((term.topology_key, labels[term.topology_key]), 0) <= 0:
            pods_exist = False
    if pods_exist:
        return True
    # No pod matches yet: the pod may be the first of a group with affinity to itself.
    return not pre.affinity_counts and pod_matches_all_terms(pre.affinity_terms, pre.pod_info.pod)


def _satisfies_anti_affinity(pre: _PreFilterState, labels: Mapping[str, str]) -> bool:
    if not pre.anti_affinity_counts:
        return True
    counts = pre.anti_affinity_counts
    for term in pre.anti_affinity_terms:
        if term.topology_key in labels and counts.get((term.topology_key, labels[term.topology_key]), 0) > 0:
            return False
    return True


def _satisfies_existing_anti_affinity(pre: _PreFilterState, labels: Mapping[str, str]) -> bool:
    if not pre.existing_anti_affinity_counts:
        return True
    return not any(pre.existing_anti_affinity_counts.get(pair, 0) > 0 for pair in labels.items())
