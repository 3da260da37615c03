"""A kubeplane StatefulSet of real containers on kind keeps each pod's data in its claim: a file written
into each pod's volume (kind's default StorageClass, hostPath volumes provisioned by
kube-controller-manager) reads back the same after the pod is deleted and made again, and after a rolling
update has replaced every pod with a new version.

hostPath volumes live on one node, so the set is kept on one worker.
"""

from __future__ import annotations

import subprocess
import urllib.parse
import uuid
from typing import Any

import pytest

from tests.e2e.conftest import ENV, HTTP_PORT, ROOT, WORKERS, apply, http_container, kubectl, kubectl_json, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420), pytest.mark.usefixtures("kubeplane")]
KPSTS = "statefulsets.apps.kubeplane.dev"
MARKER = "/data/marker"


def statefulset(version: str) -> dict[str, Any]:
    container = {**http_container(), "env": [*http_container()["env"], {"name": "VERSION", "value": version}],
                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]}
    return {"apiVersion": "apps.kubeplane.dev/v1alpha1", "kind": "StatefulSet", "metadata": {"name": "store"},
            "spec": {"replicas": 2, "serviceName": "store", "selector": {"matchLabels": {"app": "store"}},
                     "template": {"metadata": {"labels": {"app": "store"}},
                                  "spec": {"nodeSelector": {"kubernetes.io/hostname": WORKERS[0]},
                                           "containers": [container], "terminationGracePeriodSeconds": 5}},
                     "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                               "spec": {"accessModes": ["ReadWriteOnce"],
                                                        "resources": {"requests": {"storage": "64Mi"}}}}]}}


def rollout_status(namespace: str) -> str:
    result = subprocess.run([str(ROOT / ".venv/bin/kubeplane"), "rollout", "status", "statefulset/store", "-n",
                             namespace, "--timeout=240"], env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def file(namespace: str, pod: str, write: str | None = None) -> str:
    query = {"path": MARKER, **({"write": write} if write is not None else {})}
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}:{HTTP_PORT}/proxy/file?{urllib.parse.urlencode(query)}"
    return kubectl("get", "--raw", path, timeout=60).stdout


def uids(namespace: str) -> dict[str, str]:
    pods = kubectl_json("get", "pods", "-n", namespace, "-l", "app=store")["items"]
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods if not p["metadata"].get("deletionTimestamp")}


def version_of(namespace: str, pod: str) -> str:
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}:{HTTP_PORT}/proxy/"
    return kubectl("get", "--raw", path, timeout=60).stdout.split()[-1]


def test_each_pod_keeps_its_data_across_a_deletion_and_a_rolling_update(namespace: str) -> None:
    apply(statefulset("v1"), namespace)
    rollout_status(namespace)
    claims = kubectl_json("get", "pvc", "-n", namespace)["items"]
    assert sorted((c["metadata"]["name"], c["status"]["phase"]) for c in claims) == \
        [("data-store-0", "Bound"), ("data-store-1", "Bound")]
    written = {pod: f"{pod} {uuid.uuid4().hex}" for pod in ("store-0", "store-1")}
    for pod, text in written.items():
        file(namespace, pod, write=text)
        assert file(namespace, pod) == text

    before = uids(namespace)
    kubectl("delete", "pod", "store-0", "-n", namespace, "--wait=false")
    wait_for(lambda: uids(namespace).get("store-0") not in (None, before["store-0"]), timeout=60,
             what="store-0 made again")
    rollout_status(namespace)
    assert file(namespace, "store-0") == written["store-0"], "store-0 lost its data with the pod"

    before = uids(namespace)
    apply(statefulset("v2"), namespace)
    wait_for(lambda: all(u != before.get(n) for n, u in uids(namespace).items()) and len(uids(namespace)) == 2,
             timeout=240, what="both pods replaced by the update")
    out = rollout_status(namespace)
    assert out.strip().splitlines()[-1] == "partitioned roll out complete: 2 new pods have been updated...", out
    for pod, text in written.items():
        assert version_of(namespace, pod) == "v2"
        assert file(namespace, pod) == text, f"{pod} lost its data in the rolling update"
