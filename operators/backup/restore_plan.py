"""How a restore applies backed-up objects: order, clean-up of each object, and what to do when
the object already exists. Pure functions over plain JSON dicts.

Mirrors Velero 1.17: the default restore priorities (pkg/cmd/server/config/config.go), item
handling in pkg/restore/restore.go (resetMetadata/resetStatus, isCompleted, mirror pods,
PersistentVolume binding info, namespace creation, restore labels, the existing-object policy)
and the built-in restore item actions in pkg/restore/actions (service, pod, job, service
account, secret, PVC, role binding and cluster role binding).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from operators.backup.naming import BACKUP_NAME_LABEL, GROUP, RESTORE_NAME_LABEL, valid_label_value
from operators.backup.selection import (
    CRDS,
    NAMESPACES,
    Discovered,
    IncludesExcludes,
    Selection,
    resolve_resource,
)

# Velero's high priorities, written as the fully-qualified GroupResource strings under which items
# sit in a backup (Velero writes some short and resolves them through discovery). Velero's entry
# `volumesnapshotclass.snapshot.storage.k8s.io` is the singular of the resource below, and its
# `datauploads.velero.io` (its own data mover) has no counterpart here.
HIGH_PRIORITIES: tuple[str, ...] = (
    CRDS,
    NAMESPACES,
    "storageclasses.storage.k8s.io",
    "volumesnapshotclasses.snapshot.storage.k8s.io",
    "volumesnapshotcontents.snapshot.storage.k8s.io",
    "volumesnapshots.snapshot.storage.k8s.io",
    "persistentvolumes",
    "persistentvolumeclaims",
    "clusterroles.rbac.authorization.k8s.io",
    "roles.rbac.authorization.k8s.io",
    "serviceaccounts",
    "clusterrolebindings.rbac.authorization.k8s.io",
    "rolebindings.rbac.authorization.k8s.io",
    "secrets",
    "configmaps",
    "limitranges",
    "priorityclasses.scheduling.k8s.io",
    "pods",
    "replicasets.apps",
    "clusterclasses.cluster.x-k8s.io",
    "endpoints",
    "services",
)
LOW_PRIORITIES: tuple[str, ...] = (
    "clusterbootstraps.run.tanzu.vmware.com",
    "clusters.cluster.x-k8s.io",
    "clusterresourcesets.addons.cluster.x-k8s.io",
    "apps.kappctrl.k14s.io",
    "packageinstalls.packaging.carvel.dev",
)

RESTORE_STATUS_ANNOTATION = f"{GROUP}/restore-status"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
JOB_CONTROLLER_UID_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid")
SA_TOKEN_SECRET_TYPE = "kubernetes.io/service-account-token"
# PV/PVC binding annotations the PV controller sets; restored claims and volumes bind afresh.
_BINDING_ANNOTATIONS = ("pv.kubernetes.io/bind-completed", "pv.kubernetes.io/bound-by-controller")
_PVC_ANNOTATIONS = (
    *_BINDING_ANNOTATIONS,
    "volume.kubernetes.io/storage-provisioner",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/selected-node",
)
# Metadata the API server owns: never sent on create, never compared.
SERVER_SET_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "managedFields",
    "ownerReferences",
    "generateName",
)


# --- order -------------------------------------------------------------------------------------


def restore_order(
    resources: Iterable[str],
    high: Sequence[str] = HIGH_PRIORITIES,
    low: Sequence[str] = LOW_PRIORITIES,
) -> list[str]:
    """The backup's resources in restore order: high priorities, the rest alphabetically, then
    the low priorities (Velero's getOrderedResources, limited to what the backup holds)."""
    present = set(resources)
    prioritized = set(high) | set(low)
    return ([r for r in high if r in present] + sorted(present - prioritized)
            + [r for r in low if r in present])


def restore_tiers(
    resources: Iterable[str],
    high: Sequence[str] = HIGH_PRIORITIES,
    low: Sequence[str] = LOW_PRIORITIES,
) -> list[tuple[str, ...]]:
    """Groups of resources restored one group after another: each prioritized resource alone, and
    all the others together (their alphabetical order carries no meaning), so items inside a tier
    may be created concurrently while the order between priorities is kept."""
    present = set(resources)
    prioritized = set(high) | set(low)
    rest = tuple(sorted(present - prioritized))
    return ([(r,) for r in high if r in present] + ([rest] if rest else [])
            + [(r,) for r in low if r in present])


def crd_ready(crd: Mapping[str, Any]) -> bool:
    """A CRD serves its custom resources once Established and NamesAccepted are both True."""
    conditions = {c.get("type"): c.get("status") for c in (crd.get("status") or {}).get("conditions") or []}
    return bool(conditions.get("Established") == "True" and conditions.get("NamesAccepted") == "True")


# --- preparing one object ----------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreOptions:
    backup_name: str
    restore_name: str
    namespace_mapping: Mapping[str, str] = field(default_factory=dict)
    restore_status: IncludesExcludes | None = None  # resources whose status is restored; None: none
    preserve_node_ports: bool = False
    reprovisioned_pvs: frozenset[str] = frozenset()  # PV names whose claims bind a new volume

    def target_namespace(self, namespace: str) -> str:
        return self.namespace_mapping.get(namespace, namespace) if namespace else ""

    def labels(self) -> dict[str, str]:
        return {BACKUP_NAME_LABEL: valid_label_value(self.backup_name),
                RESTORE_NAME_LABEL: valid_label_value(self.restore_name)}


def options_from_spec(
    spec: Mapping[str, Any],
    restore_name: str,
    backup_name: str,
    types: Sequence[Discovered] = (),
    reprovisioned_pvs: Iterable[str] = (),
) -> RestoreOptions:
    """RestoreOptions from a Restore spec (`backup_name`: the one chosen, also for scheduleName)."""
    restore_status = spec.get("restoreStatus")
    wanted = None
    if restore_status is not None:
        wanted = IncludesExcludes.of(
            [r if r == "*" else resolve_resource(r, types) for r in restore_status.get("includedResources") or ()],
            [resolve_resource(r, types) for r in restore_status.get("excludedResources") or () if r != "*"],
        )
    return RestoreOptions(
        backup_name=backup_name,
        restore_name=restore_name,
        namespace_mapping=dict(spec.get("namespaceMapping") or {}),
        restore_status=wanted,
        preserve_node_ports=bool(spec.get("preserveNodePorts")),
        reprovisioned_pvs=frozenset(reprovisioned_pvs),
    )


@dataclass
class Prepared:
    """One backed-up object made ready to create, or the reason it is skipped."""

    group_resource: str
    namespace: str  # in the backup
    name: str
    target_namespace: str
    obj: dict[str, Any] | None = None
    skip_reason: str | None = None
    owner_references: list[dict[str, Any]] = field(default_factory=list)  # as backed up, for relinking
    status: dict[str, Any] | None = None  # to write through the status subresource after create
    warnings: list[str] = field(default_factory=list)


def is_completed(obj: Mapping[str, Any], group_resource: str) -> bool:
    """Pods that Succeeded or Failed and Jobs with a completionTime are not restored."""
    status = obj.get("status") or {}
    if group_resource == "pods":
        return status.get("phase") in ("Succeeded", "Failed")
    if group_resource == "jobs.batch":
        return bool(status.get("completionTime"))
    return False


def pv_reprovisioned(pv: Mapping[str, Any]) -> bool:
    """Without volume snapshots, a PersistentVolume with reclaim policy Delete is not restored:
    its claim gets a freshly provisioned volume (Velero's behaviour without a snapshot)."""
    return (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy") == "Delete"


def restore_status_wanted(obj: Mapping[str, Any], group_resource: str, wanted: IncludesExcludes | None) -> bool:
    """restoreStatus picks resources (set with no includedResources: all of them, as in Velero);
    an object's `backup.kubeplane.dev/restore-status` annotation ("true"/"false") overrides that."""
    decision = wanted is not None and wanted.should_include(group_resource)
    annotation = ((obj.get("metadata") or {}).get("annotations") or {}).get(RESTORE_STATUS_ANNOTATION)
    if annotation is not None:
        value = str(annotation).strip().lower()
        if value in ("true", "false"):
            return value == "true"
    return decision


def prepare(obj: Mapping[str, Any], group_resource: str, options: RestoreOptions) -> Prepared:
    """The object to create for one backed-up item (never modifying `obj`)."""
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace") or ""
    prepared = Prepared(group_resource, namespace, metadata.get("name") or "", options.target_namespace(namespace))

    if group_resource == "pods" and (metadata.get("annotations") or {}).get(MIRROR_POD_ANNOTATION):
        prepared.skip_reason = "mirror pod (the kubelet recreates it from its static manifest)"
        return prepared
    if is_completed(obj, group_resource):
        prepared.skip_reason = "completed pod" if group_resource == "pods" else "completed job"
        return prepared
    if group_resource == "persistentvolumes" and pv_reprovisioned(obj):
        prepared.skip_reason = "persistent volume with reclaim policy Delete: its claim gets a new volume"
        return prepared

    out: dict[str, Any] = copy.deepcopy(dict(obj))
    status = out.pop("status", None)
    if status is not None and restore_status_wanted(obj, group_resource, options.restore_status):
        prepared.status = status
    prepared.owner_references = [dict(r) for r in metadata.get("ownerReferences") or []]

    # Kind-specific clean-up first: services read managedFields before they go.
    adjust = _ADJUSTMENTS.get(group_resource)
    if adjust is not None:
        prepared.warnings += adjust(out, options)

    out_meta = out.setdefault("metadata", {})
    for key in SERVER_SET_METADATA:
        out_meta.pop(key, None)
    if prepared.target_namespace:
        out_meta["namespace"] = prepared.target_namespace
    out_meta["labels"] = {**(out_meta.get("labels") or {}), **options.labels()}
    prepared.obj = out
    return prepared


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _annotations(obj: dict[str, Any]) -> dict[str, Any]:
    annotations = (obj.get("metadata") or {}).get("annotations")
    return annotations if isinstance(annotations, dict) else {}


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return 0


def _managed_spec_fields(obj: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        fields = (entry or {}).get("fieldsV1") or {}
        spec = fields.get("f:spec") if isinstance(fields, dict) else None
        if isinstance(spec, dict):
            yield spec


def _port_key(port: Mapping[str, Any]) -> str:
    return f'k:{{"port":{_as_int(port.get("port"))},"protocol":"{port.get("protocol") or "TCP"}"}}'


def _adjust_service(svc: dict[str, Any], options: RestoreOptions) -> list[str]:
    """Cluster IPs are reassigned unless headless; node ports the user did not choose (by
    `kubectl apply`'s last-applied annotation, or server-side apply's managedFields) are dropped
    for the cluster to assign, unless preserveNodePorts."""
    spec = _spec(svc)
    warnings: list[str] = []
    if spec.get("clusterIP") != "None":
        spec.pop("clusterIP", None)
        spec.pop("clusterIPs", None)
    if options.preserve_node_ports:
        return warnings
    applied: dict[str, Any] | None = None
    raw = _annotations(svc).get(LAST_APPLIED_ANNOTATION)
    if raw is not None:
        try:
            parsed = json.loads(raw)
            applied = parsed if isinstance(parsed, dict) else {}
        except json.JSONDecodeError:
            warnings.append("unreadable last-applied-configuration annotation: node ports reset")
            applied = {}
    applied_spec = (applied or {}).get("spec") or {}
    if not isinstance(applied_spec, dict):
        applied_spec = {}

    if spec.get("type") != "ExternalName":
        ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
        if applied is not None:
            named: set[str] = set()
            unnamed: set[int] = set()
            for port in applied_spec.get("ports") or []:
                if isinstance(port, dict) and _as_int(port.get("nodePort")) > 0:
                    if "name" in port:
                        named.add(str(port["name"]))
                    else:
                        unnamed.add(_as_int(port["nodePort"]))
            for port in ports:
                keep = port["name"] in named if port.get("name") else _as_int(port.get("nodePort")) in unnamed
                if not keep:
                    port.pop("nodePort", None)
        else:
            explicit = {key for fields in _managed_spec_fields(svc)
                        for key, value in (fields.get("f:ports") or {}).items()
                        if isinstance(value, dict) and "f:nodePort" in value}
            for port in ports:
                if _port_key(port) not in explicit:
                    port.pop("nodePort", None)

    if (spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"
            and _as_int(spec.get("healthCheckNodePort")) != 0):
        chosen = _as_int(applied_spec.get("healthCheckNodePort")) != 0 or any(
            "f:healthCheckNodePort" in fields for fields in _managed_spec_fields(svc))
        if not chosen:
            spec.pop("healthCheckNodePort", None)
    return warnings


def _drop_token_mounts(containers: Any, prefix: str) -> None:
    for container in containers or []:
        if isinstance(container, dict) and container.get("volumeMounts"):
            container["volumeMounts"] = [m for m in container["volumeMounts"]
                                         if not str(m.get("name", "")).startswith(prefix)]


def _adjust_pod(pod: dict[str, Any], options: RestoreOptions) -> list[str]:
    """Pods are scheduled afresh (no nodeName), take their priority from priorityClassName again,
    and lose legacy service-account token volumes (`<sa>-token-*`)."""
    spec = _spec(pod)
    spec.pop("nodeName", None)
    spec.pop("priority", None)
    account = spec.get("serviceAccountName") or ""
    if account:
        prefix = f"{account}-token-"
        if spec.get("volumes"):
            spec["volumes"] = [v for v in spec["volumes"] if not str(v.get("name", "")).startswith(prefix)]
        _drop_token_mounts(spec.get("containers"), prefix)
        _drop_token_mounts(spec.get("initContainers"), prefix)
    return []


def _adjust_job(job: dict[str, Any], options: RestoreOptions) -> list[str]:
    """The job controller's uid labels name the old Job: the API server generates new ones."""
    spec = _spec(job)
    match_labels = (spec.get("selector") or {}).get("matchLabels")
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
    for labels in (match_labels, template_labels):
        if isinstance(labels, dict):
            for key in JOB_CONTROLLER_UID_LABELS:
                labels.pop(key, None)
    return []


def _adjust_service_account(account: dict[str, Any], options: RestoreOptions) -> list[str]:
    """Legacy auto-created token secrets (`<name>-token-*`) are not referenced any more."""
    prefix = f"{(account.get('metadata') or {}).get('name', '')}-token-"
    if account.get("secrets"):
        account["secrets"] = [s for s in account["secrets"] if not str(s.get("name", "")).startswith(prefix)]
    return []


def _adjust_secret(secret: dict[str, Any], options: RestoreOptions) -> list[str]:
    """A service-account token Secret is refilled by the token controller for the new account."""
    if secret.get("type") == SA_TOKEN_SECRET_TYPE:
        _annotations(secret).pop("kubernetes.io/service-account.uid", None)
        data = secret.get("data")
        if isinstance(data, dict):
            data.pop("token", None)
            data.pop("ca.crt", None)
    return []


def _adjust_binding(binding: dict[str, Any], options: RestoreOptions) -> list[str]:
    """Subjects (service accounts) in a remapped namespace follow it."""
    for subject in binding.get("subjects") or []:
        if isinstance(subject, dict) and subject.get("namespace") in options.namespace_mapping:
            subject["namespace"] = options.namespace_mapping[subject["namespace"]]
    return []


def _adjust_pv(pv: dict[str, Any], options: RestoreOptions) -> list[str]:
    claim = _spec(pv).get("claimRef")
    if isinstance(claim, dict):
        claim.pop("uid", None)
        claim.pop("resourceVersion", None)
        if claim.get("namespace") in options.namespace_mapping:
            claim["namespace"] = options.namespace_mapping[claim["namespace"]]
    for key in _BINDING_ANNOTATIONS:
        _annotations(pv).pop(key, None)
    return []


def _adjust_pvc(pvc: dict[str, Any], options: RestoreOptions) -> list[str]:
    for key in _PVC_ANNOTATIONS:
        _annotations(pvc).pop(key, None)
    spec = _spec(pvc)
    if spec.get("volumeName") and spec["volumeName"] in options.reprovisioned_pvs:
        spec.pop("volumeName")
    return []


def _adjust_namespace(namespace: dict[str, Any], options: RestoreOptions) -> list[str]:
    metadata = namespace.setdefault("metadata", {})
    target = options.namespace_mapping.get(metadata.get("name", ""))
    if target:
        metadata["name"] = target
        labels = metadata.get("labels")
        if isinstance(labels, dict) and "kubernetes.io/metadata.name" in labels:
            labels["kubernetes.io/metadata.name"] = target
    return []


_ADJUSTMENTS = {
    "services": _adjust_service,
    "pods": _adjust_pod,
    "jobs.batch": _adjust_job,
    "serviceaccounts": _adjust_service_account,
    "secrets": _adjust_secret,
    "rolebindings.rbac.authorization.k8s.io": _adjust_binding,
    "clusterrolebindings.rbac.authorization.k8s.io": _adjust_binding,
    "persistentvolumes": _adjust_pv,
    "persistentvolumeclaims": _adjust_pvc,
    NAMESPACES: _adjust_namespace,
}


# --- namespaces --------------------------------------------------------------------------------


def namespaces_to_restore(
    selection: Selection,
    backup_namespaces: Iterable[Mapping[str, Any]],
    item_namespaces: Iterable[str],
) -> list[str]:
    """Namespaces (backup names) a restore creates: every namespace an item is restored into, and
    the backed-up Namespace objects themselves when cluster-scoped items are restored and the
    namespace filter and label selector take them."""
    wanted = {ns for ns in item_namespaces if ns}
    if selection.cluster_scoped_allowed() and selection.resource_included(NAMESPACES, namespaced=False):
        for namespace in backup_namespaces:
            metadata = namespace.get("metadata") or {}
            if (selection.namespaces.should_include(metadata.get("name", ""))
                    and selection.labels_match(metadata.get("labels"))):
                wanted.add(metadata.get("name", ""))
    return sorted(wanted)


def namespace_object(backup_namespace: Mapping[str, Any] | None, name: str, options: RestoreOptions) -> dict[str, Any]:
    """The Namespace to create for a restore target: the backed-up one's labels, annotations and
    spec under the target name, or a bare one when the backup does not hold it."""
    source = backup_namespace or {}
    metadata = source.get("metadata") or {}
    labels = {**(metadata.get("labels") or {}), **options.labels()}
    if "kubernetes.io/metadata.name" in labels:
        labels["kubernetes.io/metadata.name"] = name
    out: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels},
    }
    if metadata.get("annotations"):
        out["metadata"]["annotations"] = dict(metadata["annotations"])
    if source.get("spec"):
        out["spec"] = copy.deepcopy(source["spec"])
    return out


# --- existing objects --------------------------------------------------------------------------


def comparable(obj: Mapping[str, Any]) -> dict[str, Any]:
    """An object without what the server sets, its status and the restore labels."""
    out = copy.deepcopy(dict(obj))
    out.pop("status", None)
    metadata = out.get("metadata")
    if isinstance(metadata, dict):
        for key in SERVER_SET_METADATA:
            metadata.pop(key, None)
        labels = {k: v for k, v in (metadata.get("labels") or {}).items()
                  if k not in (BACKUP_NAME_LABEL, RESTORE_NAME_LABEL)}
        if labels:
            metadata["labels"] = labels
        else:
            metadata.pop("labels", None)
        if not metadata.get("annotations"):
            metadata.pop("annotations", None)
    return out


def differences(desired: Any, live: Any, path: str = "") -> list[str]:
    """Paths where `desired` says something `live` does not: fields the live object lacks or holds
    differently. Fields only the live object has (defaults, assigned values) do not count."""
    if isinstance(desired, dict) and isinstance(live, dict):
        found = []
        for key, value in desired.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in live:
                if value not in (None, {}, []):
                    found.append(where)
            else:
                found += differences(value, live[key], where)
        return found
    if isinstance(desired, list) and isinstance(live, list):
        if len(desired) != len(live):
            return [path]
        for index, (d, item) in enumerate(zip(desired, live, strict=True)):
            if differences(d, item, f"{path}[{index}]"):
                return [path]
        return []
    return [] if desired == live else [path]


def _merge_patch(desired: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for key, value in desired.items():
        if key not in live:
            if value not in (None, {}, []):
                patch[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(live[key], dict):
            sub = _merge_patch(value, live[key])
            if sub:
                patch[key] = sub
        elif differences(value, live[key]):
            patch[key] = copy.deepcopy(value)
    return patch


def labels_patch(options: RestoreOptions) -> dict[str, Any]:
    return {"metadata": {"labels": options.labels()}}


@dataclass(frozen=True)
class ExistingDecision:
    """`skip`: identical (with policy update, `patch` still carries the restore labels);
    `warn`: differs, left alone (policy none); `patch`: differs, merge-patched (policy update)."""

    action: Literal["skip", "warn", "patch"]
    reason: str
    patch: dict[str, Any] | None = None
    differing: tuple[str, ...] = ()


def decide_existing(desired: Mapping[str, Any], live: Mapping[str, Any], policy: str | None,
                    options: RestoreOptions) -> ExistingDecision:
    """What to do when the object to restore already exists (Velero's existingResourcePolicy).

    Compared without server-set fields, status and restore labels; fields only the live object
    has (server defaults, assigned IPs) do not make it differ. With policy `update` the patch sets
    the backed-up values of what differs plus the restore labels; it never removes fields.
    """
    wanted, current = comparable(desired), comparable(live)
    found = differences(wanted, current)
    if not found:
        if policy == "update":
            return ExistingDecision("skip", "identical to the backed-up version (restore labels updated)",
                                    labels_patch(options))
        return ExistingDecision("skip", "identical to the backed-up version")
    shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
    if policy == "update":
        patch = _merge_patch(wanted, current)
        patch.setdefault("metadata", {}).setdefault("labels", {}).update(options.labels())
        return ExistingDecision("patch", f"differs from the backed-up version in {shown}: patched", patch,
                                tuple(found))
    return ExistingDecision("warn", f"already exists and differs from the backed-up version in {shown}",
                            None, tuple(found))
