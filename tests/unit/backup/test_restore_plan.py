import json
from typing import Any

import pytest

from operators.backup import restore_plan
from operators.backup.naming import BACKUP_NAME_LABEL, RESTORE_NAME_LABEL
from operators.backup.restore_plan import RestoreOptions, decide_existing, prepare, restore_order, restore_tiers
from operators.backup.selection import IncludesExcludes, Selection
from tests.unit.backup.objects import TYPES, namespace, obj, owner_ref

OPTIONS = RestoreOptions(backup_name="nightly", restore_name="nightly-restore")
MAPPED = RestoreOptions(backup_name="nightly", restore_name="r", namespace_mapping={"shop": "shop-copy"})


def server_metadata(**extra: Any) -> dict[str, Any]:
    return {"uid": "u-1", "resourceVersion": "123", "generation": 4, "creationTimestamp": "2026-01-01T00:00:00Z",
            "selfLink": "/x", "managedFields": [{"manager": "kubectl"}], "generateName": "web-",
            "deletionTimestamp": "2026-01-02T00:00:00Z", "deletionGracePeriodSeconds": 30, **extra}


def prepared(item: dict[str, Any], gr: str, options: RestoreOptions = OPTIONS) -> dict[str, Any]:
    result = prepare(item, gr, options)
    assert result.obj is not None, result.skip_reason
    return result.obj


# --- order -------------------------------------------------------------------------------------


def test_restore_order_follows_velero_priorities_then_alphabetical():
    backup = ["widgets.example.kubeplane.dev", "services", "deployments.apps", "pods", "configmaps", "secrets",
              "namespaces", "customresourcedefinitions.apiextensions.k8s.io", "replicasets.apps",
              "persistentvolumeclaims", "persistentvolumes", "serviceaccounts", "endpoints",
              "rolebindings.rbac.authorization.k8s.io", "clusterroles.rbac.authorization.k8s.io",
              "storageclasses.storage.k8s.io", "limitranges", "statefulsets.apps", "clusters.cluster.x-k8s.io",
              "roles.rbac.authorization.k8s.io", "clusterrolebindings.rbac.authorization.k8s.io",
              "priorityclasses.scheduling.k8s.io", "apps.kappctrl.k14s.io"]
    assert restore_order(backup) == [
        "customresourcedefinitions.apiextensions.k8s.io", "namespaces", "storageclasses.storage.k8s.io",
        "persistentvolumes", "persistentvolumeclaims", "clusterroles.rbac.authorization.k8s.io",
        "roles.rbac.authorization.k8s.io", "serviceaccounts", "clusterrolebindings.rbac.authorization.k8s.io",
        "rolebindings.rbac.authorization.k8s.io", "secrets", "configmaps", "limitranges",
        "priorityclasses.scheduling.k8s.io", "pods", "replicasets.apps", "endpoints", "services",
        "deployments.apps", "statefulsets.apps", "widgets.example.kubeplane.dev",
        "clusters.cluster.x-k8s.io", "apps.kappctrl.k14s.io",
    ]


def test_restore_tiers_keep_priorities_apart_and_group_the_rest():
    tiers = restore_tiers(["services", "pods", "deployments.apps", "widgets.example.kubeplane.dev", "namespaces",
                           "clusters.cluster.x-k8s.io"])
    assert tiers == [("namespaces",), ("pods",), ("services",), ("deployments.apps", "widgets.example.kubeplane.dev"),
                     ("clusters.cluster.x-k8s.io",)]
    assert restore_tiers([]) == []
    assert restore_tiers(["configmaps"]) == [("configmaps",)]


def test_crd_ready_needs_established_and_names_accepted():
    def crd(*conditions: tuple[str, str]) -> dict[str, Any]:
        return {"status": {"conditions": [{"type": t, "status": s} for t, s in conditions]}}

    assert restore_plan.crd_ready(crd(("Established", "True"), ("NamesAccepted", "True")))
    assert not restore_plan.crd_ready(crd(("Established", "True")))
    assert not restore_plan.crd_ready(crd(("Established", "False"), ("NamesAccepted", "True")))
    assert not restore_plan.crd_ready({})


