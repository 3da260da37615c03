"""NodeResourcesFit (filter and the three scoring strategies) and
NodeResourcesBalancedAllocation, with the cases of upstream's fit_test.go,
least_allocated_test.go, most_allocated_test.go, requested_to_capacity_ratio_test.go and
balanced_allocation_test.go."""

import pytest

from operators.scheduler.framework import (
    MOST_ALLOCATED,
    REQUESTED_TO_CAPACITY_RATIO,
    Framework,
    PluginArgs,
    Profile,
    ResourceSpec,
    ScoringStrategy,
)
from operators.scheduler.plugins.resource_allocation import balanced_resource_scorer, broken_linear
from operators.scheduler.snapshot import Snapshot
from operators.scheduler.status import Code
from tests.unit.scheduler.builders import filter_statuses, node, pod, scores

FIT = "NodeResourcesFit"
BALANCED = "NodeResourcesBalancedAllocation"
EXT_A = "example.com/aaa"
EXT_B = "example.com/bbb"
K8S_A = "kubernetes.io/something"
K8S_B = "subdomain.kubernetes.io/something"
HUGE_A = "hugepages-2Mi"

# Filter: upstream's node has allocatable cpu 10m, memory 20, pods 32, example.com/aaa 5,
# ephemeral-storage 20, hugepages-2Mi 5.
ALLOCATABLE = {"cpu": "10m", "memory": "20", "pods": "32", EXT_A: "5", "ephemeral-storage": "20", HUGE_A: "5"}


def res(cpu=0, mem=0, **scalars):
    out = {"cpu": f"{cpu}m", "memory": str(mem)}
    for name, value in scalars.items():
        out[{"ext_a": EXT_A, "ext_b": EXT_B, "k8s_a": K8S_A, "k8s_b": K8S_B, "huge": HUGE_A}[name]] = str(value)
    return out


def fit(incoming, existing, *, allocatable=None, profile=None):
    snapshot = Snapshot.build(
        [node("n", capacity=allocatable or ALLOCATABLE, pods=None)],
        [dict(existing, spec=dict(existing["spec"], nodeName="n"))],
    )
    _, statuses = filter_statuses(FIT, incoming, snapshot, profile)
    return statuses["n"]


def used(cpu=0, mem=0, **scalars):
    return pod("existing", requests=[res(cpu, mem, **scalars)])


def want(status, code, *reasons):
    assert status is not None
    assert (status.code, status.reasons) == (code, list(reasons))


U, UU = Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE


def test_no_resources_requested_always_fits():
    assert fit(pod(), used(10, 20)) is None


def test_too_many_resources_fails():
    want(fit(pod(requests=[res(1, 1)]), used(10, 20)), U, "Insufficient cpu", "Insufficient memory")


@pytest.mark.parametrize(
    ("containers", "inits", "existing", "expected"),
    [
        ([res(1, 1)], [res(3, 1)], used(8, 19), ["Insufficient cpu"]),
        ([res(1, 1)], [res(3, 1), res(2, 1)], used(8, 19), ["Insufficient cpu"]),
        ([res(1, 1)], [res(1, 3)], used(9, 19), ["Insufficient memory"]),
        ([res(1, 1)], [res(1, 3), res(1, 2)], used(9, 19), ["Insufficient memory"]),
        ([res(1, 1)], [res(1, 1)], used(9, 19), []),  # max, not sum, of containers and init containers
        ([res(1, 1)], [res(1, 1), res(1, 1)], used(9, 19), []),
        ([res(1, 1)], [], used(5, 5), []),
        ([res(2, 1)], [], used(9, 5), ["Insufficient cpu"]),
        ([res(1, 2)], [], used(5, 19), ["Insufficient memory"]),
        ([res(5, 1)], [], used(5, 19), []),  # equal edge case
        ([res(4, 1)], [res(5, 1)], used(5, 19), []),  # equal edge case for init container
    ],
)
def test_cpu_and_memory(containers, inits, existing, expected):
    status = fit(pod(requests=containers, init_requests=inits), existing)
    if expected:
        want(status, U, *expected)
    else:
        assert status is None


