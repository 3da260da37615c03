"""Disaster recovery on a real cluster: a namespace with a kubeplane ReplicaSet, a Service and a
ConfigMap is backed up to the in-cluster MinIO, deleted, and restored; afterwards the ConfigMap has
its data, the ReplicaSet's pods Run and are Ready again on real nodes, and the Service answers.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.e2e.conftest import (
    KPRS,
    SYSTEM_NAMESPACE,
    apply,
    http_service,
    kubectl,
    kubectl_json,
    kubeplane_replicaset,
    wait_for,
    wait_replicas_ready,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420), pytest.mark.usefixtures("kubeplane")]

BACKUP = "backups.backup.kubeplane.dev"
RESTORE = "restores.backup.kubeplane.dev"


def create(resource: str, kind: str, spec: dict[str, Any], created: list[tuple[str, str]]) -> str:
    name = f"e2e-{kind.lower()}-{uuid.uuid4().hex[:6]}"
    apply({"apiVersion": "backup.kubeplane.dev/v1alpha1", "kind": kind,
           "metadata": {"name": name, "namespace": SYSTEM_NAMESPACE}, "spec": spec})
    created.append((resource, name))
    return name


def finished(resource: str, name: str, timeout: float) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        status = kubectl_json("get", resource, name, "-n", SYSTEM_NAMESPACE).get("status") or {}
        return status if status.get("phase") not in (None, "", "New", "InProgress") else None
    status: dict[str, Any] = wait_for(done, timeout=timeout, interval=2, what=f"{resource} {name} to finish")
    return status


def service_answers(namespace: str) -> str | None:
    """The Service's answer through the API server's service proxy (which picks one of its endpoints)."""
    result = kubectl("get", "--raw", f"/api/v1/namespaces/{namespace}/services/web:http/proxy/", check=False)
    return result.stdout if result.returncode == 0 else None


def namespace_gone(namespace: str) -> bool:
    result = kubectl("get", "namespace", namespace, check=False)
    return result.returncode != 0 and "NotFound" in result.stderr


def test_backup_delete_namespace_restore(namespace: str, backup_objects: list[tuple[str, str]]) -> None:
    apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
           "data": {"mode": "production", "namespace": namespace}}, namespace)
    apply(kubeplane_replicaset("web", 2), namespace)
    apply(http_service("web", app="web"), namespace)
    wait_replicas_ready(namespace, "web", 2)
    wait_for(lambda: service_answers(namespace), timeout=60, interval=2, what="the Service to answer")

    backup = create(BACKUP, "Backup", {"includedNamespaces": [namespace], "storageLocation": "default"},
                    backup_objects)
    status = finished(BACKUP, backup, timeout=180)
    assert status["phase"] == "Completed", f"Backup {backup} ended {status}"

    kubectl("delete", "namespace", namespace, "--wait=false")
    wait_for(lambda: namespace_gone(namespace), timeout=120, interval=2, what=f"namespace {namespace} deleted")

    restore = create(RESTORE, "Restore", {"backupName": backup}, backup_objects)
    status = finished(RESTORE, restore, timeout=180)
    assert status["phase"] == "Completed", f"Restore {restore} ended {status}"

    settings = kubectl_json("get", "configmap", "settings", "-n", namespace)
    assert settings["data"] == {"mode": "production", "namespace": namespace}

    # The restored ReplicaSet owns exactly its 2 pods (restored ones re-linked to its new UID, or new
    # ones it created), all Running and Ready on real nodes.
    replicaset = kubectl_json("get", KPRS, "web", "-n", namespace)
    assert replicaset["spec"]["replicas"] == 2
    pods = wait_replicas_ready(namespace, "web", 2, timeout=150)
    owners = {ref["uid"] for p in pods for ref in p["metadata"].get("ownerReferences") or [] if ref.get("controller")}
    assert owners == {replicaset["metadata"]["uid"]}, f"pods owned by {owners}, not the restored ReplicaSet"
    wait_for(lambda: int((kubectl_json("get", KPRS, "web", "-n", namespace).get("status") or {})
                         .get("readyReplicas") or 0) == 2, timeout=60, what="restored RS readyReplicas 2")

    answer = wait_for(lambda: service_answers(namespace), timeout=60, interval=2, what="the restored Service")
    names = {p["metadata"]["name"] for p in pods}
    assert answer.split()[0] in names, f"the Service answered {answer!r}, not from one of {sorted(names)}"
