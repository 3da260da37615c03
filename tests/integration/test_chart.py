"""The Helm chart charts/kubeplane against the embedded cluster's real API server.

- every object the chart renders is accepted by the API server (`kubectl apply --dry-run=server`);
- `helm install` / `upgrade` / `uninstall` in a fresh namespace: custom resources survive upgrades and
  uninstalls, a bad value is refused before anything is installed, `helm test` runs;
- installing with the CRD templates on (crds.enabled=true) over CRDs that `kubectl apply` created: Helm
  refuses to adopt them unless told to (`--take-ownership`), then upgrades and uninstalls keep them;
  the CRDs `make up` applies (hack/crds.sh) are adopted by the README's `helm install` as they are;
- Pod Security "restricted" enforced on the namespace admits every pod the chart makes;
- RBAC: `kubectl auth can-i --as=system:serviceaccount:...` for every verb each operator needs, and a
  list of what each must not do;
- the controllers operator (`kubeplane run controllers`) run locally under the chart's controllers
  ServiceAccount token reconciles a ReplicaSet without a single Forbidden; likewise the backup operator
  (backs up, restores, garbage-collects) and the scheduler (binds a pod, marks one Unschedulable).

KWOK runs the pods: an operator Deployment is "Running" without a real container, so whatever the
operators do here is done by the local process of the last test, not by the in-cluster pods.

The CRDs are cluster-scoped and shared with every other test on this cluster, so most installs use
crds.enabled=false; the one test that lets the chart manage them checks first that the chart's CRDs are
exactly what the cluster has, and puts the CRDs' metadata back as it found it.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import BIN, ENV, ROOT, Operator, apply, kubectl, kubectl_json, wait_for
from tests.podexit import JobPodsFinish

CHART = ROOT / "charts" / "kubeplane"
CHART_CRDS = CHART / "files" / "crds"
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
RS_API = "apps.kubeplane.dev/v1alpha1"
KPRS = "replicasets.apps.kubeplane.dev"
KPDEPLOY = "deployments.apps.kubeplane.dev"
PODGROUPS = "podgroups.scheduling.kubeplane.dev"
PROFILES = "schedulerprofiles.scheduling.kubeplane.dev"
Result = subprocess.CompletedProcess[str]
Obj = dict[str, Any]


def helm(*args: str, check: bool = True, timeout: float = 300) -> Result:
    helm_bin = BIN / "helm"
    if not helm_bin.exists():
        pytest.fail(f"{helm_bin} is missing: run `make tools` (make test does)")
    result = subprocess.run([str(helm_bin), *args], capture_output=True, text=True, env=ENV, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def values_args(values: dict[str, Any], tmp_path: Path) -> list[str]:
    path = tmp_path / f"values-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(values))
    return ["--values", str(path)]


def render(values: dict[str, Any], release: str, namespace: str, tmp_path: Path) -> list[Obj]:
    out = helm("template", release, str(CHART), "--namespace", namespace, *values_args(values, tmp_path)).stdout
    return [doc for doc in yaml.load_all(out, Loader=Loader) if doc]


def chart_crd_names() -> list[str]:
    return sorted(yaml.load(p.read_text(), Loader=Loader)["metadata"]["name"] for p in CHART_CRDS.glob("*.yaml"))


def replicaset(name: str, replicas: int) -> Obj:
    return {
        "apiVersion": RS_API, "kind": "ReplicaSet", "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "c", "image": "registry.local/app:1"}]}},
        },
    }


def owned_pods(namespace: str, rs: Obj) -> list[Obj]:
    pods = kubectl_json("get", "pods", "-n", namespace)["items"]
    uid = rs["metadata"]["uid"]
    return [p for p in pods if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences", []))
            and not p["metadata"].get("deletionTimestamp")]


@pytest.fixture
def chart_ns(cluster: Path) -> Iterator[str]:
    """A fresh namespace; the release installed in it is named like it. Both go afterwards."""
    name = f"chart-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    for release in helm("list", "-n", name, "-q", check=False).stdout.split():
        helm("uninstall", release, "-n", name, "--wait", "--timeout", "60s", check=False)
    kubectl("delete", "namespace", name, "--wait=false", check=False)


# --- every rendered object is valid --------------------------------------------------------------


def everything_on(namespace: str) -> dict[str, Any]:
    return {
        "operators": {
            "controllers": {"watchNamespaces": [namespace]},
            "scheduler": {"enabled": True},
            "backup": {"enabled": True},
        },
        "minio": {"enabled": True, "persistence": {"enabled": True}},
        "backupStorageLocation": {"create": True},
        "metrics": {"serviceMonitor": {"enabled": True}},
        "networkPolicy": {"enabled": True, "minioFrom": [{"namespaceSelector": {"matchLabels": {"team": "ops"}}}]},
    }


def served_groups() -> set[str]:
    groups = json.loads(kubectl("get", "--raw", "/apis").stdout)["groups"]
    return {g["name"] for g in groups} | {""}


@pytest.mark.parametrize("variant", ["defaults", "everything-on", "overrides"])
def test_every_rendered_object_is_accepted_by_the_api_server(variant: str, chart_ns: str, tmp_path: Path) -> None:
    release, namespace = chart_ns, chart_ns
    values: dict[str, Any] = {
        "defaults": {},
        # The external metrics API only here, in a dry run: installed, its APIService would take
        # external.metrics.k8s.io over from the embedded cluster's server (kind's e2e installs it).
        "everything-on": {**everything_on(chart_ns), "externalMetrics": {"enabled": True}},
        "overrides": {**everything_on(chart_ns), "fullnameOverride": f"{chart_ns}-x", "namespaceOverride": chart_ns},
    }[variant]
    if variant == "overrides":
        namespace = "default"  # the release namespace; namespaceOverride puts every object in chart_ns
    objs = render(values, release, namespace, tmp_path)
    groups = served_groups()
    unserved = [o for o in objs if o["apiVersion"].rpartition("/")[0] not in groups]
    # prometheus-operator is not installed here: ServiceMonitor is the one kind the server cannot judge.
    assert {o["kind"] for o in unserved} <= {"ServiceMonitor"}, [o["kind"] for o in unserved]
    checked = [o for o in objs if o not in unserved]
    result = kubectl(
        "apply", "--server-side", "--dry-run=server", "--force-conflicts", "--field-manager=kubeplane-chart-test",
        "-f", "-", input="\n---\n".join(json.dumps(o) for o in checked), check=False, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for obj in checked:
        assert f"/{obj['metadata']['name']} serverside-applied (server dry run)" in result.stdout, obj["metadata"]


# --- install, upgrade, uninstall ---------------------------------------------------------------


def test_install_upgrade_uninstall_keep_custom_resources(chart_ns: str, tmp_path: Path) -> None:
    release = chart_ns
    fullname = f"{release}-kubeplane"

    # A bad value is refused before anything reaches the cluster.
    bad = helm("install", release, str(CHART), "-n", chart_ns, "--set", "operators.controllers.replicas=two",
               check=False)
    assert bad.returncode != 0
    assert "at '/operators/controllers/replicas': got string, want integer" in bad.stderr
    assert helm("list", "-n", chart_ns, "-q").stdout.split() == []

    base = {"crds": {"enabled": False}}
    out = helm("install", release, str(CHART), "-n", chart_ns, "--wait", "--timeout", "120s",
               *values_args(base, tmp_path)).stdout
    assert f"controllers  {fullname}-controllers, watching the whole cluster" in out, out
    deployment = kubectl_json("get", "deployment", f"{fullname}-controllers", "-n", chart_ns)
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert deployment["status"].get("readyReplicas") == 1
    kubectl("get", "serviceaccount", f"{fullname}-controllers", "-n", chart_ns)
    kubectl("get", "clusterrole", f"{fullname}-controllers")
    kubectl("get", "service", f"{fullname}-controllers-metrics", "-n", chart_ns)

    # helm test: on KWOK the Job's container does not really run (JobPodsFinish ends its pod with exit
    # code 0), so this proves the hook's plumbing; on a real cluster it checks every CRD is served.
    with JobPodsFinish(kubectl, chart_ns) as finish:
        helm("test", release, "-n", chart_ns, "--timeout", "90s")
    assert finish.ended, "helm test passed without its hook's pod ending"

    apply(replicaset("survivor", 0), namespace=chart_ns)
    uid = kubectl_json("get", KPRS, "survivor", "-n", chart_ns)["metadata"]["uid"]

    upgraded = {**base, "operators": {"controllers": {"verbose": True, "resources": {"limits": {"memory": "1Gi"}}},
                                      "scheduler": {"enabled": True}}}
    helm("upgrade", release, str(CHART), "-n", chart_ns, "--wait", "--timeout", "120s",
         *values_args(upgraded, tmp_path))
    assert json.loads(helm("status", release, "-n", chart_ns, "-o", "json").stdout)["version"] == 2
    container = kubectl_json("get", "deployment", f"{fullname}-controllers", "-n", chart_ns)["spec"]["template"][
        "spec"]["containers"][0]
    assert "--verbose" in container["command"] and container["resources"]["limits"]["memory"] == "1Gi"
    kubectl("get", "deployment", f"{fullname}-scheduler", "-n", chart_ns)
    kubectl("get", "clusterrole", f"{fullname}-scheduler")
    assert kubectl_json("get", KPRS, "survivor", "-n", chart_ns)["metadata"]["uid"] == uid

    helm("uninstall", release, "-n", chart_ns, "--wait", "--timeout", "60s")
    for kind, name in [("deployment", f"{fullname}-controllers"), ("serviceaccount", f"{fullname}-scheduler")]:
        assert kubectl("get", kind, name, "-n", chart_ns, check=False).returncode != 0, f"{kind} {name} left behind"
    assert kubectl("get", "clusterrole", f"{fullname}-controllers", check=False).returncode != 0
    for crd in chart_crd_names():
        kubectl("get", "crd", crd)
    assert kubectl_json("get", KPRS, "survivor", "-n", chart_ns)["metadata"]["uid"] == uid


def test_minio_backup_storage_location_and_secrets(chart_ns: str, tmp_path: Path) -> None:
    release = chart_ns
    fullname = f"{release}-kubeplane"
    password = f"pw-{uuid.uuid4().hex}"
    values = {"crds": {"enabled": False}, "operators": {"backup": {"enabled": True}},
              "minio": {"enabled": True, "auth": {"rootPassword": password}},
              "backupStorageLocation": {"create": True}}
    out = helm("install", release, str(CHART), "-n", chart_ns, "--wait", "--timeout", "120s",
               *values_args(values, tmp_path)).stdout
    notes = helm("get", "notes", release, "-n", chart_ns).stdout
    assert "In-cluster MinIO" in notes
    assert password not in out and password not in notes, "a credential leaked into NOTES"
    secret = kubectl_json("get", "secret", f"{fullname}-minio", "-n", chart_ns)
    assert password in kubectl("get", "secret", f"{fullname}-minio", "-n", chart_ns,
                               "-o", "go-template={{.data.rootPassword | base64decode}}").stdout
    assert set(secret["data"]) == {"rootUser", "rootPassword", "cloud"}
    kubectl("get", "deployment,service", f"{fullname}-minio", "-n", chart_ns)
    kubectl("get", "job", f"{fullname}-minio-bucket-1", "-n", chart_ns)

    bsl = kubectl_json("get", "backupstoragelocations.backup.kubeplane.dev", "default", "-n", chart_ns)
    assert bsl["spec"]["objectStorage"]["bucket"] == "kubeplane"
    assert bsl["spec"]["config"]["s3Url"] == f"http://{fullname}-minio.{chart_ns}.svc:9000"
    assert bsl["spec"]["credential"] == {"name": f"{fullname}-minio", "key": "cloud"}


def test_generated_minio_password_is_kept_across_upgrades(chart_ns: str, tmp_path: Path) -> None:
    release = chart_ns
    values = {"crds": {"enabled": False}, "operators": {"controllers": {"enabled": False}}, "minio": {"enabled": True}}
    helm("install", release, str(CHART), "-n", chart_ns, *values_args(values, tmp_path))
    before = kubectl_json("get", "secret", f"{release}-kubeplane-minio", "-n", chart_ns)["data"]
    helm("upgrade", release, str(CHART), "-n", chart_ns, *values_args(values, tmp_path))
    after = kubectl_json("get", "secret", f"{release}-kubeplane-minio", "-n", chart_ns)["data"]
    assert after == before and len(before["rootPassword"]) > 8


def test_external_metrics_apiservice_trusts_the_generated_serving_certificate(tmp_path: Path) -> None:
    from cryptography import x509

    objs = render({"externalMetrics": {"enabled": True}}, "kubeplane", "kubeplane-system", tmp_path)
    by_kind = {o["kind"]: o for o in objs if o["metadata"]["name"].startswith("kubeplane-external-metrics")
               or o["kind"] == "APIService"}
    secret, service, apiservice = by_kind["Secret"], by_kind["Service"], by_kind["APIService"]
    assert apiservice["metadata"]["name"] == "v1beta1.external.metrics.k8s.io"
    assert apiservice["spec"]["service"] == {"name": service["metadata"]["name"], "namespace": "kubeplane-system",
                                             "port": service["spec"]["ports"][0]["port"]}
    assert "insecureSkipTLSVerify" not in apiservice["spec"]
    assert apiservice["spec"]["caBundle"] == secret["data"]["ca.crt"]
    ca = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["ca.crt"]))
    serving = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    # The aggregator dials <service>.<namespace>.svc and checks the certificate against caBundle.
    san = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = san.get_values_for_type(x509.DNSName)
    assert "kubeplane-external-metrics.kubeplane-system.svc" in names
    serving.verify_directly_issued_by(ca)
    deployment = by_kind["Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--no-register" in container["command"] and container["securityContext"]["readOnlyRootFilesystem"]
    # The server without its APIService, to register it once the Service routes (hack/kind/cluster.sh).
    later = render({"externalMetrics": {"enabled": True, "apiService": {"create": False}}}, "kubeplane",
                   "kubeplane-system", tmp_path)
    assert not [o for o in later if o["kind"] == "APIService"] and [o for o in later if o["kind"] == "Deployment"
                                                                    and "external-metrics" in o["metadata"]["name"]]


# --- the chart managing CRDs that already exist ------------------------------------------------


def _crd_state(name: str) -> Obj:
    crd = kubectl_json("get", "crd", name, "--show-managed-fields")
    return crd["metadata"]


def _restore_crd_metadata(name: str, before: Obj) -> None:
    """Put back the labels, annotations and field managers a CRD had before the test."""
    now = _crd_state(name)
    patch: Obj = {"metadata": {}}
    for key in ("labels", "annotations"):
        old, new = before.get(key) or {}, now.get(key) or {}
        change = {k: None for k in new if k not in old} | {k: v for k, v in old.items() if new.get(k) != v}
        if change:
            patch["metadata"][key] = change
    if patch["metadata"]:
        kubectl("patch", "crd", name, "--type=merge", "-p", json.dumps(patch))
        now = _crd_state(name)
    managers = {(m["manager"], m["operation"], m.get("subresource")) for m in before.get("managedFields", [])}
    kept = [m for m in now.get("managedFields", []) if (m["manager"], m["operation"], m.get("subresource")) in managers]
    if len(kept) != len(now.get("managedFields", [])):
        kubectl("patch", "crd", name, "--type=json",
                "-p", json.dumps([{"op": "replace", "path": "/metadata/managedFields", "value": kept}]))


def test_crds_enabled_on_crds_applied_by_kubectl(chart_ns: str, tmp_path: Path) -> None:
    """The real behaviour of Helm 3 with CRD templates over CRDs that `kubectl apply -f crds/` created:
    it refuses to adopt objects without its ownership metadata, `--take-ownership` adopts them, and
    the keep policy leaves them (and the custom resources) in place on uninstall."""
    release = chart_ns
    crds = chart_crd_names()
    # Never push a different CRD onto a shared cluster: the chart's copy must be crds/, and the cluster
    # must already have exactly that.
    sync = subprocess.run([str(ROOT / "hack/sync-chart-crds.sh"), "--check"], capture_output=True, text=True)
    assert sync.returncode == 0, sync.stderr
    diff = kubectl("diff", "--server-side", "--force-conflicts", "-f", str(CHART_CRDS), check=False, timeout=120)
    assert diff.returncode == 0, f"the cluster's CRDs differ from crds/ (run `make install`):\n{diff.stdout[:3000]}"
    before = {name: _crd_state(name) for name in crds}
    try:
        refused = helm("install", release, str(CHART), "-n", chart_ns, check=False)
        assert refused.returncode != 0
        assert re.search(r'CustomResourceDefinition "[^"]+" in namespace "" exists and cannot be imported into the '
                         r"current release: invalid ownership metadata", refused.stderr), refused.stderr
        assert helm("list", "-n", chart_ns, "-q").stdout.split() == []

        helm("install", release, str(CHART), "-n", chart_ns, "--take-ownership", "--wait", "--timeout", "120s")
        for name in crds:
            meta = _crd_state(name)
            assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
            assert meta["annotations"]["meta.helm.sh/release-name"] == release
            assert meta["annotations"]["helm.sh/resource-policy"] == "keep"
            assert meta["generation"] == before[name]["generation"], f"{name}: the spec changed"
            kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=30s")
        apply(replicaset("kept", 0), namespace=chart_ns)
        uid = kubectl_json("get", KPRS, "kept", "-n", chart_ns)["metadata"]["uid"]

        helm("upgrade", release, str(CHART), "-n", chart_ns, "--set", "operators.controllers.verbose=true",
             "--wait", "--timeout", "120s")
        assert kubectl_json("get", KPRS, "kept", "-n", chart_ns)["metadata"]["uid"] == uid

        out = helm("uninstall", release, "-n", chart_ns, "--wait", "--timeout", "60s").stdout
        assert "kept due to the resource policy" in out, out
        for name in crds:
            assert _crd_state(name)["generation"] == before[name]["generation"]
        assert kubectl_json("get", KPRS, "kept", "-n", chart_ns)["metadata"]["uid"] == uid
    finally:
        for name in crds:
            _restore_crd_metadata(name, before[name])


def test_everything_installs_into_a_restricted_namespace(chart_ns: str, tmp_path: Path) -> None:
    """Pod Security "restricted" enforced on the release namespace: every pod the chart makes (the
    three operators, MinIO, the bucket Job, the `helm test` pod) is admitted. The apiserver's
    PodSecurity admission refuses a non-compliant pod at creation, so --wait would time out and
    `helm test` fail."""
    kubectl("label", "namespace", chart_ns, "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/enforce-version=latest", "--overwrite")
    # No ServiceMonitor (no prometheus-operator here) and no MinIO PVC (no provisioner on KWOK).
    values = {**everything_on(chart_ns), "crds": {"enabled": False}, "metrics": {"serviceMonitor": {"enabled": False}},
              "minio": {"enabled": True, "persistence": {"enabled": False}}}
    with JobPodsFinish(kubectl, chart_ns):  # MinIO's bucket Job and the `helm test` hook
        helm("install", chart_ns, str(CHART), "-n", chart_ns, "--wait", "--wait-for-jobs", "--timeout", "240s",
             *values_args(values, tmp_path))
        helm("test", chart_ns, "-n", chart_ns, "--timeout", "120s")
    refused = [e["message"] for e in kubectl_json("get", "events", "-n", chart_ns)["items"]
               if "violates PodSecurity" in e.get("message", "")]
    assert not refused, refused
    pods = kubectl_json("get", "pods", "-n", chart_ns)["items"]
    assert {p["metadata"]["labels"].get("app.kubernetes.io/component") for p in pods} >= {
        "controllers", "scheduler", "backup", "minio"}


def test_the_readme_install_adopts_the_crds_make_up_applied(tmp_path: Path) -> None:
    """One CRD install path: `make up` and `make install` apply the CRDs with hack/crds.sh, marked as
    the release the README installs would own them, so that exact `helm install kubeplane
    charts/kubeplane -n kubeplane-system` adopts them with no flag (it used to fail: "exists and cannot
    be imported into the current release"), and `helm uninstall` keeps them."""
    release, namespace = "kubeplane", "kubeplane-system"
    crds = chart_crd_names()
    subprocess.run([str(ROOT / "hack/crds.sh"), "apply"], env=ENV, check=True, capture_output=True)
    before = {name: _crd_state(name) for name in crds}
    assert helm("list", "-n", namespace, "-q").stdout.split() == [], "a release is already installed here"
    try:
        helm("install", release, str(CHART), "-n", namespace, "--wait", "--timeout", "180s")
        for name in crds:
            meta = _crd_state(name)
            assert meta["labels"]["app.kubernetes.io/instance"] == release, name  # the chart's labels now
            assert meta["generation"] == before[name]["generation"], f"{name}: the spec changed"
        out = helm("uninstall", release, "-n", namespace, "--wait", "--timeout", "120s").stdout
        assert "kept due to the resource policy" in out, out
        for name in crds:
            kubectl("get", "crd", name)
    finally:
        helm("uninstall", release, "-n", namespace, "--wait", "--timeout", "120s", check=False)
        for name in crds:
            _restore_crd_metadata(name, before[name])


# --- RBAC against the real authorizer ------------------------------------------------------------


def can_i(sa: str, sa_namespace: str, verb: str, resource: str, namespace: str | None = None) -> bool:
    """`kubectl auth can-i` as a service account; resource may be "pods/binding". None: all namespaces."""
    resource, _, subresource = resource.partition("/")
    args = ["auth", "can-i", verb, resource, f"--as=system:serviceaccount:{sa_namespace}:{sa}"]
    args += ["-n", namespace] if namespace else ["--all-namespaces"]
    if subresource:
        args.append(f"--subresource={subresource}")
    result = kubectl(*args, check=False)
    if result.returncode not in (0, 1) or result.stdout.strip() not in ("yes", "no"):
        raise AssertionError(f"kubectl {' '.join(args)}: {result.stdout} {result.stderr}")
    return result.returncode == 0


CLUSTERROLES = "clusterroles.rbac.authorization.k8s.io"
Check = tuple[str, str, str | None]  # verb, resource, namespace (None: cluster-wide / all namespaces)


def assert_rbac(sa: str, sa_namespace: str, allowed: list[Check], denied: list[Check]) -> None:
    checks = [(c, True) for c in allowed] + [(c, False) for c in denied]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda c: can_i(sa, sa_namespace, c[0][0], c[0][1], c[0][2]), checks))
    wrong = [f"{'should' if want else 'must not'}: {verb} {resource} in {ns or 'all namespaces'}"
             for ((verb, resource, ns), want), got in zip(checks, answers, strict=True) if got != want]
    assert not wrong, f"{sa}:\n  " + "\n  ".join(wrong)