# --- metadata, status, labels ------------------------------------------------------------------


def test_server_set_metadata_and_status_are_stripped_owner_refs_kept_aside():
    refs = [owner_ref("ReplicaSet", "web-abc", "rs-uid", api_version="apps/v1")]
    item = obj("ConfigMap", "cfg", "shop", labels={"app": "web"}, owners=refs, data={"a": "b"}, status={"x": 1})
    item["metadata"].update(server_metadata())
    result = prepare(item, "configmaps", OPTIONS)
    assert result.obj == {
        "apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"},
        "metadata": {"name": "cfg", "namespace": "shop",
                     "labels": {"app": "web", BACKUP_NAME_LABEL: "nightly", RESTORE_NAME_LABEL: "nightly-restore"}},
    }
    assert result.owner_references == refs
    assert result.status is None
    assert item["metadata"]["uid"] == "u-1" and "status" in item  # the input is left alone


def test_restore_status_by_resource_and_annotation():
    widget = obj("Widget", "w", "a", status={"ready": True})
    wanted = RestoreOptions("b", "r", restore_status=IncludesExcludes.of(["widgets.example.kubeplane.dev"]))
    assert prepare(widget, "widgets.example.kubeplane.dev", wanted).status == {"ready": True}
    assert prepare(widget, "widgets.example.kubeplane.dev", OPTIONS).status is None
    assert prepare(obj("Pod", "p", "a", status={"phase": "Running"}), "pods", wanted).status is None
    everything = RestoreOptions("b", "r", restore_status=IncludesExcludes.of())
    assert prepare(widget, "widgets.example.kubeplane.dev", everything).status == {"ready": True}
    opted_out = obj("Widget", "w", "a", annotations={restore_plan.RESTORE_STATUS_ANNOTATION: "false"},
                    status={"ready": True})
    assert prepare(opted_out, "widgets.example.kubeplane.dev", wanted).status is None
    opted_in = obj("Widget", "w", "a", annotations={restore_plan.RESTORE_STATUS_ANNOTATION: " True "},
                   status={"ready": True})
    assert prepare(opted_in, "widgets.example.kubeplane.dev", OPTIONS).status == {"ready": True}


def test_long_backup_and_restore_names_become_valid_label_values():
    options = RestoreOptions(backup_name="b" * 80, restore_name="r")
    labels = prepared(obj("ConfigMap", "c", "a"), "configmaps", options)["metadata"]["labels"]
    assert len(labels[BACKUP_NAME_LABEL]) == 63 and labels[BACKUP_NAME_LABEL].startswith("b" * 57)


def test_options_from_spec():
    options = restore_plan.options_from_spec(
        {"namespaceMapping": {"a": "b"}, "preserveNodePorts": True, "restoreStatus": {"includedResources": ["widget"]}},
        "r", "nightly", TYPES, ["pv-1"])
    assert options.namespace_mapping == {"a": "b"} and options.preserve_node_ports
    assert options.restore_status == IncludesExcludes.of(["widgets.example.kubeplane.dev"])
    assert options.reprovisioned_pvs == frozenset({"pv-1"})
    assert restore_plan.options_from_spec({}, "r", "b").restore_status is None


# --- skipped items -----------------------------------------------------------------------------


@pytest.mark.parametrize(("item", "gr", "reason"), [
    (obj("Pod", "done", "a", status={"phase": "Succeeded"}), "pods", "completed pod"),
    (obj("Pod", "crashed", "a", status={"phase": "Failed"}), "pods", "completed pod"),
    (obj("Job", "once", "a", api_version="batch/v1", status={"completionTime": "2026-01-01T00:00:00Z"}),
     "jobs.batch", "completed job"),
    (obj("Pod", "etcd-node1", "kube-system", annotations={"kubernetes.io/config.mirror": "abc"}), "pods", "mirror pod"),
    (obj("PersistentVolume", "pv-1", spec={"persistentVolumeReclaimPolicy": "Delete"}), "persistentvolumes",
     "reclaim policy Delete"),
])
def test_skipped_items(item, gr, reason):
    result = prepare(item, gr, OPTIONS)
    assert result.obj is None and reason in (result.skip_reason or "")


