"""The kubeplane scheduler on the embedded cluster: binding, filters, failure reporting, and
agreement with kube-scheduler where the choice is determined.

Every test node carries a NoSchedule taint only our test pods tolerate, so other engineers'
pods (scheduled by kube-scheduler) never land on them and skew their resources.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.integration.conftest import BIN, ENV, Operator, apply, kubectl, kubectl_json, wait_for

SCHEDULER = "kubeplane-scheduler"
ISOLATION_TAINT = "kubeplane-test/scheduler"


@pytest.fixture(scope="module")
def scheduler(cluster: Any) -> Iterator[Operator]:
    operator = Operator("scheduler")
    operator.start()
    yield operator
    operator.stop()


@pytest.fixture
def run_id() -> str:
    return uuid.uuid4().hex[:6]


NodeFactory = Callable[..., str]


@pytest.fixture
def make_node(run_id: str) -> Iterator[NodeFactory]:
    """KWOK nodes of our own (KWOK marks them Ready and runs pods bound to them); deleted after."""
    created: list[str] = []

    def make(
        suffix: str, *, labels: dict[str, str] | None = None, taints: list[dict[str, str]] | None = None,
        cpu: str = "4", memory: str = "8Gi",
    ) -> str:
        name = f"sch-{run_id}-{suffix}"
        resources = {"cpu": cpu, "memory": memory, "pods": "110"}
        apply({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {"type": "kwok", "kubernetes.io/hostname": name, "kubeplane-test/run": run_id,
                           **(labels or {})},
            },
            "spec": {"taints": [{"key": ISOLATION_TAINT, "value": run_id, "effect": "NoSchedule"},
                                *(taints or [])]},
            "status": {"allocatable": resources, "capacity": resources},
        })
        created.append(name)
        wait_for(lambda: _ready(name), timeout=30, what=f"node {name} Ready")
        return name

    yield make
    if created:
        kubectl("delete", "node", *created, "--wait=false", check=False)


def _ready(node: str) -> bool:
    conditions = kubectl_json("get", "node", node).get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pod(
    name: str, run_id: str, *, scheduler_name: str = SCHEDULER, cpu: str = "100m", memory: str = "64Mi",
    node_selector: dict[str, str] | None = None, tolerations: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "schedulerName": scheduler_name,
        "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                        "resources": {"requests": {"cpu": cpu, "memory": memory}}}],
        "tolerations": [{"key": ISOLATION_TAINT, "operator": "Equal", "value": run_id, "effect": "NoSchedule"},
                        *(tolerations or [])],
    }
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def get_pod(namespace: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = kubectl_json("get", "pod", name, "-n", namespace)
    return result


def bound_node(namespace: str, name: str, timeout: float = 30) -> str:
    node: str = wait_for(lambda: get_pod(namespace, name)["spec"].get("nodeName"), timeout=timeout,
                         what=f"pod {name} bound")
    return node


def pod_scheduled_condition(namespace: str, name: str) -> dict[str, Any] | None:
    conditions = get_pod(namespace, name).get("status", {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == "PodScheduled"), None)


def unschedulable(namespace: str, name: str, timeout: float = 30) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        condition = pod_scheduled_condition(namespace, name)
        if condition and condition.get("status") == "False" and condition.get("reason") == "Unschedulable":
            return condition
        return None

    condition: dict[str, Any] = wait_for(check, timeout=timeout, what=f"pod {name} Unschedulable")
    return condition


def events_for(namespace: str, name: str, reason: str) -> list[dict[str, Any]]:
    items = kubectl_json("get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}")["items"]
    return [e for e in items if e.get("reason") == reason]


def test_pod_is_bound_and_runs(scheduler: Operator, namespace: str, run_id: str, make_node: NodeFactory) -> None:
    node = make_node("a")
    apply(pod("web", run_id, node_selector={"kubernetes.io/hostname": node}), namespace)
    assert bound_node(namespace, "web") == node
    wait_for(lambda: get_pod(namespace, "web").get("status", {}).get("phase") == "Running", timeout=30,
             what="pod Running")
    scheduled = wait_for(lambda: events_for(namespace, "web", "Scheduled"), timeout=15, what="Scheduled event")
    assert scheduled[0]["message"] == f"Successfully assigned {namespace}/web to {node}"
    assert scheduled[0]["reportingComponent"] == SCHEDULER


def test_any_node_without_constraints(scheduler: Operator, namespace: str, run_id: str) -> None:
    """No selector: some existing (untainted) node takes it."""
    body = pod("free", run_id)
    body["spec"]["tolerations"] = []
    apply(body, namespace)
    node = bound_node(namespace, "free")
    assert not (kubectl_json("get", "node", node)["spec"].get("taints") or [])


def test_node_selector_pins_pod(scheduler: Operator, namespace: str, run_id: str, make_node: NodeFactory) -> None:
    make_node("plain")
    labelled = make_node("labelled", labels={"kubeplane-test/disk": "ssd"})
    for i in range(3):
        apply(pod(f"ssd-{i}", run_id, node_selector={"kubeplane-test/disk": "ssd", "kubeplane-test/run": run_id}),
              namespace)
    for i in range(3):
        assert bound_node(namespace, f"ssd-{i}") == labelled


def test_untolerated_taint_keeps_pod_off(
    scheduler: Operator, namespace: str, run_id: str, make_node: NodeFactory
) -> None:
    taint = {"key": "kubeplane-test/dedicated", "value": "gpu", "effect": "NoSchedule"}
    make_node("tainted", taints=[taint])
    selector = {"kubeplane-test/run": run_id}
    apply(pod("intolerant", run_id, node_selector=selector), namespace)
    condition = unschedulable(namespace, "intolerant")
    assert re.match(r"^0/\d+ nodes are available: ", condition["message"])
    assert "1 node(s) had untolerated taint(s)" in condition["message"]
    assert "didn't match Pod's node affinity/selector" in condition["message"]
    assert not get_pod(namespace, "intolerant")["spec"].get("nodeName")
    # The same pod tolerating the taint goes there.
    tolerant = pod("tolerant", run_id, node_selector=selector,
                   tolerations=[{"key": "kubeplane-test/dedicated", "operator": "Exists"}])
    apply(tolerant, namespace)
    assert bound_node(namespace, "tolerant").endswith("-tainted")
    assert not get_pod(namespace, "intolerant")["spec"].get("nodeName")


def test_too_large_request_is_reported(scheduler: Operator, namespace: str, run_id: str) -> None:
    apply(pod("huge", run_id, cpu="100000"), namespace)
    condition = unschedulable(namespace, "huge")
    message = condition["message"]
    assert re.match(r"^0/\d+ nodes are available: .*\d+ Insufficient cpu", message), message
    events = wait_for(lambda: events_for(namespace, "huge", "FailedScheduling"), timeout=15,
                      what="FailedScheduling event")
    assert events[0]["type"] == "Warning"
    assert events[0]["reportingComponent"] == SCHEDULER
    assert events[0]["message"] == message
    assert not get_pod(namespace, "huge")["spec"].get("nodeName")


def test_unschedulable_pod_retried_when_node_changes(
    scheduler: Operator, namespace: str, run_id: str, make_node: NodeFactory
) -> None:
    node = make_node("later")
    apply(pod("waiting", run_id, node_selector={"kubeplane-test/role": f"late-{run_id}"}), namespace)
    unschedulable(namespace, "waiting")
    kubectl("label", "node", node, f"kubeplane-test/role=late-{run_id}")
    assert bound_node(namespace, "waiting", timeout=20) == node


def test_assumed_pods_prevent_overcommit(
    scheduler: Operator, namespace: str, run_id: str, make_node: NodeFactory
) -> None:
    """Four pods of 1.5 cpu on two 4-cpu nodes created at once: two per node, none overcommitted."""
    make_node("x")
    make_node("y")
    selector = {"kubeplane-test/run": run_id}
    apply({"apiVersion": "v1", "kind": "List",
           "items": [pod(f"half-{i}", run_id, cpu="1500m", node_selector=selector) for i in range(5)]}, namespace)
    placed = wait_for(lambda: _placed(namespace, 5, 4), timeout=30, what="four of five pods bound")
    assert sorted(placed.values()) == sorted([f"sch-{run_id}-x"] * 2 + [f"sch-{run_id}-y"] * 2)
    pending = [n for n in (f"half-{i}" for i in range(5)) if n not in placed]
    assert len(pending) == 1
    assert "2 Insufficient cpu" in unschedulable(namespace, pending[0])["message"]


def _placed(namespace: str, total: int, expected: int) -> dict[str, str] | None:
    items = kubectl_json("get", "pods", "-n", namespace)["items"]
    placed = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in items if p["spec"].get("nodeName")}
    return placed if len(placed) >= expected else None


def test_agrees_with_kube_scheduler(scheduler: Operator, namespace: str, run_id: str, make_node: NodeFactory) -> None:
    """Differential: identical pods, one per scheduler, land on the same node where the choice is
    determined: a selector matching one node, and LeastAllocated between a small and a big node."""
    pinned = make_node("pin", labels={"kubeplane-test/pin": run_id})
    make_node("small", cpu="4", labels={"kubeplane-test/pool": run_id})
    big = make_node("big", cpu="64", labels={"kubeplane-test/pool": run_id})
    cases = {
        "pin": ({"kubeplane-test/pin": run_id}, pinned),
        "pool": ({"kubeplane-test/pool": run_id}, big),
    }
    for case, (selector, _) in cases.items():
        apply(pod(f"{case}-default", run_id, scheduler_name="default-scheduler", cpu="1", node_selector=selector),
              namespace)
        apply(pod(f"{case}-ours", run_id, cpu="1", node_selector=selector), namespace)
    for case, (_, expected) in cases.items():
        theirs = bound_node(namespace, f"{case}-default")
        ours = bound_node(namespace, f"{case}-ours")
        assert theirs == ours == expected, (case, theirs, ours)


def test_infeasible_for_both_schedulers(scheduler: Operator, namespace: str, run_id: str) -> None:
    """Differential on feasibility: both leave an impossible pod pending with the same message."""
    apply(pod("nowhere-default", run_id, scheduler_name="default-scheduler",
              node_selector={"kubeplane-test/none": run_id}), namespace)
    apply(pod("nowhere-ours", run_id, node_selector={"kubeplane-test/none": run_id}), namespace)
    theirs = unschedulable(namespace, "nowhere-default")["message"]
    ours = unschedulable(namespace, "nowhere-ours")["message"]
    # Node counts may differ by a node another test is adding or removing meanwhile. Only the
    # filter part is compared: this cluster's kube-scheduler runs the DynamicResources PostFilter,
    # which puts "no new claims to deallocate, " before preemption's part; the core has no DRA.
    def filters(message: str) -> str:
        return re.sub(r"\d+", "N", message.split(". ")[0])

    assert filters(ours) == filters(theirs), (ours, theirs)
    assert "preemption: " in ours


def _lease(name: str) -> dict[str, Any]:
    result = kubectl("get", "lease", name, "-n", "kubeplane-system", "-o", "json", check=False)
    return {} if result.returncode else dict(json.loads(result.stdout).get("spec") or {})


def test_one_leader_binds_and_a_standby_takes_over(namespace: str, run_id: str, make_node: NodeFactory) -> None:
    """Two replicas of a scheduler share one Lease: only the holder binds; when it is SIGKILLed the
    standby takes over once the Lease expires, and when the leader stops cleanly it releases the Lease
    so the standby leads at once."""
    name = f"ha-{run_id}"  # a scheduler name of our own: its own Lease, its own pods
    node = make_node("ha")
    env = {"KUBEPLANE_SCHEDULER_NAME": name, "KUBEPLANE_LEADER_LEASE_SECONDS": "15"}  # kube-scheduler's
    first, second = Operator("scheduler", env=env, log_name=f"{name}-a"), Operator("scheduler", env=env,
                                                                                     log_name=f"{name}-b")
    try:
        first.start()
        first.wait_live()
        holder = wait_for(lambda: _lease(name).get("holderIdentity"), timeout=30, what="a leader in the Lease")
        second.start()
        second.wait_live()
        apply(pod("p1", run_id, scheduler_name=name, node_selector={"kubernetes.io/hostname": node}), namespace)
        assert bound_node(namespace, "p1") == node
        assert _lease(name)["holderIdentity"] == holder, "the standby must not have taken the Lease"
        transitions = _lease(name).get("leaseTransitions", 0)

        first.kill()  # SIGKILL: no release; the standby waits out the 15 s lease
        killed_at = time.monotonic()
        apply(pod("p2", run_id, scheduler_name=name, node_selector={"kubernetes.io/hostname": node}), namespace)
        assert bound_node(namespace, "p2", timeout=45) == node
        took_over_after = time.monotonic() - killed_at
        lease = _lease(name)
        assert lease["holderIdentity"] != holder
        assert lease["leaseTransitions"] == transitions + 1
        assert took_over_after >= 10, f"took over after {took_over_after:.1f}s: before the Lease could expire"

        # A clean stop releases the Lease: a new standby leads without waiting for expiry.
        first = Operator("scheduler", env=env, log_name=f"{name}-c")
        first.start()
        first.wait_live()
        second.stop()
        stopped_at = time.monotonic()
        apply(pod("p3", run_id, scheduler_name=name, node_selector={"kubernetes.io/hostname": node}), namespace)
        assert bound_node(namespace, "p3", timeout=30) == node
        assert time.monotonic() - stopped_at < 12, "a released Lease is taken without waiting for expiry"
    finally:
        first.stop()
        second.stop()
        kubectl("delete", "lease", name, "-n", "kubeplane-system", "--ignore-not-found", check=False)


# --- gang scheduling: PodGroups ---------------------------------------------------------------

POD_GROUP_LABEL = "scheduling.kubeplane.dev/pod-group"


def pod_group(name: str, min_member: int, *, timeout: int = 5,
              min_resources: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"minMember": min_member, "scheduleTimeoutSeconds": timeout}
    if min_resources:
        spec["minResources"] = min_resources
    return {"apiVersion": "scheduling.kubeplane.dev/v1alpha1", "kind": "PodGroup", "metadata": {"name": name},
            "spec": spec}


def gang_members(group: str, run_id: str, count: int, *, cpu: str = "100m", first: int = 0) -> dict[str, Any]:
    items = []
    for i in range(first, first + count):
        body = pod(f"{group}-{i}", run_id, cpu=cpu, node_selector={"kubeplane-test/run": run_id})
        body["metadata"]["labels"] = {POD_GROUP_LABEL: group}
        items.append(body)
    return {"apiVersion": "v1", "kind": "List", "items": items}


def group_status(namespace: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = kubectl_json("get", "podgroup", name, "-n", namespace).get("status") or {}
    return status


def nodes_of(namespace: str, names: list[str]) -> dict[str, str]:
    return {n: get_pod(namespace, n)["spec"].get("nodeName") or "" for n in names}


def assert_none_bound_for(namespace: str, names: list[str], seconds: float) -> None:
    """Not one member gets a node during the whole time (all or nothing), checked repeatedly."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        bound = {n: node for n, node in nodes_of(namespace, names).items() if node}
        assert not bound, f"members bound before the group was complete: {bound}"
        time.sleep(0.5)


