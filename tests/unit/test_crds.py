"""The CRDs in crds/ are sane, structural apiextensions/v1 CRDs, and match what hack/gen_crds.py makes.

No cluster needed: this reads the files. What only a real API server can judge (CEL cost, SSA) is
exercised by the integration tests.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "crds"
CRD_FILES = sorted(CRD_DIR.glob("*.yaml"))
GROUP = "apps.kubeplane.dev"
GROUPS = {GROUP, "backup.kubeplane.dev", "scheduling.kubeplane.dev", "batch.kubeplane.dev", "autoscaling.kubeplane.dev"}

# Every field of apiextensions.k8s.io/v1 JSONSchemaProps that a structural schema may use here. ($ref,
# definitions, dependencies, patternProperties and additionalItems are JSONSchemaProps fields too, but
# not structural.)
SCHEMA_KEYWORDS = frozenset(
    {
        "type", "format", "description", "title", "default", "example", "nullable", "enum",
        "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength", "minLength",
        "pattern", "maxItems", "minItems", "uniqueItems", "multipleOf", "maxProperties",
        "minProperties", "required", "items", "properties", "additionalProperties", "anyOf",
        "externalDocs",
        "x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource",
        "x-kubernetes-int-or-string", "x-kubernetes-list-map-keys", "x-kubernetes-list-type",
        "x-kubernetes-map-type", "x-kubernetes-validations",
    }
)  # fmt: skip
TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean"})
SCALARS = frozenset({"string", "integer", "number", "boolean"})
# k8s.io/apiextensions-apiserver/pkg/apiserver/validation/formats.go
FORMATS = frozenset(
    {
        "bsonobjectid", "uri", "email", "hostname", "ipv4", "ipv6", "cidr", "mac", "uuid", "uuid3",
        "uuid4", "uuid5", "isbn", "isbn10", "isbn13", "creditcard", "ssn", "hexcolor", "rgbcolor",
        "byte", "password", "date", "duration", "datetime", "date-time", "int32", "int64", "float",
        "double",
    }
)  # fmt: skip
INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]


# --------------------------------------------------------------------------------------------------
# The checker


def structural_problems(node: Any, path: str = "") -> list[str]:
    """Everything that keeps `node` from being a structural schema the way our CRDs write them."""
    if not isinstance(node, dict):
        return [f"{path}: schema is a {type(node).__name__}, not a mapping"]
    problems: list[str] = []
    unknown = sorted(set(node) - SCHEMA_KEYWORDS)
    if unknown:
        # $ref, allOf, oneOf, not, $podTemplateSpec, $k8s, x-kubernetes-patch-strategy, ...
        problems.append(f"{path}: keys a structural CRD schema cannot have: {unknown}")

    int_or_string = node.get("x-kubernetes-int-or-string") is True
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    kind = node.get("type")
    if kind is None:
        if not (int_or_string or preserve):
            problems.append(f"{path}: no type (and not int-or-string or preserve-unknown-fields)")
    elif kind not in TYPES:
        problems.append(f"{path}: unknown type {kind!r}")
    elif int_or_string:
        problems.append(f"{path}: x-kubernetes-int-or-string must not have a type")

    if "anyOf" in node and not (int_or_string and node["anyOf"] == INT_OR_STRING_ANY_OF):
        problems.append(f"{path}: anyOf is only allowed as int-or-string's [integer, string]")
    if "format" in node and node["format"] not in FORMATS:
        problems.append(f"{path}: format {node['format']!r} is unknown to apiextensions")

    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{path}: both properties and additionalProperties")
    if ("properties" in node or "additionalProperties" in node) and kind != "object":
        problems.append(f"{path}: properties on a non-object")
    if "items" in node and kind != "array":
        problems.append(f"{path}: items on a non-array")
    if kind == "array" and not isinstance(node.get("items"), dict):
        problems.append(f"{path}: array without a single items schema")
    if "additionalProperties" in node and not isinstance(node["additionalProperties"], dict):
        problems.append(f"{path}: additionalProperties must be a schema, not {node['additionalProperties']!r}")

    for field in node.get("required", []):
        if field not in node.get("properties", {}):
            problems.append(f"{path}: required field {field!r} is not a property")
    if "default" in node and kind in TYPES and not _matches_type(node["default"], kind):
        problems.append(f"{path}: default {node['default']!r} is not a {kind}")
    if "enum" in node and kind in SCALARS and not all(_matches_type(v, kind) for v in node["enum"]):
        problems.append(f"{path}: enum values are not all {kind}")

    list_type = node.get("x-kubernetes-list-type")
    if list_type is not None:
        if kind != "array" or list_type not in ("atomic", "set", "map"):
            problems.append(f"{path}: bad x-kubernetes-list-type {list_type!r}")
        items = node.get("items", {})
        if list_type == "map":
            keys = node.get("x-kubernetes-list-map-keys") or []
            if not keys:
                problems.append(f"{path}: list-type map without x-kubernetes-list-map-keys")
            for key in keys:
                key_schema = items.get("properties", {}).get(key)
                if key_schema is None:
                    problems.append(f"{path}: list-map key {key!r} is not a property of the items")
                elif key_schema.get("type") not in SCALARS and not key_schema.get("x-kubernetes-int-or-string"):
                    problems.append(f"{path}: list-map key {key!r} is not a scalar")
                elif key not in items.get("required", []) and "default" not in key_schema:
                    problems.append(f"{path}: list-map key {key!r} is neither required nor defaulted")
        if list_type == "set" and items.get("type") not in SCALARS:
            problems.append(f"{path}: list-type set of non-scalars")
    elif "x-kubernetes-list-map-keys" in node:
        problems.append(f"{path}: x-kubernetes-list-map-keys without x-kubernetes-list-type: map")
    if "x-kubernetes-map-type" in node and (
        kind != "object" or node["x-kubernetes-map-type"] not in ("atomic", "granular")
    ):
        problems.append(f"{path}: bad x-kubernetes-map-type")

    for rule in node.get("x-kubernetes-validations", []):
        if not isinstance(rule, dict) or not isinstance(rule.get("rule"), str) or not rule["rule"].strip():
            problems.append(f"{path}: x-kubernetes-validations entry without a rule: {rule!r}")

    for name, sub in node.get("properties", {}).items():
        problems += structural_problems(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        problems += structural_problems(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        problems += structural_problems(node["additionalProperties"], f"{path}{{}}")
    return problems


def _matches_type(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    expected = {"string": str, "boolean": bool, "object": dict, "array": list}[kind]
    return isinstance(value, expected)


def _schemas(crd: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for version in crd["spec"]["versions"]:
        yield version["name"], version["schema"]["openAPIV3Schema"]


def _load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        crd: dict[str, Any] = yaml.safe_load(fh)
    return crd


def _at(schema: dict[str, Any], dotted: str) -> dict[str, Any]:
    """The schema node at a path like `spec.template.spec.containers[].resources`."""
    node = schema
    for part in dotted.split("."):
        name, is_list, _ = part.partition("[]")
        node = node["properties"][name]
        if is_list:
            node = node["items"]
    return node


# --------------------------------------------------------------------------------------------------
# The checker can fail (otherwise a green run means nothing)


@pytest.mark.parametrize(
    ("schema", "complaint"),
    [
        ({"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}, "cannot have"),
        ({"type": "object", "properties": {"a": {"description": "untyped"}}}, ".a: no type"),
        ({"allOf": [{"type": "string"}], "type": "string"}, "cannot have: ['allOf']"),
        ({"oneOf": [{"type": "integer"}, {"type": "string"}]}, "cannot have: ['oneOf']"),
        ({"type": "string", "anyOf": [{"type": "integer"}, {"type": "string"}]}, "anyOf is only"),
        ({"x-kubernetes-int-or-string": True, "type": "string"}, "must not have a type"),
        ({"type": "object", "additionalProperties": True}, "must be a schema"),
        ({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {}}, "both"),
        ({"type": "string", "format": "int-or-string"}, "format 'int-or-string'"),
        ({"type": "array"}, "without a single items schema"),
        ({"type": "object", "properties": {"t": {"$podTemplateSpec": True}}}, "$podTemplateSpec"),
        ({"type": "string", "x-kubernetes-patch-strategy": "merge"}, "x-kubernetes-patch-strategy"),
        ({"type": "integer", "default": "1"}, "default '1' is not a integer"),
        (
            {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}}},
            },
            "neither required nor defaulted",
        ),
    ],
)
def test_checker_rejects(schema: dict[str, Any], complaint: str) -> None:
    problems = structural_problems(schema)
    assert any(complaint in p for p in problems), problems


def test_checker_accepts_int_or_string_and_preserve_unknown_fields() -> None:
    schema = {
        "type": "object",
        "properties": {
            "port": {"x-kubernetes-int-or-string": True, "anyOf": INT_OR_STRING_ANY_OF},
            "raw": {"x-kubernetes-preserve-unknown-fields": True},
        },
    }
    assert structural_problems(schema) == []


# --------------------------------------------------------------------------------------------------
# Every CRD in crds/


def test_there_are_crds() -> None:
    assert CRD_FILES, f"no CRDs in {CRD_DIR}"


@pytest.mark.parametrize("path", CRD_FILES, ids=[p.name for p in CRD_FILES])
def test_crd_is_sane(path: Path) -> None:
    crd = _load(path)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    spec = crd["spec"]
    names = spec["names"]
    assert spec["group"] in GROUPS
    assert crd["metadata"]["name"] == f"{names['plural']}.{spec['group']}"
    assert path.name == f"{spec['group']}_{names['plural']}.yaml"
    assert "kubeplane" in names.get("categories", [])
    assert spec["scope"] in ("Namespaced", "Cluster")
    assert [v["storage"] for v in spec["versions"]].count(True) == 1
    for version in spec["versions"]:
        assert version["served"] is True
        assert "status" in version.get("subresources", {}), f"{version['name']}: no status subresource"


@pytest.mark.parametrize("path", CRD_FILES, ids=[p.name for p in CRD_FILES])
def test_crd_schema_is_structural(path: Path) -> None:
    for version, schema in _schemas(_load(path)):
        assert schema.get("type") == "object"
        problems = structural_problems(schema, f"{version}")
        assert not problems, "\n".join(problems[:50])


@pytest.mark.parametrize("path", CRD_FILES, ids=[p.name for p in CRD_FILES])
def test_crd_is_generated_and_small_enough(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Generated by hack/gen_crds.py from hack/crd-src/"), "hand-edited CRD?"
    # etcd takes at most 1.5 MiB per object; stay well clear.
    assert len(text.encode()) < 1_500_000


# --------------------------------------------------------------------------------------------------
# ReplicaSet specifics


@pytest.fixture(scope="module")
def replicaset() -> dict[str, Any]:
    return _load(CRD_DIR / f"{GROUP}_replicasets.yaml")


def test_replicaset_names(replicaset: dict[str, Any]) -> None:
    names = replicaset["spec"]["names"]
    assert names["kind"] == "ReplicaSet"
    assert names["singular"] == "replicaset"
    assert names["shortNames"] == ["kprs"]  # not "rs": apps/v1 owns it


def test_replicaset_subresources_and_columns(replicaset: dict[str, Any]) -> None:
    (version,) = replicaset["spec"]["versions"]
    assert version["name"] == "v1alpha1"
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"] if not c.get("priority")}
    assert columns == {
        "Desired": ".spec.replicas",
        "Current": ".status.replicas",
        "Ready": ".status.readyReplicas",
        "Age": ".metadata.creationTimestamp",
    }


def test_replicaset_spec(replicaset: dict[str, Any]) -> None:
    (_, schema) = next(_schemas(replicaset))
    assert schema["required"] == ["spec"]
    spec = _at(schema, "spec")
    assert sorted(spec["required"]) == ["selector", "template"]
    assert _at(schema, "spec.replicas") | {"description": ""} == {
        "description": "",
        "type": "integer",
        "format": "int32",
        "minimum": 0,
        "default": 1,
    }
    operator = _at(schema, "spec.selector.matchExpressions[].operator")
    assert operator["enum"] == ["In", "NotIn", "Exists", "DoesNotExist"]
    messages = {v["message"] for v in spec["x-kubernetes-validations"]}
    assert "spec.selector must not be empty" in messages
    assert "selector does not match template labels" in messages


def test_replicaset_template_is_a_real_pod_template(replicaset: dict[str, Any]) -> None:
    (_, schema) = next(_schemas(replicaset))
    template = _at(schema, "spec.template")
    assert "x-kubernetes-preserve-unknown-fields" not in template
    assert set(_at(schema, "spec.template.metadata")["properties"]) >= {"labels", "annotations"}
    assert _at(schema, "spec.template.metadata.labels")["additionalProperties"] == {"type": "string"}

    pod = _at(schema, "spec.template.spec")
    assert {"containers", "initContainers", "volumes", "affinity", "tolerations"} <= set(pod["properties"])
    assert pod["required"] == ["containers"]

    containers = _at(schema, "spec.template.spec.containers")
    assert containers["x-kubernetes-list-type"] == "map"
    assert containers["x-kubernetes-list-map-keys"] == ["name"]
    assert _at(schema, "spec.template.spec.containers[].name")["type"] == "string"

    # resource.Quantity and IntOrString are int-or-string, with no type.
    cpu = _at(schema, "spec.template.spec.containers[].resources.requests")["additionalProperties"]
    assert cpu["x-kubernetes-int-or-string"] is True and "type" not in cpu
    port = _at(schema, "spec.template.spec.containers[].readinessProbe.httpGet.port")
    assert port["x-kubernetes-int-or-string"] is True and "type" not in port

    # ports are keyed by (containerPort, protocol); protocol keeps its upstream default for SSA.
    ports = _at(schema, "spec.template.spec.containers[].ports")
    assert ports["x-kubernetes-list-map-keys"] == ["containerPort", "protocol"]
    assert _at(schema, "spec.template.spec.containers[].ports[].protocol")["default"] == "TCP"


def test_replicaset_status(replicaset: dict[str, Any]) -> None:
    (_, schema) = next(_schemas(replicaset))
    status = _at(schema, "status")
    assert set(status["properties"]) == {
        "replicas",
        "fullyLabeledReplicas",
        "readyReplicas",
        "availableReplicas",
        "terminatingReplicas",
        "observedGeneration",
        "conditions",
        "selector",
    }
    assert _at(schema, "status.observedGeneration")["format"] == "int64"
    conditions = _at(schema, "status.conditions")
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert _at(schema, "status.conditions[].lastTransitionTime")["format"] == "date-time"


# --------------------------------------------------------------------------------------------------
# The generator


@pytest.fixture(scope="module")
def gen_crds() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_crds", ROOT / "hack" / "gen_crds.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_crds"] = module  # dataclasses look the module up while it executes
    spec.loader.exec_module(module)
    return module


def test_a_key_given_twice_in_a_source_is_refused(gen_crds: ModuleType) -> None:
    with pytest.raises(gen_crds.GenError, match="line 3: key 'type' given twice"):
        gen_crds.load_yaml("a:\n  type: object\n  type: string\n", "src.yaml")
    assert gen_crds.load_yaml("a: {b: 1}\nc: [1]\n", "src.yaml") == {"a": {"b": 1}, "c": [1]}


def test_crds_are_up_to_date(gen_crds: ModuleType) -> None:
    """crds/ is what hack/gen_crds.py makes from hack/crd-src/ and the committed OpenAPI snapshot."""
    assert gen_crds.main(["--check"]) == 0, "crds/ is stale: run hack/gen_crds.py"


def test_generator_converts_upstream_forms(gen_crds: ModuleType) -> None:
    ref = "#/components/schemas/"
    schemas = {
        "T": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "default": ""},
                "port": {"allOf": [{"$ref": ref + "io.k8s.apimachinery.pkg.util.intstr.IntOrString"}]},
                "cpu": {"$ref": ref + "io.k8s.apimachinery.pkg.api.resource.Quantity"},
                "when": {"description": "When. More words.", "allOf": [{"$ref": ref + "Time"}]},
                "raw": {"type": "object"},
                "self": {"allOf": [{"$ref": ref + "T"}]},
                "list": {
                    "type": "array",
                    "items": {"type": "string", "default": ""},
                    "x-kubernetes-list-type": "set",
                    "x-kubernetes-patch-strategy": "merge",
                },
            },
        },
        "Time": {"type": "string", "format": "date-time"},
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
            "format": "int-or-string",
            "oneOf": [{"type": "integer"}, {"type": "string"}],
        },
        "io.k8s.apimachinery.pkg.api.resource.Quantity": {"oneOf": [{"type": "string"}, {"type": "number"}]},
    }
    out = gen_crds.Converter(schemas).type_schema("T")
    assert structural_problems(out) == []
    props = out["properties"]
    assert props["name"] == {"type": "string"}  # zero-value default dropped
    assert props["port"] == {"anyOf": INT_OR_STRING_ANY_OF, "x-kubernetes-int-or-string": True}
    assert props["cpu"]["x-kubernetes-int-or-string"] is True and "pattern" in props["cpu"]
    assert props["when"] == {"type": "string", "format": "date-time", "description": "When."}
    assert props["raw"] == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert props["self"] == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}  # cycle
    assert props["list"] == {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"}


def test_generator_refuses_what_it_does_not_understand(gen_crds: ModuleType) -> None:
    schemas = {"T": {"type": "object", "properties": {"a": {"type": "string", "not": {"enum": ["x"]}}}}}
    with pytest.raises(gen_crds.GenError, match="'not'"):
        gen_crds.Converter(schemas).type_schema("T")


def test_scheduler_profile_plugin_names_are_the_registry() -> None:
    """The CRD's enum of plugin names (a fragment of hack/crd-src) must follow the scheduler's plugins."""
    from operators.scheduler.plugins import REGISTRY

    crd = yaml.safe_load((ROOT / "crds/scheduling.kubeplane.dev_schedulerprofiles.yaml").read_text())
    plugins = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["plugins"]
    name = plugins["properties"]["disabled"]["items"]["properties"]["name"]
    assert set(name["enum"]) == set(REGISTRY)