def test_extended_resources():
    assert fit(pod(requests=[res(ext_a=1)]), used()) is None
    assert fit(pod(requests=[res()], init_requests=[res(ext_a=1)]), used()) is None
    # capacity 5 < 10 requested: preemption cannot help
    want(fit(pod(requests=[res(1, 1, ext_a=10)]), used(ext_a=0)), UU, f"Insufficient {EXT_A}")
    want(fit(pod(requests=[res()], init_requests=[res(1, 1, ext_a=10)]), used(ext_a=0)), UU, f"Insufficient {EXT_A}")
    # allocatable used up by another pod: preemption could help
    want(fit(pod(requests=[res(1, 1, ext_a=1)]), used(ext_a=5)), U, f"Insufficient {EXT_A}")
    want(fit(pod(requests=[res()], init_requests=[res(1, 1, ext_a=1)]), used(ext_a=5)), U, f"Insufficient {EXT_A}")
    want(fit(pod(requests=[res(1, 1, ext_a=3), res(1, 1, ext_a=3)]), used(ext_a=2)), UU, f"Insufficient {EXT_A}")
    assert fit(pod(requests=[res()], init_requests=[res(1, 1, ext_a=3), res(1, 1, ext_a=3)]), used(ext_a=2)) is None
    want(
        fit(pod(requests=[res()], init_requests=[res(1, 1, ext_a=6), res(1, 1, ext_a=3)]), used(ext_a=2)),
        UU,
        f"Insufficient {EXT_A}",
    )
    # unknown resources have capacity 0
    want(fit(pod(requests=[res(1, 1, ext_b=1)]), used()), UU, f"Insufficient {EXT_B}")
    want(fit(pod(requests=[res(1, 1, k8s_a=10)]), used()), UU, f"Insufficient {K8S_A}")
    want(fit(pod(requests=[res()], init_requests=[res(1, 1, k8s_b=10)]), used()), UU, f"Insufficient {K8S_B}")
    # hugepages
    want(fit(pod(requests=[res(1, 1, huge=10)]), used(huge=0)), UU, f"Insufficient {HUGE_A}")
    want(fit(pod(requests=[res(1, 1, huge=3), res(1, 1, huge=3)]), used(huge=2)), UU, f"Insufficient {HUGE_A}")
    # a zero request is not checked
    assert fit(pod(requests=[res(1, 1, ext_a=0)]), used(ext_a=6)) is None


def test_ignored_resources_and_groups():
    ignore_b = Profile(plugins=(FIT,), args=PluginArgs(ignored_resources=frozenset({EXT_B})))
    assert fit(pod(requests=[res(1, 1, ext_b=1)]), used(), profile=ignore_b) is None
    ignore_group = Profile(plugins=(FIT,), args=PluginArgs(ignored_resource_groups=frozenset({"example.com"})))
    # kubernetes.io resources are not extended resources and are never ignored
    want(fit(pod(requests=[res(1, 1, ext_b=1, k8s_a=1)]), used(), profile=ignore_group), UU, f"Insufficient {K8S_A}")


def test_overhead():
    assert fit(pod(requests=[res(1, 1)], overhead={"cpu": "3m", "memory": "13"}), used(5, 5)) is None
    status = fit(pod(requests=[res(1, 1)], overhead={"cpu": "1m", "memory": "15"}), used(5, 5))
    want(status, U, "Insufficient memory")
    assert status.details["insufficient"] == [{"resource": "memory", "requested": 16, "used": 5, "capacity": 20}]


def test_pod_level_requests():
    assert fit(pod(requests=[res(1, 1)], pod_requests={"cpu": "1m", "memory": "2"}), used(5, 5)) is None
    want(fit(pod(requests=[res(1, 1)], pod_requests={"cpu": "7m", "memory": "2"}), used(5, 5)), U, "Insufficient cpu")