def test_running_pods_and_unfinished_jobs_are_restored():
    assert prepare(obj("Pod", "p", "a", status={"phase": "Running"}), "pods", OPTIONS).obj is not None
    assert prepare(obj("Job", "j", "a", status={"active": 1}), "jobs.batch", OPTIONS).obj is not None


# --- services ----------------------------------------------------------------------------------


def service(spec: dict[str, Any], annotations: dict[str, str] | None = None,
            managed: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    item = obj("Service", "web", "shop", annotations=annotations, spec=spec)
    if managed is not None:
        item["metadata"]["managedFields"] = managed
    return item


def ports_of(item: dict[str, Any]) -> list[dict[str, Any]]:
    return prepared(item, "services")["spec"]["ports"]


def test_service_cluster_ips_are_reset_unless_headless():
    spec = prepared(service({"clusterIP": "10.0.0.5", "clusterIPs": ["10.0.0.5"], "ports": []}), "services")["spec"]
    assert "clusterIP" not in spec and "clusterIPs" not in spec
    headless = prepared(service({"clusterIP": "None", "clusterIPs": ["None"]}), "services")["spec"]
    assert headless["clusterIP"] == "None" and headless["clusterIPs"] == ["None"]


def test_auto_assigned_node_ports_are_dropped():
    ports = ports_of(service({"type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": 31000}]}))
    assert ports == [{"name": "http", "port": 80}]


def test_node_ports_named_in_last_applied_configuration_are_kept():
    applied = {"spec": {"ports": [{"name": "http", "port": 80, "nodePort": 30080}, {"port": 9000, "nodePort": 30900}]}}
    item = service({"type": "NodePort", "ports": [
        {"name": "http", "port": 80, "nodePort": 30080},
        {"name": "metrics", "port": 9090, "nodePort": 31111},
        {"port": 9000, "nodePort": 30900},
        {"port": 9001, "nodePort": 30901},
    ]}, annotations={restore_plan.LAST_APPLIED_ANNOTATION: json.dumps(applied)})
    assert [p.get("nodePort") for p in ports_of(item)] == [30080, None, 30900, None]


def test_node_ports_set_by_server_side_apply_are_kept():
    managed = [{"manager": "kubectl", "operation": "Apply", "fieldsV1": {"f:spec": {"f:ports": {
        'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:nodePort": {}, "f:port": {}},
        'k:{"port":81,"protocol":"TCP"}': {".": {}, "f:port": {}},
    }}}}]
    item = service({"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080},
                                                 {"port": 81, "protocol": "TCP", "nodePort": 30081}]}, managed=managed)
    assert [p.get("nodePort") for p in ports_of(item)] == [30080, None]


def test_preserve_node_ports_and_external_name():
    item = service({"type": "NodePort", "ports": [{"port": 80, "nodePort": 31000}]})
    keep = RestoreOptions("b", "r", preserve_node_ports=True)
    assert prepare(item, "services", keep).obj["spec"]["ports"][0]["nodePort"] == 31000  # type: ignore[index]
    external = service({"type": "ExternalName", "externalName": "x.example", "ports": [{"port": 80, "nodePort": 1}]})
    assert ports_of(external)[0]["nodePort"] == 1


def test_health_check_node_port():
    spec = {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 32000, "ports": []}
    assert "healthCheckNodePort" not in prepared(service(dict(spec)), "services")["spec"]
    chosen = service(dict(spec), annotations={restore_plan.LAST_APPLIED_ANNOTATION: json.dumps(
        {"spec": {"healthCheckNodePort": 32000}})})
    assert prepared(chosen, "services")["spec"]["healthCheckNodePort"] == 32000
    managed = service(dict(spec), managed=[{"fieldsV1": {"f:spec": {"f:healthCheckNodePort": {}}}}])
    assert prepared(managed, "services")["spec"]["healthCheckNodePort"] == 32000
    cluster_policy = service({**spec, "externalTrafficPolicy": "Cluster"})
    assert prepared(cluster_policy, "services")["spec"]["healthCheckNodePort"] == 32000


