"""Small facts about pods and nodes shared by several plugins: priorities, taints and
tolerations (k8s.io/api core/v1 toleration.go, component-helpers scheduling/corev1), host ports
(scheduler util.GetHostPorts) and start times."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from operators.core.timeutil import parse_time

Obj = Mapping[str, Any]

DEFAULT_BIND_ALL_HOST_IP = "0.0.0.0"
LABEL_HOSTNAME = "kubernetes.io/hostname"
LABEL_TOPOLOGY_ZONE = "topology.kubernetes.io/zone"


def spec(obj: Obj) -> Obj:
    result: Obj = obj.get("spec") or {}
    return result


def metadata(obj: Obj) -> Obj:
    result: Obj = obj.get("metadata") or {}
    return result


def name_of(obj: Obj) -> str:
    return str(metadata(obj).get("name") or "")


def namespace_of(obj: Obj) -> str:
    return str(metadata(obj).get("namespace") or "")


def namespaced_name(obj: Obj) -> tuple[str, str]:
    return (namespace_of(obj), name_of(obj))


def labels_of(obj: Obj) -> Mapping[str, str]:
    labels: Mapping[str, str] = metadata(obj).get("labels") or {}
    return labels


def pod_key(pod: Obj) -> str:
    """The scheduler cache keys pods by UID; pods without one (hand-built ones) by namespace/name."""
    uid = metadata(pod).get("uid")
    return str(uid) if uid else f"{namespace_of(pod)}/{name_of(pod)}"


def pod_priority(pod: Obj) -> int:
    """corev1helpers.PodPriority: spec.priority, or 0 when unset."""
    priority = spec(pod).get("priority")
    return int(priority) if priority is not None else 0


def pod_start_time(pod: Obj, now: datetime) -> datetime:
    """util.GetPodStartTime: status.startTime, or now for pods that have not started."""
    started = parse_time((pod.get("status") or {}).get("startTime"))
    return started if started is not None else now


def spec_key(*parts: Any) -> str:
    """A hashable summary of parts of a pod's spec (a node-static plugin's memo key)."""
    return json.dumps(parts, sort_keys=True, separators=(",", ":"))


# Host ports.

HostPort = tuple[str, str, int]  # (hostIP, protocol, hostPort)


def host_ports(pod: Obj) -> list[HostPort]:
    """Ports a pod binds on its node: those of sidecars (restartable init containers) and of
    regular containers, with hostPort > 0."""
    ports: list[HostPort] = []
    pod_spec = spec(pod)
    containers = [c for c in pod_spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    containers += list(pod_spec.get("containers") or [])
    for container in containers:
        for port in container.get("ports") or []:
            host_port = int(port.get("hostPort") or 0)
            if host_port > 0:
                ports.append((port.get("hostIP") or "", port.get("protocol") or "", host_port))
    return ports


class HostPortInfo:
    """fwk.HostPortInfo: used (protocol, port) pairs per host IP; "" means 0.0.0.0 and TCP."""

    __slots__ = ("_by_ip",)

    def __init__(self) -> None:
        self._by_ip: dict[str, set[tuple[str, int]]] = {}

    @staticmethod
    def _sanitize(ip: str, protocol: str) -> tuple[str, str]:
        return ip or DEFAULT_BIND_ALL_HOST_IP, protocol or "TCP"

    def add(self, ip: str, protocol: str, port: int) -> None:
        if port <= 0:
            return
        ip, protocol = self._sanitize(ip, protocol)
        self._by_ip.setdefault(ip, set()).add((protocol, port))

    def remove(self, ip: str, protocol: str, port: int) -> None:
        if port <= 0:
            return
        ip, protocol = self._sanitize(ip, protocol)
        used = self._by_ip.get(ip)
        if used is not None:
            used.discard((protocol, port))
            if not used:
                del self._by_ip[ip]

    def conflicts(self, ip: str, protocol: str, port: int) -> bool:
        """Whether binding (ip, protocol, port) collides: 0.0.0.0 collides with the pair on any IP,
        a specific IP with the same IP or with 0.0.0.0."""
        if port <= 0:
            return False
        ip, protocol = self._sanitize(ip, protocol)
        pair = (protocol, port)
        if ip == DEFAULT_BIND_ALL_HOST_IP:
            return any(pair in used for used in self._by_ip.values())
        return any(pair in self._by_ip.get(key, ()) for key in (DEFAULT_BIND_ALL_HOST_IP, ip))

    def __len__(self) -> int:
        return sum(len(used) for used in self._by_ip.values())

    def as_dict(self) -> dict[str, list[tuple[str, int]]]:
        return {ip: sorted(used) for ip, used in sorted(self._by_ip.items())}

    def clone(self) -> HostPortInfo:
        result = HostPortInfo()
        result._by_ip = {ip: set(used) for ip, used in self._by_ip.items()}
        return result
