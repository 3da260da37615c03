import pytest

from operators.scheduler.snapshot import NodeInfo, PodInfo, Snapshot
from tests.unit.scheduler.builders import node, pod, pod_affinity, selector_in, term


def test_node_info_sums_requests_and_non_zero_requests():
    info = NodeInfo.of(node("n", capacity={"cpu": "4", "memory": "8Gi"}))
    info.add_pod(pod("a", requests=[{"cpu": "1", "memory": "1Gi"}]))
    info.add_pod(pod("b", requests=[{}]))
    assert info.allocatable.milli_cpu == 4000
    assert info.allocatable.allowed_pod_number == 32
    assert (info.requested.milli_cpu, info.requested.memory) == (1000, 1024**3)
    assert (info.non_zero_requested.milli_cpu, info.non_zero_requested.memory) == (1100, 1024**3 + 200 * 1024**2)
    info.remove_pod(pod("a"))
    assert (info.requested.milli_cpu, info.non_zero_requested.milli_cpu) == (0, 100)
    assert [p.pod["metadata"]["name"] for p in info.pods] == ["b"]


def test_node_info_tracks_ports_and_affinity_subsets():
    info = NodeInfo.of(node("n"))
    anti = pod(
        "anti", affinity=pod_affinity(anti_required=[term(selector_in("app", "x"), "h")]), host_ports=["TCP//80"]
    )
    info.add_pod(anti)
    assert info.used_ports.conflicts("", "TCP", 80)
    assert not info.used_ports.conflicts("", "UDP", 80)
    assert [p.key for p in info.pods_with_affinity] == [PodInfo.of(anti).key]
    assert len(info.pods_with_required_anti_affinity) == 1
    copy = info.clone()
    info.remove_pod(anti)
    assert not info.used_ports.conflicts("", "TCP", 80)
    assert info.pods_with_affinity == [] and info.pods_with_required_anti_affinity == []
    assert copy.used_ports.conflicts("", "TCP", 80) and len(copy.pods) == 1


def test_remove_unknown_pod_raises():
    with pytest.raises(KeyError):
        NodeInfo.of(node("n")).remove_pod(pod("ghost"))


def test_build_places_pods_and_skips_finished_ones():
    snapshot = Snapshot.build(
        [node("b"), node("a")],
        [
            pod("running", node_name="a"),
            pod("done", node_name="a", phase="Succeeded"),
            pod("failed", node_name="a", phase="Failed"),
            pod("elsewhere", node_name="gone"),
            pod("nominated", nominated_node="b", priority=5),
            pod("pending"),
        ],
        namespaces=[{"metadata": {"name": "team", "labels": {"t": "1"}}}],
    )
    assert list(snapshot.nodes) == ["a", "b"]  # node-name order
    assert [p.pod["metadata"]["name"] for p in snapshot.nodes["a"].pods] == ["running"]
    assert [p.pod["metadata"]["name"] for p in snapshot.nominated_pods_for("b")] == ["nominated"]
    assert snapshot.namespace_labels_of("team") == {"t": "1"}
    assert snapshot.namespace_labels_of("other") is None


def test_assume_and_forget():
    snapshot = Snapshot.build([node("a", capacity={"cpu": "2"})], [pod("w", nominated_node="a")])
    p = pod("w", requests=[{"cpu": "1"}])
    assumed = snapshot.assume(p, "a")
    assert assumed["spec"]["nodeName"] == "a"
    assert "nodeName" not in p["spec"]  # the caller's object is untouched
    assert snapshot.nodes["a"].requested.milli_cpu == 1000
    assert snapshot.nominated_pods_for("a") == []  # placed pods are no longer nominated
    with pytest.raises(ValueError, match="already placed"):
        snapshot.assume(p, "a")
    snapshot.forget(p)
    assert snapshot.nodes["a"].requested.milli_cpu == 0
    snapshot.forget(p)  # forgetting twice is harmless
    with pytest.raises(KeyError):
        snapshot.assume(p, "nope")


def test_clone_is_independent():
    snapshot = Snapshot.build([node("a")])
    copy = snapshot.clone()
    copy.assume(pod("x"), "a")
    assert snapshot.nodes["a"].pods == []


def test_pod_info_records_parse_errors():
    info = PodInfo.of(
        pod(affinity=pod_affinity(required=[term({"matchExpressions": [{"key": "k", "operator": "Bad"}]}, "h")]))
    )
    assert info.parse_errors and info.required_affinity_terms == ()


def test_affinity_term_namespaces():
    p = pod("x", namespace="ns1")
    own = PodInfo.of(pod(namespace="ns1", affinity=pod_affinity(required=[term(selector_in("a", "b"), "h")])))
    assert own.required_affinity_terms[0].namespaces == frozenset({"ns1"})
    listed = PodInfo.of(pod(affinity=pod_affinity(required=[term(selector_in("a", "b"), "h", namespaces=["x", "y"])])))
    assert listed.required_affinity_terms[0].namespaces == frozenset({"x", "y"})
    everything = PodInfo.of(
        pod(affinity=pod_affinity(required=[term(selector_in("a", "b"), "h", namespace_selector={})]))
    )
    t = everything.required_affinity_terms[0]
    assert t.namespaces == frozenset()
    p["metadata"]["labels"] = {"a": "b"}
    assert t.matches(p, None)  # {} selects every namespace
    assert not own.required_affinity_terms[0].matches(pod("y", namespace="ns2", labels={"a": "b"}), None)