def test_unreadable_last_applied_configuration_resets_node_ports_with_a_warning():
    item = service({"type": "NodePort", "ports": [{"port": 80, "nodePort": 31000}]},
                   annotations={restore_plan.LAST_APPLIED_ANNOTATION: "{broken"})
    result = prepare(item, "services", OPTIONS)
    assert "nodePort" not in result.obj["spec"]["ports"][0]  # type: ignore[index]
    assert result.warnings


# --- other kinds -------------------------------------------------------------------------------


def test_pod_loses_node_priority_and_legacy_token_volumes():
    pod = obj("Pod", "p", "a", spec={
        "nodeName": "node-1", "priority": 1000, "priorityClassName": "high", "serviceAccountName": "builder",
        "volumes": [{"name": "builder-token-x1y2z"}, {"name": "data"}],
        "containers": [{"name": "c", "volumeMounts": [{"name": "builder-token-x1y2z"}, {"name": "data"}]}],
        "initContainers": [{"name": "i", "volumeMounts": [{"name": "builder-token-x1y2z"}]}],
    })
    spec = prepared(pod, "pods")["spec"]
    assert "nodeName" not in spec and "priority" not in spec and spec["priorityClassName"] == "high"
    assert spec["volumes"] == [{"name": "data"}]
    assert spec["containers"][0]["volumeMounts"] == [{"name": "data"}]
    assert spec["initContainers"][0]["volumeMounts"] == []


def test_job_loses_controller_uid_selector_and_labels():
    job = obj("Job", "j", "a", api_version="batch/v1", spec={
        "selector": {"matchLabels": {"controller-uid": "old", "batch.kubernetes.io/controller-uid": "old",
                                     "batch.kubernetes.io/job-name": "j"}},
        "template": {"metadata": {"labels": {"controller-uid": "old", "batch.kubernetes.io/controller-uid": "old",
                                             "job-name": "j"}}, "spec": {}}})
    spec = prepared(job, "jobs.batch")["spec"]
    assert spec["selector"]["matchLabels"] == {"batch.kubernetes.io/job-name": "j"}
    assert spec["template"]["metadata"]["labels"] == {"job-name": "j"}


def test_persistent_volume_claims_and_volumes():
    annotations = {"pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes",
                   "volume.kubernetes.io/storage-provisioner": "csi", "volume.kubernetes.io/selected-node": "n1",
                   "team": "a"}
    pvc = obj("PersistentVolumeClaim", "data", "shop", annotations=dict(annotations), spec={"volumeName": "pv-1"})
    kept = prepared(pvc, "persistentvolumeclaims")
    assert kept["metadata"]["annotations"] == {"team": "a"} and kept["spec"]["volumeName"] == "pv-1"
    fresh = prepared(pvc, "persistentvolumeclaims", RestoreOptions("b", "r", reprovisioned_pvs=frozenset({"pv-1"})))
    assert "volumeName" not in fresh["spec"]
    pv = obj("PersistentVolume", "pv-1", annotations=dict(annotations), spec={
        "persistentVolumeReclaimPolicy": "Retain",
        "claimRef": {"namespace": "shop", "name": "data", "uid": "old", "resourceVersion": "9"}})
    restored = prepared(pv, "persistentvolumes", MAPPED)
    assert restored["spec"]["claimRef"] == {"namespace": "shop-copy", "name": "data"}
    assert "pv.kubernetes.io/bound-by-controller" not in restored["metadata"]["annotations"]
    assert restore_plan.pv_reprovisioned(obj("PersistentVolume", "x", spec={"persistentVolumeReclaimPolicy": "Delete"}))


