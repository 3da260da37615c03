"""DefaultPreemption (PostFilter): when a pod fits nowhere, find a node where evicting
lower-priority pods would make room, and the fewest, least important pods to evict there.

As upstream (framework/preemption and defaultpreemption, 1.34):
- a pod with `preemptionPolicy: Never` preempts nothing ("not eligible due to
  preemptionPolicy=Never."); nor does a pod whose nominated node still has a victim of an earlier
  preemption terminating (unless that node is now UnschedulableAndUnresolvable for it);
- only nodes that failed with Unschedulable are tried (UnschedulableAndUnresolvable ones cannot
  be helped), starting at `offset` (upstream: random), stopping once at least
  max(10% of them, 100) candidates are found including a PDB-respecting one;
- on a node: remove every pod of lower priority; if the pod still does not fit, the node is no
  candidate; otherwise add the removed pods back one by one, most important first (priority,
  then earlier start), PDB-protected ones first, keeping each that still lets the pod fit - the
  rest are the victims. A victim violates a PDB when the PDB's disruptionsAllowed is used up;
- among candidates pick the node with the fewest PDB violations, then the lowest highest victim
  priority, then the smallest sum of victim priorities, then the fewest victims, then the latest
  start time among its highest-priority victims, then the first in candidate order (upstream:
  map order, i.e. random);
- the outcome nominates the node; evicting victims and clearing lower-priority pods' nominations
  for that node is left to the caller (`victims`, `lower_priority_nominated`).

Messages: "preemption: " + the failure, which is itself a FitError over the dry run:
"0/3 nodes are available: 1 Insufficient cpu, 2 No preemption victims found for incoming pod.",
with "Preemption is not helpful for scheduling" for the nodes preemption could not consider.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from operators.core import pods as podutil
from operators.core.selectors import SelectorError, from_label_selector
from operators.scheduler import helpers
from operators.scheduler.framework import (
    DEFAULT_PREEMPTION,
    MODE_OVERRIDE,
    NOW_KEY,
    CycleState,
    Framework,
    Handle,
    Pod,
    PostFilterResult,
    Profile,
    default_profile,
)
from operators.scheduler.messages import PREEMPTION_PREFIX, fit_error_message
from operators.scheduler.snapshot import NodeInfo, PodInfo, Snapshot
from operators.scheduler.status import Code, Diagnosis, NodeToStatus, Status, is_success

NO_VICTIMS = "No preemption victims found for incoming pod"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NOT_ELIGIBLE_NEVER = "not eligible due to preemptionPolicy=Never."
NOT_ELIGIBLE_TERMINATING = "not eligible due to a terminating pod on the nominated node."
NO_CANDIDATE = "no candidate node for preemption"
_INT32_OFFSET = 2**31


@dataclass
class Candidate:
    node: str
    victims: list[Pod]  # most important first
    num_pdb_violations: int = 0


@dataclass
class PreemptionResult:
    """`nominated_node`: None leaves the pod's nomination as it is, "" clears it, a name sets it."""

    status: Status
    nominated_node: str | None = None
    victims: list[Pod] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    node_statuses: NodeToStatus | None = None
    lower_priority_nominated: list[Pod] = field(default_factory=list)

    @property
    def message(self) -> str:
        return self.status.message()


def _more_important_key(now: datetime) -> Any:
    """Sort key putting more important pods first: higher priority, then started earlier."""

    def key(info: PodInfo) -> tuple[int, datetime]:
        return (-helpers.pod_priority(info.pod), helpers.pod_start_time(info.pod, now))

    return key


def _terminating_by_preemption(pod: Pod) -> bool:
    if not podutil.is_being_deleted(pod):
        return False
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "DisruptionTarget":
            return bool(condition.get("status") == "True" and condition.get("reason") == "PreemptionByScheduler")
    return False


def filter_pods_with_pdb_violation(
    pods: Sequence[PodInfo], pdbs: Sequence[helpers.Obj]
) -> tuple[list[PodInfo], list[PodInfo]]:
    """(pods whose eviction would exceed a PodDisruptionBudget, the others), order kept. Each
    matching pod uses up one of its PDBs' disruptionsAllowed; pods already listed in a PDB's
    status.disruptedPods do not count against it."""
    allowed = [int(((pdb.get("status") or {}).get("disruptionsAllowed")) or 0) for pdb in pdbs]
    violating: list[PodInfo] = []
    non_violating: list[PodInfo] = []
    for info in pods:
        labels = helpers.labels_of(info.pod)
        violated = False
        if labels:
            for i, pdb in enumerate(pdbs):
                if helpers.namespace_of(pdb) != helpers.namespace_of(info.pod):
                    continue
                try:
                    selector = from_label_selector(helpers.spec(pdb).get("selector"))
                except SelectorError:
                    continue
                if selector.empty() or not selector.matches(labels):
                    continue
                if helpers.name_of(info.pod) in ((pdb.get("status") or {}).get("disruptedPods") or {}):
                    continue
                allowed[i] -= 1
                if allowed[i] < 0:
                    violated = True
        (violating if violated else non_violating).append(info)
    return violating, non_violating