def test_pod_group_binds_all_members_together(
    scheduler: Operator, namespace: str, run_id: str, make_node: NodeFactory
) -> None:
    node = make_node("gang")
    apply(pod_group("trio", 3, timeout=30), namespace)
    apply(gang_members("trio", run_id, 3, cpu="1"), namespace)
    for i in range(3):
        assert bound_node(namespace, f"trio-{i}") == node
    status = wait_for(lambda: (s := group_status(namespace, "trio")).get("scheduled") == 3
                      and s.get("phase") in ("Scheduled", "Running") and s, timeout=30,
                      what="PodGroup scheduled 3")
    assert status["phase"] in ("Scheduled", "Running")
    wait_for(lambda: group_status(namespace, "trio").get("phase") == "Running", timeout=30,
             what="PodGroup Running")
    assert group_status(namespace, "trio")["running"] == 3


def test_pod_group_without_room_binds_none_then_all_when_room_appears(
    scheduler: Operator, namespace: str, run_id: str, make_node: NodeFactory
) -> None:
    """Room for two of three: none binds, the reservations time out and the group says why; a second
    node brings room for all three, and all three bind."""
    make_node("gang-a", cpu="2")
    apply(pod_group("trio", 3, timeout=5), namespace)
    names = [f"trio-{i}" for i in range(3)]
    apply(gang_members("trio", run_id, 3, cpu="900m"), namespace)
    assert_none_bound_for(namespace, names, 7)  # past the 5 s timeout
    status = wait_for(lambda: (s := group_status(namespace, "trio")).get("phase") == "Unschedulable" and s,
                      timeout=30, what="PodGroup Unschedulable")
    assert 'pod group "trio"' in status["message"] and "minMember 3" in status["message"], status
    assert "reservations released" in status["message"], status
    assert status.get("scheduled", 0) == 0

    def named_group() -> list[str]:
        return [n for n in names
                if any('pod group "trio"' in e["message"] for e in events_for(namespace, n, "FailedScheduling"))]

    waited = wait_for(lambda: len(named_group()) >= 2 and named_group(), timeout=30,
                      what="FailedScheduling events naming the group")
    assert len(waited) >= 2
    assert_none_bound_for(namespace, names, 2)

    make_node("gang-b", cpu="2")
    placed = {n: bound_node(namespace, n, timeout=45) for n in names}
    assert set(placed.values()) == {f"sch-{run_id}-gang-a", f"sch-{run_id}-gang-b"}, placed
    status = wait_for(lambda: (s := group_status(namespace, "trio")).get("scheduled") == 3
                      and s.get("phase") in ("Scheduled", "Running") and s, timeout=30, what="PodGroup Scheduled")
    assert not status.get("message"), status


