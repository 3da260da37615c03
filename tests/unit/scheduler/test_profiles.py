"""SchedulerProfile objects to framework Profiles, and which object a scheduler runs with."""

from __future__ import annotations

from typing import Any

import pytest

from operators.scheduler.framework import (
    MOST_ALLOCATED,
    NODE_PORTS,
    NODE_RESOURCES_BALANCED_ALLOCATION,
    NODE_RESOURCES_FIT,
    SCORE,
    TAINT_TOLERATION,
    ResourceSpec,
    default_profile,
)
from operators.scheduler.plugins import REGISTRY
from operators.scheduler.profiles import choose, to_profile


def test_empty_spec_is_the_default_profile_under_its_scheduler_name() -> None:
    profile = to_profile({"schedulerName": "batch"}, REGISTRY)
    default = default_profile()
    assert profile.scheduler_name == "batch"
    assert (profile.plugins, dict(profile.weights), profile.scoring_strategy) == (
        default.plugins, dict(default.weights), default.scoring_strategy)
    assert profile.percentage_of_nodes_to_score is None


def test_disabled_weights_strategy_and_percentage() -> None:
    profile = to_profile({
        "schedulerName": "batch",
        "percentageOfNodesToScore": 30,
        "plugins": {"disabled": [{"name": NODE_PORTS}],
                    "score": {"disabled": [{"name": NODE_RESOURCES_BALANCED_ALLOCATION}],
                              "enabled": [{"name": NODE_RESOURCES_FIT, "weight": 5}]}},
        "scoringStrategy": {"type": MOST_ALLOCATED, "resources": [{"name": "cpu", "weight": 3}]},
    }, REGISTRY)
    assert NODE_PORTS not in profile.plugins
    assert profile.disabled[SCORE] == frozenset({NODE_RESOURCES_BALANCED_ALLOCATION})
    assert profile.weight(NODE_RESOURCES_FIT) == 5
    assert profile.weight(TAINT_TOLERATION) == 3, "weights not named keep their default"
    assert profile.scoring_strategy.type == MOST_ALLOCATED
    assert profile.scoring_strategy.resources == (ResourceSpec("cpu", 3),)
    assert profile.percentage_of_nodes_to_score == 30


def test_requested_to_capacity_ratio_shape() -> None:
    profile = to_profile({"schedulerName": "s", "scoringStrategy": {
        "type": "RequestedToCapacityRatio",
        "requestedToCapacityRatio": {"shape": [{"utilization": 0, "score": 10}, {"utilization": 100, "score": 0}]},
    }}, REGISTRY)
    assert profile.scoring_strategy.shape == ((0, 10), (100, 0))
    with pytest.raises(ValueError, match=r"needs requestedToCapacityRatio\.shape"):
        to_profile({"schedulerName": "s", "scoringStrategy": {"type": "RequestedToCapacityRatio"}}, REGISTRY)


def test_unknown_plugins_are_named() -> None:
    with pytest.raises(ValueError, match=r"unknown plugin\(s\) Coscheduling; this scheduler has DefaultPreemption"):
        to_profile({"schedulerName": "s", "plugins": {"disabled": [{"name": "Coscheduling"}]}}, REGISTRY)


def _obj(name: str, scheduler: str, created: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "creationTimestamp": created}, "spec": {"schedulerName": scheduler}}


def test_the_oldest_profile_for_the_scheduler_wins() -> None:
    objects = [_obj("new", "kubeplane-scheduler", "2026-11-22T02:00:00Z"),
               _obj("other", "batch", "2026-11-20T00:00:00Z"),
               _obj("old", "kubeplane-scheduler", "2026-11-21T00:00:00Z")]
    choice = choose(objects, "kubeplane-scheduler")
    assert choice.chosen is not None and choice.chosen["metadata"]["name"] == "old"
    assert [o["metadata"]["name"] for o in choice.shadowed] == ["new"]
    assert choose(objects, "nobody").chosen is None