def pick_one_node(candidates: Sequence[Candidate], now: datetime) -> Candidate | None:
    """pickOneNodeForPreemption with the default criteria, ties to the first candidate."""
    if not candidates:
        return None

    def earliest_top_start(c: Candidate) -> datetime:
        earliest = helpers.pod_start_time(c.victims[0], now)
        top = helpers.pod_priority(c.victims[0])
        for victim in c.victims:
            priority, started = helpers.pod_priority(victim), helpers.pod_start_time(victim, now)
            if priority == top and started < earliest:
                earliest = started
            elif priority > top:
                top, earliest = priority, started
        return earliest

    criteria: list[Any] = [
        lambda c: -c.num_pdb_violations,
        lambda c: -helpers.pod_priority(c.victims[0]),
        lambda c: -sum(helpers.pod_priority(v) + _INT32_OFFSET for v in c.victims),
        lambda c: -len(c.victims),
        earliest_top_start,
    ]
    remaining = list(candidates)
    for criterion in criteria:
        best = max(criterion(c) for c in remaining)
        remaining = [c for c in remaining if criterion(c) == best]
        if len(remaining) == 1:
            break
    return remaining[0]


class Evaluator:
    """The preemption dry run over one framework (preemption.Evaluator with DefaultPreemption's
    policies)."""

    def __init__(self, framework: Framework, pdbs: Sequence[helpers.Obj], offset: int, now: datetime) -> None:
        self.framework = framework
        self.snapshot = framework.snapshot
        self.args = framework.profile.args
        self.pdbs = list(pdbs)
        self.offset = offset
        self.now = now

    def eligible(self, pod: Pod, node_to_status: NodeToStatus) -> tuple[bool, str]:
        if helpers.spec(pod).get("preemptionPolicy") == "Never":
            return False, NOT_ELIGIBLE_NEVER
        nominated = (pod.get("status") or {}).get("nominatedNodeName") or ""
        if nominated:
            if node_to_status.get(nominated).code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                return True, ""
            node = self.snapshot.get(nominated)
            if node is not None:
                priority = helpers.pod_priority(pod)
                for info in node.pods:
                    if helpers.pod_priority(info.pod) < priority and _terminating_by_preemption(info.pod):
                        return False, NOT_ELIGIBLE_TERMINATING
        return True, ""

    def num_candidates(self, num_nodes: int) -> int:
        n = num_nodes * self.args.min_candidate_nodes_percentage // 100
        return min(max(n, self.args.min_candidate_nodes_absolute), num_nodes)

    def select_victims_on_node(
        self, state: CycleState, pod: Pod, node_info: NodeInfo
    ) -> tuple[list[Pod], int, Status | None]:
        """(victims most important first, how many violate a PDB, status); works on copies."""
        framework = self.framework
        priority = helpers.pod_priority(pod)
        potential: list[PodInfo] = []
        for info in list(node_info.pods):
            if helpers.pod_priority(info.pod) < priority:
                potential.append(info)
                node_info.remove_pod(info)
                status = framework.run_pre_filter_extension_remove_pod(state, pod, info, node_info)
                if not is_success(status):
                    return [], 0, status
        if not potential:
            return [], 0, Status.unresolvable(NO_VICTIMS)
        status = framework.run_filter_with_nominated_pods(state, pod, node_info)
        if not is_success(status):
            return [], 0, status
        potential.sort(key=_more_important_key(self.now))
        violating, non_violating = filter_pods_with_pdb_violation(potential, self.pdbs)
        victims: list[PodInfo] = []

        def reprieve(info: PodInfo) -> bool | Status:
            node_info.add_pod(info)
            added = framework.run_pre_filter_extension_add_pod(state, pod, info, node_info)
            if not is_success(added):
                assert added is not None
                return added
            fits = is_success(framework.run_filter_with_nominated_pods(state, pod, node_info))
            if not fits:
                node_info.remove_pod(info)
                removed = framework.run_pre_filter_extension_remove_pod(state, pod, info, node_info)
                if not is_success(removed):
                    assert removed is not None
                    return removed
                victims.append(info)
            return fits

        num_violating = 0
        for info in violating:
            outcome = reprieve(info)
            if isinstance(outcome, Status):
                return [], 0, outcome
            if not outcome:
                num_violating += 1
        for info in non_violating:
            outcome = reprieve(info)
            if isinstance(outcome, Status):
                return [], 0, outcome
        if violating and non_violating:
            victims.sort(key=_more_important_key(self.now))
        return [v.pod for v in victims], num_violating, None

    def dry_run(
        self, state: CycleState, pod: Pod, potential: Sequence[NodeInfo], num_candidates: int
    ) -> tuple[list[Candidate], NodeToStatus, list[Status]]:
        non_violating: list[Candidate] = []
        violating: list[Candidate] = []
        statuses = NodeToStatus()
        errors: list[Status] = []
        for i in range(len(potential)):
            node_copy = potential[(self.offset + i) % len(potential)].clone()
            victims, num_violating, status = self.select_victims_on_node(state.clone(), pod, node_copy)
            if is_success(status) and victims:
                bucket = non_violating if num_violating == 0 else violating
                if len(bucket) < num_candidates:
                    bucket.append(Candidate(node_copy.name, victims, num_violating))
                if non_violating and len(non_violating) + len(violating) >= num_candidates:
                    break
                continue
            if is_success(status):
                status = Status.error(f"expected at least one victim pod on node \"{node_copy.name}\"")
            assert status is not None
            if status.code is Code.ERROR:
                errors.append(status)
            statuses.set(node_copy.name, status)
        return non_violating + violating, statuses, errors

    def preempt(self, state: CycleState, pod: Pod, node_to_status: NodeToStatus) -> PreemptionResult:
        ok, message = self.eligible(pod, node_to_status)
        if not ok:
            return PreemptionResult(Status.unschedulable(message))
        all_nodes = self.snapshot.node_list()
        names = [n.name for n in all_nodes]
        potential_names = node_to_status.nodes_with_code(names, Code.UNSCHEDULABLE)
        candidates: list[Candidate] = []
        statuses = NodeToStatus()
        if potential_names:
            potential = [self.snapshot.nodes[name] for name in potential_names]
            candidates, statuses, errors = self.dry_run(state, pod, potential, self.num_candidates(len(potential)))
            if errors and not candidates:
                return PreemptionResult(Status.error("; ".join(e.message() for e in errors)), node_statuses=statuses)
        if not candidates:
            statuses.absent = Status.unresolvable(NOT_HELPFUL)
            message = fit_error_message(len(all_nodes), Diagnosis(node_to_status=statuses))
            return PreemptionResult(Status.unschedulable(message), nominated_node="", node_statuses=statuses)
        best = candidates[0] if len(candidates) == 1 else pick_one_node(candidates, self.now)
        if best is None or not best.node:
            return PreemptionResult(Status.unschedulable(NO_CANDIDATE), candidates=candidates, node_statuses=statuses)
        priority = helpers.pod_priority(pod)
        lower = [p.pod for p in self.snapshot.nominated_pods_for(best.node) if helpers.pod_priority(p.pod) < priority]
        return PreemptionResult(
            Status.success(),
            nominated_node=best.node,
            victims=list(best.victims),
            candidates=candidates,
            node_statuses=statuses,
            lower_priority_nominated=lower,
        )