# What RBAC's "*" would also grant, since it matches every subresource: the kubelet's API, a pod's log, a
# shell in any pod, and any service account's token. No operator gets them, except a restore-enabled
# backup operator (cluster-admin in effect, documented in docs/backup.md).
SUBRESOURCE_ESCALATIONS: list[Check] = [
    ("get", "nodes/proxy", None), ("create", "nodes/proxy", None), ("get", "pods/log", "default"),
    ("get", "pods/exec", "default"), ("create", "pods/exec", "default"), ("create", "pods/attach", "default"),
    ("create", "pods/portforward", "default"), ("create", "serviceaccounts/token", "default"),
]


def test_rbac_of_each_operator_with_kubectl_auth_can_i(chart_ns: str, tmp_path: Path) -> None:
    release, ns = chart_ns, chart_ns
    values = {"crds": {"enabled": False}, "tests": {"enabled": False},
              "operators": {"scheduler": {"enabled": True}, "backup": {"enabled": True}}}
    helm("install", release, str(CHART), "-n", ns, *values_args(values, tmp_path))
    prefix = f"{release}-kubeplane"
    crds = "customresourcedefinitions.apiextensions.k8s.io"
    events = [(v, r, None) for v in ("create", "patch") for r in ("events", "events.events.k8s.io")]

    assert_rbac(f"{prefix}-controllers", ns, allowed=[
        *[(v, "pods", None) for v in ("get", "list", "watch", "create", "delete", "patch")],
        *[(v, "leases.coordination.k8s.io", ns) for v in ("get", "create", "update")],
        *[(v, KPRS, None) for v in ("get", "list", "watch")],
        *[(v, f"{KPRS}/{sub}", None) for v in ("patch", "update") for sub in ("status", "scale")],
        ("update", f"{KPRS}/finalizers", None),
        # The Deployment creates, scales and deletes its ReplicaSets, and annotates itself.
        *[(v, KPRS, None) for v in ("create", "patch", "update", "delete")],
        *[(v, KPDEPLOY, None) for v in ("get", "list", "watch", "patch")],
        *[(v, f"{KPDEPLOY}/status", None) for v in ("patch", "update")],
        # The DaemonSet reads nodes and keeps its history in ControllerRevisions.
        *[(v, "nodes", None) for v in ("get", "list", "watch")],
        *[(v, "controllerrevisions.apps", None) for v in ("get", "list", "watch", "create", "patch", "delete")],
        ("patch", "daemonsets.apps.kubeplane.dev/status", None),
        *events,
        ("list", crds, None), ("watch", crds, None),
    ], denied=[
        ("get", "secrets", None), ("list", "secrets", None), ("get", "secrets", ns),
        ("patch", "nodes", None), ("delete", "nodes", None), ("list", "namespaces", None),
        ("create", "daemonsets.apps", "default"), ("update", "nodes/status", None),
        ("delete", "namespaces", None), ("create", "deployments.apps", "default"), ("create", "pods/exec", "default"),
        ("create", KPDEPLOY, "default"), ("delete", KPDEPLOY, "default"), ("update", "pods/status", "default"),
        ("create", "replicasets.apps", "default"),
        ("create", crds, None), ("get", "configmaps", "default"), ("escalate", CLUSTERROLES, None),
        ("list", "backups.backup.kubeplane.dev", None), *SUBRESOURCE_ESCALATIONS,
    ])
    assert_rbac(f"{prefix}-scheduler", ns, allowed=[
        *[(v, r, None) for v in ("get", "list", "watch") for r in ("pods", "nodes", "namespaces")],
        ("create", "pods/binding", None), ("patch", "pods/status", None), ("update", "pods/status", None),
        ("delete", "pods", "default"),  # preemption's victims
        *[(v, PODGROUPS, None) for v in ("get", "list", "watch")],
        *[(v, f"{PODGROUPS}/status", None) for v in ("patch", "update")],
        *[(v, PROFILES, None) for v in ("get", "list", "watch")],
        *[(v, f"{PROFILES}/status", None) for v in ("patch", "update")],
        *events,
        ("list", crds, None), ("watch", crds, None),
        *[(v, "leases.coordination.k8s.io", ns) for v in ("get", "create", "update", "patch")],
    ], denied=[
        ("get", "secrets", None), ("list", "secrets", None), ("watch", "secrets", None), ("get", "secrets", ns),
        ("create", "pods", "default"), ("deletecollection", "pods", "default"), ("patch", "nodes", None),
        ("update", "leases.coordination.k8s.io", "kube-system"), ("create", "leases.coordination.k8s.io", "default"),
        ("get", "configmaps", "default"), ("list", KPRS, None), ("create", "pods/eviction", "default"),
        ("create", PODGROUPS, "default"), ("delete", PODGROUPS, "default"), ("patch", PODGROUPS, "default"),
        ("create", PROFILES, None), ("delete", PROFILES, None), ("patch", PROFILES, None), *SUBRESOURCE_ESCALATIONS,
    ])
    assert_rbac(f"{prefix}-backup", ns, allowed=[
        *[(v, "leases.coordination.k8s.io", ns) for v in ("get", "create", "update")],
        *[(v, r, None) for v in ("get", "list") for r in ("secrets", "deployments.apps", KPRS, crds, CLUSTERROLES)],
        ("watch", crds, None),  # Kopf's resource observer
        ("create", "deployments.apps", "default"), ("patch", "configmaps", "default"),
        ("patch", "services", "default"), ("update", "deployments.apps/finalizers", "default"),
        ("create", CLUSTERROLES, None), ("bind", CLUSTERROLES, None),
        ("escalate", "roles.rbac.authorization.k8s.io", "default"),
        *[(v, "backups.backup.kubeplane.dev", ns) for v in ("get", "list", "watch", "create", "patch", "delete")],
        *[(v, f"{plural}.backup.kubeplane.dev", ns) for v in ("get", "list", "watch", "patch")
          for plural in ("backupstoragelocations", "restores", "schedules")],
        *[("patch", f"{plural}.backup.kubeplane.dev/status", ns)
          for plural in ("backupstoragelocations", "backups", "restores", "schedules")],
        ("get", "secrets", ns), ("create", "events", ns),
    ], denied=[
        ("delete", "pods", None), ("delete", "namespaces", None), ("deletecollection", "pods", None),
        ("delete", "backups.backup.kubeplane.dev", "default"), ("delete", "secrets", ns),
        ("delete", "deployments.apps", "default"), ("impersonate", "users", None), ("watch", "secrets", None),
        # Restore creates and patches: never a PUT, never a delete.
        ("update", "services", "default"), ("update", "deployments.apps/scale", "default"),
        ("delete", "restores.backup.kubeplane.dev", ns), ("delete", "schedules.backup.kubeplane.dev", ns),
        ("delete", "backupstoragelocations.backup.kubeplane.dev", ns),
        ("deletecollection", "backups.backup.kubeplane.dev", ns), ("update", "backups.backup.kubeplane.dev", ns),
    ])

    # A backup-only install: list on everything, and none of what "*" would drag in with get or create.
    helm("upgrade", release, str(CHART), "-n", ns,
         *values_args({**values, "operators": {**values["operators"], "backup": {"enabled": True,
                                                                                  "restore": {"enabled": False}}}},
                      tmp_path))
    assert_rbac(f"{prefix}-backup", ns, allowed=[
        *[("list", r, None) for r in ("secrets", "deployments.apps", KPRS, crds, CLUSTERROLES, "nodes")],
        ("watch", crds, None), ("get", "secrets", ns), ("get", "backups.backup.kubeplane.dev", ns),
    ], denied=[
        ("get", "secrets", "default"), ("get", "deployments.apps", "default"), ("watch", "secrets", None),
        ("create", "configmaps", "default"), ("patch", "services", "default"), ("bind", CLUSTERROLES, None),
        *SUBRESOURCE_ESCALATIONS,
    ])


