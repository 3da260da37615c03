"""Plugin outcomes (fwk.Status), per-node outcomes (NodeToStatus) and the failure record of a
cycle (Diagnosis)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Code(Enum):
    SUCCESS = "Success"
    ERROR = "Error"
    UNSCHEDULABLE = "Unschedulable"
    # Rejected, and preemption could not change that (e.g. a node selector mismatch).
    UNSCHEDULABLE_AND_UNRESOLVABLE = "UnschedulableAndUnresolvable"
    WAIT = "Wait"
    SKIP = "Skip"
    PENDING = "Pending"


@dataclass
class Status:
    """What a plugin decided. Plugins return None for success.

    `reasons` are the upstream strings that end up counted in the "0/N nodes are available"
    message; `details` carries extra facts for `kubeplane scheduler explain` only (such as which
    taint was not tolerated) and never reaches that message.
    """

    code: Code = Code.SUCCESS
    reasons: list[str] = field(default_factory=list)
    plugin: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def success(cls) -> Status:
        return cls(Code.SUCCESS)

    @classmethod
    def skip(cls) -> Status:
        return cls(Code.SKIP)

    @classmethod
    def error(cls, message: str) -> Status:
        return cls(Code.ERROR, [message])

    @classmethod
    def unschedulable(cls, *reasons: str) -> Status:
        return cls(Code.UNSCHEDULABLE, list(reasons))

    @classmethod
    def unresolvable(cls, *reasons: str) -> Status:
        return cls(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, list(reasons))

    def with_plugin(self, plugin: str) -> Status:
        self.plugin = plugin
        return self

    def is_success(self) -> bool:
        return self.code is Code.SUCCESS

    def is_skip(self) -> bool:
        return self.code is Code.SKIP

    def is_wait(self) -> bool:
        return self.code is Code.WAIT

    def is_rejected(self) -> bool:
        return self.code in (Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE, Code.PENDING)

    def message(self) -> str:
        return ", ".join(self.reasons)

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"code": self.code.value, "reasons": list(self.reasons)}
        if self.plugin:
            result["plugin"] = self.plugin
        if self.details:
            result["details"] = dict(self.details)
        return result


def code_of(status: Status | None) -> Code:
    return Code.SUCCESS if status is None else status.code


def is_success(status: Status | None) -> bool:
    return status is None or status.code is Code.SUCCESS


class NodeToStatus:
    """Statuses of the nodes a pod could not go to; nodes not listed share `absent`
    (UnschedulableAndUnresolvable with no reason, unless PreFilter narrowed or rejected)."""

    def __init__(self, statuses: dict[str, Status] | None = None, absent: Status | None = None) -> None:
        self._statuses: dict[str, Status] = dict(statuses or {})
        self.absent: Status = absent if absent is not None else Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE)

    def get(self, node_name: str) -> Status:
        return self._statuses.get(node_name, self.absent)

    def set(self, node_name: str, status: Status) -> None:
        self._statuses[node_name] = status

    def __len__(self) -> int:
        return len(self._statuses)

    def __contains__(self, node_name: object) -> bool:
        return node_name in self._statuses

    def items(self) -> Iterator[tuple[str, Status]]:
        return iter(list(self._statuses.items()))

    def nodes_with_code(self, all_nodes: Sequence[str], code: Code) -> list[str]:
        """NodesForStatusCode, in the order of `all_nodes` (upstream walks a map when the absent
        status does not match, so its order is random there)."""
        if self.absent.code is code:
            return [name for name in all_nodes if self.get(name).code is code]
        return [name for name in all_nodes if name in self._statuses and self._statuses[name].code is code]


@dataclass
class Diagnosis:
    """Why a pod fits nowhere (framework.Diagnosis)."""

    node_to_status: NodeToStatus = field(default_factory=NodeToStatus)
    unschedulable_plugins: set[str] = field(default_factory=set)
    pending_plugins: set[str] = field(default_factory=set)
    pre_filter_msg: str = ""
    post_filter_msg: str = ""

    def add_plugin_status(self, status: Status) -> None:
        if not status.plugin:
            return
        if status.is_rejected():
            self.unschedulable_plugins.add(status.plugin)
        if status.code is Code.PENDING:
            self.pending_plugins.add(status.plugin)
