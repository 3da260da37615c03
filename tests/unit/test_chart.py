"""The Helm chart charts/kubeplane, rendered with the pinned helm (bin/helm); no cluster needed.

`helm lint --strict`, then `helm template` over representative values, asserting on the objects it
produces: labels, pod security, one ServiceAccount and least-privilege RBAC per enabled operator,
CRDs identical to crds/, and a values schema that rejects bad input with a clear message.
The API server's verdict on the same objects is in tests/integration/test_chart.py.

bin/helm comes from `make tools` (`make test` builds it first): without it these tests fail, they do
not skip.
"""

from __future__ import annotations

import base64
import functools
import json
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kubeplane"
HELM = ROOT / "bin" / "helm"
CRD_DIR = ROOT / "crds"
CHART_CRD_DIR = CHART / "files" / "crds"

RELEASE = "kp"
NAMESPACE = "kubeplane-system"
OPERATORS = ("controllers", "scheduler", "backup")
STANDARD_LABELS = (
    "app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
    "app.kubernetes.io/component", "app.kubernetes.io/managed-by", "app.kubernetes.io/part-of",
)  # fmt: skip
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
ALL_ON = {
    "operators": {name: {"enabled": True} for name in OPERATORS},
    "minio": {"enabled": True, "persistence": {"enabled": True}},
    "backupStorageLocation": {"create": True},
    "metrics": {"serviceMonitor": {"enabled": True}},
}

Obj = dict[str, Any]
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: the rendered CRDs are large


# --- helpers -----------------------------------------------------------------------------------


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    if not HELM.exists():
        pytest.fail(f"{HELM} is missing: run `make tools` (make test does)")
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=120)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def template(values: dict[str, Any] | None = None, *, release: str = RELEASE, namespace: str = NAMESPACE,
             ) -> subprocess.CompletedProcess[str]:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        json.dump(values or {}, f)
        f.flush()
        return helm("template", release, str(CHART), "--namespace", namespace, "--values", f.name)


@functools.cache
def _render(values_json: str, release: str, namespace: str) -> tuple[Obj, ...]:
    result = template(json.loads(values_json), release=release, namespace=namespace)
    assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.load_all(result.stdout, Loader=Loader) if doc)


def render(values: dict[str, Any] | None = None, *, release: str = RELEASE, namespace: str = NAMESPACE) -> list[Obj]:
    return list(_render(json.dumps(values or {}, sort_keys=True), release, namespace))


