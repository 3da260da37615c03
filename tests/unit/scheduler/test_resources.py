from decimal import Decimal

import pytest

from operators.scheduler import resources
from operators.scheduler.resources import (
    QuantityError,
    calculate_pod_resource,
    incoming_pod_request,
    milli_value_of,
    parse_quantity,
    pod_requests,
    scoring_request,
    value_of,
)
from tests.unit.scheduler.builders import container, pod


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", "0"),
        ("1", "1"),
        ("100m", "0.1"),
        ("1500m", "1.5"),
        ("0.5", "0.5"),
        ("1.", "1"),
        (".5", "0.5"),
        ("+2", "2"),
        ("-2", "-2"),
        ("1k", "1000"),
        ("1M", "1000000"),
        ("1G", "1000000000"),
        ("1T", "1000000000000"),
        ("1P", "1000000000000000"),
        ("1E", "1000000000000000000"),
        ("1Ki", "1024"),
        ("1Mi", "1048576"),
        ("1Gi", "1073741824"),
        ("1.5Gi", "1610612736"),
        ("1Ti", str(2**40)),
        ("1Pi", str(2**50)),
        ("1Ei", str(2**60)),
        ("200Mi", str(200 * 1024 * 1024)),
        ("1e3", "1000"),
        ("1E3", "1000"),
        ("1e-3", "0.001"),
        ("12e+2", "1200"),
        ("1n", "0.000000001"),
        ("1u", "0.000001"),
        ("007", "7"),
        ("m", "0"),
        # Below a nanounit rounds up to one nanounit (ParseQuantity's RoundUp).
        ("0.0000000001", "0.000000001"),
        ("1.0000000001", "1.000000001"),
    ],
)
def test_parse_quantity(text, expected):
    assert parse_quantity(text) == Decimal(expected)


@pytest.mark.parametrize(
    "text", ["", "1 Gi", "1x", "1ki", "1K", "1Gib", "abc", "1e", "1e3.5", "1Mi1", "--1", "1.2.3", "."]
)
def test_parse_quantity_rejects(text):
    if text == ".":
        # Go's fast path parses "." as zero; so do we.
        assert parse_quantity(text) == 0
        return
    with pytest.raises(QuantityError):
        parse_quantity(text)


def test_parse_quantity_accepts_numbers():
    assert parse_quantity(3) == 3
    assert parse_quantity(0.25) == Decimal("0.25")
    assert parse_quantity(Decimal("1.5")) == Decimal("1.5")


def test_binary_quantities_are_capped_at_int64():
    assert parse_quantity("100000000Ei") == Decimal(2**63 - 1)


@pytest.mark.parametrize(
    ("text", "milli", "whole"),
    [
        ("100m", 100, 1),  # Value() rounds up
        ("0.0001", 1, 1),  # a tenth of a millicore is one millicore
        ("1.5", 1500, 2),
        ("2", 2000, 2),
        ("1n", 1, 1),
        ("-1.5", -1500, -2),  # away from zero
        ("0", 0, 0),
    ],
)
def test_value_and_milli_value_round_up(text, milli, whole):
    q = parse_quantity(text)
    assert milli_value_of(q) == milli
    assert value_of(q) == whole


def test_resource_name_classes():
    assert resources.is_extended_resource_name("nvidia.com/gpu")
    assert resources.is_extended_resource_name("example.com/aaa")
    assert not resources.is_extended_resource_name("cpu")
    assert not resources.is_extended_resource_name("kubernetes.io/something")
    assert not resources.is_extended_resource_name("requests.example.com/x")
    assert not resources.is_extended_resource_name("bad_domain.com/x")
    assert resources.is_scalar_resource_name("hugepages-2Mi")
    assert resources.is_scalar_resource_name("subdomain.kubernetes.io/something")
    assert resources.is_scalar_resource_name("attachable-volumes-aws-ebs")
    assert not resources.is_scalar_resource_name("memory")
    assert not resources.is_scalar_resource_name("pods")


def cpu(p):
    return milli_value_of(pod_requests(p).get("cpu", Decimal(0)))


def test_containers_are_summed_and_init_containers_maxed():
    # Upstream computePodResourceRequest example: init 2/1G and 2/3G, containers 2/1G + 1/1G -> 3 cpu, 3G.
    p = pod(
        requests=[{"cpu": "2", "memory": "1G"}, {"cpu": "1", "memory": "1G"}],
        init_requests=[{"cpu": "2", "memory": "1G"}, {"cpu": "2", "memory": "3G"}],
    )
    assert pod_requests(p) == {"cpu": Decimal(3), "memory": Decimal(3 * 10**9)}


def _sidecar_pod(init: list, regular: list[str]) -> dict:
    """init: (name, cpu, restartable) triples in order."""
    p = pod(requests=[{"cpu": c} for c in regular])
    p["spec"]["initContainers"] = [
        container(name, {"cpu": c}, **({"restartPolicy": "Always"} if restartable else {}))
        for name, c, restartable in init
    ]
    return p


def test_restartable_init_container_adds_to_containers():
    # component-helpers "restartable init container": 1 + 1 = 2
    assert cpu(_sidecar_pod([("r1", "1", True)], ["1"])) == 2000