# --- the controllers operator, for real, under the chart's ServiceAccount ------------------------


def _service_account_kubeconfig(sa: str, namespace: str, path: Path) -> Path:
    token = kubectl("create", "token", sa, "-n", namespace, "--duration=10m").stdout.strip()
    admin = json.loads(kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
    cluster = admin["clusters"][0]["cluster"]
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": sa, "namespace": namespace}}],
    }))
    path.chmod(0o600)
    return path


def _assert_no_forbidden(log: str) -> None:
    """The operator's log (timestamps stripped) mentions no 403/Forbidden: the chart's RBAC sufficed."""
    forbidden = [line for line in log.splitlines()
                 if re.search(r"forbidden|\b403\b", re.sub(r"^\[[^]]*\]", "", line), re.IGNORECASE)]
    assert not forbidden, "the chart's RBAC is missing something:\n" + "\n".join(forbidden[:20])


def _metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def test_controllers_operator_runs_under_the_charts_service_account(chart_ns: str, tmp_path: Path) -> None:
    """`kubeplane run controllers`, authenticated as the chart's controllers ServiceAccount, creates,
    adopts and deletes pods and writes ReplicaSet status and events: its log has no 403.

    The operator is limited to this namespace (-n), as the release's RBAC is (watchNamespaces), and runs
    only for the few seconds the scenario takes."""
    release, ns = chart_ns, chart_ns
    values = {"crds": {"enabled": False}, "tests": {"enabled": False},
              # No in-cluster replica (on KWOK it would not run anyway): the local process is the operator.
              "operators": {"controllers": {"replicas": 0, "watchNamespaces": [ns]}}}
    helm("install", release, str(CHART), "-n", ns, *values_args(values, tmp_path))
    sa = f"{release}-kubeplane-controllers"
    assert_rbac(sa, ns, allowed=[("create", "pods", ns), ("list", "namespaces", None), ("watch", KPRS, ns)],
                denied=[("create", "pods", "default"), ("list", "pods", None), ("get", "secrets", ns)])

    kubeconfig = _service_account_kubeconfig(sa, ns, tmp_path / "kubeconfig")
    assert kubectl("--kubeconfig", str(kubeconfig), "auth", "whoami").stdout.count(f"system:serviceaccount:{ns}:{sa}")
    operator = Operator("controllers", env={"KUBECONFIG": str(kubeconfig), "POD_NAMESPACE": ns},
                        args=["-n", ns, "--verbose"],
                        log_name=f"test-chart-controllers-{ns}")
    metrics_port, log_path = operator.metrics_port, operator.log
    operator.start()
    try:
        operator.wait_live(timeout=30)

        apply(replicaset("web", 2), namespace=ns)
        rs = kubectl_json("get", KPRS, "web", "-n", ns)
        wait_for(lambda: len(owned_pods(ns, rs)) == 2
                 and kubectl_json("get", KPRS, "web", "-n", ns).get("status", {}).get("replicas") == 2,
                 timeout=60, what="2 pods and status.replicas=2")
        # An orphan that matches the selector is adopted (a pod patch), then one pod too many is deleted.
        apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stray", "labels": {"app": "web"}},
               "spec": {"containers": [{"name": "c", "image": "registry.local/app:1"}]}}, namespace=ns)
        wait_for(lambda: len(owned_pods(ns, rs)) == 2 and not [
            p for p in kubectl_json("get", "pods", "-n", ns)["items"]
            if p["metadata"]["name"] == "stray" and not p["metadata"].get("ownerReferences")
        ], timeout=60, what="the stray pod adopted, one pod deleted")
        kubectl("scale", KPRS, "web", "-n", ns, "--replicas=1")
        wait_for(lambda: len(owned_pods(ns, rs)) == 1
                 and kubectl_json("get", KPRS, "web", "-n", ns).get("status", {}).get("replicas") == 1,
                 timeout=60, what="scaled down to 1")
        events = kubectl_json("get", "events", "-n", ns, "--field-selector", "involvedObject.name=web")["items"]
        assert {e["reason"] for e in events} >= {"SuccessfulCreate", "SuccessfulDelete"}

        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as answer:
            metrics = answer.read().decode()
        # This process did the work (not some other controllers operator on the cluster).
        assert _metric(metrics, "kubeplane_controller_pods_created_total") >= 1, metrics
        assert _metric(metrics, "kubeplane_controller_pods_deleted_total") >= 1, metrics
        assert _metric(metrics, "kubeplane_sync_errors_total") == 0, metrics
    finally:
        operator.stop()
    log = log_path.read_text()
    # The shared informers listed pods and ReplicaSets in the namespace (RBAC allowed the list and watch).
    assert re.search(r"caches synced: .*pods \(\d+\)", log), f"no pod cache; see {log_path}"
    _assert_no_forbidden(log)