def _now(state: CycleState) -> datetime:
    now = state.get(NOW_KEY)
    return now if isinstance(now, datetime) else datetime.now(UTC)


class DefaultPreemption:
    name = DEFAULT_PREEMPTION

    def __init__(self, handle: Handle) -> None:
        self.handle = handle
        args = handle.profile.args
        if not 0 <= args.min_candidate_nodes_percentage <= 100:
            raise ValueError("minCandidateNodesPercentage: Invalid value: not in valid range [0, 100]")
        if args.min_candidate_nodes_absolute < 0:
            raise ValueError("minCandidateNodesAbsolute: Invalid value: not in valid range [0, inf)")
        if args.min_candidate_nodes_percentage == 0 and args.min_candidate_nodes_absolute == 0:
            raise ValueError("minCandidateNodesPercentage and minCandidateNodesAbsolute cannot both be zero")

    def post_filter(
        self, state: CycleState, pod: Pod, node_to_status: NodeToStatus
    ) -> tuple[PostFilterResult | None, Status | None]:
        framework = self.handle.framework
        assert framework is not None
        evaluator = Evaluator(framework, framework.snapshot.pdbs, 0, _now(state))
        outcome = evaluator.preempt(state, pod, node_to_status)
        status = outcome.status
        if status.message():
            status = Status(status.code, [PREEMPTION_PREFIX + status.message()], status.plugin, status.details)
        if outcome.nominated_node is None:
            return None, status
        return PostFilterResult(outcome.nominated_node, MODE_OVERRIDE, tuple(outcome.victims), outcome), status


def select_victims(
    pod: Pod,
    snapshot: Snapshot,
    profile: Profile | None = None,
    pdbs: Sequence[helpers.Obj] | None = None,
    *,
    node_statuses: NodeToStatus | None = None,
    offset: int = 0,
    now: datetime | None = None,
) -> PreemptionResult:
    """Preemption as a pure function: where `pod` could go by evicting lower-priority pods, and
    which. `pdbs` default to the snapshot's; `node_statuses` (the failed cycle's per-node
    statuses) are recomputed when not given. When the pod fits somewhere without preemption the
    result's status is Skip and nothing is nominated."""
    profile = profile if profile is not None else default_profile()
    framework = Framework(profile, snapshot)
    state = CycleState()
    outcome = framework.find_nodes_that_fit(state, pod)
    if outcome.error is not None:
        return PreemptionResult(outcome.error)
    if node_statuses is None:
        if outcome.feasible:
            fits = len(outcome.feasible)
            return PreemptionResult(Status(Code.SKIP, [f"pod fits on {fits} node(s) without preemption"]))
        node_statuses = outcome.diagnosis.node_to_status
    evaluator = Evaluator(framework, snapshot.pdbs if pdbs is None else pdbs, offset, now or datetime.now(UTC))
    return evaluator.preempt(state, pod, node_statuses)