def test_ephemeral_storage():
    want(fit(pod(requests=[{"ephemeral-storage": "25"}]), used()), UU, "Insufficient ephemeral-storage")
    assert fit(pod(requests=[{"ephemeral-storage": "10"}]), used()) is None


def test_too_many_pods():
    one_pod = {"cpu": "10m", "memory": "20", "pods": "1"}
    want(fit(pod(), used(10, 20), allocatable=one_pod), U, "Too many pods")
    want(fit(pod(requests=[res(1, 1)]), used(5, 5), allocatable=one_pod), U, "Too many pods")
    want(fit(pod(requests=[res(5, 1)]), used(5, 19), allocatable=one_pod), U, "Too many pods")
    # all shortfalls are reported together
    want(fit(pod(requests=[res(6, 1)]), used(5, 19), allocatable=one_pod), U, "Too many pods", "Insufficient cpu")


# Scoring. Upstream's nodes and requests use bare numbers ("4000" cpus), which we keep.


def score_nodes(strategy, request_sets, nodes, existing=(), resources=None, shape=()):
    snapshot = Snapshot.build(
        [node(n, capacity=cap, pods=None) for n, cap in nodes.items()],
        [pod(f"e{i}", requests=[r], node_name=n) for i, (n, r) in enumerate(existing)],
    )
    specs = resources if resources is not None else (ResourceSpec("cpu"), ResourceSpec("memory"))
    profile = Profile(plugins=(FIT,), scoring_strategy=ScoringStrategy(strategy, tuple(specs), tuple(shape)))
    return scores(FIT, pod(requests=request_sets), snapshot, profile=profile)


CAP_4 = {"cpu": "4000", "memory": "10000"}
CAP_6 = {"cpu": "6000", "memory": "10000"}
CAP_10_20 = {"cpu": "10000", "memory": "20000"}
REQ = [{"cpu": "1000", "memory": "2000"}, {"cpu": "2000", "memory": "3000"}]
LA = "LeastAllocated"
EXT = "abc.com/xyz"
EXT_SET = (ResourceSpec("cpu"), ResourceSpec("memory"), ResourceSpec(EXT))


def test_least_allocated_nothing_requested():
    assert score_nodes(LA, [], {"node1": CAP_4, "node2": CAP_4}) == {"node1": 100, "node2": 100}


def test_least_allocated_differently_sized_nodes():
    assert score_nodes(LA, REQ, {"node1": CAP_4, "node2": CAP_6}) == {"node1": 37, "node2": 50}


def test_least_allocated_no_requests_pods_scheduled():
    existing = [(n, {"cpu": "0", "memory": "0"}) for n in ("node1", "node1", "node2", "node2")]
    assert score_nodes(LA, [], {"node1": CAP_4, "node2": CAP_4}, existing) == {"node1": 100, "node2": 100}


def test_least_allocated_pods_with_resources():
    existing = [
        ("node1", {"cpu": "3000", "memory": "0"}),
        ("node1", {"cpu": "3000", "memory": "0"}),
        ("node2", {"cpu": "3000", "memory": "0"}),
        ("node2", {"cpu": "3000", "memory": "5000"}),
    ]
    assert score_nodes(LA, [], {"node1": CAP_10_20, "node2": CAP_10_20}, existing) == {"node1": 70, "node2": 57}


def test_least_allocated_requested_and_scheduled():
    existing = [("node1", {"cpu": "3000", "memory": "0"}), ("node2", {"cpu": "3000", "memory": "5000"})]
    assert score_nodes(LA, REQ, {"node1": CAP_10_20, "node2": CAP_10_20}, existing) == {"node1": 57, "node2": 45}
    bigger = {"cpu": "10000", "memory": "50000"}
    assert score_nodes(LA, REQ, {"node1": CAP_10_20, "node2": bigger}, existing) == {"node1": 57, "node2": 60}


