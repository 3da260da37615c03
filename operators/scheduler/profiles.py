"""SchedulerProfile objects (scheduling.kubeplane.dev/v1alpha1) to framework Profiles, and which one a
scheduler uses. Pure: the operator feeds it the objects it watches and applies the outcome.

A profile starts from kube-scheduler's default and changes only what the object says, as a
KubeSchedulerConfiguration profile does: `plugins.disabled` removes plugins from every extension
point, `plugins.score.disabled` from scoring only, `plugins.score.enabled` sets weights,
`scoringStrategy` is NodeResourcesFit's, `percentageOfNodesToScore` the search cut-off.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from operators.scheduler.framework import (
    DEFAULT_RESOURCES,
    REQUESTED_TO_CAPACITY_RATIO,
    SCORE,
    Profile,
    ResourceSpec,
    ScoringStrategy,
    default_profile,
)

Body = Mapping[str, Any]
GROUP, VERSION, PLURAL = "scheduling.kubeplane.dev", "v1alpha1", "schedulerprofiles"


def to_profile(spec: Mapping[str, Any], known_plugins: Collection[str], base: Profile | None = None) -> Profile:
    """The Profile a SchedulerProfile spec describes. ValueError (a message for the object's
    status) for what the CRD schema cannot rule out: a plugin this scheduler does not have."""
    profile = base or default_profile()
    plugins = spec.get("plugins") or {}
    score = plugins.get("score") or {}
    everywhere_off = _names(plugins.get("disabled"))
    score_off = _names(score.get("disabled"))
    weights = {entry["name"]: int(entry["weight"]) for entry in score.get("enabled") or []}
    unknown = sorted((everywhere_off | score_off | set(weights)) - set(known_plugins))
    if unknown:
        have = ", ".join(sorted(known_plugins))
        raise ValueError(f"unknown plugin(s) {', '.join(unknown)}; this scheduler has {have}")

    changes: dict[str, Any] = {
        "scheduler_name": spec.get("schedulerName") or profile.scheduler_name,
        "plugins": tuple(p for p in profile.plugins if p not in everywhere_off),
        "weights": {**profile.weights, **weights},
        "disabled": {**profile.disabled, SCORE: frozenset(score_off)} if score_off else dict(profile.disabled),
        "percentage_of_nodes_to_score": spec.get("percentageOfNodesToScore") or None,
    }
    strategy = spec.get("scoringStrategy")
    if strategy:
        resources = tuple(ResourceSpec(r["name"], int(r.get("weight") or 1)) for r in strategy.get("resources") or [])
        shape = tuple((int(p["utilization"]), int(p["score"]))
                      for p in (strategy.get("requestedToCapacityRatio") or {}).get("shape") or [])
        if strategy["type"] == REQUESTED_TO_CAPACITY_RATIO and not shape:
            raise ValueError("scoringStrategy RequestedToCapacityRatio needs requestedToCapacityRatio.shape")
        changes["scoring_strategy"] = ScoringStrategy(strategy["type"], resources or DEFAULT_RESOURCES, shape)
    return replace(profile, **changes)


def _names(entries: Iterable[Mapping[str, Any]] | None) -> set[str]:
    return {entry["name"] for entry in entries or []}


@dataclass
class Choice:
    """Which SchedulerProfile a scheduler runs: `chosen` (None: the built-in default) and the
    objects that also name it but lose to an older one."""

    chosen: Body | None = None
    shadowed: list[Body] = field(default_factory=list)


def choose(objects: Sequence[Body], scheduler_name: str) -> Choice:
    """The oldest SchedulerProfile naming `scheduler_name` wins (then the name, for a stable answer);
    a newer one never silently replaces the profile a running scheduler uses."""
    mine = [o for o in objects if (o.get("spec") or {}).get("schedulerName") == scheduler_name]
    mine.sort(key=lambda o: ((o.get("metadata") or {}).get("creationTimestamp") or "",
                             (o.get("metadata") or {}).get("name") or ""))
    return Choice(mine[0], mine[1:]) if mine else Choice()
