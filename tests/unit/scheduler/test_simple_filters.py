"""NodeUnschedulable, NodeName and NodePorts, with the cases of their upstream tests."""

import pytest

from operators.scheduler.helpers import HostPortInfo
from operators.scheduler.snapshot import Snapshot
from operators.scheduler.status import Code
from tests.unit.scheduler.builders import container, filter_statuses, node, pod, toleration

# NodeUnschedulable (TestNodeUnschedulable).


@pytest.mark.parametrize(
    ("unschedulable", "tolerations", "fits"),
    [
        (True, None, False),
        (False, None, True),
        (True, [toleration("node.kubernetes.io/unschedulable", operator="Exists", effect="NoSchedule")], True),
        (True, [toleration("node.kubernetes.io/unschedulable", operator="Exists")], True),  # any effect
        (True, [toleration(operator="Exists")], True),  # tolerates everything
        (True, [toleration("node.kubernetes.io/unschedulable", operator="Exists", effect="NoExecute")], False),
        (True, [toleration("node.kubernetes.io/unschedulable", "x", "NoSchedule")], False),  # Equal "" != "x"
    ],
)
def test_node_unschedulable(unschedulable, tolerations, fits):
    snapshot = Snapshot.build([node("n", unschedulable=unschedulable)])
    _, statuses = filter_statuses("NodeUnschedulable", pod(tolerations=tolerations), snapshot)
    status = statuses["n"]
    if fits:
        assert status is None
    else:
        assert status is not None
        assert (status.code, status.reasons) == (Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ["node(s) were unschedulable"])


# NodeName (TestNodeName).


@pytest.mark.parametrize(("wanted", "fits"), [(None, True), ("foo", True), ("bar", False)])
def test_node_name(wanted, fits):
    snapshot = Snapshot.build([node("foo")])
    _, statuses = filter_statuses("NodeName", pod(node_name=wanted), snapshot)
    if fits:
        assert statuses["foo"] is None
    else:
        status = statuses["foo"]
        assert status is not None
        assert (status.code, status.reasons) == (
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
            ["node(s) didn't match the requested node name"],
        )


# NodePorts (TestNodePorts).

PORT_CASES = [
    ((), (), None),
    (("UDP/127.0.0.1/8080",), ("UDP/127.0.0.1/9090",), True),
    (("UDP/127.0.0.1/8080",), ("UDP/127.0.0.1/8080",), False),
    (("TCP/127.0.0.1/8080",), ("TCP/127.0.0.1/8080",), False),
    (("TCP/127.0.0.1/8080",), ("TCP/127.0.0.2/8080",), True),
    (("UDP/127.0.0.1/8080",), ("TCP/127.0.0.1/8080",), True),
    (("UDP/127.0.0.1/8000", "UDP/127.0.0.1/8080"), ("UDP/127.0.0.1/8080",), False),
    (("TCP/127.0.0.1/8001", "UDP/127.0.0.1/8080"), ("TCP/127.0.0.1/8001", "UDP/127.0.0.1/8081"), False),
    (("TCP/0.0.0.0/8001",), ("TCP/127.0.0.1/8001",), False),
    (("TCP/10.0.10.10/8001", "TCP/0.0.0.0/8001"), ("TCP/127.0.0.1/8001",), False),
    (("TCP/127.0.0.1/8001",), ("TCP/0.0.0.0/8001",), False),
    (("UDP/127.0.0.1/8001",), ("TCP/0.0.0.0/8001",), True),
    (("UDP/127.0.0.1/8001",), ("TCP/0.0.0.0/8001", "UDP/0.0.0.0/8001"), False),
    # Empty host IP means 0.0.0.0, empty protocol TCP.
    (("//8001",), ("TCP/127.0.0.1/8001",), False),
    (("TCP/127.0.0.1/8001",), ("//8001",), False),
]


@pytest.mark.parametrize(("wanted", "used", "fits"), PORT_CASES)
def test_node_ports(wanted, used, fits):
    snapshot = Snapshot.build([node("n")], [pod("m1", node_name="n", host_ports=used)] if used else [])
    pre, statuses = filter_statuses("NodePorts", pod(host_ports=wanted), snapshot)
    if fits is None:
        assert pre is not None and pre.code is Code.SKIP
        return
    status = statuses["n"]
    if fits:
        assert status is None
    else:
        assert status is not None
        assert (status.code, status.reasons) == (
            Code.UNSCHEDULABLE,
            ["node(s) didn't have free ports for the requested pod ports"],
        )


def _init_port_pod(sidecar):
    p = pod()
    extra = {"restartPolicy": "Always"} if sidecar else {}
    p["spec"]["initContainers"] = [
        container("init", None, ports=[{"containerPort": 8001, "hostPort": 8001, "protocol": "TCP"}], **extra)
    ]
    return p


def test_node_ports_only_count_sidecar_init_containers():
    snapshot = Snapshot.build([node("n")], [pod("m1", node_name="n", host_ports=["TCP/0.0.0.0/8001"])])
    pre, _ = filter_statuses("NodePorts", _init_port_pod(sidecar=False), snapshot)
    assert pre is not None and pre.code is Code.SKIP
    _, statuses = filter_statuses("NodePorts", _init_port_pod(sidecar=True), snapshot)
    assert statuses["n"] is not None and statuses["n"].code is Code.UNSCHEDULABLE


def test_host_port_info_remove_and_len():
    ports = HostPortInfo()
    ports.add("", "", 80)
    ports.add("10.0.0.1", "UDP", 53)
    ports.add("10.0.0.1", "UDP", 0)  # ignored
    assert len(ports) == 2
    assert ports.as_dict() == {"0.0.0.0": [("TCP", 80)], "10.0.0.1": [("UDP", 53)]}
    assert ports.conflicts("10.0.0.2", "TCP", 80)
    ports.remove("0.0.0.0", "TCP", 80)
    assert not ports.conflicts("10.0.0.2", "TCP", 80)
    assert ports.conflicts("0.0.0.0", "UDP", 53)
    assert not ports.conflicts("0.0.0.0", "UDP", 0)
