"""Fixtures for the end-to-end tier: a real kind cluster (kubelet, containerd, flannel, CoreDNS,
kube-proxy) with kubeplane installed by Helm, as `make kind-up kind-deploy` (or hack/e2e.sh) leaves it.

This conftest never creates, deploys or deletes clusters; set-up belongs to the shell wrapper.
When no cluster answers, the tier is skipped, or fails with KUBEPLANE_REQUIRE_E2E=1.

- `kind` (session, autouse): the cluster handle, a pytest-kind `KindCluster` for the existing cluster.
- `kubeplane` (session): asserts the three operators' Deployments are available.
- `namespace` (function): a fresh `e2e-<random>` namespace, deleted afterwards without waiting.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_kind import KindCluster  # type: ignore[import-untyped]

from tests.kubectl import Kubectl
from tests.kubectl import wait_for as poll

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "bin"
CLUSTER = os.environ.get("KIND_CLUSTER", "kubeplane")
# hack/kind/cluster.sh writes the kubeconfig here (a name of its own for clusters other than kubeplane).
KUBECONFIG = ROOT / ".kubeplane" / ("kind-kubeconfig" if CLUSTER == "kubeplane" else f"kind-{CLUSTER}-kubeconfig")
ENV = {**os.environ, "KUBECONFIG": str(KUBECONFIG)}

CONTROL_PLANE = f"{CLUSTER}-control-plane"
WORKERS = (f"{CLUSTER}-worker", f"{CLUSTER}-worker2")
SYSTEM_NAMESPACE = "kubeplane-system"
OPERATORS = ("controllers", "scheduler", "backup")
KUBEPLANE_SCHEDULER = "kubeplane-scheduler"
HTTP_IMAGE = "kubeplane.local/e2e-http:v1"
HTTP_PORT = 8080
KPRS = "replicasets.apps.kubeplane.dev"  # the full name: `replicasets` alone is apps/v1's



def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: needs the kind cluster with kubeplane deployed (make kind-up kind-deploy)")


# The cluster's own checks first (a broken cluster explains every later failure), and the test that
# kills the operators last, so the others never run against operators that are still coming back.
MODULE_ORDER = ("test_cluster", "test_network", "test_workloads", "test_daemonset", "test_statefulset", "test_batch",
                "test_hpa", "test_scheduler", "test_backup", "test_operator_restart")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent

    def rank(item: pytest.Item) -> int:
        if item.path.parent != here or item.path.stem not in MODULE_ORDER:
            return -1  # other tiers keep their place, ahead of this one
        return MODULE_ORDER.index(item.path.stem)
    items.sort(key=rank)  # stable: tests keep their order within a module


# --- kubectl -------------------------------------------------------------------------------------


_kubectl = Kubectl(ENV)
kubectl = _kubectl.run
kubectl_json = _kubectl.json
apply = _kubectl.apply


def wait_for(predicate: Callable[[], Any], timeout: float = 60, interval: float = 1.0, what: str = "") -> Any:
    """tests.kubectl.wait_for, polling once a second: real pods change state on that scale."""
    return poll(predicate, timeout=timeout, interval=interval, what=what)


# --- pods ----------------------------------------------------------------------------------------


def http_container(name: str = "http") -> dict[str, Any]:
    """The e2e-http container: answers `<pod name> <pod IP>`, Ready once /healthz answers."""
    return {
        "name": name,
        "image": HTTP_IMAGE,
        "imagePullPolicy": "IfNotPresent",  # there is no registry: the image was `kind load`ed
        "ports": [{"name": "http", "containerPort": HTTP_PORT}],
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": HTTP_PORT}, "periodSeconds": 2},
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
    }


def http_pod_spec(**extra: Any) -> dict[str, Any]:
    # The server exits on SIGTERM at once; a short grace period keeps namespace deletion quick anyway.
    return {"containers": [http_container()], "terminationGracePeriodSeconds": 5, **extra}


def http_pod(name: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": http_pod_spec(**spec)}


def kubeplane_replicaset(name: str, replicas: int, **pod_spec: Any) -> dict[str, Any]:
    """A kubeplane ReplicaSet of e2e-http pods labelled app=<name>."""
    return {
        "apiVersion": "apps.kubeplane.dev/v1alpha1",
        "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": http_pod_spec(**pod_spec)},
        },
    }


def http_service(name: str, app: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": app}, "ports": [{"name": "http", "port": 80, "targetPort": HTTP_PORT}]}}


def is_ready(pod: dict[str, Any]) -> bool:
    """Running, not terminating, and every container ready (the readiness probe passed)."""
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    return (status.get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp")
            and bool(containers) and all(c.get("ready") for c in containers))


def is_active(pod: dict[str, Any]) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and (pod.get("status") or {}).get("phase") not in (
        "Succeeded", "Failed")


def get_pod(namespace: str, name: str) -> dict[str, Any]:
    pod: dict[str, Any] = kubectl_json("get", "pod", name, "-n", namespace)
    return pod


def pods_of(namespace: str, app: str) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = kubectl_json("get", "pods", "-n", namespace, "-l", f"app={app}")["items"]
    return pods


def wait_ready(namespace: str, name: str, timeout: float = 90) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        pod = get_pod(namespace, name)
        return pod if is_ready(pod) else None
    try:
        pod: dict[str, Any] = wait_for(ready, timeout=timeout, what=f"pod {namespace}/{name} Running and Ready")
    except AssertionError as e:
        status = get_pod(namespace, name).get("status")
        raise AssertionError(f"{e}\nlast status: {json.dumps(status)}") from None
    return pod


def wait_replicas_ready(namespace: str, app: str, replicas: int, timeout: float = 120) -> list[dict[str, Any]]:
    """Exactly `replicas` pods labelled app=<app> exist (none terminating), all Running and Ready."""
    def settled() -> list[dict[str, Any]] | None:
        pods = pods_of(namespace, app)
        return pods if len(pods) == replicas and all(is_ready(p) for p in pods) else None
    try:
        pods: list[dict[str, Any]] = wait_for(settled, timeout=timeout,
                                              what=f"exactly {replicas} Ready pods app={app} in {namespace}")
    except AssertionError as e:
        summary = [(p["metadata"]["name"], p["spec"].get("nodeName"), (p.get("status") or {}).get("phase"),
                    bool(p["metadata"].get("deletionTimestamp"))) for p in pods_of(namespace, app)]
        raise AssertionError(f"{e}\npods (name, node, phase, terminating): {summary}") from None
    return pods


def fetch_from(namespace: str, pod: str, url: str) -> tuple[bool, str]:
    """GET `url` from inside `pod` (its /fetch endpoint, reached through the API server's pod proxy)."""
    query = urllib.parse.urlencode({"url": url})
    result = kubectl("get", "--raw", f"/api/v1/namespaces/{namespace}/pods/{pod}:{HTTP_PORT}/proxy/fetch?{query}",
                     check=False, timeout=30)
    return result.returncode == 0, result.stdout if result.returncode == 0 else result.stderr


def wait_service_routed(namespace: str, service: str, from_pod: str, timeout: float = 180) -> str:
    """The Service's ClusterIP, once kube-proxy on `from_pod`'s node has programmed it with endpoints.

    Until then a packet to the ClusterIP leaves the node unchanged, and this machine's network answers
    any port-80 request it cannot route with a 404: a fetch would fail for a reason that is not the
    cluster's. kube-proxy (iptables mode, kind's default) jumps from KUBE-SERVICES to a KUBE-SVC- chain
    for `-d <ClusterIP>/32` only while the Service has ready endpoints, so that rule is what is waited for.
    """
    cluster_ip: str = kubectl_json("get", "service", service, "-n", namespace)["spec"]["clusterIP"]
    node = get_pod(namespace, from_pod)["spec"]["nodeName"]
    proxies = kubectl_json("get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-proxy",
                           "--field-selector", f"spec.nodeName={node}")["items"]
    assert proxies, f"no kube-proxy pod on node {node}"
    proxy = proxies[0]["metadata"]["name"]
    rule = f"-d {cluster_ip}/32"

    def programmed() -> bool:
        rules = kubectl("exec", "-n", "kube-system", proxy, "--", "iptables-save", "-t", "nat",
                        check=False, timeout=30).stdout
        return any(rule in line and "-j KUBE-SVC-" in line for line in rules.splitlines())
    try:
        wait_for(programmed, timeout=timeout, interval=2,
                 what=f"kube-proxy on {node} routing Service {namespace}/{service} ({cluster_ip})")
    except AssertionError as e:
        logs = kubectl("logs", "-n", "kube-system", proxy, "--tail=30", check=False, timeout=30)
        raise AssertionError(f"{e}\nkube-proxy {proxy} log tail:\n{logs.stdout}{logs.stderr}") from None
    return cluster_ip


def fetch_until_ok(namespace: str, pod: str, url: str, timeout: float = 60) -> str:
    """The body of `url` fetched from `pod`, retried while endpoints, routes or DNS settle."""
    last = ""

    def answered() -> str | None:
        nonlocal last
        ok, last = fetch_from(namespace, pod, url)
        return last if ok else None
    try:
        body: str = wait_for(answered, timeout=timeout, interval=2, what=f"{url} from pod {pod}")
    except AssertionError:
        raise AssertionError(f"{url} never answered from pod {namespace}/{pod} in {timeout}s; last: {last}") from None
    return body


def events_for(namespace: str, name: str, kind: str = "Pod") -> list[dict[str, Any]]:
    selector = f"involvedObject.name={name},involvedObject.kind={kind}"
    events: list[dict[str, Any]] = kubectl_json(
        "get", "events", "-n", namespace, "--field-selector", selector)["items"]
    return events


# --- fixtures ------------------------------------------------------------------------------------


def _cluster_unavailable() -> str | None:
    """Why the cluster cannot be used, or None when it can."""
    if not KUBECONFIG.exists():
        return f"no kubeconfig at {KUBECONFIG}"
    clusters = subprocess.run([str(BIN / "kind"), "get", "clusters"], capture_output=True, text=True, timeout=30)
    if CLUSTER not in clusters.stdout.split():
        return f"kind has no cluster {CLUSTER!r} ({(clusters.stdout + clusters.stderr).strip()})"
    readyz = kubectl("get", "--raw", "/readyz", check=False, timeout=15)
    if readyz.returncode != 0:
        return f"the API server does not answer: {readyz.stderr.strip()}"
    return None


@pytest.fixture(scope="session", autouse=True)
def kind() -> KindCluster:
    """The running kind cluster, or the whole tier skipped (failed with KUBEPLANE_REQUIRE_E2E=1)."""
    problem = _cluster_unavailable()
    if problem:
        message = f"no kind cluster: run make kind-up kind-deploy ({problem})"
        if os.environ.get("KUBEPLANE_REQUIRE_E2E") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    cluster = KindCluster(CLUSTER, kubeconfig=KUBECONFIG, kind_path=BIN / "kind", kubectl_path=BIN / "kubectl")
    # The cluster exists (checked above), so create() only re-uses it and sets up `cluster.api`.
    # Never cluster.delete(): the cluster belongs to whoever ran `make kind-up`.
    cluster.create()
    return cluster


@pytest.fixture(scope="session")
def kubeplane(kind: KindCluster) -> None:
    """The three operators are deployed and available (hack/kind/cluster.sh deploy)."""
    for operator in OPERATORS:
        result = kubectl("get", "deployment", "-n", SYSTEM_NAMESPACE, "-l", f"app.kubernetes.io/component={operator}",
                         "-o", "json", check=False)
        items = json.loads(result.stdout)["items"] if result.returncode == 0 else []
        available = [d for d in items if (d.get("status") or {}).get("availableReplicas", 0) >= 1]
        assert available, (f"kubeplane {operator} is not deployed and available in {SYSTEM_NAMESPACE}: "
                           f"run make kind-deploy ({result.stderr.strip() or 'no available Deployment'})")


@pytest.fixture
def namespace(kind: KindCluster) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture
def backup_objects() -> Iterator[list[tuple[str, str]]]:
    """Backups and Restores a test created in kubeplane-system, deleted afterwards without waiting
    (a Backup's finalizer deletes its files from the bucket first)."""
    created: list[tuple[str, str]] = []
    yield created
    for resource, name in reversed(created):
        kubectl("delete", resource, name, "-n", SYSTEM_NAMESPACE, "--wait=false", "--ignore-not-found", check=False)