def test_service_account_and_token_secret():
    account = obj("ServiceAccount", "builder", "a", secrets=[{"name": "builder-token-abc"}, {"name": "pull"}])
    assert prepared(account, "serviceaccounts")["secrets"] == [{"name": "pull"}]
    token = obj("Secret", "builder-token", "a", type="kubernetes.io/service-account-token",
                annotations={"kubernetes.io/service-account.name": "builder",
                             "kubernetes.io/service-account.uid": "old"},
                data={"token": "dG9r", "ca.crt": "Y2E=", "namespace": "YQ=="})
    restored = prepared(token, "secrets")
    assert restored["metadata"]["annotations"] == {"kubernetes.io/service-account.name": "builder"}
    assert restored["data"] == {"namespace": "YQ=="}
    plain = obj("Secret", "s", "a", type="Opaque", data={"token": "dG9r"})
    assert prepared(plain, "secrets")["data"] == {"token": "dG9r"}


# --- namespace mapping -------------------------------------------------------------------------


def test_namespace_mapping_moves_items_and_renames_namespaces():
    assert prepare(obj("ConfigMap", "c", "shop"), "configmaps", MAPPED).target_namespace == "shop-copy"
    assert prepared(obj("ConfigMap", "c", "shop"), "configmaps", MAPPED)["metadata"]["namespace"] == "shop-copy"
    assert prepared(obj("ConfigMap", "c", "other"), "configmaps", MAPPED)["metadata"]["namespace"] == "other"
    ns = obj("Namespace", "shop", labels={"kubernetes.io/metadata.name": "shop", "team": "a"})
    renamed = prepared(ns, "namespaces", MAPPED)
    assert renamed["metadata"]["name"] == "shop-copy"
    assert renamed["metadata"]["labels"]["kubernetes.io/metadata.name"] == "shop-copy"
    cluster = prepare(obj("ClusterRole", "r"), "clusterroles.rbac.authorization.k8s.io", MAPPED)
    assert cluster.target_namespace == "" and "namespace" not in cluster.obj["metadata"]  # type: ignore[index]


@pytest.mark.parametrize("gr", ["rolebindings.rbac.authorization.k8s.io",
                                "clusterrolebindings.rbac.authorization.k8s.io"])
def test_binding_subjects_follow_the_mapping(gr):
    binding = obj("RoleBinding", "rb", "shop" if gr.startswith("role") else "", subjects=[
        {"kind": "ServiceAccount", "name": "builder", "namespace": "shop"},
        {"kind": "ServiceAccount", "name": "other", "namespace": "elsewhere"},
        {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"},
    ], roleRef={"kind": "Role", "name": "r", "apiGroup": "rbac.authorization.k8s.io"})
    subjects = prepared(binding, gr, MAPPED)["subjects"]
    assert [s.get("namespace") for s in subjects] == ["shop-copy", "elsewhere", None]


def test_namespaces_to_restore_and_namespace_objects():
    backup_namespaces = [namespace("shop", labels={"team": "a"}), namespace("empty"), namespace("other")]
    assert restore_plan.namespaces_to_restore(Selection.for_restore({}), backup_namespaces, ["shop"]) == [
        "empty", "other", "shop"]
    only = Selection.for_restore({"includedNamespaces": ["shop"]})
    assert restore_plan.namespaces_to_restore(only, backup_namespaces, ["shop"]) == ["shop"]
    with_cluster = Selection.for_restore({"includedNamespaces": ["shop", "empty"], "includeClusterResources": True})
    assert restore_plan.namespaces_to_restore(with_cluster, backup_namespaces, ["shop"]) == ["empty", "shop"]
    selected = Selection.for_restore({"labelSelector": {"matchLabels": {"team": "a"}}})
    assert restore_plan.namespaces_to_restore(selected, backup_namespaces, []) == ["shop"]

    source = obj("Namespace", "shop", labels={"team": "a", "kubernetes.io/metadata.name": "shop"},
                 annotations={"owner": "x"}, spec={"finalizers": ["kubernetes"]}, status={"phase": "Active"})
    source["metadata"].update(server_metadata())
    made = restore_plan.namespace_object(source, "shop-copy", MAPPED)
    assert made == {"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": "shop-copy", "annotations": {"owner": "x"},
                                 "labels": {"team": "a", "kubernetes.io/metadata.name": "shop-copy",
                                            BACKUP_NAME_LABEL: "nightly", RESTORE_NAME_LABEL: "r"}},
                    "spec": {"finalizers": ["kubernetes"]}}
    assert restore_plan.namespace_object(None, "new", MAPPED)["metadata"]["name"] == "new"