def test_least_allocated_request_exceeds_capacity():
    existing = [("node1", {"cpu": "3000", "memory": "0"}), ("node2", {"cpu": "3000", "memory": "5000"})]
    got = score_nodes(LA, [{"cpu": "3000", "memory": "0"}], {"node1": CAP_4, "node2": CAP_4}, existing)
    assert got == {"node1": 50, "node2": 25}


def test_least_allocated_zero_capacity_nodes():
    existing = [("node1", {"cpu": "3000", "memory": "0"}), ("node2", {"cpu": "3000", "memory": "5000"})]
    assert score_nodes(LA, [], {"node1": {}, "node2": {}}, existing) == {"node1": 0, "node2": 0}


def test_least_allocated_resource_weights():
    specs = (ResourceSpec("memory", 2), ResourceSpec("cpu", 1))
    assert score_nodes(LA, REQ, {"node1": CAP_4, "node2": CAP_6}, resources=specs) == {"node1": 41, "node2": 50}


@pytest.mark.parametrize("weight", [-1, 0, 101])
def test_resource_weights_are_validated(weight):
    with pytest.raises(ValueError, match="weight"):
        Framework(
            Profile(plugins=(FIT,), scoring_strategy=ScoringStrategy(LA, (ResourceSpec("memory", weight),))), Snapshot()
        )


def test_least_allocated_extended_resources():
    nodes = {"node1": CAP_6, "node2": dict(CAP_6, **{EXT: "4"})}
    assert score_nodes(LA, REQ, nodes, resources=EXT_SET) == {"node1": 50, "node2": 50}  # not requested: bypassed
    nodes = {"node1": dict(CAP_6, **{EXT: "4"}), "node2": dict(CAP_6, **{EXT: "10"})}
    got = score_nodes(LA, [{"cpu": "3000", "memory": "5000", EXT: "2"}], nodes, resources=EXT_SET)
    assert got == {"node1": 50, "node2": 60}
    specs = (ResourceSpec(EXT, 2), ResourceSpec("cpu"), ResourceSpec("memory"))
    nodes = {"node1": CAP_6, "node2": dict(CAP_6, **{EXT: "4"})}
    assert score_nodes(LA, [{"cpu": "3000", "memory": "4000"}], nodes, resources=specs) == {"node1": 55, "node2": 55}


def test_missing_resources_is_an_error():
    got = score_nodes(LA, REQ, {"node1": CAP_4}, resources=())
    # An empty resource list falls back to the default cpu/memory, as upstream's defaulting does.
    assert got == {"node1": 37}


MA = MOST_ALLOCATED


def test_most_allocated():
    assert score_nodes(MA, [], {"node1": CAP_4, "node2": CAP_4}) == {"node1": 0, "node2": 0}
    assert score_nodes(MA, REQ, {"node1": CAP_4, "node2": CAP_6}) == {"node1": 62, "node2": 50}
    existing = [
        ("node1", {"cpu": "3000", "memory": "0"}),
        ("node1", {"cpu": "3000", "memory": "0"}),
        ("node2", {"cpu": "3000", "memory": "0"}),
        ("node2", {"cpu": "3000", "memory": "5000"}),
    ]
    assert score_nodes(MA, [], {"node1": CAP_10_20, "node2": CAP_10_20}, existing) == {"node1": 30, "node2": 42}
    existing = [("node1", {"cpu": "3000", "memory": "0"}), ("node2", {"cpu": "3000", "memory": "5000"})]
    assert score_nodes(MA, REQ, {"node1": CAP_10_20, "node2": CAP_10_20}, existing) == {"node1": 42, "node2": 55}
    equal = [{"cpu": "2000", "memory": "4000"}, {"cpu": "3000", "memory": "5000"}]
    nodes = {"node1": {"cpu": "5000", "memory": "10000"}, "node2": {"cpu": "10000", "memory": "9000"}}
    assert score_nodes(MA, equal, nodes) == {"node1": 95, "node2": 75}
    specs = (ResourceSpec("memory", 2), ResourceSpec("cpu", 1))
    assert score_nodes(MA, REQ, {"node1": CAP_4, "node2": CAP_6}, resources=specs) == {"node1": 58, "node2": 50}