def test_pod_group_with_too_few_members_binds_none(
    scheduler: Operator, namespace: str, run_id: str, make_node: NodeFactory
) -> None:
    make_node("gang")
    apply(pod_group("trio", 3, timeout=5), namespace)
    names = ["trio-0", "trio-1"]
    apply(gang_members("trio", run_id, 2), namespace)
    expected = 'pod group "trio" has 2 pods, fewer than minMember 3'
    for name in names:
        # The first member may be tried before the second exists ("has 1 pods"); the second's arrival
        # retries it.
        wait_for(lambda n=name: (pod_scheduled_condition(namespace, n) or {}).get("message") == expected,
                 timeout=30, what=f"{name}: {expected}")
        assert unschedulable(namespace, name)["message"] == expected
    status = wait_for(lambda: (s := group_status(namespace, "trio")).get("phase") == "Unschedulable" and s,
                      timeout=30, what="PodGroup Unschedulable")
    assert "fewer than minMember 3" in status["message"], status
    assert_none_bound_for(namespace, names, 3)
    # The third member completes the group: all three bind.
    apply(gang_members("trio", run_id, 1, first=2), namespace)
    for name in [*names, "trio-2"]:
        bound_node(namespace, name, timeout=30)
    wait_for(lambda: group_status(namespace, "trio").get("scheduled") == 3, timeout=30, what="scheduled 3")


