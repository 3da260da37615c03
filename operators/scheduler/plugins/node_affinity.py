"""NodeAffinity.

Filter: the node must match the pod's nodeSelector (every key equal) and, if present, its
requiredDuringSchedulingIgnoredDuringExecution node selector (terms ORed, expressions ANDed,
operators In/NotIn/Exists/DoesNotExist/Gt/Lt, matchFields on metadata.name). Rejections are
UnschedulableAndUnresolvable: "node(s) didn't match Pod's node affinity/selector". PreFilter
narrows the search to the named nodes when every required term pins metadata.name with In
(and rejects the pod outright when those names cannot intersect).

Score: the sum of the weights of the preferred terms the node matches, scaled so the best node
gets 100 (integer division, as DefaultNormalizeScore).

A profile may add a node selector and preferred terms to every pod (`added_affinity`, upstream's
NodeAffinityArgs.addedAffinity).
"""

from __future__ import annotations

from collections.abc import Sequence

from operators.core.selectors import NAME_FIELD, NodeSelector, PreferredTerms, RequiredNodeAffinity, SelectorError
from operators.scheduler import helpers
from operators.scheduler.framework import (
    MAX_NODE_SCORE,
    NODE_AFFINITY,
    CycleState,
    Handle,
    NodeScore,
    Pod,
    PreFilterExtensions,
    PreFilterResult,
    ScoreExtensions,
)
from operators.scheduler.plugins.common import default_normalize_score, default_normalize_values
from operators.scheduler.snapshot import NodeInfo
from operators.scheduler.status import Status

ERR_REASON_POD = "node(s) didn't match Pod's node affinity/selector"
ERR_REASON_ENFORCED = "node(s) didn't match scheduler-enforced node affinity"
ERR_REASON_CONFLICT = "pod affinity terms conflict"
_PRE_FILTER_KEY = "PreFilter" + NODE_AFFINITY
_PRE_SCORE_KEY = "PreScore" + NODE_AFFINITY


def _node_affinity(pod: Pod) -> helpers.Obj:
    section: helpers.Obj = (helpers.spec(pod).get("affinity") or {}).get("nodeAffinity") or {}
    return section


def preferred_terms(pod: Pod) -> PreferredTerms | None:
    terms = _node_affinity(pod).get("preferredDuringSchedulingIgnoredDuringExecution")
    return PreferredTerms.parse(terms) if terms is not None else None


class NodeAffinity:
    name = NODE_AFFINITY
    node_local = True  # Filter and Score read only the pod and this NodeInfo (see framework.NodeLocal)

    def __init__(self, handle: Handle) -> None:
        added = handle.profile.args.added_affinity or {}
        required = added.get("requiredDuringSchedulingIgnoredDuringExecution")
        self.added_node_selector = NodeSelector.parse(required) if required is not None else None
        preferred = added.get("preferredDuringSchedulingIgnoredDuringExecution") or []
        self.added_preferred = PreferredTerms.parse(preferred) if preferred else None

    def pre_filter(
        self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]
    ) -> tuple[PreFilterResult | None, Status | None]:
        required = _node_affinity(pod).get("requiredDuringSchedulingIgnoredDuringExecution")
        if required is None and self.added_node_selector is None and helpers.spec(pod).get("nodeSelector") is None:
            return None, Status.skip()
        state.write(_PRE_FILTER_KEY, RequiredNodeAffinity.of(pod))
        terms = (required or {}).get("nodeSelectorTerms") or []
        if not terms:
            return None, None
        names: set[str] | None = None
        for term in terms:
            term_names: set[str] | None = None
            for requirement in term.get("matchFields") or []:
                if requirement.get("key") == NAME_FIELD and requirement.get("operator") == "In":
                    values = set(requirement.get("values") or [])
                    term_names = values if term_names is None else term_names & values
            if term_names is None:
                return None, None  # a term without a name pin allows every node
            names = term_names if names is None else names | term_names
        if names is not None and not names:
            return None, Status.unresolvable(ERR_REASON_CONFLICT)
        if names:
            return PreFilterResult(frozenset(names)), None
        return None, None

    def pre_filter_extensions(self) -> PreFilterExtensions | None:
        return None

    def static_key(self, pod: Pod) -> str:
        return helpers.spec_key(helpers.spec(pod).get("nodeSelector"), _node_affinity(pod))

    def filter(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> Status | None:
        if self.added_node_selector is not None and not self.added_node_selector.matches(node_info.node):
            return Status.unresolvable(ERR_REASON_ENFORCED)
        required = state.get(_PRE_FILTER_KEY)
        if not isinstance(required, RequiredNodeAffinity):
            required = RequiredNodeAffinity.of(pod)
        if not required.matches(node_info.node):
            return Status.unresolvable(ERR_REASON_POD)
        return None

    def pre_score(self, state: CycleState, pod: Pod, nodes: Sequence[NodeInfo]) -> Status | None:
        try:
            preferred = preferred_terms(pod)
        except SelectorError as exc:
            return Status.error(str(exc))
        if preferred is None and self.added_preferred is None:
            return Status.skip()
        state.write(_PRE_SCORE_KEY, preferred)
        return None

    def score(self, state: CycleState, pod: Pod, node_info: NodeInfo) -> tuple[int, Status | None]:
        total = self.added_preferred.score(node_info.node) if self.added_preferred is not None else 0
        if _PRE_SCORE_KEY in state:
            preferred = state[_PRE_SCORE_KEY]
        else:
            try:
                preferred = preferred_terms(pod)
            except SelectorError as exc:
                return 0, Status.error(str(exc))
        if preferred is not None:
            total += preferred.score(node_info.node)
        return total, None

    def score_extensions(self) -> ScoreExtensions | None:
        return self

    def normalize_score(self, state: CycleState, pod: Pod, scores: list[NodeScore]) -> Status | None:
        default_normalize_score(MAX_NODE_SCORE, False, scores)
        return None

    def normalize_values(self, state: CycleState, pod: Pod, values: list[int]) -> tuple[list[int], Status | None]:
        return default_normalize_values(MAX_NODE_SCORE, False, values), None