# --- existing objects --------------------------------------------------------------------------


def deployment(replicas: int = 2, **meta: Any) -> dict[str, Any]:
    item = obj("Deployment", "web", "shop", api_version="apps/v1", labels={"app": "web"},
               spec={"replicas": replicas, "template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}})
    item["metadata"].update(meta)
    return item


def live_version(desired: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """What the server holds: the object plus defaults, assigned fields and status."""
    live = json.loads(json.dumps(desired))
    live["metadata"].update(server_metadata(generation=1))
    live["metadata"]["labels"][BACKUP_NAME_LABEL] = "older-backup"
    live["spec"]["strategy"] = {"type": "RollingUpdate"}
    live["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] = "/dev/termination-log"
    live["status"] = {"replicas": 2}
    live["spec"].update(changes)
    return live


def test_identical_objects_are_skipped():
    desired = prepared(deployment(), "deployments.apps")
    decision = decide_existing(desired, live_version(desired), "none", OPTIONS)
    assert decision.action == "skip" and decision.patch is None
    updated = decide_existing(desired, live_version(desired), "update", OPTIONS)
    assert updated.action == "skip" and updated.patch == {"metadata": {"labels": OPTIONS.labels()}}


def test_differing_objects_warn_or_patch():
    desired = prepared(deployment(replicas=2), "deployments.apps")
    live = live_version(desired, replicas=5)
    warned = decide_existing(desired, live, "none", OPTIONS)
    assert warned.action == "warn" and "spec.replicas" in warned.reason and warned.patch is None
    assert decide_existing(desired, live, None, OPTIONS).action == "warn"
    patched = decide_existing(desired, live, "update", OPTIONS)
    assert patched.action == "patch"
    assert patched.patch == {"spec": {"replicas": 2}, "metadata": {"labels": OPTIONS.labels()}}


def test_changed_list_elements_and_labels_are_differences():
    desired = prepared(deployment(), "deployments.apps")
    live = live_version(desired)
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    decision = decide_existing(desired, live, "update", OPTIONS)
    assert decision.differing == ("spec.template.spec.containers",)
    assert decision.patch["spec"]["template"]["spec"]["containers"] == [{"name": "c", "image": "nginx"}]  # type: ignore[index]
    relabelled = live_version(desired)
    relabelled["metadata"]["labels"]["app"] = "api"
    assert decide_existing(desired, relabelled, "none", OPTIONS).differing == ("metadata.labels.app",)
    missing = live_version(desired)
    del missing["metadata"]["labels"]["app"]
    assert decide_existing(desired, missing, "none", OPTIONS).action == "warn"


def test_differences_ignore_what_only_the_live_object_has():
    assert restore_plan.differences({"a": 1}, {"a": 1, "b": 2}) == []
    assert restore_plan.differences({"a": [1, 2]}, {"a": [1]}) == ["a"]
    assert restore_plan.differences({"a": {"b": None}}, {"a": {}}) == []
    assert restore_plan.differences({"a": {"b": 1}}, {"a": {"b": "1"}}) == ["a.b"]


def test_one_pass_needs_every_tier_after_the_one_before():
    from operators.backup.restore_run import in_archive_order

    tiers = [("secrets",), ("configmaps",), ("deployments.apps", "services")]
    # As kubeplane writes a tarball now: tier by tier (types of one tier may interleave).
    assert in_archive_order(tiers, {"secrets": (0, 9), "configmaps": (10, 19), "services": (20, 30),
                                    "deployments.apps": (21, 29)})
    # As it wrote them before (discovery order: ConfigMaps first), or as Velero does.
    assert not in_archive_order(tiers, {"configmaps": (0, 9), "secrets": (10, 19)})
    # One member of an earlier tier after a later tier's first one is enough to refuse.
    assert not in_archive_order(tiers, {"secrets": (0, 11), "configmaps": (10, 19)})
    # Absent tiers do not count.
    assert in_archive_order(tiers, {"configmaps": (0, 9), "services": (10, 12)})
    assert in_archive_order(tiers, {})