def of_kind(objs: Iterable[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def named(objs: Iterable[Obj], kind: str, name: str) -> Obj:
    matches = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def pod_specs(objs: Iterable[Obj]) -> list[tuple[str, Obj]]:
    return [(f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"])
            for o in objs if o["kind"] in ("Deployment", "Job")]


def enabled_operators(values: dict[str, Any]) -> set[str]:
    defaults = {"controllers"}
    ops = values.get("operators", {})
    return {n for n in OPERATORS if ops.get(n, {}).get("enabled", n in defaults)}


# A small RBAC evaluator: what do the rules bound to a service account allow, and where?
def _matches(rule_values: list[str], value: str) -> bool:
    return "*" in rule_values or value in rule_values


def _resource_matches(rule_values: list[str], resource: str) -> bool:
    """As the RBAC authorizer: "*" is every resource and subresource, "*/scale" one subresource of all."""
    subresource = resource.partition("/")[2]
    return _matches(rule_values, resource) or bool(subresource and f"*/{subresource}" in rule_values)


def rule_allows(rule: Obj, verb: str, group: str, resource: str) -> bool:
    return (_matches(rule.get("apiGroups", []), group) and _resource_matches(rule.get("resources", []), resource)
            and _matches(rule["verbs"], verb))


def grants(objs: list[Obj], sa: str, sa_namespace: str) -> list[tuple[str | None, Obj]]:
    """(namespace or None for cluster-wide, rule) for every rule bound to the service account."""
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o
             for o in objs if o["kind"] in ("Role", "ClusterRole")}
    out: list[tuple[str | None, Obj]] = []
    for binding in objs:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s["kind"] == "ServiceAccount" and s["name"] == sa and s["namespace"] == sa_namespace
                   for s in binding["subjects"]):
            continue
        ref = binding["roleRef"]
        scope = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        role_ns = scope if ref["kind"] == "Role" else None
        role = roles[(ref["kind"], role_ns, ref["name"])]
        out.extend((scope, rule) for rule in role["rules"])
    return out


def allowed(objs: list[Obj], sa: str, verb: str, group: str, resource: str, namespace: str | None = None,
            sa_namespace: str = NAMESPACE) -> bool:
    """Like `kubectl auth can-i`: namespace None asks for cluster-wide permission."""
    return any(rule_allows(rule, verb, group, resource)
               for scope, rule in grants(objs, sa, sa_namespace) if scope is None or scope == namespace)


# --- lint and CRDs -----------------------------------------------------------------------------


@pytest.mark.parametrize("values", [{}, ALL_ON], ids=["defaults", "everything-on"])
def test_helm_lint_strict(values: dict[str, Any], tmp_path: Path) -> None:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(json.dumps(values))
    result = helm("lint", "--strict", str(CHART), "--values", str(values_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_crds_are_a_copy_of_crds_dir() -> None:
    source = {p.name: p.read_bytes() for p in CRD_DIR.glob("*.yaml")}
    copy = {p.name: p.read_bytes() for p in CHART_CRD_DIR.glob("*.yaml")}
    assert source, "crds/ is empty"
    fix = "charts/kubeplane/files/crds/ differs from crds/: run `make chart-crds`"
    assert sorted(copy) == sorted(source), fix
    drifted = [name for name in source if copy[name] != source[name]]
    assert not drifted, f"{fix} ({drifted})"


def test_rendered_crds_equal_crds_dir_plus_labels_and_keep_policy() -> None:
    rendered = {o["metadata"]["name"]: o for o in of_kind(render(), "CustomResourceDefinition")}
    source = {}
    for path in CRD_DIR.glob("*.yaml"):
        crd = yaml.load(path.read_text(), Loader=Loader)
        source[crd["metadata"]["name"]] = crd
    assert sorted(rendered) == sorted(source)
    for name, crd in rendered.items():
        meta = crd["metadata"]
        assert meta["annotations"]["helm.sh/resource-policy"] == "keep", name
        assert meta["labels"]["app.kubernetes.io/component"] == "crds"
        added_labels = set(meta["labels"]) - set(source[name]["metadata"].get("labels", {}))
        assert all(k.startswith(("app.kubernetes.io/", "helm.sh/")) for k in added_labels), added_labels
        added_annotations = set(meta["annotations"]) - set(source[name]["metadata"].get("annotations", {}))
        assert added_annotations == {"helm.sh/resource-policy"}
        stripped = json.loads(json.dumps(crd))
        for key in ("labels", "annotations"):
            stripped["metadata"].pop(key)
            if key in source[name]["metadata"]:
                stripped["metadata"][key] = source[name]["metadata"][key]
        assert stripped == source[name], f"rendered CRD {name} differs from crds/"


def test_crds_keep_false_and_disabled() -> None:
    crds = of_kind(render({"crds": {"keep": False}}), "CustomResourceDefinition")
    assert crds and all("helm.sh/resource-policy" not in (c["metadata"].get("annotations") or {}) for c in crds)
    assert of_kind(render({"crds": {"enabled": False}}), "CustomResourceDefinition") == []


# --- objects per operator ----------------------------------------------------------------------

OPERATOR_SETS = [
    {},
    {"operators": {"controllers": {"enabled": False}}},
    {"operators": {"scheduler": {"enabled": True}}},
    {"operators": {"backup": {"enabled": True}}},
    {"operators": {"controllers": {"enabled": False}, "scheduler": {"enabled": True}, "backup": {"enabled": True}}},
    ALL_ON,
]
OPERATOR_IDS = ["defaults", "none", "with-scheduler", "with-backup", "scheduler-and-backup", "everything-on"]


@pytest.mark.parametrize("values", OPERATOR_SETS, ids=OPERATOR_IDS)
def test_one_deployment_serviceaccount_and_service_per_enabled_operator(values: dict[str, Any]) -> None:
    objs = render(values)
    enabled = enabled_operators(values)
    operator_deployments = [d for d in of_kind(objs, "Deployment")
                            if d["metadata"]["labels"]["app.kubernetes.io/component"] in OPERATORS]
    assert {d["metadata"]["name"] for d in operator_deployments} == {f"kp-kubeplane-{n}" for n in enabled}
    assert {s["metadata"]["name"] for s in of_kind(objs, "ServiceAccount")} == {f"kp-kubeplane-{n}" for n in enabled}
    services = {s["metadata"]["name"] for s in of_kind(objs, "Service")} - {"kp-kubeplane-minio"}
    assert services == {f"kp-kubeplane-{n}-metrics" for n in enabled}
    for d in operator_deployments:
        name = d["metadata"]["labels"]["app.kubernetes.io/component"]
        spec = d["spec"]["template"]["spec"]
        assert spec["serviceAccountName"] == f"kp-kubeplane-{name}"
        assert spec["containers"][0]["command"][:3] == ["kubeplane", "run", name]


@pytest.mark.parametrize("values", OPERATOR_SETS, ids=OPERATOR_IDS)
def test_standard_labels_on_every_object_and_pod(values: dict[str, Any]) -> None:
    for obj in render(values):
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        labels = obj["metadata"].get("labels") or {}
        assert all(labels.get(k) for k in STANDARD_LABELS), f"{where} lacks standard labels: {labels}"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/version"] == "0.1.0"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/part-of"] == "kubeplane"
        assert labels["app.kubernetes.io/name"] == "kubeplane"
        if obj["kind"] in ("Deployment", "Job"):
            pod_labels = obj["spec"]["template"]["metadata"]["labels"]
            assert all(pod_labels.get(k) for k in STANDARD_LABELS), f"{where} pod template lacks standard labels"


def test_common_labels_are_added() -> None:
    for obj in render({"commonLabels": {"team": "platform"}}):
        assert obj["metadata"]["labels"]["team"] == "platform"


@pytest.mark.parametrize("values", [{}, ALL_ON], ids=["defaults", "everything-on"])
def test_every_pod_is_locked_down(values: dict[str, Any]) -> None:
    specs = pod_specs(render(values))
    assert specs
    for where, spec in specs:
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 65532, where
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC"), where
        assert all("hostPath" not in v for v in spec.get("volumes", [])), where
        tmp_volumes = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert not sc.get("privileged"), where
            assert c["resources"]["requests"] and c["resources"]["limits"], f"{where}: requests and limits"
            tmp = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert tmp and tmp[0]["name"] in tmp_volumes, f"{where}: a writable emptyDir at /tmp"


def test_tmp_size_is_per_operator() -> None:
    def limits(values: dict[str, Any]) -> dict[str, str]:
        out = {}
        for d in of_kind(render(values), "Deployment"):
            component = d["metadata"]["labels"].get("app.kubernetes.io/component")
            if component in ("controllers", "scheduler", "backup"):
                tmp = next(v for v in d["spec"]["template"]["spec"]["volumes"] if v["name"] == "tmp")
                out[component] = tmp["emptyDir"]["sizeLimit"]
        return out

    assert limits(ALL_ON) == {"controllers": "64Mi", "scheduler": "64Mi", "backup": "1Gi"}
    assert limits(deep_merge(ALL_ON, {"operators": {"backup": {"tmpSize": "5Gi"}}}))["backup"] == "5Gi"


def test_operator_deployments_recreate_one_replica_liveness_and_ports() -> None:
    for d in of_kind(render(ALL_ON), "Deployment"):
        spec = d["spec"]
        assert spec["strategy"] == {"type": "Recreate"}
        assert spec["replicas"] == 1
        if d["metadata"]["labels"]["app.kubernetes.io/component"] not in OPERATORS:
            continue
        c = spec["template"]["spec"]["containers"][0]
        assert "--liveness=http://0.0.0.0:8080/healthz" in c["command"]
        assert "--metrics-port=9090" in c["command"]
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports == {"health": 8080, "metrics": 9090}
        assert c["image"] == "kubeplane:0.1.0" and c["imagePullPolicy"] == "IfNotPresent"


def test_image_tag_digest_and_per_operator_overrides() -> None:
    def image(values: dict[str, Any], name: str = "controllers") -> str:
        d = named(render(values), "Deployment", f"kp-kubeplane-{name}")
        return str(d["spec"]["template"]["spec"]["containers"][0]["image"])

    assert image({"image": {"repository": "example.org/kubeplane", "tag": "1.2"}}) == "example.org/kubeplane:1.2"
    digest = "sha256:" + "a" * 64
    assert image({"image": {"digest": digest}}) == f"kubeplane@{digest}"
    assert image({"operators": {"controllers": {"image": {"tag": "dev"}}}}) == "kubeplane:dev"
    scheduler = {"operators": {"scheduler": {"enabled": True, "image": {"repository": "sched"}}}}
    assert image(scheduler, "scheduler") == "sched:0.1.0"


def test_scheduler_name_becomes_the_schedulers_environment() -> None:
    def env(values: dict[str, Any]) -> list[Obj]:
        d = named(render(values), "Deployment", "kp-kubeplane-scheduler")
        return list(d["spec"]["template"]["spec"]["containers"][0]["env"])

    default = {"name": "KUBEPLANE_SCHEDULER_NAME", "value": "kubeplane-scheduler"}
    assert default in env({"operators": {"scheduler": {"enabled": True}}})
    custom = env({"operators": {"scheduler": {"enabled": True, "schedulerName": "team-a-scheduler"}}})
    assert {"name": "KUBEPLANE_SCHEDULER_NAME", "value": "team-a-scheduler"} in custom
    controllers = named(render(), "Deployment", "kp-kubeplane-controllers")["spec"]["template"]["spec"]
    assert not [e for e in controllers["containers"][0]["env"] if e["name"] == "KUBEPLANE_SCHEDULER_NAME"]


def test_operator_options_become_flags() -> None:
    values = {"operators": {"controllers": {"watchNamespaces": ["team-a", "team-b"], "verbose": True,
                                            "extraArgs": ["--foo"]}}}
    c = named(render(values), "Deployment", "kp-kubeplane-controllers")["spec"]["template"]["spec"]["containers"][0]
    assert c["command"][3:] == ["--liveness=http://0.0.0.0:8080/healthz", "--metrics-port=9090",
                                "--namespace=team-a", "--namespace=team-b", "--verbose", "--foo"]


def test_overrides_of_fullname_and_namespace() -> None:
    objs = render({"fullnameOverride": "plane", "namespaceOverride": "elsewhere", **ALL_ON}, namespace="default")
    for obj in objs:
        assert obj["metadata"]["name"].startswith("plane-") or obj["kind"] == "CustomResourceDefinition" \
            or obj["kind"] == "BackupStorageLocation", obj["metadata"]["name"]
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"]["namespace"] == "elsewhere", f"{obj['kind']}/{obj['metadata']['name']}"
        for subject in obj.get("subjects", []):
            assert subject["namespace"] == "elsewhere"
    assert named(objs, "Deployment", "plane-controllers")


def test_release_name_containing_kubeplane_is_not_repeated() -> None:
    assert named(render(release="kubeplane"), "Deployment", "kubeplane-controllers")


def test_serviceaccount_name_override_and_existing_account() -> None:
    objs = render({"operators": {"controllers": {"serviceAccount": {"name": "ctl"}}}})
    assert named(objs, "ServiceAccount", "ctl")
    deployment = named(objs, "Deployment", "kp-kubeplane-controllers")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "ctl"
    assert grants(objs, "ctl", NAMESPACE)

    objs = render({"operators": {"controllers": {"serviceAccount": {"create": False, "name": "mine"}}}})
    assert of_kind(objs, "ServiceAccount") == []
    assert grants(objs, "mine", NAMESPACE), "RBAC still binds the existing account"

    result = template({"operators": {"controllers": {"serviceAccount": {"create": False}}}})
    assert result.returncode != 0
    assert "operators.controllers.serviceAccount.name is required" in result.stderr


# --- RBAC --------------------------------------------------------------------------------------


def test_rbac_create_false_renders_no_rbac() -> None:
    kinds = {o["kind"] for o in render({**ALL_ON, "rbac": {"create": False}})}
    assert not kinds & {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}


def test_controllers_rbac_is_what_the_controllers_need() -> None:
    objs = render()
    sa = "kp-kubeplane-controllers"
    for verb in ("get", "list", "watch", "create", "delete", "patch"):
        assert allowed(objs, sa, verb, "", "pods"), verb
    for verb in ("get", "list", "watch"):
        assert allowed(objs, sa, verb, "apps.kubeplane.dev", "replicasets"), verb
    for sub in ("replicasets/status", "replicasets/scale"):
        for verb in ("patch", "update"):
            assert allowed(objs, sa, verb, "apps.kubeplane.dev", sub), (verb, sub)
    assert allowed(objs, sa, "update", "apps.kubeplane.dev", "replicasets/finalizers")
    # The Deployment creates, scales, adopts and deletes its ReplicaSets, and annotates itself.
    for verb in ("create", "patch", "delete"):
        assert allowed(objs, sa, verb, "apps.kubeplane.dev", "replicasets"), verb
    assert allowed(objs, sa, "patch", "apps.kubeplane.dev", "deployments")
    assert allowed(objs, sa, "patch", "apps.kubeplane.dev", "deployments/status")
    for group in ("", "events.k8s.io"):
        assert allowed(objs, sa, "create", group, "events") and allowed(objs, sa, "patch", group, "events")
    for verb in ("list", "watch"):
        assert allowed(objs, sa, verb, "apiextensions.k8s.io", "customresourcedefinitions")
    # The Job sets its own selector (patch), writes its status, and holds its pods' finalizer.
    for verb in ("get", "list", "watch", "patch", "delete"):  # delete: ttlSecondsAfterFinished
        assert allowed(objs, sa, verb, "batch.kubeplane.dev", "jobs"), verb
    assert allowed(objs, sa, "patch", "batch.kubeplane.dev", "jobs/status")
    assert allowed(objs, sa, "update", "batch.kubeplane.dev", "jobs/finalizers")
    # The CronJob creates and deletes its Jobs and writes its status, never its spec.
    for verb in ("get", "list", "watch"):
        assert allowed(objs, sa, verb, "batch.kubeplane.dev", "cronjobs"), verb
    assert allowed(objs, sa, "create", "batch.kubeplane.dev", "jobs")
    assert allowed(objs, sa, "patch", "batch.kubeplane.dev", "cronjobs/status")
    # The DaemonSet reads nodes (never writes them) and keeps its history in ControllerRevisions.
    for verb in ("get", "list", "watch"):
        assert allowed(objs, sa, verb, "", "nodes"), verb
    for verb in ("get", "list", "watch", "create", "patch", "update", "delete"):
        assert allowed(objs, sa, verb, "apps", "controllerrevisions", namespace="default"), verb
    assert allowed(objs, sa, "patch", "apps.kubeplane.dev", "daemonsets/status")
    # Denied: everything else, in particular secrets, node writes and other workloads.
    for verb, group, resource in [
        ("get", "", "secrets"), ("list", "", "secrets"), ("delete", "", "nodes"), ("patch", "", "nodes"),
        ("update", "", "nodes/status"), ("create", "apps", "daemonsets"),
        ("delete", "apps.kubeplane.dev", "daemonsets"),
        ("list", "", "namespaces"), ("create", "apps", "deployments"), ("create", "", "pods/exec"),
        ("delete", "apps.kubeplane.dev", "deployments"), ("create", "apps.kubeplane.dev", "deployments"),
        ("update", "", "pods/status"), ("create", "apiextensions.k8s.io", "customresourcedefinitions"),
        ("get", "", "configmaps"), ("escalate", "rbac.authorization.k8s.io", "clusterroles"),
        ("patch", "batch.kubeplane.dev", "cronjobs"), ("delete", "batch.kubeplane.dev", "cronjobs"),
        ("create", "batch", "jobs"),
        ("patch", "autoscaling.kubeplane.dev", "horizontalpodautoscalers"),
        ("get", "autoscaling", "horizontalpodautoscalers"), ("update", "apps", "deployments"),
        ("get", "example.com", "widgets/scale"), ("create", "external.metrics.k8s.io", "queue_depth"),
    ]:
        assert not allowed(objs, sa, verb, group, resource, namespace="default"), (verb, group, resource)
    # The HPA reads its HPAs, writes their status, reads and writes its targets' scale, reads metrics.
    for verb in ("get", "list", "watch"):
        assert allowed(objs, sa, verb, "autoscaling.kubeplane.dev", "horizontalpodautoscalers"), verb
    assert allowed(objs, sa, "patch", "autoscaling.kubeplane.dev", "horizontalpodautoscalers/status")
    for group, scale in (("apps", "deployments/scale"), ("apps", "statefulsets/scale"), ("apps", "replicasets/scale"),
                         ("apps.kubeplane.dev", "deployments/scale"), ("", "replicationcontrollers/scale")):
        assert allowed(objs, sa, "get", group, scale) and allowed(objs, sa, "update", group, scale), scale
    assert allowed(objs, sa, "list", "metrics.k8s.io", "pods")
    assert allowed(objs, sa, "get", "external.metrics.k8s.io", "queue_depth")
    assert_no_wildcards(objs, sa)


def assert_no_wildcards(objs: list[Obj], sa: str) -> None:
    """No wildcard verb or group; a wildcard resource only for the metrics APIs (their resources are metric
    names), read-only, as upstream's HPA role has it."""
    metrics_groups = {"custom.metrics.k8s.io", "external.metrics.k8s.io"}
    for _, rule in grants(objs, sa, NAMESPACE):
        assert "*" not in rule["verbs"] and "*" not in rule.get("apiGroups", []), rule
        if "*" in rule.get("resources", []):
            assert set(rule["apiGroups"]) <= metrics_groups and set(rule["verbs"]) <= {"get", "list"}, rule


def test_drop_in_adds_the_flag_and_exactly_the_builtin_kinds_rbac() -> None:
    sa = "kp-kubeplane-controllers"
    plain = render()
    assert not allowed(plain, sa, "list", "apps", "replicasets"), "no built-in kinds unless dropIn"
    objs = render({"operators": {"controllers": {"dropIn": True}}})
    pod_spec = named(objs, "Deployment", "kp-kubeplane-controllers")["spec"]["template"]["spec"]
    command = pod_spec["containers"][0]["command"]
    assert "--drop-in" in command
    for group, plural in (("apps", "replicasets"), ("", "replicationcontrollers"), ("apps", "deployments"),
                          ("apps", "daemonsets"), ("batch", "cronjobs"), ("batch", "jobs")):
        for verb in ("get", "list", "watch"):
            assert allowed(objs, sa, verb, group, plural, namespace="default"), (verb, plural)
        assert allowed(objs, sa, "update", group, f"{plural}/status", namespace="default")
        assert allowed(objs, sa, "update", group, f"{plural}/finalizers", namespace="default")
    # The ReplicaSet controllers never create, delete or rescale the objects they drive; the Deployment
    # controller creates, scales and deletes ReplicaSets and annotates Deployments, never creates those.
    for verb, group, plural in [*((v, "", "replicationcontrollers") for v in ("create", "delete", "update", "patch")),
                                ("create", "apps", "deployments"), ("delete", "apps", "deployments")]:
        assert not allowed(objs, sa, verb, group, plural, namespace="default"), (verb, plural)
    for verb in ("create", "patch", "update", "delete"):
        assert allowed(objs, sa, verb, "apps", "replicasets", namespace="default"), verb
    assert allowed(objs, sa, "patch", "apps", "deployments", namespace="default")
    # The CronJob controller creates and deletes batch/v1 Jobs, and never touches a CronJob's spec.
    for verb in ("create", "delete", "list", "watch"):
        assert allowed(objs, sa, verb, "batch", "jobs", namespace="default"), verb
    for verb, group, resource in [("create", "apps", "daemonsets"), ("patch", "apps", "daemonsets"),
                                  ("update", "batch", "cronjobs"), ("patch", "batch", "cronjobs")]:
        assert not allowed(objs, sa, verb, group, resource, namespace="default"), (verb, resource)
    # The HPA controller writes only autoscaling/v2 HPAs' status, and the scale of their targets.
    for verb in ("get", "list", "watch"):
        assert allowed(objs, sa, verb, "autoscaling", "horizontalpodautoscalers", namespace="default"), verb
    assert allowed(objs, sa, "update", "autoscaling", "horizontalpodautoscalers/status", namespace="default")
    for verb in ("create", "update", "patch", "delete"):
        assert not allowed(objs, sa, verb, "autoscaling", "horizontalpodautoscalers", namespace="default"), verb
    assert not allowed(plain, sa, "list", "autoscaling", "horizontalpodautoscalers", namespace="default")
    assert_no_wildcards(objs, sa)
    # Its own rollout is run by itself: the new pod first (Recreate deleted the only pod that could create it).
    assert named(objs, "Deployment", "kp-kubeplane-controllers")["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def test_controllers_watching_namespaces_get_roles_there_only() -> None:
    objs = render({"operators": {"controllers": {"watchNamespaces": ["team-a", "team-b"]}}})
    sa = "kp-kubeplane-controllers"
    for ns in ("team-a", "team-b"):
        assert allowed(objs, sa, "create", "", "pods", namespace=ns)
        assert allowed(objs, sa, "patch", "apps.kubeplane.dev", "replicasets/status", namespace=ns)
    assert not allowed(objs, sa, "create", "", "pods", namespace="team-c")
    assert not allowed(objs, sa, "list", "", "pods"), "no cluster-wide pod access"
    # Kopf lists and watches namespaces when given -n, and CRDs always.
    assert allowed(objs, sa, "watch", "", "namespaces") and allowed(objs, sa, "list", "", "namespaces")
    assert allowed(objs, sa, "watch", "apiextensions.k8s.io", "customresourcedefinitions")
    cluster_rules = named(objs, "ClusterRole", "kp-kubeplane-controllers")["rules"]
    # Nodes are cluster-scoped: the DaemonSet reads them cluster-wide even then.
    assert {r["resources"][0] for r in cluster_rules} == {"customresourcedefinitions", "namespaces", "nodes"}


def test_controllers_rbac_covers_every_apps_crd_the_chart_ships() -> None:
    plurals = set()
    for path in CRD_DIR.glob("*.yaml"):
        crd = yaml.load(path.read_text(), Loader=Loader)
        if crd["spec"]["group"] == "apps.kubeplane.dev":
            plurals.add(crd["spec"]["names"]["plural"])
    objs = render()
    for plural in plurals:
        assert allowed(objs, "kp-kubeplane-controllers", "watch", "apps.kubeplane.dev", plural)
        assert allowed(objs, "kp-kubeplane-controllers", "patch", "apps.kubeplane.dev", f"{plural}/status")


def test_scheduler_rbac_binds_and_posts_events_but_never_reads_secrets() -> None:
    objs = render({"operators": {"scheduler": {"enabled": True}}})
    sa = "kp-kubeplane-scheduler"
    for verb, group, resource in [
        ("get", "", "pods"), ("list", "", "pods"), ("watch", "", "pods"),
        ("get", "", "nodes"), ("list", "", "nodes"), ("watch", "", "nodes"),
        ("list", "", "namespaces"), ("watch", "", "namespaces"),
        ("create", "", "pods/binding"), ("patch", "", "pods/status"),
        ("create", "", "events"), ("patch", "", "events"), ("create", "events.k8s.io", "events"),
        ("list", "apiextensions.k8s.io", "customresourcedefinitions"),
        ("get", "scheduling.kubeplane.dev", "podgroups"), ("list", "scheduling.kubeplane.dev", "podgroups"),
        ("watch", "scheduling.kubeplane.dev", "podgroups"), ("patch", "scheduling.kubeplane.dev", "podgroups/status"),
        ("update", "scheduling.kubeplane.dev", "podgroups/status"),
        ("watch", "scheduling.kubeplane.dev", "schedulerprofiles"),
        ("patch", "scheduling.kubeplane.dev", "schedulerprofiles/status"),
    ]:
        assert allowed(objs, sa, verb, group, resource), (verb, group, resource)
    for verb in ("create", "delete", "patch", "update"):
        assert not allowed(objs, sa, verb, "scheduling.kubeplane.dev", "podgroups", namespace="default"), verb
        assert not allowed(objs, sa, verb, "scheduling.kubeplane.dev", "schedulerprofiles"), verb
    for verb in ("get", "create", "update"):
        assert allowed(objs, sa, verb, "coordination.k8s.io", "leases", namespace=NAMESPACE)
        assert not allowed(objs, sa, verb, "coordination.k8s.io", "leases", namespace="kube-system")
    for _, rule in grants(objs, sa, NAMESPACE):
        assert not rule_allows(rule, "get", "", "secrets") and not rule_allows(rule, "list", "", "secrets"), rule
        assert not rule_allows(rule, "watch", "", "secrets"), rule
    # Preemption deletes its victims, exactly as system:kube-scheduler may; nothing more.
    assert allowed(objs, sa, "delete", "", "pods", namespace="default")
    for verb, group, resource in [("create", "", "pods"), ("patch", "", "nodes"), ("get", "", "configmaps"),
                                  ("deletecollection", "", "pods"), ("create", "", "pods/eviction")]:
        assert not allowed(objs, sa, verb, group, resource, namespace="default"), (verb, group, resource)


def test_no_role_but_backup_grants_secrets() -> None:
    objs = render(ALL_ON)
    for name in ("controllers", "scheduler"):
        for _, rule in grants(objs, f"kp-kubeplane-{name}", NAMESPACE):
            assert not any(rule_allows(rule, v, "", "secrets") for v in ("get", "list", "watch")), (name, rule)


GROUP_BACKUP = "backup.kubeplane.dev"


def test_backup_rbac_reads_everything_and_writes_only_for_restore() -> None:
    objs = render({"operators": {"backup": {"enabled": True}}})
    sa = "kp-kubeplane-backup"
    assert named(objs, "ClusterRole", "kp-kubeplane-backup-read-all")
    assert named(objs, "ClusterRole", "kp-kubeplane-backup-restore")
    for resource, group in [("secrets", ""), ("deployments", "apps"), ("replicasets", "apps.kubeplane.dev"),
                            ("customresourcedefinitions", "apiextensions.k8s.io")]:
        assert allowed(objs, sa, "list", group, resource), resource
        assert allowed(objs, sa, "create", group, resource), resource
    assert not allowed(objs, sa, "delete", "", "pods"), "restore never deletes"
    assert not allowed(objs, sa, "delete", "", "namespaces")
    for resource, group in [("configmaps", ""), ("deployments", "apps"), ("backups", "backup.kubeplane.dev")]:
        assert allowed(objs, sa, "patch", group, resource, namespace="default"), resource
        assert not allowed(objs, sa, "update", group, resource, namespace="default"), "restore creates and patches"
    # ... except an owner's finalizers (OwnerReferencesPermissionEnforcement, for relinked ownerReferences).
    assert allowed(objs, sa, "update", "apps", "deployments/finalizers", namespace="default")
    assert not allowed(objs, sa, "update", "apps", "deployments/scale", namespace="default")
    assert allowed(objs, sa, "bind", "rbac.authorization.k8s.io", "clusterroles")

    # Its own kinds, in its own namespace: patch (status, the Backup finalizer); create and delete Backups
    # only (Schedules, garbage collection); get the location Secrets.
    own = [rule for scope, rule in grants(objs, sa, NAMESPACE) if scope == NAMESPACE]
    for plural in ("backupstoragelocations", "backups", "restores", "schedules"):
        for verb in ("get", "list", "watch", "patch"):
            assert allowed(objs, sa, verb, "backup.kubeplane.dev", plural, namespace=NAMESPACE), (verb, plural)
        assert allowed(objs, sa, "patch", "backup.kubeplane.dev", f"{plural}/status", namespace=NAMESPACE)
        writes = [v for r in own for v in ("create", "delete", "update") if rule_allows(r, v, GROUP_BACKUP, plural)]
        assert writes == (["create", "delete"] if plural == "backups" else []), (plural, writes)
    assert not allowed(objs, sa, "delete", GROUP_BACKUP, "backups", namespace="default")
    assert not allowed(objs, sa, "delete", GROUP_BACKUP, "restores", namespace=NAMESPACE)
    assert not allowed(objs, sa, "deletecollection", GROUP_BACKUP, "backups", namespace=NAMESPACE)
    assert not any(rule_allows(r, v, "", "secrets") for r in own for v in ("list", "watch", "create", "delete"))
    assert any(rule_allows(r, "get", "", "secrets") for r in own)
    assert allowed(objs, sa, "create", "", "events", namespace=NAMESPACE)

    read_only = render({"operators": {"backup": {"enabled": True, "restore": {"enabled": False}}}})
    assert not [o for o in of_kind(read_only, "ClusterRole") if o["metadata"]["name"].endswith("-restore")]
    assert allowed(read_only, sa, "list", "", "secrets")
    # Only list: "*" matches subresources, so get would reach the kubelet's API and pods' logs and shells.
    assert not allowed(read_only, sa, "get", "", "secrets", namespace="default")
    for verb, resource in [("get", "nodes/proxy"), ("get", "pods/log"), ("get", "pods/exec"), ("create", "pods/exec"),
                           ("create", "serviceaccounts/token")]:
        assert not allowed(read_only, sa, verb, "", resource, namespace="default"), (verb, resource)
    assert not allowed(read_only, sa, "create", "", "pods", namespace="default")
    assert not allowed(read_only, sa, "patch", "", "configmaps", namespace="default")
    assert not allowed(read_only, sa, "update", "apps", "deployments/finalizers", namespace="default")
    assert allowed(read_only, sa, "patch", "backup.kubeplane.dev", "backups/status", namespace=NAMESPACE)
    assert allowed(read_only, sa, "create", "backup.kubeplane.dev", "backups", namespace=NAMESPACE)


def test_extra_cluster_rules() -> None:
    rule = {"apiGroups": ["scheduling.x-k8s.io"], "resources": ["podgroups"], "verbs": ["get", "list", "watch"]}
    objs = render({"operators": {"scheduler": {"enabled": True, "rbac": {"extraClusterRules": [rule]}}}})
    assert allowed(objs, "kp-kubeplane-scheduler", "watch", "scheduling.x-k8s.io", "podgroups")


# --- metrics -----------------------------------------------------------------------------------


def test_service_monitor_only_when_enabled() -> None:
    assert of_kind(render(), "ServiceMonitor") == []
    values = {"operators": {"scheduler": {"enabled": True}}, "metrics": {"serviceMonitor": {
        "enabled": True, "labels": {"release": "prometheus"}}}}
    monitors = of_kind(render(values), "ServiceMonitor")
    assert {m["metadata"]["name"] for m in monitors} == {"kp-kubeplane-controllers", "kp-kubeplane-scheduler"}
    for m in monitors:
        assert m["metadata"]["labels"]["release"] == "prometheus"
        assert m["spec"]["endpoints"][0]["port"] == "metrics"
        component = m["metadata"]["labels"]["app.kubernetes.io/component"]
        assert m["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == component


def test_metrics_service_targets_the_metrics_port() -> None:
    service = named(render(), "Service", "kp-kubeplane-controllers-metrics")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}]
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "controllers"


def _selects(selector: Obj, labels: Obj) -> bool:
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def test_network_policies_admit_only_the_named_ports_of_the_pods_they_select() -> None:
    assert of_kind(render(ALL_ON), "NetworkPolicy") == []  # off by default
    scrapers = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    objs = render({**ALL_ON, "externalMetrics": {"enabled": True},
                   "networkPolicy": {"enabled": True, "metricsFrom": scrapers}})
    workloads = {o["metadata"]["name"]: o["spec"]["template"] for o in objs if o["kind"] in ("Deployment", "Job")}
    policies = of_kind(objs, "NetworkPolicy")
    assert {p["metadata"]["name"] for p in policies} == {
        *(f"kp-kubeplane-{name}" for name in OPERATORS), "kp-kubeplane-minio", "kp-kubeplane-external-metrics"}
    for policy in policies:
        spec = policy["spec"]
        assert spec["policyTypes"] == ["Ingress"], "egress stays open: API server and object storage"
        selected = [name for name, template in workloads.items()
                    if _selects(spec["podSelector"], template["metadata"]["labels"])]
        assert len(selected) == 1, (policy["metadata"]["name"], selected)
        ports = {port["name"] for c in workloads[selected[0]]["spec"]["containers"] for port in c.get("ports") or []}
        allowed = {port["port"] for rule in spec["ingress"] for port in rule["ports"]}
        assert allowed <= ports, f"{policy['metadata']['name']} names ports its pods do not have: {allowed - ports}"
        if policy["metadata"]["name"] in {f"kp-kubeplane-{name}" for name in OPERATORS}:
            assert allowed == {"metrics", "health"}
            metrics = next(r for r in spec["ingress"] if r["ports"][0]["port"] == "metrics")
            assert metrics["from"] == scrapers
    minio = named(policies, "NetworkPolicy", "kp-kubeplane-minio")["spec"]["ingress"]
    assert len(minio) == 1 and minio[0]["ports"] == [{"port": "s3", "protocol": "TCP"}]
    admitted = {name for name, template in workloads.items() for peer in minio[0]["from"]
                if _selects(peer["podSelector"], template["metadata"]["labels"])}
    assert admitted == {"kp-kubeplane-backup", "kp-kubeplane-minio-bucket-1"}, admitted  # the Job: -<revision>


# --- MinIO and the BackupStorageLocation --------------------------------------------------------


def test_minio_off_by_default() -> None:
    objs = render()
    assert not [o for o in objs if "minio" in o["metadata"]["name"]]
    assert of_kind(objs, "BackupStorageLocation") == []


def test_minio_generated_secret_emptydir_and_bucket_job() -> None:
    objs = render({"minio": {"enabled": True}})
    secret = named(objs, "Secret", "kp-kubeplane-minio")
    assert set(secret["data"]) == {"rootUser", "rootPassword", "cloud"}
    deployment = named(objs, "Deployment", "kp-kubeplane-minio")
    spec = deployment["spec"]["template"]["spec"]
    assert spec["containers"][0]["image"].startswith("minio/minio:")
    assert {"name": "data", "emptyDir": {}} in spec["volumes"]
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    password_ref = env["MINIO_ROOT_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert password_ref == {"name": "kp-kubeplane-minio", "key": "rootPassword"}
    assert named(objs, "Service", "kp-kubeplane-minio")["spec"]["ports"][0]["port"] == 9000
    job = named(objs, "Job", "kp-kubeplane-minio-bucket-1")
    job_env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert job_env["BUCKET"]["value"] == "kubeplane"
    # The operator image (boto3) makes the bucket, so MinIO images without `mc` work too.
    assert job["spec"]["template"]["spec"]["containers"][0]["image"].startswith("kubeplane:")
    assert of_kind(objs, "PersistentVolumeClaim") == []


def test_minio_persistence_and_existing_secret() -> None:
    objs = render({"minio": {"enabled": True, "persistence": {"enabled": True, "size": "5Gi"},
                             "auth": {"existingSecret": "my-minio"}}})
    pvc = named(objs, "PersistentVolumeClaim", "kp-kubeplane-minio")
    assert pvc["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert of_kind(objs, "Secret") == [], "an existing Secret is used, none is created"
    spec = named(objs, "Deployment", "kp-kubeplane-minio")["spec"]["template"]["spec"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "kp-kubeplane-minio"}} in spec["volumes"]
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in spec["containers"][0]["env"] if "valueFrom" in e}
    assert refs == {"my-minio"}


def test_secret_values_only_in_secrets() -> None:
    password = "NotInAnyOtherObject-42"
    objs = render({"minio": {"enabled": True, "auth": {"rootPassword": password}}})
    for obj in objs:
        if obj["kind"] != "Secret":
            assert password not in json.dumps(obj), f"{obj['kind']}/{obj['metadata']['name']}"
    # NOTES.txt tells the user how to read the credentials, never the credentials themselves.
    notes = (CHART / "templates" / "NOTES.txt").read_text()
    assert "rootPassword }}" not in notes and "secretAccessKey" not in notes and "b64dec" not in notes


def test_backup_storage_location_wired_to_minio() -> None:
    objs = render({"minio": {"enabled": True}, "backupStorageLocation": {"create": True}})
    bsl = named(objs, "BackupStorageLocation", "default")
    assert bsl["apiVersion"] == "backup.kubeplane.dev/v1alpha1"
    assert bsl["metadata"]["namespace"] == NAMESPACE
    assert bsl["spec"]["objectStorage"]["bucket"] == "kubeplane"
    assert bsl["spec"]["config"]["s3Url"] == f"http://kp-kubeplane-minio.{NAMESPACE}.svc:9000"
    assert bsl["spec"]["config"]["s3ForcePathStyle"] == "true"
    assert bsl["spec"]["credential"] == {"name": "kp-kubeplane-minio", "key": "cloud"}
    # A hook: Helm resolves its kind after the release's CRDs exist, so a first install works.
    assert hook(bsl) == "post-install,post-upgrade"


def backup_env(objs: list[Obj]) -> dict[str, str]:
    container = named(objs, "Deployment", "kp-kubeplane-backup")["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_backup_signing_key_is_generated_kept_and_never_in_the_bucket_settings() -> None:
    objs = render({"operators": {"backup": {"enabled": True}}})
    secret = named(objs, "Secret", "kp-kubeplane-backup-signing-key")
    assert secret["metadata"]["labels"]["backup.kubeplane.dev/signing-key"] == "true"
    assert secret["metadata"]["namespace"] == NAMESPACE
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep", "uninstall keeps the key"
    key = base64.b64decode(base64.b64decode(secret["data"]["key"]))
    assert len(key) == 32, "32 random bytes, base64 text in the Secret (signing keys parse it)"
    assert backup_env(objs)["KUBEPLANE_BACKUP_SIGNING_SECRET"] == "kp-kubeplane-backup-signing-key"
    for obj in objs:
        if obj["kind"] == "BackupStorageLocation":
            assert secret["data"]["key"] not in json.dumps(obj)
    # A key of one's own (shared by clusters that restore each other's backups): no Secret made.
    objs = render({"operators": {"backup": {"enabled": True, "signingKey": {"existingSecret": "shared"}}}})
    assert not [o for o in of_kind(objs, "Secret") if "signing" in o["metadata"]["name"]]
    assert backup_env(objs)["KUBEPLANE_BACKUP_SIGNING_SECRET"] == "shared"


def test_backup_storage_location_with_external_s3() -> None:
    objs = render({"backupStorageLocation": {"create": True, "bucket": "b", "s3Url": "https://s3.example",
                                             "credential": {"accessKeyId": "AK", "secretAccessKey": "SK"}}})
    bsl = named(objs, "BackupStorageLocation", "default")
    assert bsl["spec"]["credential"] == {"name": "kp-kubeplane-bsl-credentials", "key": "cloud"}
    assert named(objs, "Secret", "kp-kubeplane-bsl-credentials")["data"]["cloud"]
    objs = render({"backupStorageLocation": {"create": True, "bucket": "b",
                                             "credential": {"existingSecret": "s3", "key": "creds"}}})
    assert named(objs, "BackupStorageLocation", "default")["spec"]["credential"] == {"name": "s3", "key": "creds"}
    assert of_kind(objs, "Secret") == []


def test_backup_storage_location_without_credentials_fails_clearly() -> None:
    result = template({"backupStorageLocation": {"create": True, "bucket": "b"}})
    assert result.returncode != 0
    assert "backupStorageLocation.create needs credentials" in result.stderr


# --- helm test ---------------------------------------------------------------------------------


def hook(obj: Obj) -> str | None:
    return (obj["metadata"].get("annotations") or {}).get("helm.sh/hook")


def test_helm_test_hook_checks_every_crd() -> None:
    jobs = [o for o in render() if hook(o) == "test"]
    assert len(jobs) == 1
    container = jobs[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "kubeplane:0.1.0"
    expected = json.loads(next(e["value"] for e in container["env"] if e["name"] == "EXPECTED"))
    crds = [yaml.load(p.read_text(), Loader=Loader) for p in CRD_DIR.glob("*.yaml")]
    assert sorted(expected) == sorted([c["spec"]["group"], c["spec"]["names"]["plural"]] for c in crds)
    assert [o for o in render({"tests": {"enabled": False}}) if hook(o) == "test"] == []


# --- values schema -----------------------------------------------------------------------------


def nested(dotted: str, value: Any) -> dict[str, Any]:
    """("a.b.c", 1) -> {"a": {"b": {"c": 1}}}"""
    out: Any = value
    for key in reversed(dotted.split(".")):
        out = {key: out}
    return dict(out)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("operators.controllers.replicas", "two", "at '/operators/controllers/replicas': got string, want integer"),
        ("operators.controllers.replicas", 2, "at '/operators/controllers/replicas': maximum: got 2, want 1"),
        ("operators.controllers.replicas", -1, "at '/operators/controllers/replicas': minimum: got -1, want 0"),
        ("operators.controllers.replica", 1, "at '/operators/controllers': additional properties 'replica'"),
        ("operators.schedular.enabled", True, "at '/operators': additional properties 'schedular' not allowed"),
        ("replicaCount", 1, "additional properties 'replicaCount' not allowed"),
        ("image.pullPolicy", "Sometimes", "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent'"),
        ("crds.enabled", "yes", "at '/crds/enabled': got string, want boolean"),
        ("metrics.port", 0, "at '/metrics/port': minimum: got 0, want 1"),
        ("operators.scheduler.watchNamespaces", ["Not_A_Namespace"], "at '/operators/scheduler/watchNamespaces/0'"),
        ("operators.scheduler.schedulerName", "Not_A_Name", "at '/operators/scheduler/schedulerName'"),
        ("operators.controllers.schedulerName", "x", "at '/operators/controllers': additional properties"),
        ("backupStorageLocation.accessMode", "WriteOnly", "value must be one of 'ReadWrite', 'ReadOnly'"),
        ("minio.auth.rootPassword", "short", "at '/minio/auth/rootPassword'"),
        ("operators.backup.tmpSize", "lots", "at '/operators/backup/tmpSize'"),
    ],
)
def test_values_schema_rejects_bad_values_clearly(key: str, value: Any, message: str) -> None:
    result = template(nested(key, value))
    assert result.returncode != 0, "helm template accepted bad values"
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr, result.stderr


def test_values_schema_is_draft_07_and_closed() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                assert node.get("additionalProperties") is False, f"{path} accepts unknown keys"
            for key, value in node.items():
                walk(value, f"{path}/{key}")

    walk(schema, "")
    # Every default value is valid and every documented key is in the schema.
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values) <= set(schema["properties"])


def test_every_operator_may_hold_a_lease_in_the_release_namespace_only() -> None:
    """Leader election: one Lease per operator, in the release namespace."""
    objs = render({"operators": {"scheduler": {"enabled": True}, "backup": {"enabled": True}}})
    for op in ("controllers", "scheduler", "backup"):
        sa = f"kp-kubeplane-{op}"
        for verb in ("get", "create", "update"):
            assert allowed(objs, sa, verb, "coordination.k8s.io", "leases", namespace=NAMESPACE), (op, verb)
            if op != "backup":  # the backup operator reads (and restores) every kind, leases included
                assert not allowed(objs, sa, verb, "coordination.k8s.io", "leases", namespace="kube-system"), (op, verb)