def test_most_allocated_non_zero_requests():
    # Containers without requests count 100m / 200Mi: node1 holds two such pods.
    snapshot = Snapshot.build(
        [
            node("node1", capacity={"cpu": "250m", "memory": "1000Mi"}),
            node("node2", capacity={"cpu": "250m", "memory": "1000Mi"}),
        ],
        [pod("a", requests=[{}], node_name="node1"), pod("b", requests=[{}], node_name="node1")],
    )
    profile = Profile(plugins=(FIT,), scoring_strategy=ScoringStrategy(MA))
    assert scores(FIT, pod(requests=[{}]), snapshot, profile=profile) == {"node1": 80, "node2": 30}


def test_most_allocated_extended_resources():
    nodes = {"node1": dict(CAP_6, **{EXT: "4"}), "node2": dict(CAP_6, **{EXT: "10"})}
    got = score_nodes(MA, [{"cpu": "3000", "memory": "5000", EXT: "2"}], nodes, resources=EXT_SET)
    assert got == {"node1": 50, "node2": 40}


RTCR = REQUESTED_TO_CAPACITY_RATIO


def test_broken_linear_function():
    f = broken_linear([(10, 1), (90, 9)])
    assert [f(p) for p in (0, 10, 15, 50, 90, 100)] == [1, 1, 1, 5, 9, 9]
    g = broken_linear([(0, 100), (100, 0)])
    assert [g(p) for p in (0, 33, 50, 100)] == [100, 67, 50, 0]


def test_requested_to_capacity_ratio():
    # upstream TestRequestedToCapacityRatioScoringStrategy, shape (0,10),(100,0)
    shape = ((0, 10), (100, 0))
    nodes = {"node1": CAP_4, "node2": CAP_4}
    assert score_nodes(RTCR, [], nodes, [("node1", {}), ("node1", {})], shape=shape) == {"node1": 100, "node2": 100}
    # node1: cpu 75% -> 25, memory 50% -> 50, mean 37.5 rounds half up to 38
    assert score_nodes(RTCR, REQ, {"node1": CAP_4, "node2": CAP_6}, shape=shape) == {"node1": 38, "node2": 50}
    existing = [("node1", {"cpu": "3000", "memory": "5000"}), ("node2", {"cpu": "3000", "memory": "5000"})]
    assert score_nodes(RTCR, [], {"node1": CAP_4, "node2": CAP_6}, existing, shape=shape) == {"node1": 38, "node2": 50}


def test_requested_to_capacity_ratio_drops_zero_scores_and_packs():
    existing = [("node1", {"cpu": "2000", "memory": "4000"})]
    request = [{"cpu": "2000", "memory": "4000"}]
    # cpu at 100% scores 0 and is left out of the mean; memory at 80% scores 20.
    got = score_nodes(RTCR, request, {"node1": CAP_4, "node2": CAP_4}, existing, shape=((0, 10), (100, 0)))
    assert got == {"node1": 20, "node2": 55}
    # bin packing shape: node1 (100%, 80%) -> 90, node2 (50%, 40%) -> 45
    got = score_nodes(RTCR, request, {"node1": CAP_4, "node2": CAP_4}, existing, shape=((0, 0), (100, 10)))
    assert got == {"node1": 90, "node2": 45}


def test_requested_to_capacity_ratio_shape_is_validated():
    for shape in ((), ((0, 11),), ((50, 1), (50, 2)), ((101, 1),)):
        with pytest.raises(ValueError):
            Framework(Profile(plugins=(FIT,), scoring_strategy=ScoringStrategy(RTCR, shape=shape)), Snapshot())
    with pytest.raises(ValueError, match="not supported"):
        Framework(Profile(plugins=(FIT,), scoring_strategy=ScoringStrategy("Nope")), Snapshot())


# NodeResourcesBalancedAllocation (TestNodeResourcesBalancedAllocation).