def test_pod_group_missing_or_invalid(scheduler: Operator, namespace: str, run_id: str) -> None:
    apply(gang_members("ghost", run_id, 1), namespace)
    assert unschedulable(namespace, "ghost-0")["message"] == 'pod group "ghost" not found'
    # The CRD's validation: minMember at least 1; the timeout defaults to 60 s.
    rejected = apply(pod_group("zero", 0), namespace, check=False)
    assert rejected.returncode != 0 and "minMember" in rejected.stderr, rejected.stderr
    defaults = pod_group("dflt", 2)
    del defaults["spec"]["scheduleTimeoutSeconds"]
    apply(defaults, namespace)
    assert kubectl_json("get", "pg", "dflt", "-n", namespace)["spec"]["scheduleTimeoutSeconds"] == 60


def _accepted(name: str) -> dict[str, Any] | None:
    result = kubectl("get", "schedulerprofiles.scheduling.kubeplane.dev", name, "-o", "json", check=False)
    if result.returncode:
        return None
    conditions = json.loads(result.stdout).get("status", {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == "Accepted"), None)


def test_scheduler_profile_applies_without_restart_and_reverts(
    scheduler: Operator, namespace: str, run_id: str, make_node: NodeFactory
) -> None:
    """A SchedulerProfile switching NodeResourcesFit to MostAllocated packs the next pod onto the fuller
    node at once; a second profile for the same scheduler is shadowed; deleting the profile spreads again."""
    full, empty = make_node("full"), make_node("empty")
    selector = {"kubeplane-test/run": run_id}
    apply(pod("base", run_id, cpu="2", node_selector={"kubernetes.io/hostname": full}), namespace)
    assert bound_node(namespace, "base") == full
    apply(pod("spread-1", run_id, cpu="500m", node_selector=selector), namespace)
    assert bound_node(namespace, "spread-1") == empty, "the default profile (LeastAllocated) spreads"

    name, newer = f"pack-{run_id}", f"pack-{run_id}-newer"
    profile = {
        "apiVersion": "scheduling.kubeplane.dev/v1alpha1", "kind": "SchedulerProfile", "metadata": {"name": name},
        "spec": {"schedulerName": SCHEDULER, "scoringStrategy": {"type": "MostAllocated"},
                 "plugins": {"score": {"disabled": [{"name": "NodeResourcesBalancedAllocation"}],
                                       "enabled": [{"name": "NodeResourcesFit", "weight": 5}]}}},
    }
    try:
        wrong = {**profile["spec"], "scoringStrategy": {"type": "RequestedToCapacityRatio"}}
        rejected = apply({**profile, "spec": wrong}, check=False)
        assert rejected.returncode != 0 and "requestedToCapacityRatio is required" in rejected.stderr
        apply(profile)
        accepted = wait_for(lambda: (_accepted(name) or {}).get("status") == "True" and _accepted(name), timeout=20,
                            what="the profile Accepted")
        assert accepted["reason"] == "Applied"
        apply(pod("packed", run_id, cpu="500m", node_selector=selector), namespace)
        assert bound_node(namespace, "packed") == full, "MostAllocated packs onto the fuller node"

        time.sleep(1.1)  # creationTimestamp has second precision: make the second one strictly newer
        apply({**profile, "metadata": {"name": newer}})
        shadowed = wait_for(lambda: _accepted(newer), timeout=20, what="the newer profile's verdict")
        assert (shadowed["status"], shadowed["reason"]) == ("False", "Shadowed")
        assert name in shadowed["message"]
    finally:
        kubectl("delete", "schedulerprofiles.scheduling.kubeplane.dev", name, newer, "--ignore-not-found", check=False)
    # The newer one is gone too: back to the default profile, which spreads again.
    time.sleep(2)
    apply(pod("spread-2", run_id, cpu="500m", node_selector=selector), namespace)
    assert bound_node(namespace, "spread-2") == empty


