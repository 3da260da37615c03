"""Builders for the Kubernetes JSON the backup tests use, and a discovery-like type list."""

from __future__ import annotations

from typing import Any

from operators.backup.selection import ResourceType


def obj(
    kind: str,
    name: str,
    namespace: str = "",
    *,
    api_version: str = "v1",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    uid: str | None = None,
    owners: list[dict[str, Any]] | None = None,
    **body: Any,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    if labels is not None:
        metadata["labels"] = labels
    if annotations is not None:
        metadata["annotations"] = annotations
    if uid is not None:
        metadata["uid"] = uid
    if owners is not None:
        metadata["ownerReferences"] = owners
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **body}


def owner_ref(kind: str, name: str, uid: str, *, api_version: str = "v1", controller: bool = True) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid, "controller": controller,
            "blockOwnerDeletion": True}


def namespace(name: str, *, labels: dict[str, str] | None = None, phase: str = "Active") -> dict[str, Any]:
    return obj("Namespace", name, labels=labels, status={"phase": phase})


def rt(resource: str, kind: str, group: str = "", *, namespaced: bool = True, short: tuple[str, ...] = (),
       version: str = "v1") -> ResourceType:
    return ResourceType(resource=resource, kind=kind, group=group, version=version, namespaced=namespaced,
                        singular=kind.lower(), short_names=short)


TYPES = [
    rt("pods", "Pod", short=("po",)),
    rt("configmaps", "ConfigMap", short=("cm",)),
    rt("secrets", "Secret"),
    rt("services", "Service", short=("svc",)),
    rt("serviceaccounts", "ServiceAccount", short=("sa",)),
    rt("events", "Event", short=("ev",)),
    rt("namespaces", "Namespace", namespaced=False, short=("ns",)),
    rt("nodes", "Node", namespaced=False, short=("no",)),
    rt("persistentvolumes", "PersistentVolume", namespaced=False, short=("pv",)),
    rt("deployments", "Deployment", "apps", short=("deploy",)),
    rt("replicasets", "ReplicaSet", "apps", short=("rs",)),
    rt("events", "Event", "events.k8s.io", short=("ev",)),
    rt("clusterroles", "ClusterRole", "rbac.authorization.k8s.io", namespaced=False),
    rt("rolebindings", "RoleBinding", "rbac.authorization.k8s.io"),
    rt("customresourcedefinitions", "CustomResourceDefinition", "apiextensions.k8s.io", namespaced=False,
       short=("crd", "crds")),
    rt("widgets", "Widget", "example.kubeplane.dev", version="v1alpha1"),
    rt("backups", "Backup", "backup.kubeplane.dev", version="v1alpha1"),
    rt("replicasets", "ReplicaSet", "apps.kubeplane.dev", version="v1alpha1"),
]


def type_of(group_resource: str) -> ResourceType:
    return next(t for t in TYPES if t.group_resource == group_resource)