CPU_AND_MEMORY = [{"cpu": "1000m", "memory": "2000"}, {"cpu": "2000m", "memory": "3000"}]
CPU_ONLY = [{"cpu": "1000m", "memory": "0"}, {"cpu": "2000m", "memory": "0"}]
CPU_MEM_GPU = [{"cpu": "1000m", "memory": "2000"}, {"cpu": "2000m", "memory": "3000", "nvidia.com/gpu": "3"}]


def balanced(request_sets, nodes, existing=(), resources=None):
    snapshot = Snapshot.build(
        [node(n, capacity=cap, pods=None) for n, cap in nodes.items()],
        [pod(f"e{i}", requests=r, node_name=n) for i, (n, r) in enumerate(existing)],
    )
    profile = Profile(plugins=(BALANCED,))
    if resources is not None:
        profile = Profile(plugins=(BALANCED,), args=PluginArgs(balanced_allocation_resources=resources))
    return scores(BALANCED, pod(requests=request_sets), snapshot, profile=profile)


def mk(cpu_milli, memory, **extra):
    return {"cpu": f"{cpu_milli}m", "memory": str(memory), **extra}


def test_balanced_best_effort_pod_is_skipped():
    got = balanced([], {"node1": mk(4000, 10000), "node2": mk(4000, 10000)})
    assert got.code is Code.SKIP


def test_balanced_differently_sized_nodes():
    # node1: cpu 3000/4000, memory 5000/10000 -> std 0.125 -> 87; node2 balanced -> 100
    assert balanced(CPU_AND_MEMORY, {"node1": mk(4000, 10000), "node2": mk(6000, 10000)}) == {"node1": 87, "node2": 100}


def test_balanced_with_placed_pods():
    existing = [("node1", CPU_ONLY), ("node2", CPU_AND_MEMORY)]
    got = balanced(CPU_AND_MEMORY, {"node1": mk(10000, 20000), "node2": mk(10000, 20000)}, existing)
    assert got == {"node1": 82, "node2": 95}
    got = balanced(CPU_AND_MEMORY, {"node1": mk(10000, 20000), "node2": mk(10000, 50000)}, existing)
    assert got == {"node1": 82, "node2": 80}


def test_balanced_at_capacity():
    existing = [("node1", CPU_ONLY), ("node2", CPU_AND_MEMORY)]
    assert balanced(CPU_ONLY, {"node1": mk(6000, 10000), "node2": mk(6000, 10000)}, existing) == {
        "node1": 50,
        "node2": 75,
    }


def test_balanced_three_resources():
    gpu = ("cpu", "memory", "nvidia.com/gpu")
    specs = tuple(ResourceSpec(n) for n in gpu)
    nodes = {"node1": mk(3500, 40000, **{"nvidia.com/gpu": "8"}), "node2": mk(3500, 40000, **{"nvidia.com/gpu": "8"})}
    existing = [("node2", CPU_AND_MEMORY), ("node1", CPU_MEM_GPU)]
    got = balanced([{"memory": "0", "nvidia.com/gpu": "1"}], nodes, existing, specs)
    assert got == {"node1": 70, "node2": 65}


def test_balanced_skips_a_resource_the_node_lacks():
    specs = tuple(ResourceSpec(n) for n in ("cpu", "memory", "nvidia.com/gpu"))
    nodes = {"node1": mk(3500, 40000, **{"nvidia.com/gpu": "8"}), "node2": mk(3500, 40000)}
    assert balanced(CPU_AND_MEMORY, nodes, (), specs) == {"node1": 63, "node2": 63}


def test_balanced_scorer_formula():
    assert balanced_resource_scorer([3, 5], [4, 10]) == 87
    assert balanced_resource_scorer([5, 1], [4, 10]) == 55  # fractions capped at 1: std |1 - 0.1| / 2 = 0.45
    assert balanced_resource_scorer([1], [2]) == 100  # one resource: no deviation
    assert balanced_resource_scorer([0, 0], [0, 0]) == 100
