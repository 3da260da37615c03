"""The in-tree plugins, by name (each module follows one upstream plugin)."""

from __future__ import annotations

from collections.abc import Mapping

from operators.scheduler.framework import PluginFactory
from operators.scheduler.plugins.balanced_allocation import NodeResourcesBalancedAllocation
from operators.scheduler.plugins.default_preemption import DefaultPreemption, select_victims
from operators.scheduler.plugins.inter_pod_affinity import InterPodAffinity
from operators.scheduler.plugins.node_affinity import NodeAffinity
from operators.scheduler.plugins.node_name import NodeName
from operators.scheduler.plugins.node_ports import NodePorts
from operators.scheduler.plugins.node_resources_fit import NodeResourcesFit
from operators.scheduler.plugins.node_unschedulable import NodeUnschedulable
from operators.scheduler.plugins.pod_topology_spread import PodTopologySpread
from operators.scheduler.plugins.taint_toleration import TaintToleration

REGISTRY: Mapping[str, PluginFactory] = {
    plugin.name: plugin
    for plugin in (
        NodeUnschedulable,
        NodeName,
        TaintToleration,
        NodeAffinity,
        NodePorts,
        NodeResourcesFit,
        PodTopologySpread,
        InterPodAffinity,
        DefaultPreemption,
        NodeResourcesBalancedAllocation,
    )
}

__all__ = ["REGISTRY", "select_victims"]
