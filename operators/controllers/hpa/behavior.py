"""The HorizontalPodAutoscaler's normalization: from a recommended replica count to the one it sets, as
pkg/controller/podautoscaler/horizontal.go (Kubernetes 1.34) does it, as pure functions.

The state upstream keeps in memory (recent recommendations, recent scale events) is passed in and the
new state returned, so the controller can keep it where it likes (kubeplane can persist it in status).

- behavior nil, the legacy path (`normalize_legacy`): the highest recommendation of the last 5 minutes
  wins a scale-down (AbleToScale `ScaleDownStabilized`), a scale-up is capped at max(2 · current, 4)
  (ScalingLimited `ScaleUpLimit`), then [min, max] (`TooFewReplicas`, `TooManyReplicas`).
- behavior set (`normalize_with_behavior`): the rules are defaulted as autoscaling/v2 does (scale-up:
  window 0, Max of {4 pods, 100%} per 15 s; scale-down: window 300 s, 100% per 15 s); stabilization keeps
  the recommendation between the lowest of the scale-up window and the highest of the scale-down window
  (`ScaleUpStabilized`/`ScaleDownStabilized`); the rate limits count from the replicas at the start of each
  policy's period (current - added + removed within it): Pods `start ± value`, Percent
  `ceil(start · (1 + v/100))` up and `trunc(start · (1 - v/100))` down, selectPolicy Max/Min/Disabled.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

DOWNSCALE_STABILIZATION = timedelta(minutes=5)  # --horizontal-pod-autoscaler-downscale-stabilization
SCALE_UP_LIMIT_FACTOR, SCALE_UP_LIMIT_MINIMUM = 2.0, 4.0
PODS, PERCENT = "Pods", "Percent"
MAX, MIN, DISABLED = "Max", "Min", "Disabled"
MIN_INT32, MAX_INT32 = -(2**31), 2**31 - 1

DEFAULT_SCALE_UP = {"stabilizationWindowSeconds": 0, "selectPolicy": MAX,
                    "policies": [{"type": PODS, "value": 4, "periodSeconds": 15},
                                 {"type": PERCENT, "value": 100, "periodSeconds": 15}]}
# The scale-down window stays unset here: the controller fills it from its flag (300 s).
DEFAULT_SCALE_DOWN = {"selectPolicy": MAX, "policies": [{"type": PERCENT, "value": 100, "periodSeconds": 15}]}

WITHIN_RANGE = ("DesiredWithinRange", "the desired count is within the acceptable range")
TOO_FEW = ("TooFewReplicas", "the desired replica count is less than the minimum replica count")
TOO_MANY = ("TooManyReplicas", "the desired replica count is more than the maximum replica count")
UP_LIMIT = ("ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate")
DOWN_LIMIT = ("ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate")
READY = ("ReadyForNewScale", "recommended size matches current size")
UP_STABILIZED = ("ScaleUpStabilized",
                 "recent recommendations were lower than current one, applying the lowest recent recommendation")
DOWN_STABILIZED = ("ScaleDownStabilized",
                   "recent recommendations were higher than current one, applying the highest recent recommendation")

Rules = Mapping[str, Any]


@dataclass(frozen=True)
class Recommendation:
    replicas: int
    at: datetime


@dataclass(frozen=True)
class ScaleEvent:
    change: int  # replicas added (scale-up events) or removed (scale-down events)
    at: datetime
    outdated: bool = False


@dataclass(frozen=True)
class Normalized:
    """The count to set, the AbleToScale reason/message (True), the ScalingLimited status/reason/message,
    and the recommendations to keep."""
    replicas: int
    able: tuple[str, str]
    limited: tuple[str, str, str]
    recommendations: tuple[Recommendation, ...]


def scale_up_rules(behavior: Mapping[str, Any] | None) -> dict[str, Any]:
    """GenerateHPAScaleUpRules: the given fields over the defaults."""
    return _over(DEFAULT_SCALE_UP, (behavior or {}).get("scaleUp"))


def scale_down_rules(behavior: Mapping[str, Any] | None,
                     window: timedelta = DOWNSCALE_STABILIZATION) -> dict[str, Any]:
    """GenerateHPAScaleDownRules, and the window the controller fills in (maybeInitScaleDownStabilizationWindow)."""
    rules = _over(DEFAULT_SCALE_DOWN, (behavior or {}).get("scaleDown"))
    if rules.get("stabilizationWindowSeconds") is None:
        rules["stabilizationWindowSeconds"] = int(window.total_seconds())
    return rules


def _over(defaults: Mapping[str, Any], given: Mapping[str, Any] | None) -> dict[str, Any]:
    rules = copy.deepcopy(dict(defaults))
    for key in ("selectPolicy", "stabilizationWindowSeconds", "policies", "tolerance"):
        if given is not None and given.get(key) is not None:
            rules[key] = copy.deepcopy(given[key])
    return rules


# --- the legacy path (behavior nil) ------------------------------------------------------------------------

def scale_up_limit(current: int) -> int:
    """calculateScaleUpLimit."""
    return int(max(SCALE_UP_LIMIT_FACTOR * current, SCALE_UP_LIMIT_MINIMUM))


def convert_with_rules(current: int, desired: int, min_replicas: int, max_replicas: int) -> tuple[int, str, str]:
    """convertDesiredReplicasWithRules."""
    limit = scale_up_limit(current)
    maximum, reason = (limit, UP_LIMIT) if max_replicas > limit else (max_replicas, TOO_MANY)
    if desired < min_replicas:
        return min_replicas, *TOO_FEW
    if desired > maximum:
        return maximum, *reason
    return desired, *WITHIN_RANGE


def _remember(recommendations: Sequence[Recommendation], old: int | None, new: Recommendation,
              ) -> tuple[Recommendation, ...]:
    """An outdated sample is overwritten (the last one found), else the new one appended."""
    kept = list(recommendations)
    if old is None:
        kept.append(new)
    else:
        kept[old] = new
    return tuple(kept)


def stabilize_legacy(recommendations: Sequence[Recommendation], desired: int, now: datetime,
                     window: timedelta = DOWNSCALE_STABILIZATION) -> tuple[int, tuple[Recommendation, ...]]:
    """stabilizeRecommendation: the highest recommendation within the window."""
    highest = desired
    old: int | None = None
    cutoff = now - window
    for i, rec in enumerate(recommendations):
        if rec.at < cutoff:
            old = i
        elif rec.replicas > highest:
            highest = rec.replicas
    return highest, _remember(recommendations, old, Recommendation(desired, now))


def normalize_legacy(current: int, desired: int, min_replicas: int, max_replicas: int,
                     recommendations: Sequence[Recommendation], now: datetime,
                     window: timedelta = DOWNSCALE_STABILIZATION) -> Normalized:
    """normalizeDesiredReplicas."""
    stabilized, kept = stabilize_legacy(recommendations, desired, now, window)
    able = DOWN_STABILIZED if stabilized != desired else READY
    replicas, reason, message = convert_with_rules(current, stabilized, min_replicas, max_replicas)
    return Normalized(replicas, able, ("False" if replicas == stabilized else "True", reason, message), kept)


# --- with behavior ------------------------------------------------------------------------------------------

def stabilize_with_behavior(recommendations: Sequence[Recommendation], desired: int, current: int,
                            up: Rules, down: Rules, now: datetime,
                            ) -> tuple[int, tuple[str, str], tuple[Recommendation, ...]]:
    """stabilizeRecommendationWithBehaviors: (recommendation, reason/message if it differs, kept)."""
    up_cutoff = now - timedelta(seconds=int(up.get("stabilizationWindowSeconds") or 0))
    down_cutoff = now - timedelta(seconds=int(down.get("stabilizationWindowSeconds") or 0))
    up_rec = down_rec = desired
    old: int | None = None
    for i, rec in enumerate(recommendations):
        if rec.at > up_cutoff:
            up_rec = min(rec.replicas, up_rec)
        if rec.at > down_cutoff:
            down_rec = max(rec.replicas, down_rec)
        if rec.at < up_cutoff and rec.at < down_cutoff:
            old = i
    recommendation = min(max(current, up_rec), down_rec)
    reason = UP_STABILIZED if desired >= current else DOWN_STABILIZED
    return recommendation, reason, _remember(recommendations, old, Recommendation(desired, now))


def changed_within(period_seconds: int, events: Sequence[ScaleEvent], now: datetime) -> int:
    """getReplicasChangePerPeriod."""
    cutoff = now - timedelta(seconds=period_seconds)
    return sum(e.change for e in events if e.at > cutoff)


def _limit(current: int, up_events: Sequence[ScaleEvent], down_events: Sequence[ScaleEvent], rules: Rules,
           now: datetime, scaling_up: bool) -> int:
    """calculateScaleUpLimitWithScalingRules / calculateScaleDownLimitWithBehaviors."""
    policy = rules.get("selectPolicy") or MAX
    if policy == DISABLED:
        return current
    # Up: Max picks the largest proposal, Min the smallest; down the other way round.
    largest = (policy != MIN) == scaling_up
    result = MIN_INT32 if largest else MAX_INT32
    for p in rules.get("policies") or []:
        period = int(p.get("periodSeconds") or 0)
        start = current - changed_within(period, up_events, now) + changed_within(period, down_events, now)
        value = int(p.get("value") or 0)
        if p.get("type") == PODS:
            proposed = start + value if scaling_up else start - value
        elif scaling_up:
            proposed = math.ceil(start * (1 + value / 100))
        else:
            proposed = int(start * (1 - value / 100))
        result = max(result, proposed) if largest else min(result, proposed)
    return result


def convert_with_behavior_rate(current: int, desired: int, min_replicas: int, max_replicas: int,
                               up_events: Sequence[ScaleEvent], down_events: Sequence[ScaleEvent], up: Rules,
                               down: Rules, now: datetime) -> tuple[int, str, str]:
    """convertDesiredReplicasWithBehaviorRate."""
    if desired > current:
        limit = max(_limit(current, up_events, down_events, up, now, scaling_up=True), current)
        maximum, reason = (limit, UP_LIMIT) if max_replicas > limit else (max_replicas, TOO_MANY)
        if desired > maximum:
            return maximum, *reason
    elif desired < current:
        limit = min(_limit(current, up_events, down_events, down, now, scaling_up=False), current)
        minimum, reason = (limit, DOWN_LIMIT) if min_replicas < limit else (min_replicas, TOO_FEW)
        if desired < minimum:
            return minimum, *reason
    return desired, *WITHIN_RANGE


def normalize_with_behavior(current: int, desired: int, min_replicas: int, max_replicas: int,
                            behavior: Mapping[str, Any], recommendations: Sequence[Recommendation],
                            up_events: Sequence[ScaleEvent], down_events: Sequence[ScaleEvent], now: datetime,
                            window: timedelta = DOWNSCALE_STABILIZATION) -> Normalized:
    """normalizeDesiredReplicasWithBehaviors."""
    up, down = scale_up_rules(behavior), scale_down_rules(behavior, window)
    stabilized, reason, kept = stabilize_with_behavior(recommendations, desired, current, up, down, now)
    able = reason if stabilized != desired else READY
    replicas, why, message = convert_with_behavior_rate(current, stabilized, min_replicas, max_replicas, up_events,
                                                        down_events, up, down, now)
    return Normalized(replicas, able, ("False" if replicas == stabilized else "True", why, message), kept)


def longest_period(rules: Rules) -> int:
    return max((int(p.get("periodSeconds") or 0) for p in rules.get("policies") or []), default=0)


def record_scale_event(events: Sequence[ScaleEvent], change: int, rules: Rules, now: datetime,
                       ) -> tuple[ScaleEvent, ...]:
    """storeScaleEvent for one direction: events older than the longest policy period are outdated; the
    last outdated one is overwritten by the new event, else it is appended."""
    cutoff = now - timedelta(seconds=longest_period(rules))
    marked = [ScaleEvent(e.change, e.at, e.outdated or e.at < cutoff) for e in events]
    old = next((i for i in reversed(range(len(marked))) if marked[i].outdated), None)
    new = ScaleEvent(change, now)
    if old is None:
        marked.append(new)
    else:
        marked[old] = new
    return tuple(marked)