@pytest.fixture
def priority_classes(run_id: str) -> Iterator[tuple[str, str, str]]:
    """Low, high, and high that never preempts (the admission plugin copies preemptionPolicy from it)."""
    low, high, never = f"low-{run_id}", f"high-{run_id}", f"high-never-{run_id}"
    for name, value, policy in ((low, 10, "PreemptLowerPriority"), (high, 1000, "PreemptLowerPriority"),
                                (never, 1000, "Never")):
        apply({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
               "value": value, "preemptionPolicy": policy})
    yield low, high, never
    kubectl("delete", "priorityclass", low, high, never, "--ignore-not-found", check=False)


def test_preemption_evicts_lower_priority_and_binds(
    scheduler: Operator, namespace: str, run_id: str, make_node: NodeFactory,
    priority_classes: tuple[str, str, str],
) -> None:
    """A full 4-cpu node: a high-priority pod evicts one low-priority pod (upstream's minimal victim set),
    is nominated to the node, and binds there once the victim is gone; a high-priority pod with
    preemptionPolicy Never evicts nothing and waits."""
    low, high, never = priority_classes
    node = make_node("full", cpu="4")
    on_node = {"kubernetes.io/hostname": node}
    for i in range(2):
        body = pod(f"low-{i}", run_id, cpu="2", node_selector=on_node)
        body["spec"]["priorityClassName"] = low
        apply(body, namespace)
        assert bound_node(namespace, f"low-{i}") == node

    patient = pod("patient", run_id, cpu="2", node_selector=on_node)
    patient["spec"]["priorityClassName"] = never
    apply(patient, namespace)
    assert "Insufficient cpu" in unschedulable(namespace, "patient")["message"]
    time.sleep(2)
    assert {p["metadata"]["name"] for p in kubectl_json("get", "pods", "-n", namespace)["items"]} >= {"low-0", "low-1"}
    kubectl("delete", "pod", "patient", "-n", namespace)

    urgent = pod("urgent", run_id, cpu="2", node_selector=on_node)
    urgent["spec"]["priorityClassName"] = high
    apply(urgent, namespace)
    nominated = wait_for(lambda: get_pod(namespace, "urgent").get("status", {}).get("nominatedNodeName")
                         or get_pod(namespace, "urgent")["spec"].get("nodeName"), timeout=30, what="urgent nominated")
    assert nominated == node
    assert bound_node(namespace, "urgent", timeout=60) == node
    remaining = [p for p in kubectl_json("get", "pods", "-n", namespace)["items"]
                 if p["metadata"]["name"].startswith("low-") and not p["metadata"].get("deletionTimestamp")]
    assert len(remaining) == 1, "exactly one victim: the fewest that make room"
    uid = get_pod(namespace, "urgent")["metadata"]["uid"]
    preempted = wait_for(lambda: [e for e in kubectl_json("get", "events", "-n", namespace)["items"]
                                  if e.get("reason") == "Preempted"], timeout=15, what="a Preempted event")
    assert preempted[0]["message"] == f"Preempted by pod {uid} on node {node}", preempted