# --- the backup operator, for real, under the chart's ServiceAccount -----------------------------

BACKUP_API = "backup.kubeplane.dev/v1alpha1"
BSL = "backupstoragelocations.backup.kubeplane.dev"
BACKUPS = "backups.backup.kubeplane.dev"
RESTORES = "restores.backup.kubeplane.dev"
SCHEDULES = "schedules.backup.kubeplane.dev"
GROUP_LABEL = "backup.kubeplane.dev/schedule-name"


def _phase(resource: str, name: str, namespace: str) -> str | None:
    return (kubectl_json("get", resource, name, "-n", namespace).get("status") or {}).get("phase")


def _finished(resource: str, name: str, namespace: str, timeout: float = 120) -> Obj:
    def done() -> Obj | None:
        status = kubectl_json("get", resource, name, "-n", namespace).get("status") or {}
        return status if status.get("phase") not in (None, "New", "InProgress") else None
    return wait_for(done, timeout=timeout, what=f"{resource} {name} to finish")  # type: ignore[no-any-return]


def _stored_keys(s3: Any, prefix: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket="kubeplane", Prefix=prefix).get("Contents", [])]


def test_backup_operator_runs_under_the_charts_service_account(chart_ns: str, minio: dict[str, str],
                                                               tmp_path: Path) -> None:
    """`kubeplane run backup`, authenticated as the chart's backup ServiceAccount and with the release
    namespace as its own (KUBEPLANE_NAMESPACE, as the chart's Deployment sets it): validates a location,
    backs a namespace up, restores it after the namespace is deleted, and deletes a Backup's files
    (its finalizer): its log has no 403."""
    import boto3  # only this test needs S3

    release, ns = chart_ns, chart_ns
    values = {"crds": {"enabled": False}, "tests": {"enabled": False},
              # No in-cluster replica (on KWOK it would not run anyway): the local process is the operator.
              "operators": {"controllers": {"enabled": False}, "backup": {"enabled": True, "replicas": 0}}}
    helm("install", release, str(CHART), "-n", ns, *values_args(values, tmp_path))
    sa = f"{release}-kubeplane-backup"
    container = kubectl_json("get", "deployment", sa, "-n", ns)["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "KUBEPLANE_NAMESPACE", "value": ns} in container["env"], container["env"]

    # A location in the release namespace: the embedded MinIO, like the cluster's default location, under
    # a prefix of its own.
    default_bsl = kubectl_json("get", BSL, "default", "-n", "kubeplane-system")
    cloud = kubectl_json("get", "secret", default_bsl["spec"]["credential"]["name"], "-n", "kubeplane-system")[
        "data"][default_bsl["spec"]["credential"]["key"]]
    prefix = f"test-chart/{ns}"
    s3 = boto3.client("s3", endpoint_url=minio["MINIO_ENDPOINT"], aws_access_key_id=minio["MINIO_ROOT_USER"],
                      aws_secret_access_key=minio["MINIO_ROOT_PASSWORD"], region_name="us-east-1")
    apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bsl-credentials"}, "data": {"cloud": cloud}},
          namespace=ns)
    apply({"apiVersion": BACKUP_API, "kind": "BackupStorageLocation", "metadata": {"name": "minio"},
           "spec": {"provider": "aws", "default": True, "credential": {"name": "bsl-credentials", "key": "cloud"},
                    "objectStorage": {"bucket": default_bsl["spec"]["objectStorage"]["bucket"], "prefix": prefix},
                    "config": default_bsl["spec"]["config"]}}, namespace=ns)

    app = f"{ns}-app"
    kubectl("create", "namespace", app)
    kubectl("apply", "-n", app, "-f", "-", input=f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{mode: production}}
