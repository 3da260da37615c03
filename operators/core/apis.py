"""The API resources kubeplane reads and writes, one `Resource` each: no group/version/plural strings
scattered through the operators.

A `Resource` knows its REST paths (`path(namespace, name, subresource)`), its apiVersion and kind
(for ownerReferences and Events), and whether it is built in (core and apps kinds take strategic
merge patches; custom resources take only JSON and merge patches).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Resource:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    builtin: bool = False  # served by kube-apiserver itself: strategic merge patches work

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        """/api/v1/... for the core group, /apis/<group>/<version>/... otherwise; a namespace only
        for namespaced kinds; the collection when `name` is None."""
        path = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace and self.namespaced:
            path += f"/namespaces/{namespace}"
        path += f"/{self.plural}"
        if name:
            path += f"/{name}"
            if subresource:
                path += f"/{subresource}"
        return path

    def object_path(self, obj: Mapping[str, Any], subresource: str | None = None) -> str:
        meta = obj["metadata"]
        return self.path(meta.get("namespace"), meta["name"], subresource)

    def is_kind_of(self, ref: Mapping[str, Any] | None) -> bool:
        """Whether an ownerReference (or any apiVersion+kind pair) names this resource's kind."""
        if ref is None or ref.get("kind") != self.kind:
            return False
        api_version = str(ref.get("apiVersion") or "")
        group = api_version.rpartition("/")[0]
        return group == self.group

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


# Built-in kinds.
PODS = Resource("", "v1", "pods", "Pod", builtin=True)
NODES = Resource("", "v1", "nodes", "Node", namespaced=False, builtin=True)
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False, builtin=True)
EVENTS = Resource("", "v1", "events", "Event", builtin=True)
PERSISTENT_VOLUME_CLAIMS = Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", builtin=True)
REPLICATION_CONTROLLERS = Resource("", "v1", "replicationcontrollers", "ReplicationController", builtin=True)
CONTROLLER_REVISIONS = Resource("apps", "v1", "controllerrevisions", "ControllerRevision", builtin=True)
APPS_REPLICASETS = Resource("apps", "v1", "replicasets", "ReplicaSet", builtin=True)
APPS_DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment", builtin=True)
APPS_DAEMONSETS = Resource("apps", "v1", "daemonsets", "DaemonSet", builtin=True)
APPS_STATEFULSETS = Resource("apps", "v1", "statefulsets", "StatefulSet", builtin=True)
BATCH_JOBS = Resource("batch", "v1", "jobs", "Job", builtin=True)
BATCH_CRONJOBS = Resource("batch", "v1", "cronjobs", "CronJob", builtin=True)
AUTOSCALING_HPAS = Resource("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", builtin=True)
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease", builtin=True)

# kubeplane's workload kinds.
KUBEPLANE_APPS = "apps.kubeplane.dev"
REPLICASETS = Resource(KUBEPLANE_APPS, "v1alpha1", "replicasets", "ReplicaSet")
DEPLOYMENTS = Resource(KUBEPLANE_APPS, "v1alpha1", "deployments", "Deployment")
DAEMONSETS = Resource(KUBEPLANE_APPS, "v1alpha1", "daemonsets", "DaemonSet")
STATEFULSETS = Resource(KUBEPLANE_APPS, "v1alpha1", "statefulsets", "StatefulSet")
KUBEPLANE_BATCH = "batch.kubeplane.dev"
JOBS = Resource(KUBEPLANE_BATCH, "v1alpha1", "jobs", "Job")
CRONJOBS = Resource(KUBEPLANE_BATCH, "v1alpha1", "cronjobs", "CronJob")
KUBEPLANE_AUTOSCALING = "autoscaling.kubeplane.dev"
HORIZONTAL_POD_AUTOSCALERS = Resource(KUBEPLANE_AUTOSCALING, "v1alpha1", "horizontalpodautoscalers",
                                      "HorizontalPodAutoscaler")