def test_multiple_restartable_init_containers():
    # max(5, sidecars 1+2+3 + regular 1) = 7
    p = _sidecar_pod([("i1", "5", False), ("r1", "1", True), ("r2", "2", True), ("r3", "3", True)], ["1"])
    assert cpu(p) == 7000


def test_init_container_after_sidecars_needs_them_running():
    # init-2 needs 5 + the sidecars started before it (1+2) = 8; the later sidecar does not count
    p = _sidecar_pod(
        [("i1", "5", False), ("r1", "1", True), ("r2", "2", True), ("i2", "5", False), ("r3", "3", True)], ["1"]
    )
    assert cpu(p) == 8000


def test_sidecar_then_init_then_regular():
    # "restartable-init, init and regular": max(10 + 200, 10 + 100) = 210
    assert cpu(_sidecar_pod([("r1", "10", True), ("i1", "200", False)], ["100"])) == 210000


def test_overhead_is_added():
    p = pod(requests=[{"cpu": "1m", "memory": "1"}], overhead={"cpu": "3m", "memory": "13"})
    assert pod_requests(p) == {"cpu": Decimal("0.004"), "memory": Decimal(14)}
    assert pod_requests(p, exclude_overhead=True) == {"cpu": Decimal("0.001"), "memory": Decimal(1)}


def test_pod_level_requests_replace_cpu_and_memory_only():
    p = pod(
        requests=[{"cpu": "1m", "memory": "1", "example.com/aaa": "2"}],
        pod_requests={"cpu": "7m", "memory": "2"},
    )
    assert pod_requests(p) == {"cpu": Decimal("0.007"), "memory": Decimal(2), "example.com/aaa": Decimal(2)}
    assert pod_requests(p, skip_pod_level_resources=True)["cpu"] == Decimal("0.001")


def _resized(infeasible: bool) -> dict:
    p = pod()
    p["spec"]["initContainers"] = [container("r1", {"cpu": "4"}, restartPolicy="Always")]
    p["status"]["initContainerStatuses"] = [{"name": "r1", "resources": {"requests": {"cpu": "2"}}}]
    if infeasible:
        p["status"]["conditions"] = [{"type": "PodResizePending", "status": "True", "reason": "Infeasible"}]
    return p


def test_status_resources_of_a_resized_sidecar():
    # component-helpers: infeasible resize -> the status' 2; otherwise max(spec 4, status 2) = 4;
    # and without UseStatusResources always the spec.
    assert pod_requests(_resized(True), use_status_resources=True) == {"cpu": Decimal(2)}
    assert pod_requests(_resized(False), use_status_resources=True) == {"cpu": Decimal(4)}
    assert pod_requests(_resized(True), use_status_resources=False) == {"cpu": Decimal(4)}


def test_status_allocated_resources_of_a_container():
    p = pod(requests=[{"cpu": "1"}])
    p["status"]["containerStatuses"] = [
        {"name": "con0", "resources": {"requests": {"cpu": "1"}}, "allocatedResources": {"cpu": "3"}}
    ]
    assert pod_requests(p, use_status_resources=True) == {"cpu": Decimal(3)}


def test_non_zero_defaults_for_containers_without_requests():
    p = pod(requests=[{}, {"cpu": "500m"}])
    res = calculate_pod_resource(p)
    assert res.resource.milli_cpu == 500
    assert res.resource.memory == 0
    assert res.non0_cpu == 600  # 100m default for the first container
    assert res.non0_mem == 2 * 200 * 1024 * 1024


def test_explicit_zero_request_is_not_defaulted():
    res = calculate_pod_resource(pod(requests=[{"cpu": "3", "memory": "0"}]))
    assert res.non0_cpu == 3000
    assert res.non0_mem == 0


def test_pod_without_containers_has_no_non_zero_requests():
    res = calculate_pod_resource(pod())
    assert (res.non0_cpu, res.non0_mem) == (0, 0)


def test_pod_level_requests_only_default_what_is_missing():
    p = pod(requests=[{}], pod_requests={"cpu": "2"})
    res = calculate_pod_resource(p)
    assert res.non0_cpu == 2000
    assert res.non0_mem == 200 * 1024 * 1024


def test_incoming_request_and_scoring_request():
    p = pod(requests=[{"cpu": "250m", "memory": "64Mi", "nvidia.com/gpu": "1"}, {}])
    request = incoming_pod_request(p)
    assert (request.milli_cpu, request.memory, request.scalar) == (250, 64 * 1024 * 1024, {"nvidia.com/gpu": 1})
    assert scoring_request(p, "cpu", use_requested=False) == 350
    assert scoring_request(p, "cpu", use_requested=True) == 250
    assert scoring_request(p, "memory", use_requested=False) == (64 + 200) * 1024 * 1024
    assert scoring_request(p, "nvidia.com/gpu", use_requested=True) == 1


def test_resource_add_counts_pods_and_scalars():
    r = resources.Resource.from_list(resources.resource_list({"cpu": "2", "pods": "110", "hugepages-2Mi": "4Mi"}))
    assert (r.milli_cpu, r.allowed_pod_number, r.scalar) == (2000, 110, {"hugepages-2Mi": 4 * 1024 * 1024})