---
apiVersion: v1
kind: Secret
metadata: {{name: db}}
stringData: {{password: hunter2-{app}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: web, image: registry.local/web:1}}]}}
""")

    kubeconfig = _service_account_kubeconfig(sa, ns, tmp_path / "kubeconfig")
    operator = Operator("backup", env={"KUBECONFIG": str(kubeconfig), "KUBEPLANE_NAMESPACE": ns,
                                       "KUBEPLANE_GC_SECONDS": "1"},
                        args=["--verbose"], log_name=f"test-chart-backup-{ns}")
    log_path = operator.log
    operator.start()
    try:
        operator.wait_live(timeout=30)

        wait_for(lambda: _phase(BSL, "minio", ns) == "Available", timeout=60, what="the location Available")

        apply({"apiVersion": BACKUP_API, "kind": "Backup", "metadata": {"name": "app"},
               "spec": {"includedNamespaces": [app], "storageLocation": "minio"}}, namespace=ns)
        status = _finished(BACKUPS, "app", ns)
        assert status["phase"] == "Completed", status
        assert f"{prefix}/backups/app/kubeplane-backup.json" in _stored_keys(s3, f"{prefix}/backups/app/")

        kubectl("delete", "namespace", app, "--wait=true", "--timeout=120s", timeout=150)
        apply({"apiVersion": BACKUP_API, "kind": "Restore", "metadata": {"name": "app"},
               "spec": {"backupName": "app"}}, namespace=ns)
        status = _finished(RESTORES, "app", ns)
        assert status["phase"] == "Completed", status
        assert kubectl_json("get", "configmap", "settings", "-n", app)["data"] == {"mode": "production"}
        secret = kubectl("get", "secret", "db", "-n", app, "-o", "go-template={{.data.password | base64decode}}")
        assert secret.stdout == f"hunter2-{app}"
        kubectl("get", "deployment", "web", "-n", app)

        # A Schedule creates its first Backup at once; with a 1s TTL, garbage collection deletes it (and,
        # through the finalizer, its files).
        apply({"apiVersion": BACKUP_API, "kind": "Schedule", "metadata": {"name": "nightly"},
               "spec": {"schedule": "0 3 * * *",
                        "template": {"includedNamespaces": [app], "storageLocation": "minio", "ttl": "1s"}}},
              namespace=ns)
        wait_for(lambda: (kubectl_json("get", SCHEDULES, "nightly", "-n", ns).get("status") or {}).get("lastBackup"),
                 timeout=60, what="the schedule's first backup")
        kubectl("patch", SCHEDULES, "nightly", "-n", ns, "--type=merge", "-p", '{"spec":{"paused":true}}')
        wait_for(lambda: {"BackupCreated", "Expired"} <= {e["reason"] for e in kubectl_json(
            "get", "events", "-n", ns)["items"]}, timeout=60, what="the scheduled backup created and expired")
        wait_for(lambda: not kubectl_json("get", BACKUPS, "-n", ns, "-l", f"{GROUP_LABEL}=nightly")["items"],
                 timeout=60, what="the expired backup garbage-collected")

        kubectl("delete", BACKUPS, "app", "-n", ns, "--wait=true", "--timeout=60s", timeout=90)
        assert kubectl("get", BACKUPS, "app", "-n", ns, check=False).returncode != 0
        assert _stored_keys(s3, f"{prefix}/backups/") == []
        events = kubectl_json("get", "events", "-n", ns)["items"]
        assert {"LocationAvailable", "BackupCompleted", "RestoreCompleted"} <= {e["reason"] for e in events}
    finally:
        operator.stop()
        # Whatever the operator left: no finalizer may keep the Backup (the operator is gone).
        kubectl("delete", SCHEDULES, "--all", "-n", ns, check=False)
        for name in kubectl("get", BACKUPS, "-n", ns, "-o", "name", check=False).stdout.split():
            kubectl("patch", name, "-n", ns, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False)
        kubectl("delete", f"{BACKUPS},{RESTORES},{BSL}", "--all", "-n", ns, "--wait=false", check=False)
        kubectl("delete", "secret", "bsl-credentials", "-n", ns, check=False)
        kubectl("delete", "namespace", app, "--wait=false", check=False)
        for key in _stored_keys(s3, f"{prefix}/"):
            s3.delete_object(Bucket="kubeplane", Key=key)
    log = log_path.read_text()
    assert "Starting the watch-stream for backups" in log, f"no backup watch; see {log_path}"
    _assert_no_forbidden(log)
    # --verbose is the operator's debug log, not boto's: botocore's debug lines carry request parameters.
    boto = [line for line in log.splitlines() if re.search(r"\b(botocore|boto3|s3transfer|urllib3)\.", line)
            and "DEBUG" in line]
    assert not boto, "boto's debug logging is on under --verbose:\n" + "\n".join(boto[:5])


# --- the scheduler operator, for real, under the chart's ServiceAccount --------------------------


def _pod_scheduled(pod: Obj) -> Obj:
    return next((c for c in (pod.get("status") or {}).get("conditions") or [] if c["type"] == "PodScheduled"), {})


def test_scheduler_operator_runs_under_the_charts_service_account(chart_ns: str, tmp_path: Path) -> None:
    """`kubeplane run scheduler`, authenticated as the chart's scheduler ServiceAccount, binds a pod that
    fits and marks one that fits nowhere PodScheduled=False/Unschedulable with a FailedScheduling event:
    its log has no 403.

    It watches the whole cluster (as the chart's ClusterRole allows) but handles only pods naming it:
    KUBEPLANE_SCHEDULER_NAME gives it a name of its own, so the cluster's own kubeplane-scheduler (if one
    runs) leaves this test's pods alone, and this process leaves everybody else's."""
    release, ns = chart_ns, chart_ns
    name = f"kubeplane-scheduler-{ns}"
    values = {"crds": {"enabled": False}, "tests": {"enabled": False},
              # No in-cluster replica (on KWOK it would not run anyway): the local process is the scheduler.
              "operators": {"controllers": {"enabled": False},
                            "scheduler": {"enabled": True, "replicas": 0, "schedulerName": name}}}
    helm("install", release, str(CHART), "-n", ns, *values_args(values, tmp_path))
    sa = f"{release}-kubeplane-scheduler"
    container = kubectl_json("get", "deployment", sa, "-n", ns)["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "KUBEPLANE_SCHEDULER_NAME", "value": name} in container["env"], container["env"]
    assert_rbac(sa, ns, allowed=[("create", "pods/binding", ns), ("list", "nodes", None), ("watch", "pods", None)],
                denied=[("get", "secrets", ns), ("create", "pods", ns), ("patch", "pods", ns)])

    kubeconfig = _service_account_kubeconfig(sa, ns, tmp_path / "kubeconfig")
    operator = Operator("scheduler", env={"KUBECONFIG": str(kubeconfig), "KUBEPLANE_SCHEDULER_NAME": name,
                                          "POD_NAMESPACE": ns},
                        log_name=f"test-chart-scheduler-{ns}")
    metrics_port, log_path = operator.metrics_port, operator.log
    operator.start()

    def pod(pod_name: str, cpu: str) -> Obj:
        # Pinned to one of the cluster's own KWOK nodes: never onto nodes another test or a benchmark made.
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod_name},
                "spec": {"schedulerName": name, "nodeSelector": {"kubernetes.io/hostname": "kwok-node-0"},
                         "containers": [{"name": "c", "image": "registry.local/app:1",
                                         "resources": {"requests": {"cpu": cpu, "memory": "16Mi"}}}]}}

    try:
        operator.wait_live(timeout=60)

        # The scheduling loop starts once the watches have listed every node and pod: on a busy cluster
        # that takes a while, hence the generous timeout of the first wait.
        apply(pod("fits", "100m"), namespace=ns)
        apply(pod("too-big", "1000"), namespace=ns)
        wait_for(lambda: kubectl_json("get", "pod", "fits", "-n", ns).get("status", {}).get("phase") == "Running",
                 timeout=180, what="the pod that fits bound and Running")
        fits = kubectl_json("get", "pod", "fits", "-n", ns)
        assert fits["spec"]["nodeName"] == "kwok-node-0"
        assert _pod_scheduled(fits).get("status") == "True", fits["status"]

        wait_for(lambda: _pod_scheduled(kubectl_json("get", "pod", "too-big", "-n", ns)).get("reason")
                 == "Unschedulable", timeout=90, what="the pod that fits nowhere marked Unschedulable")
        too_big = kubectl_json("get", "pod", "too-big", "-n", ns)
        assert _pod_scheduled(too_big)["status"] == "False", too_big["status"]
        assert "Insufficient cpu" in _pod_scheduled(too_big)["message"], too_big["status"]
        assert not too_big["spec"].get("nodeName")

        def ours(pod_name: str, reason: str) -> list[Obj]:
            events = kubectl_json("get", "events", "-n", ns, "--field-selector",
                                  f"involvedObject.name={pod_name}")["items"]
            return [e for e in events if e["reason"] == reason and e.get("reportingComponent") == name]

        wait_for(lambda: ours("too-big", "FailedScheduling"), timeout=60, what="a FailedScheduling event")
        wait_for(lambda: ours("fits", "Scheduled"), timeout=60, what="a Scheduled event")

        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as answer:
            metrics = answer.read().decode()
        # This process did the work (not some other scheduler on the cluster).
        assert _metric(metrics, 'kubeplane_scheduler_attempts_total{result="scheduled"}') >= 1, metrics
        assert _metric(metrics, 'kubeplane_scheduler_attempts_total{result="unschedulable"}') >= 1, metrics
        assert _metric(metrics, "kubeplane_scheduler_binding_errors_total") == 0, metrics
    finally:
        operator.stop()
        kubectl("delete", "pods", "--all", "-n", ns, "--wait=false", check=False)
    log = log_path.read_text()
    assert "scheduling loop started" in log, f"the scheduling loop never started; see {log_path}"
    _assert_no_forbidden(log)