def test_restart_mid_burst_loses_no_pod_and_overcommits_no_node(
    scheduler: Operator, namespace: str, run_id: str, make_node: NodeFactory
) -> None:
    """SIGKILL the scheduler while a burst is being placed (some pods assumed in memory, their bindings
    in flight): after a restart every pod is bound exactly once and no node holds more than it has."""
    nodes = [make_node(s, cpu="4") for s in ("r1", "r2")]
    selector = {"kubeplane-test/run": run_id}
    count = 200  # 200 x 40m = the 8 cpu of both nodes: every pod fits, with no room for a double booking
    burst = {"apiVersion": "v1", "kind": "List",
             "items": [pod(f"burst-{i}", run_id, cpu="40m", node_selector=selector) for i in range(count)]}

    def scheduled() -> int:
        # The scheduler's own counter, read in milliseconds (a kubectl listing of 200 pods takes longer than
        # the whole burst may): kill as soon as its first decisions are made.
        with urllib.request.urlopen(f"http://127.0.0.1:{scheduler.metrics_port}/metrics", timeout=2) as answer:
            text = answer.read().decode()
        found = re.search(r'^kubeplane_scheduler_attempts_total\{result="scheduled"\} (\S+)$', text, re.M)
        return int(float(found.group(1))) if found else 0
    baseline = scheduled()
    # kubectl creates the pods one by one while the scheduler already places them: kill at its first decision.
    creating = subprocess.Popen([str(BIN / "kubectl"), "apply", "-n", namespace, "-f", "-"], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, env=ENV, text=True)
    assert creating.stdin is not None
    creating.stdin.write(json.dumps(burst))
    creating.stdin.close()
    wait_for(lambda: scheduled() > baseline, timeout=30, interval=0.005, what="the first decisions")
    scheduler.kill()
    assert creating.wait(timeout=120) == 0
    bound_at_kill = sum(1 for p in kubectl_json("get", "pods", "-n", namespace)["items"] if p["spec"].get("nodeName"))
    assert bound_at_kill < count, "the kill must land mid-burst"
    scheduler.start()
    scheduler.wait_live()

    placed = wait_for(lambda: _placed(namespace, count, count), timeout=90, what="every pod bound after the restart")
    assert set(placed.values()) <= set(nodes)
    for node in nodes:
        on_node = sum(1 for n in placed.values() if n == node)
        assert on_node * 40 <= 4000, f"{node} overcommitted: {on_node} pods of 40m"
