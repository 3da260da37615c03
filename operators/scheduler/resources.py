"""Resource quantities and pod requests, computed the way kube-scheduler computes them.

Quantities follow apimachinery's resource.Quantity: a signed decimal number, then either a
binary suffix (Ki..Ei), a decimal suffix (n, u, m, "", k, M, G, T, P, E) or a decimal exponent
(e3, E-2). Values are exact (Decimal), rounded up to nano precision as ParseQuantity does, and
read back with Value() / MilliValue() semantics: rounded up, away from zero.

Pod requests follow component-helpers' resource.PodRequests with the Kubernetes 1.34 defaults
the scheduler runs with (SidecarContainers GA, PodLevelResources and InPlacePodVerticalScaling
beta and on):
- regular containers are summed, restartable init containers ("sidecars") are added to that sum,
  and every init container i needs (its own requests + the sidecars started before it); the
  pod needs the per-resource maximum of the two;
- pod-level `spec.resources.requests` for cpu, memory and hugepages-* replace the container
  aggregate for those resources;
- `spec.overhead` is added on top;
- for pods already on a node, resources reported in the container statuses are honoured
  (max of spec, status and allocated, unless the resize is infeasible).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_UP, Decimal, localcontext
from typing import Any

from operators.core.validation import is_qualified_name

Obj = Mapping[str, Any]
ResourceList = dict[str, Decimal]

CPU = "cpu"
MEMORY = "memory"
PODS = "pods"
EPHEMERAL_STORAGE = "ephemeral-storage"

HUGEPAGES_PREFIX = "hugepages-"
ATTACHABLE_VOLUMES_PREFIX = "attachable-volumes-"
DEFAULT_NAMESPACE_PREFIX = "kubernetes.io/"
REQUESTS_PREFIX = "requests."

# The requests the scheduler assumes for scoring when a container sets none (util/pod_resources.go).
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024

_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_SUFFIX_CHARS = frozenset("eEinumkKMGTP")
_NANO = Decimal("1e-9")
_MAX_INT64 = Decimal(2**63 - 1)


class QuantityError(ValueError):
    """A string that resource.ParseQuantity would reject."""


def _split(text: str) -> tuple[bool, str, str, str]:
    """(negative, integer digits, fraction digits, suffix), the way parseQuantityString splits."""
    pos, end = 0, len(text)
    negative = False
    if pos < end and text[0] in "+-":
        negative = text[0] == "-"
        pos += 1
    while pos < end and text[pos] == "0":
        pos += 1
    start = pos
    while pos < end and _is_digit(text[pos]):
        pos += 1
    whole = text[start:pos]
    fraction = ""
    if pos < end and text[pos] == ".":
        pos += 1
        start = pos
        while pos < end and _is_digit(text[pos]):
            pos += 1
        fraction = text[start:pos]
    suffix_start = pos
    while pos < end and text[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end:
        if not _is_digit(text[pos]):
            raise QuantityError(f"quantities must match the regular expression: {text!r}")
        pos += 1
    return negative, whole, fraction, text[suffix_start:]


def _is_digit(char: str) -> bool:
    return "0" <= char <= "9"


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> Decimal:
    if not text:
        raise QuantityError("quantity is empty")
    negative, whole, fraction, suffix = _split(text)
    if suffix in _DECIMAL_SUFFIXES:
        base, exponent = 10, _DECIMAL_SUFFIXES[suffix]
    elif suffix in _BINARY_SUFFIXES:
        base, exponent = 2, _BINARY_SUFFIXES[suffix]
    elif len(suffix) > 1 and suffix[0] in "eE":
        try:
            base, exponent = 10, int(suffix[1:])
        except ValueError as exc:
            raise QuantityError(f"unable to parse quantity's suffix: {text!r}") from exc
    else:
        raise QuantityError(f"unable to parse quantity's suffix: {text!r}")
    with localcontext() as ctx:
        ctx.prec = 200
        amount = Decimal(f"{'-' if negative else ''}{whole or '0'}.{fraction or '0'}")
        amount = amount.scaleb(exponent) if base == 10 else amount * (Decimal(2) ** exponent)
        if amount != 0:
            # As ParseQuantity: anything asked for gets at least the smallest representable amount.
            amount = amount.quantize(_NANO, rounding=ROUND_UP)
        if base == 2 and abs(amount) > _MAX_INT64:
            amount = _MAX_INT64.copy_sign(amount)
        return amount.normalize() if amount != 0 else Decimal(0)


def parse_quantity(value: str | int | float | Decimal) -> Decimal:
    """The exact value of a quantity ("100m" -> 0.1, "1Gi" -> 1073741824, "1e3" -> 1000)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise QuantityError(f"not a quantity: {value!r}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return _parse(repr(value))
    return _parse(value)


def _scaled(value: Decimal, scale: int) -> int:
    with localcontext() as ctx:
        ctx.prec = 200
        return int(value.scaleb(scale).to_integral_value(rounding=ROUND_UP))


def value_of(quantity: Decimal) -> int:
    """Quantity.Value(): whole units, rounded up away from zero."""
    return _scaled(quantity, 0)


def milli_value_of(quantity: Decimal) -> int:
    """Quantity.MilliValue(): thousandths, rounded up away from zero."""
    return _scaled(quantity, 3)


_SUFFIXES = ((18, "E"), (15, "P"), (12, "T"), (9, "G"), (6, "M"), (3, "k"), (0, ""), (-3, "m"))


def milli_quantity(milli: int) -> str:
    """A milli-value as resource.NewMilliQuantity(v, DecimalSI).String() prints it (canonical: the
    largest power of 1000 that keeps the mantissa whole)."""
    if milli == 0:
        return "0"
    for exponent, suffix in _SUFFIXES:
        unit = 10 ** (exponent + 3)
        if milli % unit == 0:
            return f"{milli // unit}{suffix}"
    return f"{milli}m"


def resource_list(raw: Mapping[str, Any] | None) -> ResourceList:
    """A ResourceList from JSON ({"cpu": "500m", "memory": "1Gi"})."""
    return {name: parse_quantity(q) for name, q in (raw or {}).items()}


# Resource-name classes (pkg/apis/core/v1/helper).

def is_prefixed_native_resource(name: str) -> bool:
    return DEFAULT_NAMESPACE_PREFIX in name


def is_native_resource(name: str) -> bool:
    return "/" not in name or is_prefixed_native_resource(name)


def is_extended_resource_name(name: str) -> bool:
    """A vendor resource such as nvidia.com/gpu (not native, valid as `requests.<name>`)."""
    if is_native_resource(name) or name.startswith(REQUESTS_PREFIX):
        return False
    return is_qualified_name(REQUESTS_PREFIX + name)


def is_hugepage_resource_name(name: str) -> bool:
    return name.startswith(HUGEPAGES_PREFIX)


def is_scalar_resource_name(name: str) -> bool:
    """Resources the scheduler tracks as plain counters: extended, hugepages, kubernetes.io/*,
    attachable volumes."""
    return (
        is_extended_resource_name(name)
        or is_hugepage_resource_name(name)
        or is_prefixed_native_resource(name)
        or name.startswith(ATTACHABLE_VOLUMES_PREFIX)
    )


def _is_supported_pod_level_resource(name: str) -> bool:
    return name in (CPU, MEMORY) or name.startswith(HUGEPAGES_PREFIX)


def is_pod_level_requests_set(pod: Obj) -> bool:
    resources = (pod.get("spec") or {}).get("resources") or {}
    return any(_is_supported_pod_level_resource(name) for name in resources.get("requests") or {})


# ResourceList arithmetic.


def _add(into: ResourceList, other: Mapping[str, Decimal]) -> None:
    for name, quantity in other.items():
        into[name] = into.get(name, Decimal(0)) + quantity


def _max(into: ResourceList, other: Mapping[str, Decimal]) -> None:
    for name, quantity in other.items():
        if name not in into or quantity > into[name]:
            into[name] = quantity


def _is_restartable(container: Obj) -> bool:
    return container.get("restartPolicy") == "Always"


def _resize_infeasible(pod: Obj) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodResizePending":
            return bool(condition.get("reason") == "Infeasible")
    return False


def _container_requests(pod: Obj, container: Obj, status: Obj | None) -> ResourceList:
    requests = resource_list((container.get("resources") or {}).get("requests"))
    if status is None or status.get("resources") is None:
        return requests
    status_requests = resource_list((status.get("resources") or {}).get("requests"))
    allocated = resource_list(status.get("allocatedResources"))
    if _resize_infeasible(pod):
        result = dict(status_requests)
    else:
        result = dict(requests)
        _max(result, status_requests)
    _max(result, allocated)
    return result


def _apply_non_missing(requests: ResourceList, non_missing: Mapping[str, Decimal]) -> ResourceList:
    result = dict(requests)
    for name, quantity in non_missing.items():
        if name not in requests:
            result[name] = quantity
    return result


def pod_requests(
    pod: Obj,
    *,
    use_status_resources: bool = False,
    skip_pod_level_resources: bool = False,
    exclude_overhead: bool = False,
    non_missing_container_requests: Mapping[str, Decimal] | None = None,
) -> ResourceList:
    """The pod's total requests (resource.PodRequests)."""
    spec = pod.get("spec") or {}
    statuses: dict[str, Obj] = {}
    if use_status_resources:
        pod_status = pod.get("status") or {}
        for status in pod_status.get("containerStatuses") or []:
            statuses[status.get("name", "")] = status
        for status in pod_status.get("initContainerStatuses") or []:
            statuses[status.get("name", "")] = status

    requests: ResourceList = {}
    for container in spec.get("containers") or []:
        status = statuses.get(container.get("name", "")) if use_status_resources else None
        container_requests = _container_requests(pod, container, status)
        if non_missing_container_requests:
            container_requests = _apply_non_missing(container_requests, non_missing_container_requests)
        _add(requests, container_requests)

    sidecars: ResourceList = {}
    init_peak: ResourceList = {}
    for container in spec.get("initContainers") or []:
        restartable = _is_restartable(container)
        status = statuses.get(container.get("name", "")) if use_status_resources and restartable else None
        container_requests = _container_requests(pod, container, status)
        if non_missing_container_requests:
            container_requests = _apply_non_missing(container_requests, non_missing_container_requests)
        if restartable:
            _add(requests, container_requests)
            _add(sidecars, container_requests)
            in_use = dict(sidecars)
        else:
            in_use = dict(container_requests)
            _add(in_use, sidecars)
        _max(init_peak, in_use)
    _max(requests, init_peak)

    if not skip_pod_level_resources and is_pod_level_requests_set(pod):
        for name, quantity in resource_list((spec.get("resources") or {}).get("requests")).items():
            if _is_supported_pod_level_resource(name):
                requests[name] = quantity

    if not exclude_overhead and spec.get("overhead"):
        _add(requests, resource_list(spec["overhead"]))
    return requests


@dataclass
class Resource:
    """framework.Resource: integer amounts in the units the scheduler compares (milli-CPU, bytes)."""

    milli_cpu: int = 0
    memory: int = 0
    ephemeral_storage: int = 0
    allowed_pod_number: int = 0
    scalar: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_list(cls, resources: Mapping[str, Decimal]) -> Resource:
        result = cls()
        result.add(resources)
        return result

    def add(self, resources: Mapping[str, Decimal]) -> None:
        for name, quantity in resources.items():
            if name == CPU:
                self.milli_cpu += milli_value_of(quantity)
            elif name == MEMORY:
                self.memory += value_of(quantity)
            elif name == PODS:
                self.allowed_pod_number += value_of(quantity)
            elif name == EPHEMERAL_STORAGE:
                self.ephemeral_storage += value_of(quantity)
            elif is_scalar_resource_name(name):
                self.scalar[name] = self.scalar.get(name, 0) + value_of(quantity)

    def set_max(self, resources: Mapping[str, Decimal]) -> None:
        """Resource.SetMaxResource (the pod count is not part of it)."""
        for name, quantity in resources.items():
            if name == MEMORY:
                self.memory = max(self.memory, value_of(quantity))
            elif name == CPU:
                self.milli_cpu = max(self.milli_cpu, milli_value_of(quantity))
            elif name == EPHEMERAL_STORAGE:
                self.ephemeral_storage = max(self.ephemeral_storage, value_of(quantity))
            elif is_scalar_resource_name(name):
                self.scalar[name] = max(self.scalar.get(name, 0), value_of(quantity))

    def is_zero(self) -> bool:
        return not (self.milli_cpu or self.memory or self.ephemeral_storage or self.scalar)

    def clone(self) -> Resource:
        return Resource(self.milli_cpu, self.memory, self.ephemeral_storage, self.allowed_pod_number, dict(self.scalar))


@dataclass(frozen=True)
class PodResource:
    """What a pod on a node adds to the node's totals (PodInfo.CalculateResource)."""

    resource: Resource
    non0_cpu: int
    non0_mem: int


DEFAULT_NON_MISSING: dict[str, Decimal] = {
    CPU: Decimal(DEFAULT_MILLI_CPU_REQUEST) / 1000,
    MEMORY: Decimal(DEFAULT_MEMORY_REQUEST),
}


def _non_missing_for(requests: Mapping[str, Decimal], pod_level_set: bool) -> dict[str, Decimal]:
    if not pod_level_set:
        return dict(DEFAULT_NON_MISSING)
    return {name: q for name, q in DEFAULT_NON_MISSING.items() if name not in requests}


def calculate_pod_resource(pod: Obj) -> PodResource:
    """A placed pod's requests, and its "non-zero" cpu/memory used for spreading by score.

    The non-zero figures give each container that sets no cpu (memory) request 100m (200Mi),
    so that many request-less pods do not all pile onto one node; a request explicitly set to 0
    stays 0.
    """
    requests = pod_requests(pod, use_status_resources=True)
    non_missing = _non_missing_for(requests, is_pod_level_requests_set(pod))
    non0 = requests
    if non_missing:
        non0 = pod_requests(pod, use_status_resources=True, non_missing_container_requests=non_missing)
    return PodResource(
        resource=Resource.from_list(requests),
        non0_cpu=milli_value_of(non0.get(CPU, Decimal(0))),
        non0_mem=value_of(non0.get(MEMORY, Decimal(0))),
    )


def incoming_pod_request(pod: Obj) -> Resource:
    """What NodeResourcesFit's PreFilter asks of a node for an unscheduled pod."""
    result = Resource()
    result.set_max(pod_requests(pod))
    return result


def scoring_request(pod: Obj, resource: str, *, use_requested: bool) -> int:
    """One resource of the incoming pod as a scorer sees it (calculatePodResourceRequest).

    NodeResourcesFit's scorers (use_requested=False) fill in the 100m/200Mi defaults for
    containers that leave cpu/memory unset; BalancedAllocation (use_requested=True) does not.
    """
    return scoring_requests(pod, (resource,), use_requested=use_requested)[0]


def scoring_requests(pod: Obj, names: Sequence[str], *, use_requested: bool) -> list[int]:
    """`scoring_request` for several resources, summing the pod's requests once."""
    requests = pod_requests(
        pod,
        use_status_resources=True,
        non_missing_container_requests=None if use_requested else DEFAULT_NON_MISSING,
    )
    result: list[int] = []
    for resource in names:
        quantity = requests.get(resource, Decimal(0))
        result.append(milli_value_of(quantity) if resource == CPU else value_of(quantity))
    return result
