"""Backups and restores on the embedded cluster with the real MinIO (Velero's e2e scenarios, adapted)."""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tarfile
import tempfile
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from operators.backup import archive, crypto, signing
from tests.faults.apirelay import ApiRelay
from tests.integration.conftest import (
    BIN,
    ENV,
    KUBECONFIG,
    STATE,
    Operator,
    _free_port,
    apply,
    kubectl,
    kubectl_json,
    wait_for,
)
from tests.watch import Watch

NS = "kubeplane-system"
GROUP = "backup.kubeplane.dev/v1alpha1"


@pytest.fixture(scope="module")
def backup_operator(cluster: Any) -> Iterator[Operator]:
    # GC passes every 2 s and bucket syncs every 3 s, not every minute.
    operator = Operator("backup", env={"KUBEPLANE_GC_SECONDS": "2", "KUBEPLANE_SYNC_SECONDS": "3"})
    operator.start()
    yield operator
    operator.stop()


@pytest.fixture(scope="module")
def s3(minio: dict[str, str]) -> Any:
    return boto3.client("s3", endpoint_url=minio["MINIO_ENDPOINT"], aws_access_key_id=minio["MINIO_ROOT_USER"],
                        aws_secret_access_key=minio["MINIO_ROOT_PASSWORD"], region_name="us-east-1")


def create(kind: str, name: str, spec: dict[str, Any]) -> None:
    apply({"apiVersion": GROUP, "kind": kind, "metadata": {"name": name, "namespace": NS}, "spec": spec})


def finished(resource: str, name: str, timeout: float = 120) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        status = kubectl_json("get", resource, name, "-n", NS).get("status") or {}
        return status if status.get("phase") not in (None, "New", "InProgress") else None
    return wait_for(done, timeout=timeout, what=f"{resource} {name} to finish")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def populate(namespace: str) -> None:
    """Velero's Basic scenario: workload, NodePort Service, config, Secret, RBAC, and a kubeplane CR."""
    manifests = f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, labels: {{app: shop}}}}
data: {{mode: production}}
---
apiVersion: v1
kind: Secret
metadata: {{name: db, labels: {{app: shop}}}}
stringData: {{password: hunter2-{namespace}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: shop}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: reader}}
rules: [{{apiGroups: [""], resources: [configmaps], verbs: [get]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: reader}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}}
subjects: [{{kind: ServiceAccount, name: shop, namespace: {namespace}}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, labels: {{app: shop}}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: shop}}}}
  template:
    metadata: {{labels: {{app: shop}}}}
    spec: {{serviceAccountName: shop, containers: [{{name: web, image: registry.local/web:1}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec: {{type: NodePort, selector: {{app: shop}}, ports: [{{port: 80}}]}}
---
apiVersion: apps.kubeplane.dev/v1alpha1
kind: ReplicaSet
metadata: {{name: cache}}
spec:
  replicas: 0
  selector: {{matchLabels: {{app: cache}}}}
  template:
    metadata: {{labels: {{app: cache}}}}
    spec: {{containers: [{{name: c, image: registry.local/cache:1}}]}}
"""
    kubectl("apply", "-n", namespace, "-f", "-", input=manifests)


def test_default_location_is_available(backup_operator: Operator) -> None:
    wait_for(lambda: (kubectl_json("get", "bsl", "default", "-n", NS).get("status") or {}).get("phase")
             == "Available", what="default BSL Available")


def test_backup_delete_namespace_restore(backup_operator: Operator, namespace: str, s3: Any) -> None:
    populate(namespace)
    wait_for(lambda: len(kubectl_json("get", "pods", "-n", namespace, "-l", "app=shop")["items"]) == 2,
             what="deployment pods")
    backup = unique("b")
    create("Backup", backup, {"includedNamespaces": [namespace]})
    status = finished("kpbackup", backup)
    assert status["phase"] == "Completed", status
    assert status["progress"]["itemsBackedUp"] >= 9
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="kubeplane", Prefix=f"backups/{backup}/")["Contents"]}
    assert f"backups/{backup}/kubeplane-backup.json" in keys
    assert f"backups/{backup}/{backup}.tar.gz" in keys
    listed = json.loads(gzip.decompress(
        s3.get_object(Bucket="kubeplane", Key=f"backups/{backup}/{backup}-resource-list.json.gz")["Body"].read()))
    assert f"{namespace}/web" in listed["apps/v1/Deployment"]
    assert f"{namespace}/cache" in listed["apps.kubeplane.dev/v1alpha1/ReplicaSet"]

    kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=120s", timeout=150)
    restore = unique("r")
    create("Restore", restore, {"backupName": backup})
    status = finished("kprestore", restore)
    assert status["phase"] == "Completed", status

    secret = kubectl_json("get", "secret", "db", "-n", namespace)
    assert base64.b64decode(secret["data"]["password"]).decode() == f"hunter2-{namespace}"
    assert secret["metadata"]["labels"]["backup.kubeplane.dev/restore-name"] == restore
    binding = kubectl_json("get", "rolebinding", "reader", "-n", namespace)
    assert binding["subjects"][0]["namespace"] == namespace
    service = kubectl_json("get", "svc", "web", "-n", namespace)
    assert service["spec"]["type"] == "NodePort" and service["spec"]["ports"][0]["nodePort"]  # re-assigned
    assert kubectl_json("get", "kprs", "cache", "-n", namespace)["spec"]["replicas"] == 0
    # Pods come back owned by the restored ReplicaSet (new UIDs re-linked): no duplicates.
    pods = kubectl_json("get", "pods", "-n", namespace, "-l", "app=shop")["items"]
    wait_for(lambda: len(kubectl_json("get", "pods", "-n", namespace, "-l", "app=shop")["items"]) == 2,
             what="two pods after restore")
    replicasets = kubectl_json("get", "replicasets.apps", "-n", namespace)["items"]
    rs_uids = {rs["metadata"]["uid"] for rs in replicasets}
    for pod in pods:
        owners = [r["uid"] for r in pod["metadata"].get("ownerReferences", [])]
        assert owners and set(owners) <= rs_uids, "restored pods keep their owner, re-linked to the new UID"


def test_restore_status_is_written_through_the_status_subresource(backup_operator: Operator, namespace: str) -> None:
    """M2: restoreStatus brings a custom resource's status back (a create ignores status when the
    kind has the subresource); without restoreStatus the restored object has none."""
    apply({"apiVersion": "scheduling.kubeplane.dev/v1alpha1", "kind": "PodGroup", "metadata": {"name": "gang"},
           "spec": {"minMember": 2}}, namespace)
    kubectl("patch", "podgroups.scheduling.kubeplane.dev", "gang", "-n", namespace, "--subresource=status",
            "--type=merge", "-p", json.dumps({"status": {"phase": "Running", "running": 2, "scheduled": 2}}))
    backup = unique("b")
    create("Backup", backup, {"includedNamespaces": [namespace],
                              "includedResources": ["podgroups.scheduling.kubeplane.dev"]})
    assert finished("kpbackup", backup)["phase"] == "Completed"
    for restore_status, expected in ((None, None), ({"includedResources": ["podgroups.scheduling.kubeplane.dev"]},
                                                     {"phase": "Running", "running": 2, "scheduled": 2})):
        kubectl("delete", "podgroups.scheduling.kubeplane.dev", "gang", "-n", namespace, "--wait=true")
        restore = unique("r")
        create("Restore", restore, {"backupName": backup, **({"restoreStatus": restore_status} if restore_status
                                                             else {})})
        assert finished("kprestore", restore)["phase"] == "Completed"
        status = kubectl_json("get", "podgroups.scheduling.kubeplane.dev", "gang", "-n", namespace).get("status")
        assert (status or None) == expected, status


def test_restore_into_mapped_namespace_dry_run_then_real(backup_operator: Operator, namespace: str) -> None:
    populate(namespace)
    backup = unique("b")
    create("Backup", backup, {"includedNamespaces": [namespace], "includedResources": ["configmaps", "secrets"],
                              "labelSelector": {"matchLabels": {"app": "shop"}}})
    assert finished("kpbackup", backup)["phase"] == "Completed"
    target = f"{namespace}-copy"
    dry = unique("dry")
    create("Restore", dry, {"backupName": backup, "namespaceMapping": {namespace: target}, "dryRun": True})
    status = finished("kprestore", dry)
    assert status["phase"] == "Completed"
    assert status["dryRun"]["wouldCreate"] >= 2
    assert kubectl("get", "namespace", target, check=False).returncode != 0, "a dry run changes nothing"

    real = unique("r")
    create("Restore", real, {"backupName": backup, "namespaceMapping": {namespace: target}})
    assert finished("kprestore", real)["phase"] == "Completed"
    try:
        assert kubectl_json("get", "cm", "settings", "-n", target)["data"] == {"mode": "production"}
        assert kubectl("get", "deployment", "web", "-n", target, check=False).returncode != 0  # filtered out
        # The same restore again: everything exists and is identical, so it is skipped, not duplicated.
        again = unique("r")
        create("Restore", again, {"backupName": backup, "namespaceMapping": {namespace: target}})
        assert finished("kprestore", again)["phase"] == "Completed"
    finally:
        kubectl("delete", "namespace", target, "--wait=false", check=False)


def test_tampered_backup_is_refused(backup_operator: Operator, namespace: str, s3: Any) -> None:
    populate(namespace)
    backup = unique("b")
    create("Backup", backup, {"includedNamespaces": [namespace]})
    assert finished("kpbackup", backup)["phase"] == "Completed"
    key = f"backups/{backup}/{backup}.tar.gz"
    data = bytearray(s3.get_object(Bucket="kubeplane", Key=key)["Body"].read())
    data[len(data) // 2] ^= 0xFF
    s3.put_object(Bucket="kubeplane", Key=key, Body=bytes(data))
    kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=120s", timeout=150)
    restore = unique("r")
    create("Restore", restore, {"backupName": backup})
    status = finished("kprestore", restore)
    assert status["phase"] == "Failed"
    assert "nothing was restored" in status["failureReason"]
    assert kubectl("get", "namespace", namespace, check=False).returncode != 0


def test_unknown_location_fails_validation(backup_operator: Operator) -> None:
    backup = unique("b")
    create("Backup", backup, {"storageLocation": "nowhere"})
    status = finished("kpbackup", backup)
    assert status["phase"] == "FailedValidation"
    assert "'nowhere' not found" in status["validationErrors"][0]


def test_unreachable_storage_marks_location_unavailable(backup_operator: Operator) -> None:
    name = unique("down")
    create("BackupStorageLocation", name, {
        "objectStorage": {"bucket": "kubeplane"}, "credential": {"name": "minio-credentials", "key": "cloud"},
        "config": {"s3Url": "http://127.0.0.1:9", "s3ForcePathStyle": "true"},
    })
    try:
        def unavailable() -> dict[str, Any] | None:
            status = kubectl_json("get", "bsl", name, "-n", NS).get("status") or {}
            return status if status.get("phase") == "Unavailable" else None
        status = wait_for(unavailable, timeout=90, what="Unavailable")
        assert "unreachable" in status["message"]
        backup = unique("b")
        create("Backup", backup, {"storageLocation": name})
        assert finished("kpbackup", backup, timeout=120)["phase"] == "FailedValidation"
    finally:
        kubectl("delete", "bsl", name, "-n", NS, check=False)


def test_encrypted_location_round_trip(
    backup_operator: Operator, namespace: str, s3: Any, minio: dict[str, str]
) -> None:
    name = unique("enc")
    encrypted_location(name, minio)
    try:
        populate(namespace)
        backup = unique("b")
        create("Backup", backup, {"includedNamespaces": [namespace], "storageLocation": name})
        assert finished("kpbackup", backup)["phase"] == "Completed"
        blob = s3.get_object(Bucket="kubeplane", Key=f"{name}/backups/{backup}/{backup}.tar.gz")["Body"].read()
        assert f"hunter2-{namespace}".encode() not in blob
        assert blob[:6] == b"KPLENC"  # our encrypted container format, not gzip
        kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=120s", timeout=150)
        restore = unique("r")
        create("Restore", restore, {"backupName": backup})
        assert finished("kprestore", restore)["phase"] == "Completed"
        secret = kubectl_json("get", "secret", "db", "-n", namespace)
        assert base64.b64decode(secret["data"]["password"]).decode() == f"hunter2-{namespace}"
        # The restore's own files are sealed too (they name every item restored), and read back by the CLI.
        for key in (archive.RestoreKeys(restore).logs, archive.RestoreKeys(restore).results):
            assert s3.get_object(Bucket="kubeplane", Key=f"{name}/{key}")["Body"].read()[:6] == b"KPLENC", key
        kubeplane("restore", "logs", restore)  # decrypted and gunzipped (fails on a sealed file read raw)
    finally:
        kubectl("delete", "bsl", name, "-n", NS, check=False)


def encrypted_location(name: str, minio: dict[str, str]) -> None:
    """A BackupStorageLocation `name` on its own prefix, encrypting with a fresh random key."""
    kubectl("create", "secret", "generic", f"{name}-key", "-n", NS, f"--from-literal=key={os.urandom(32).hex()}")
    create("BackupStorageLocation", name, {
        "objectStorage": {"bucket": "kubeplane", "prefix": name},
        "credential": {"name": "minio-credentials", "key": "cloud"},
        "config": {"s3Url": minio["MINIO_ENDPOINT"], "s3ForcePathStyle": "true"},
        "encryption": {"keySecret": {"name": f"{name}-key", "key": "key"}},
    })


def test_a_backup_over_the_memory_budget_restores_by_streaming(
    backup_operator: Operator, namespace: str, s3: Any, minio: dict[str, str]
) -> None:
    """H1: a restore never stores the tarball; one larger than what it holds in memory is indexed as
    skeletons and each tier streams it again. Encrypted, so the later passes decrypt as they go."""
    name = unique("big")
    encrypted_location(name, minio)
    try:
        populate(namespace)
        wait_for(lambda: len(kubectl_json("get", "pods", "-n", namespace, "-l", "app=shop")["items"]) == 2,
                 what="deployment pods")
        # 16 ConfigMaps of ~0.9 MB of random base64: the archive's JSON (two copies of each) is ~29 MB.
        blobs = {f"big-{i}": base64.b64encode(os.urandom(675_000)).decode() for i in range(16)}
        for cm, blob in blobs.items():
            kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": cm, "labels": {"app": "big"}},
                 "data": {"blob": blob}}))
        backup = unique("b")
        create("Backup", backup, {"includedNamespaces": [namespace], "storageLocation": name})
        assert finished("kpbackup", backup, timeout=300)["phase"] == "Completed"
        size = s3.head_object(Bucket="kubeplane", Key=f"{name}/backups/{backup}/{backup}.tar.gz")["ContentLength"]
        assert size > archive.INDEX_BUDGET, f"the tarball ({size} bytes) must exceed the restore's budget"

        kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=120s", timeout=150)
        restore = unique("r")
        create("Restore", restore, {"backupName": backup})
        status = finished("kprestore", restore, timeout=300)
        assert status["phase"] == "Completed", status
        assert status["progress"]["totalItems"] >= status["progress"]["itemsRestored"] >= 16 + 9
        for cm, blob in blobs.items():
            restored = kubectl_json("get", "cm", cm, "-n", namespace)["data"]["blob"]
            assert hashlib.sha256(restored.encode()).hexdigest() == hashlib.sha256(blob.encode()).hexdigest(), cm
        secret = kubectl_json("get", "secret", "db", "-n", namespace)
        assert base64.b64decode(secret["data"]["password"]).decode() == f"hunter2-{namespace}"
        # Owners were planned from skeletons: the pods are re-linked to the restored ReplicaSet's new UID.
        rs_uids = {rs["metadata"]["uid"] for rs in kubectl_json("get", "replicasets.apps", "-n", namespace)["items"]}
        pods = kubectl_json("get", "pods", "-n", namespace, "-l", "app=shop")["items"]
        assert len(pods) == 2 and rs_uids
        for pod in pods:
            assert {r["uid"] for r in pod["metadata"].get("ownerReferences", [])} <= rs_uids
    finally:
        kubectl("delete", "bsl", name, "-n", NS, check=False)


def test_deleting_a_backup_deletes_its_files(backup_operator: Operator, namespace: str, s3: Any) -> None:
    populate(namespace)
    backup = unique("b")
    create("Backup", backup, {"includedNamespaces": [namespace]})
    assert finished("kpbackup", backup)["phase"] == "Completed"
    kubectl("delete", "kpbackup", backup, "-n", NS, "--timeout=60s")
    assert s3.list_objects_v2(Bucket="kubeplane", Prefix=f"backups/{backup}/").get("KeyCount", 0) == 0


def test_schedule_backs_up_at_once_never_overlaps_and_pauses(backup_operator: Operator, namespace: str) -> None:
    populate(namespace)
    name = unique("s")
    create("Schedule", name, {"schedule": "0 3 * * *", "template": {"includedNamespaces": [namespace], "ttl": "1h"}})
    try:
        def backups() -> list[dict[str, Any]]:
            selector = f"backup.kubeplane.dev/schedule-name={name}"
            return kubectl_json("get", "kpbackup", "-n", NS, "-l", selector)["items"]
        first = wait_for(lambda: backups(), what="the immediate first backup")[0]
        assert first["metadata"]["name"].startswith(f"{name}-") and len(first["metadata"]["name"]) == len(name) + 15
        assert finished("kpbackup", first["metadata"]["name"])["phase"] == "Completed"
        schedule = kubectl_json("get", "kpschedule", name, "-n", NS)
        assert schedule["status"]["phase"] == "Enabled" and schedule["status"]["lastBackup"]
        # The next slot is 03:00 UTC: no second backup now.
        kubectl("patch", "kpschedule", name, "-n", NS, "--type=merge", "-p", '{"spec":{"paused":true}}')
        assert len(backups()) == 1
        # A Restore by schedule name takes its latest Completed backup.
        restore = unique("r")
        create("Restore", restore, {"scheduleName": name, "dryRun": True})
        status = finished("kprestore", restore)
        assert status["phase"] == "Completed" and status["backupName"] == first["metadata"]["name"]
    finally:
        kubectl("delete", "kpschedule", name, "-n", NS, check=False)


def test_invalid_cron_fails_validation(backup_operator: Operator) -> None:
    name = unique("s")
    create("Schedule", name, {"schedule": "61 * * * *", "template": {}})
    try:
        def phase() -> dict[str, Any] | None:
            status = kubectl_json("get", "kpschedule", name, "-n", NS).get("status") or {}
            return status if status.get("phase") == "FailedValidation" else None
        status = wait_for(phase, what="FailedValidation")
        assert "61" in status["validationErrors"][0]
    finally:
        kubectl("delete", "kpschedule", name, "-n", NS, check=False)


def test_expired_backups_are_garbage_collected(backup_operator: Operator, namespace: str, s3: Any) -> None:
    """A 1 s TTL expires before a poll could see Completed: the phases come from a watch of the Backup."""
    populate(namespace)
    backup = unique("b")
    with Watch(ENV, f"/apis/backup.kubeplane.dev/v1alpha1/namespaces/{NS}/backups") as backups:
        create("Backup", backup, {"includedNamespaces": [namespace], "ttl": "1s"})
        backups.wait(lambda w: any(o["metadata"]["name"] == backup for o in w.ever_added.values())
                     and backup not in w.current, timeout=120, what="the expired backup deleted")
        phases = [(o.get("status") or {}).get("phase") for _, o in backups.events if o["metadata"]["name"] == backup]
    # Each phase once, in order: it completed before it expired.
    assert [p for i, p in enumerate(phases) if p and (i == 0 or phases[i - 1] != p)][-3:] == \
        ["InProgress", "Completed", "Deleting"], phases
    assert s3.list_objects_v2(Bucket="kubeplane", Prefix=f"backups/{backup}/").get("KeyCount", 0) == 0


def test_operator_killed_mid_backup_ends_failed_interrupted(backup_operator: Operator, namespace: str,
                                                            s3: Any) -> None:
    """SIGKILL the backup operator in the middle of a backup, by construction: it backs up through the
    fault relay, which holds its listing of the namespace's ConfigMaps; the kill lands while the backup
    is InProgress. After a restart the Backup is Failed "interrupted", and, as its reason says, no file
    of it is left in the bucket (in particular nothing that looks complete)."""
    manifest = "".join(
        f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i}}}\ndata: {{blob: {'x' * 200}}}\n"
        for i in range(200)
    )
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest, timeout=300)
    backup = unique("b")
    backup_operator.stop()  # the relayed operator below takes its Lease
    try:
        with ApiRelay(KUBECONFIG) as relay:
            relayed = Operator("backup", env={"KUBECONFIG": str(relay.kubeconfig)},
                               log_name="test-backup-relayed")
            listing = relay.hold("GET", f"^/api/v1/namespaces/{namespace}/configmaps$")
            try:
                relayed.start()
                create("Backup", backup, {"includedNamespaces": [namespace]})
                listing.wait_held(1, timeout=120)
                assert (kubectl_json("get", "kpbackup", backup, "-n", NS).get("status") or {}).get("phase") \
                    == "InProgress"
                relayed.kill()
            finally:
                listing.release()
                relayed.kill()
        backup_operator.start()
        status = finished("kpbackup", backup)
        assert status["phase"] == "Failed"
        assert status["failureReason"].startswith("interrupted") and "partial files were removed" in \
            status["failureReason"]
        keys = s3.list_objects_v2(Bucket="kubeplane", Prefix=f"backups/{backup}/").get("Contents", [])
        assert keys == [], f"files left behind: {[k['Key'] for k in keys]}"
    finally:
        if backup_operator.process is None or backup_operator.process.poll() is not None:
            backup_operator.start()


def test_a_lost_completed_status_never_deletes_the_backup(backup_operator: Operator, namespace: str,
                                                          s3: Any) -> None:
    """C1: the metadata object is uploaded, then every status write of the Backup gets a 500 from the
    relay (the Completed one included), so the retry finds the Backup InProgress with no run going.
    The backup is complete in the bucket: the retry adopts its stored status, Completed, and deletes
    nothing (it used to call the run interrupted and delete backups/<name>/, metadata included)."""
    populate(namespace)
    backup = unique("b")
    keys = [f"backups/{backup}/kubeplane-backup.json", f"backups/{backup}/{backup}.tar.gz"]
    backup_operator.stop()
    try:
        with ApiRelay(KUBECONFIG) as relay:
            relayed = Operator("backup", env={"KUBECONFIG": str(relay.kubeconfig)},
                               log_name="test-backup-lost-status")
            status_path = f"/backups/{backup}/status$"
            relay.fail("PATCH", status_path, status=500, after=1, times=None)  # InProgress passes, then none
            # The run reads its Backup once; the retry (after the refused Completed write) waits here.
            retry = relay.hold("GET", f"/backups/{backup}$", after=1)
            try:
                relayed.start()
                create("Backup", backup, {"includedNamespaces": [namespace]})
                retry.wait_held(1, timeout=120)
                assert s3.list_objects_v2(Bucket="kubeplane", Prefix=keys[0]).get("KeyCount") == 1, \
                    "the run uploaded its metadata object, then its status write was refused"
                assert (kubectl_json("get", "kpbackup", backup, "-n", NS).get("status") or {}).get("phase") \
                    == "InProgress"
                relay.clear()  # the API server answers again: the retry runs
                status = finished("kpbackup", backup)
            finally:
                relayed.kill()
        assert status["phase"] == "Completed", status
        for key in keys:
            assert s3.list_objects_v2(Bucket="kubeplane", Prefix=key).get("KeyCount") == 1, f"{key} deleted"
    finally:
        backup_operator.start()


def test_a_name_already_in_the_bucket_is_refused_and_left_alone(backup_operator: Operator, namespace: str,
                                                                 s3: Any) -> None:
    """H2: another cluster's backup (here: a planted metadata object and tarball) under the name a new
    Backup asks for: the Backup is refused at validation, "already exists in object storage", and the
    bucket is byte-identical afterwards (the previous code backed up over it, and a failing run removed
    the whole prefix)."""
    backup = unique("b")
    stored = json.dumps({"metadata": {"name": backup, "uid": "another-cluster"}}).encode()
    planted = {f"backups/{backup}/kubeplane-backup.json": stored,
               f"backups/{backup}/{backup}.tar.gz": b"someone else's tarball"}
    for key, body in planted.items():
        s3.put_object(Bucket="kubeplane", Key=key, Body=body)
    try:
        create("Backup", backup, {"includedNamespaces": [namespace]})
        status = finished("kpbackup", backup)
        assert status["phase"] == "FailedValidation", status
        assert any("already exists in object storage" in e for e in status.get("validationErrors", [])), status
        for key, body in planted.items():
            assert s3.get_object(Bucket="kubeplane", Key=key)["Body"].read() == body, f"{key} changed"
        keys = s3.list_objects_v2(Bucket="kubeplane", Prefix=f"backups/{backup}/").get("Contents", [])
        assert sorted(k["Key"] for k in keys) == sorted(planted)
    finally:
        kubectl("delete", "kpbackup", backup, "-n", NS, "--wait=false", check=False)
        for key in planted:
            s3.delete_object(Bucket="kubeplane", Key=key)


def test_a_create_whose_connection_breaks_fails_its_item_not_silently(backup_operator: Operator,
                                                                     namespace: str) -> None:
    """M4: the connection of one item's create is dropped by the relay (the write may or may not have
    landed, so it is not retried). The item is an error of the restore, PartiallyFailed, and the other
    items are restored; it used to vanish with its task, and the restore said Completed."""
    populate(namespace)
    backup = unique("b")
    create("Backup", backup, {"includedNamespaces": [namespace], "includedResources": ["configmaps", "secrets"],
                              "labelSelector": {"matchLabels": {"app": "shop"}}})
    assert finished("kpbackup", backup)["phase"] == "Completed"
    target, restore = f"{namespace}-broken", unique("r")
    backup_operator.stop()
    try:
        with ApiRelay(KUBECONFIG) as relay:
            relayed = Operator("backup", env={"KUBECONFIG": str(relay.kubeconfig)}, log_name="test-restore-reset")
            relay.reset("POST", f"^/api/v1/namespaces/{target}/configmaps$", times=1)
            try:
                relayed.start()
                create("Restore", restore, {"backupName": backup, "namespaceMapping": {namespace: target}})
                status = finished("kprestore", restore)
            finally:
                relayed.kill()
            assert [s.action for s in relay.seen("POST", f"^/api/v1/namespaces/{target}/configmaps$")] == ["reset"]
    finally:
        backup_operator.start()
    try:
        assert status["phase"] == "PartiallyFailed", status
        assert status["errors"] == 1, status
        logs = kubeplane("restore", "logs", restore, check=False)
        assert f"configmaps {target}/settings" in logs.stdout + logs.stderr, logs.stdout + logs.stderr
        assert kubectl_json("get", "secret", "db", "-n", target)["metadata"]["name"] == "db"
    finally:
        kubectl("delete", "namespace", target, "--wait=false", check=False)


def test_a_type_the_operator_cannot_list_makes_the_backup_partially_failed(
        backup_operator: Operator, namespace: str) -> None:
    """M5, as Velero: a list refused (403) leaves a whole type out, so the backup is PartiallyFailed
    with the reason in its logs, never Completed."""
    populate(namespace)
    backup = unique("b")
    backup_operator.stop()
    try:
        with ApiRelay(KUBECONFIG) as relay:
            relayed = Operator("backup", env={"KUBECONFIG": str(relay.kubeconfig)}, log_name="test-backup-denied")
            relay.fail("GET", f"^/api/v1/namespaces/{namespace}/secrets$", status=403, times=None)
            try:
                relayed.start()
                create("Backup", backup, {"includedNamespaces": [namespace]})
                status = finished("kpbackup", backup)
            finally:
                relayed.kill()
    finally:
        backup_operator.start()
    assert status["phase"] == "PartiallyFailed", status
    assert status["errors"] >= 1 and "item(s) failed" in status["failureReason"]
    logs = kubeplane("backup", "logs", backup).stdout
    assert "cannot list secrets" in logs, logs


def kubeplane(*args: str, check: bool = True) -> Any:
    import subprocess

    from tests.integration.conftest import ENV, ROOT
    result = subprocess.run([str(ROOT / ".venv/bin/kubeplane"), *args], capture_output=True, text=True, env=ENV,
                            timeout=180)
    if check and result.returncode != 0:
        raise AssertionError(f"kubeplane {' '.join(args)}: {result.stdout}\n{result.stderr}")
    return result


def test_cli_create_get_verify_restore(backup_operator: Operator, namespace: str, s3: Any) -> None:
    populate(namespace)
    name = unique("cli")
    out = kubeplane("backup", "create", name, "--include-namespaces", namespace, "--selector", "app=shop", "--wait")
    assert f"Backup {name}: Completed" in out.stdout
    listed = json.loads(kubeplane("backup", "get", name, "-o", "json").stdout)
    assert listed["status"]["phase"] == "Completed"
    assert name in kubeplane("backup", "get").stdout
    assert "every checksum matches" in kubeplane("backup", "verify", name).stdout
    assert "ConfigMap" in kubeplane("backup", "describe", name).stdout

    restore = kubeplane("restore", "create", "--from-backup", name, "--namespace-mappings",
                        f"{namespace}:{namespace}-cli", "--dry-run", "--wait")
    assert "Completed" in restore.stdout and "wouldCreate" in restore.stdout

    key = f"backups/{name}/{name}.tar.gz"
    data = bytearray(s3.get_object(Bucket="kubeplane", Key=key)["Body"].read())
    data[-20] ^= 0x01
    s3.put_object(Bucket="kubeplane", Key=key, Body=bytes(data))
    failed = kubeplane("backup", "verify", name, check=False)
    assert failed.returncode == 1 and "verification FAILED" in failed.stderr

    kubeplane("backup", "delete", name, "--confirm")
    wait_for(lambda: kubectl("get", "kpbackup", name, "-n", NS, check=False).returncode != 0, what="deleted")


# --- backup sync, locations, existing-resource policy ------------------------------------------

SYNC_WAIT = 60  # seconds: many sync periods (3 s in these tests) plus a backup run on the other worker


def backup_object(name: str) -> dict[str, Any] | None:
    result = kubectl("get", "kpbackup", name, "-n", NS, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def delete_backup_object_keeping_files(name: str) -> None:
    """Remove the Backup object as if the cluster were lost: the finalizer (which deletes the files) first."""
    kubectl("patch", "kpbackup", name, "-n", NS, "--type=json", "-p", '[{"op":"remove","path":"/metadata/finalizers"}]')
    kubectl("delete", "kpbackup", name, "-n", NS, "--timeout=60s")


def location(name: str, minio: dict[str, str], *, prefix: str = "", access_mode: str = "ReadWrite",
             credential: str = "minio-credentials") -> None:
    storage = {"bucket": "kubeplane", **({"prefix": prefix} if prefix else {})}
    create("BackupStorageLocation", name, {
        "objectStorage": storage, "credential": {"name": credential, "key": "cloud"}, "accessMode": access_mode,
        "config": {"s3Url": minio["MINIO_ENDPOINT"], "s3ForcePathStyle": "true"},
    })


def location_phase(name: str, phase: str, timeout: float = 90) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        status = kubectl_json("get", "bsl", name, "-n", NS).get("status") or {}
        return status if status.get("phase") == phase else None
    result: dict[str, Any] = wait_for(reached, timeout=timeout, what=f"BSL {name} {phase}")
    return result


def test_sync_recreates_a_backup_missing_from_the_cluster(backup_operator: Operator, namespace: str) -> None:
    populate(namespace)
    backup = unique("b")
    create("Backup", backup, {"includedNamespaces": [namespace], "includedResources": ["configmaps", "secrets"]})
    original = finished("kpbackup", backup)
    assert original["phase"] == "Completed"
    delete_backup_object_keeping_files(backup)

    def synced() -> dict[str, Any] | None:
        # Sync writes the status, then adds the finalizer: wait for both.
        obj = backup_object(backup)
        done = obj and (obj.get("status") or {}).get("phase") and obj["metadata"].get("finalizers")
        return obj if done else None
    obj = wait_for(synced, timeout=SYNC_WAIT, what="the backup synced back from the bucket")
    status = obj["status"]
    assert status["phase"] == "Completed", status  # not run again as a New backup
    assert status["progress"] == original["progress"]
    for key in ("startTimestamp", "completionTimestamp", "expiration", "formatVersion"):
        assert status[key] == original[key], key
    assert status["storageLocation"] == "default"
    assert obj["metadata"]["labels"]["backup.kubeplane.dev/storage-location"] == "default"
    assert obj["metadata"]["annotations"]["backup.kubeplane.dev/synced-from"] == "default"
    assert obj["spec"]["includedNamespaces"] == [namespace]
    assert "backup.kubeplane.dev/delete-files" in obj["metadata"]["finalizers"]
    restore = unique("r")
    create("Restore", restore, {"backupName": backup, "dryRun": True})
    status = finished("kprestore", restore)
    assert status["phase"] == "Completed", status
    assert status["dryRun"]["wouldSkip"] >= 2  # everything is still there, identical


def test_sync_removes_a_backup_whose_files_vanished(backup_operator: Operator, namespace: str, s3: Any) -> None:
    kubectl("create", "configmap", "one", "-n", namespace, "--from-literal=a=b")
    backup = unique("b")
    create("Backup", backup, {"includedNamespaces": [namespace]})
    assert finished("kpbackup", backup)["phase"] == "Completed"
    objects = s3.list_objects_v2(Bucket="kubeplane", Prefix=f"backups/{backup}/")["Contents"]
    s3.delete_objects(Bucket="kubeplane", Delete={"Objects": [{"Key": o["Key"]} for o in objects]})
    wait_for(lambda: backup_object(backup) is None, timeout=SYNC_WAIT, what="the Backup whose files vanished removed")


def test_read_only_location(backup_operator: Operator, namespace: str, s3: Any, minio: dict[str, str]) -> None:
    name, prefix = unique("ro"), unique("ro-prefix")
    # Written through the location while ReadWrite, then turned ReadOnly (a DR cluster's view).
    location(name, minio, prefix=prefix)
    try:
        location_phase(name, "Available")
        kubectl("create", "configmap", "settings", "-n", namespace, "--from-literal=mode=production")
        backup = unique("b")
        create("Backup", backup, {"includedNamespaces": [namespace], "storageLocation": name})
        assert finished("kpbackup", backup)["phase"] == "Completed"
        kubectl("patch", "bsl", name, "-n", NS, "--type=merge", "-p", '{"spec":{"accessMode":"ReadOnly"}}')

        refused = unique("b")
        create("Backup", refused, {"includedNamespaces": [namespace], "storageLocation": name})
        status = finished("kpbackup", refused)
        assert status["phase"] == "FailedValidation"
        assert "ReadOnly" in status["validationErrors"][0]

        # Deleting a Backup on a ReadOnly location keeps its files ...
        kubectl("delete", "kpbackup", backup, "-n", NS, "--timeout=60s")
        metadata_key = f"{prefix}/backups/{backup}/kubeplane-backup.json"
        assert s3.list_objects_v2(Bucket="kubeplane", Prefix=metadata_key).get("KeyCount", 0) == 1
        # ... so sync brings it back (the disaster-recovery path), and it restores.
        def synced() -> dict[str, Any] | None:
            obj = backup_object(backup)
            return obj if obj and (obj.get("status") or {}).get("phase") == "Completed" else None
        obj = wait_for(synced, timeout=SYNC_WAIT, what="the backup synced from the ReadOnly location")
        assert obj["status"]["storageLocation"] == name
        assert obj["metadata"]["labels"]["backup.kubeplane.dev/storage-location"] == name
        restore = unique("r")
        create("Restore", restore, {"backupName": backup, "dryRun": True})
        status = finished("kprestore", restore)
        assert status["phase"] == "Completed", status
        assert status["dryRun"]["wouldSkip"] >= 1
        assert kubectl_json("get", "bsl", name, "-n", NS)["status"].get("lastSyncedTime")
    finally:
        kubectl("delete", "bsl", name, "-n", NS, check=False)


def test_wrong_credentials_make_the_location_unavailable(backup_operator: Operator, minio: dict[str, str]) -> None:
    name = unique("badcred")
    wrong = f"not-the-secret-{uuid.uuid4().hex}"
    credentials = f"[default]\naws_access_key_id = {minio['MINIO_ROOT_USER']}\naws_secret_access_key = {wrong}\n"
    kubectl("create", "secret", "generic", name, "-n", NS, f"--from-literal=cloud={credentials}")
    location(name, minio, prefix=name, credential=name)
    try:
        status = location_phase(name, "Unavailable")
        message = status["message"]
        assert "credential" in message.lower() or "secret key" in message.lower(), message
        assert wrong not in message and minio["MINIO_ROOT_PASSWORD"] not in message
        events = kubectl("get", "events", "-n", NS, "--field-selector", f"involvedObject.name={name}").stdout
        assert wrong not in events
    finally:
        kubectl("delete", "bsl", name, "-n", NS, check=False)
        kubectl("delete", "secret", name, "-n", NS, check=False)


def test_existing_resource_policy_update_and_none(backup_operator: Operator, namespace: str) -> None:
    kubectl("create", "configmap", "settings", "-n", namespace, "--from-literal=mode=production")
    backup = unique("b")
    create("Backup", backup, {"includedNamespaces": [namespace], "includedResources": ["configmaps"]})
    assert finished("kpbackup", backup)["phase"] == "Completed"
    kubectl("patch", "cm", "settings", "-n", namespace, "--type=merge", "-p", '{"data":{"mode":"staging"}}')

    keep = unique("r")
    create("Restore", keep, {"backupName": backup, "existingResourcePolicy": "none"})
    status = finished("kprestore", keep)
    assert status["phase"] == "Completed", status
    assert status["warnings"] >= 1
    assert kubectl_json("get", "cm", "settings", "-n", namespace)["data"] == {"mode": "staging"}

    update = unique("r")
    create("Restore", update, {"backupName": backup, "existingResourcePolicy": "update"})
    status = finished("kprestore", update)
    assert status["phase"] == "Completed", status
    configmap = kubectl_json("get", "cm", "settings", "-n", namespace)
    assert configmap["data"] == {"mode": "production"}
    labels = configmap["metadata"]["labels"]
    assert labels["backup.kubeplane.dev/restore-name"] == update
    assert labels["backup.kubeplane.dev/backup-name"] == backup


# --- interruptions and hostile input on the live cluster ---------------------------------------


def bulk_configmaps(namespace: str, count: int, size: int = 200) -> None:
    """`count` ConfigMaps labelled app=bulk; random (incompressible) data of `size` characters each."""
    manifest = "".join(
        f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i}, labels: {{app: bulk}}}}\n"
        f"data: {{blob: {base64.b64encode(os.urandom(size * 3 // 4)).decode()}}}\n"
        for i in range(count)
    )
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest, timeout=300)


def bulk_count(namespace: str) -> int:
    result = kubectl("get", "cm", "-n", namespace, "-l", "app=bulk", "-o", "name", check=False)
    return len(result.stdout.split()) if result.returncode == 0 else 0


def test_operator_killed_mid_restore_ends_honestly(backup_operator: Operator, namespace: str) -> None:
    """SIGKILL the backup operator in the middle of a restore, by construction: it restores through the
    fault relay, which holds every ConfigMap create after the fiftieth; the kill lands while they wait.
    After a restart the Restore ends honestly (never Completed with items missing), and a second
    Restore finishes the job. (It used to kill after polling for progress, and on an idle machine the
    600-item restore finished between two polls.)"""
    total = 600
    bulk_configmaps(namespace, total)
    backup = unique("b")
    create("Backup", backup, {"includedNamespaces": [namespace], "includedResources": ["configmaps"],
                              "labelSelector": {"matchLabels": {"app": "bulk"}}})
    assert finished("kpbackup", backup)["phase"] == "Completed"
    target = f"{namespace}-r"
    restore = unique("r")
    backup_operator.stop()  # the relayed operator below takes its Lease
    try:
        with ApiRelay(KUBECONFIG) as relay:
            relayed = Operator("backup", env={"KUBECONFIG": str(relay.kubeconfig)},
                               log_name="test-backup-relayed")
            creates = relay.hold("POST", f"/namespaces/{target}/configmaps$", after=50)
            try:
                relayed.start()
                create("Restore", restore, {"backupName": backup, "namespaceMapping": {namespace: target}})
                creates.wait_held(1, timeout=120)
                relayed.kill()
                creates.release()  # the dead operator's last creates land now
                wait_for(lambda: creates.held == 0, what="the held creates forwarded")
            finally:
                relayed.kill()
            landed = [s for s in relay.seen("POST", f"/namespaces/{target}/configmaps$") if s.status == 201]
        at_kill = bulk_count(target)
        assert at_kill == len(landed) and 50 <= at_kill < total, f"{at_kill} of {total} ConfigMaps at the kill"
        status = kubectl_json("get", "kprestore", restore, "-n", NS).get("status") or {}
        assert status.get("phase") == "InProgress", f"the kill should land mid-restore: {status}"

        backup_operator.start()
        backup_operator.wait_live()
        status = finished("kprestore", restore)
        present = bulk_count(target)
        if status["phase"] == "Completed":
            assert present == total, f"Completed with {present} of {total} ConfigMaps restored: {status}"
        else:
            assert status["phase"] in ("Failed", "PartiallyFailed"), status
            assert "interrupted" in status.get("failureReason", ""), status
            assert status.get("completionTimestamp"), status
            assert present == at_kill, f"a Failed restore kept working after the restart: {at_kill} -> {present}"

        # As the failure reason says: a new Restore finishes the job; what is there is skipped.
        again = unique("r")
        create("Restore", again, {"backupName": backup, "namespaceMapping": {namespace: target}})
        status = finished("kprestore", again)
        assert status["phase"] == "Completed", status
        assert bulk_count(target) == total
        original = kubectl_json("get", "cm", "cm-7", "-n", namespace)["data"]
        assert kubectl_json("get", "cm", "cm-7", "-n", target)["data"] == original
    finally:
        if backup_operator.process is None or backup_operator.process.poll() is not None:
            backup_operator.start()
        kubectl("delete", "namespace", target, "--wait=false", check=False)


def tar_gz(members: list[tuple[str, bytes]], links: list[tuple[str, str]]) -> bytes:
    """A gzip tarball of regular `members` (name, content) then symlinks (name, target), names as given."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o644
            tar.addfile(info, io.BytesIO(content))
        for name, target in links:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return gzip.compress(raw.getvalue())


def checksums(tarball: bytes, members: list[tuple[str, bytes]]) -> bytes:
    """The checksum manifest a real backup stores, matching `tarball` exactly."""
    def digest(data: bytes) -> dict[str, Any]:
        return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    return json.dumps({"format": "kubeplane.dev/backup-checksums/v1", "algorithm": "sha256",
                       "archive": digest(tarball), "members": {n: digest(c) for n, c in members}}).encode()


def installation_signing_key() -> bytes:
    """The key this installation's backups are signed with (`make up` created its Secret)."""
    secret = kubectl_json("get", "secret", signing.DEFAULT_SECRET, "-n", NS)
    return crypto.parse_key(base64.b64decode(secret["data"][signing.SECRET_KEY]))


def plant(s3: Any, prefix: str, backup: str, tarball: bytes, manifest: bytes, stored: dict[str, Any],
          key: bytes | None) -> None:
    """A backup written straight into the bucket, its metadata object signed with `key` (None: unsigned)."""
    directory = f"{prefix}/backups/{backup}"
    if key is not None:
        stored = {**stored, "signature": signing.sign(key, backup, stored, hashlib.sha256(manifest).digest())}
    s3.put_object(Bucket="kubeplane", Key=f"{directory}/{backup}.tar.gz", Body=tarball)
    s3.put_object(Bucket="kubeplane", Key=f"{directory}/{backup}-checksums.json", Body=manifest)
    s3.put_object(Bucket="kubeplane", Key=f"{directory}/kubeplane-backup.json", Body=json.dumps(stored).encode())


def stored_backup(backup: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": GROUP, "kind": "Backup", "metadata": {"name": backup, "namespace": NS},
        "spec": {"includedNamespaces": [namespace]},
        "status": {"phase": "Completed", "formatVersion": "1.1.0", "startTimestamp": "2026-01-01T00:00:00Z",
                   "completionTimestamp": "2026-01-01T00:00:05Z", "expiration": "2099-01-01T00:00:00Z",
                   "progress": {"totalItems": 1, "itemsBackedUp": 1}, "errors": 0, "warnings": 0},
    }


def plant_signed(s3: Any, minio: dict[str, str], tag: str, namespace: str, members: list[tuple[str, bytes]],
                 links: list[tuple[str, str]] | None = None) -> tuple[str, str, str]:
    """A tarball of `members` planted as a backup signed with this installation's key, under a new location's
    prefix; (location, prefix, backup)."""
    tarball = tar_gz(members, links or [])
    name, prefix, backup = unique(tag), unique(f"{tag}-prefix"), unique("b")
    plant(s3, prefix, backup, tarball, checksums(tarball, members), stored_backup(backup, namespace),
          installation_signing_key())
    location(name, minio, prefix=prefix)
    return name, prefix, backup


def synced_from_bucket(backup: str) -> dict[str, Any]:
    def synced() -> dict[str, Any] | None:
        obj = backup_object(backup)
        return obj if obj and (obj.get("status") or {}).get("phase") == "Completed" else None
    result: dict[str, Any] = wait_for(synced, timeout=SYNC_WAIT, what="the planted backup synced from the bucket")
    return result


def remove_planted(s3: Any, name: str, prefix: str, backup: str) -> None:
    kubectl("delete", "kpbackup", backup, "-n", NS, "--timeout=60s", check=False)
    kubectl("delete", "bsl", name, "-n", NS, check=False)
    leftovers = s3.list_objects_v2(Bucket="kubeplane", Prefix=f"{prefix}/").get("Contents", [])
    if leftovers:
        s3.delete_objects(Bucket="kubeplane", Delete={"Objects": [{"Key": o["Key"]} for o in leftovers]})


@pytest.mark.parametrize("unsafe", ["traversal", "absolute", "symlink", "none"])
def test_malicious_tarball_is_refused_before_anything_is_restored(
        backup_operator: Operator, namespace: str, s3: Any, minio: dict[str, str], unsafe: str) -> None:
    good = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "planted", "namespace": namespace},
            "data": {"from": "the malicious backup"}}
    good_path = f"resources/configmaps/namespaces/{namespace}/planted.json"
    members = [("metadata/version", b"1.1.0\n"), (good_path, json.dumps(good).encode()),
               (f"resources/configmaps/v1-preferredversion/namespaces/{namespace}/planted.json",
                json.dumps(good).encode())]
    links: list[tuple[str, str]] = []
    evil = {"traversal": "../../etc/kubeplane-x.json", "absolute": "/etc/kubeplane-x.json",
            "symlink": f"resources/configmaps/namespaces/{namespace}/link.json", "none": ""}[unsafe]
    if unsafe == "symlink":
        links.append((evil, "/etc/passwd"))
    elif evil:
        members.append((evil, json.dumps({**good, "metadata": {"name": "x", "namespace": namespace}}).encode()))
    # Signed with the installation's key (its holder went rogue, or the key leaked): the archive's own
    # safety rules are what must refuse it. Without the key, see the test below.
    name, prefix, backup = plant_signed(s3, minio, "evil", namespace, members, links)
    try:
        obj = synced_from_bucket(backup)
        assert obj["metadata"]["annotations"]["backup.kubeplane.dev/synced-from"] == name

        verified = kubeplane("backup", "verify", backup, check=False)
        restore = unique("r")
        create("Restore", restore, {"backupName": backup})
        status = finished("kprestore", restore)
        if not evil:  # the control: the same backup without the unsafe member is valid and restores
            assert verified.returncode == 0, verified.stderr
            assert status["phase"] == "Completed", status
            assert kubectl_json("get", "cm", "planted", "-n", namespace)["data"] == good["data"]
            return
        # The checksums all match: the archive's safety rules are what must refuse it.
        assert verified.returncode == 1 and evil in verified.stderr, verified.stderr
        assert status["phase"] == "Failed", status
        reason = status["failureReason"]
        assert evil in reason and "nothing was restored" in reason, reason
        assert "checksum" not in reason, f"refused for the wrong reason: {reason}"
        assert kubectl("get", "cm", "planted", "-n", namespace, check=False).returncode != 0, \
            "an item of the rejected tarball was created"
        assert kubectl("get", "cm", "x", "-n", namespace, check=False).returncode != 0
        assert not os.path.exists("/etc/kubeplane-x.json")
    finally:
        remove_planted(s3, name, prefix, backup)


def test_a_tarball_not_in_restore_order_is_streamed_one_pass_per_tier(
        backup_operator: Operator, namespace: str, s3: Any, minio: dict[str, str]) -> None:
    """A backup writes its types in restore order and a restore over the memory budget streams them all
    in one pass; a tarball in another order (an older kubeplane wrote types as discovered: ConfigMaps
    before Secrets, which a restore takes first) must still restore whole, by one pass per tier. Taken
    in one pass, its Secret would come after the ConfigMaps' tier and the restore would stop."""
    blobs = {f"old-{i}": base64.b64encode(os.urandom(675_000)).decode() for i in range(4)}
    members: list[tuple[str, bytes]] = [("metadata/version", b"1.1.0\n")]
    for cm, blob in blobs.items():
        body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": cm, "namespace": namespace}, "data": {"blob": blob}}).encode()
        members += [(f"resources/configmaps/namespaces/{namespace}/{cm}.json", body),
                    (f"resources/configmaps/v1-preferredversion/namespaces/{namespace}/{cm}.json", body)]
    secret = json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "old", "namespace": namespace},
                         "type": "Opaque", "data": {"k": base64.b64encode(b"v").decode()}}).encode()
    members += [(f"resources/secrets/namespaces/{namespace}/old.json", secret),
                (f"resources/secrets/v1-preferredversion/namespaces/{namespace}/old.json", secret)]
    name, prefix, backup = plant_signed(s3, minio, "order", namespace, members)
    try:
        synced_from_bucket(backup)
        restore = unique("r")
        create("Restore", restore, {"backupName": backup})
        status = finished("kprestore", restore, timeout=300)
        assert status["phase"] == "Completed", status
        assert status["progress"]["itemsRestored"] == 5, status
        for cm, blob in blobs.items():
            assert kubectl_json("get", "cm", cm, "-n", namespace)["data"]["blob"] == blob, cm
        assert kubectl_json("get", "secret", "old", "-n", namespace)["data"]["k"] == base64.b64encode(b"v").decode()
    finally:
        remove_planted(s3, name, prefix, backup)


def untrusted_events(location_name: str) -> str:
    events = kubectl_json("get", "events", "-n", NS, "--field-selector",
                          f"involvedObject.name={location_name},reason=UntrustedBackup")["items"]
    return "\n".join(e.get("message") or "" for e in events)


def test_a_backup_this_installation_did_not_sign_is_neither_synced_nor_restored(
        backup_operator: Operator, namespace: str, s3: Any, minio: dict[str, str]) -> None:
    """H4: write access to the bucket must not be enough to make the cluster create objects. A valid backup
    (checksums right, archive safe) planted without this installation's signing key, or signed with another
    key, is not synced (an UntrustedBackup Warning on the location says why); a signed backup copied under
    another name is not either; and a backup whose stored metadata was changed after it was written is
    refused by restore and by `kubeplane backup verify`. (The previous code synced and restored all four.)"""
    good = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "planted", "namespace": namespace},
            "data": {"from": "the bucket"}}
    members = [("metadata/version", b"1.1.0\n"),
               (f"resources/configmaps/namespaces/{namespace}/planted.json", json.dumps(good).encode())]
    tarball = tar_gz(members, [])
    name, prefix = unique("trust"), unique("trust-prefix")
    unsigned, foreign = unique("b"), unique("b")
    plant(s3, prefix, unsigned, tarball, checksums(tarball, members), stored_backup(unsigned, namespace), None)
    plant(s3, prefix, foreign, tarball, checksums(tarball, members), stored_backup(foreign, namespace), bytes(32))
    location(name, minio, prefix=prefix)
    real, copy = unique("b"), unique("b")
    try:
        # A real backup through this location, then its files copied under another name.
        kubectl("create", "configmap", "real", "-n", namespace, "--from-literal=a=b")
        create("Backup", real, {"includedNamespaces": [namespace], "storageLocation": name})
        assert finished("kpbackup", real)["phase"] == "Completed"
        source, target = f"{prefix}/backups/{real}", f"{prefix}/backups/{copy}"
        for suffix_from, suffix_to in ((f"{real}.tar.gz", f"{copy}.tar.gz"),
                                       (f"{real}-checksums.json", f"{copy}-checksums.json"),
                                       ("kubeplane-backup.json", "kubeplane-backup.json")):
            body = s3.get_object(Bucket="kubeplane", Key=f"{source}/{suffix_from}")["Body"].read()
            if suffix_to == "kubeplane-backup.json":
                moved = json.loads(body)
                moved["metadata"]["name"] = copy
                body = json.dumps(moved).encode()
            s3.put_object(Bucket="kubeplane", Key=f"{target}/{suffix_to}", Body=body)

        def warned() -> str | None:
            messages = untrusted_events(name)
            return messages if all(b in messages for b in (unsigned, foreign, copy)) else None
        messages = wait_for(warned, timeout=SYNC_WAIT, what="UntrustedBackup warnings for the three planted backups")
        assert f"backup {unsigned!r} is not signed" in messages, messages
        assert f"backup {foreign!r} is signed with another key" in messages, messages
        assert f"backup {copy!r} does not match its signature" in messages, messages
        # A whole later pass: still not imported.
        synced = kubectl_json("get", "bsl", name, "-n", NS)["status"]["lastSyncedTime"]
        wait_for(lambda: kubectl_json("get", "bsl", name, "-n", NS)["status"]["lastSyncedTime"] != synced,
                 timeout=SYNC_WAIT, what="another sync pass")
        for planted in (unsigned, foreign, copy):
            assert backup_object(planted) is None, f"{planted} was imported"

        # The real backup's metadata object rewritten in the bucket (its Backup object still says Completed).
        key = f"{source}/kubeplane-backup.json"
        stored = json.loads(s3.get_object(Bucket="kubeplane", Key=key)["Body"].read())
        stored["spec"]["includedNamespaces"] = ["kube-system"]
        s3.put_object(Bucket="kubeplane", Key=key, Body=json.dumps(stored).encode())
        verified = kubeplane("backup", "verify", real, check=False)
        assert verified.returncode == 1 and "does not match its signature" in verified.stderr, verified.stderr
        kubectl("delete", "configmap", "real", "-n", namespace)
        restore = unique("r")
        create("Restore", restore, {"backupName": real})
        status = finished("kprestore", restore)
        assert status["phase"] == "Failed", status
        assert "does not match its signature" in status["failureReason"], status
        assert "nothing was restored" in status["failureReason"], status
        assert kubectl("get", "cm", "real", "-n", namespace, check=False).returncode != 0
    finally:
        for backup in (real, unsigned, foreign, copy):
            kubectl("delete", "kpbackup", backup, "-n", NS, "--timeout=60s", check=False)
        kubectl("delete", "bsl", name, "-n", NS, check=False)
        leftovers = s3.list_objects_v2(Bucket="kubeplane", Prefix=f"{prefix}/").get("Contents", [])
        if leftovers:
            s3.delete_objects(Bucket="kubeplane", Delete={"Objects": [{"Key": o["Key"]} for o in leftovers]})


class PrivateMinio:
    """A MinIO server of one test's own (bin/minio, own data dir, port and credentials), killable."""

    def __init__(self, data_dir: str, certs_dir: Path | None = None) -> None:
        """`certs_dir`: serve HTTPS with its public.crt and private.key (MinIO's names); its ca.crt verifies it."""
        self.data_dir, self.certs_dir = data_dir, certs_dir
        self.port, self.console_port = _free_port(), _free_port()
        self.user, self.password = f"kp{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        self.endpoint = f"{'https' if certs_dir else 'http'}://127.0.0.1:{self.port}"
        self.verify: str | bool = str(certs_dir / "ca.crt") if certs_dir else True
        self.log = STATE / "logs" / "test-private-minio.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**ENV, "MINIO_ROOT_USER": self.user, "MINIO_ROOT_PASSWORD": self.password,
               "MINIO_UPDATE": "off", "MINIO_BROWSER": "off"}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(BIN / "minio"), "server", "--quiet", "--address", f"127.0.0.1:{self.port}",
                 "--console-address", f"127.0.0.1:{self.console_port}", self.data_dir,
                 *(["--certs-dir", str(self.certs_dir)] if self.certs_dir else [])],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        context = ssl.create_default_context(cafile=str(self.verify)) if self.certs_dir else None

        def ready() -> bool:
            assert self.process is not None and self.process.poll() is None, f"minio exited; see {self.log}"
            try:
                with urllib.request.urlopen(f"{self.endpoint}/minio/health/ready", timeout=2,
                                            context=context) as answer:
                    return bool(answer.status == 200)
            except OSError:
                return False
        wait_for(ready, timeout=60, what="the private MinIO ready")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.user,
                            aws_secret_access_key=self.password, region_name="us-east-1", verify=self.verify)


def private_ca_certs(directory: Path) -> bytes:
    """A CA and a serving certificate it signed for 127.0.0.1, laid out as MinIO's --certs-dir wants
    (public.crt, private.key; ca.crt beside them for clients). Returns the CA's PEM."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubeplane test private CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(start)
          .not_valid_after(start + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    serving = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
               .issuer_name(ca_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(start)
               .not_valid_after(start + dt.timedelta(days=1))
               .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                              critical=False)
               .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    (directory / "ca.crt").write_bytes(ca_pem)
    (directory / "public.crt").write_bytes(serving.public_bytes(serialization.Encoding.PEM))
    (directory / "private.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return ca_pem


def test_a_private_ca_is_trusted_through_ca_cert(backup_operator: Operator, namespace: str, tmp_path: Path) -> None:
    """M6: objectStorage.caCert is what the operator verifies a TLS endpoint against (it was ignored, so a
    private CA left only insecureSkipTLSVerify). A MinIO of its own serving HTTPS with a certificate of a
    private CA: the location with the CA is Available and takes a backup; the same location without it
    is Unavailable, naming the certificate."""
    kubectl("create", "configmap", "settings", "-n", namespace, "--from-literal=mode=production")
    ca_pem = private_ca_certs(tmp_path / "certs")
    data_dir = tempfile.mkdtemp(prefix="kubeplane-tls-minio-")
    server = PrivateMinio(data_dir, certs_dir=tmp_path / "certs")
    name, backup = unique("tls"), unique("b")
    untrusted, garbled = f"{name}-untrusted", f"{name}-garbled"
    try:
        server.start()
        server.client().create_bucket(Bucket="tls")
        credentials = f"[default]\naws_access_key_id = {server.user}\naws_secret_access_key = {server.password}\n"
        kubectl("create", "secret", "generic", name, "-n", NS, f"--from-literal=cloud={credentials}")
        for bsl, storage in ((name, {"bucket": "tls", "caCert": base64.b64encode(ca_pem).decode()}),
                             (untrusted, {"bucket": "tls"}),
                             (garbled, {"bucket": "tls", "caCert": base64.b64encode(b"not a certificate").decode()})):
            apply({"apiVersion": GROUP, "kind": "BackupStorageLocation", "metadata": {"name": bsl},
                   "spec": {"provider": "aws", "objectStorage": storage, "credential": {"name": name, "key": "cloud"},
                            "config": {"s3Url": server.endpoint, "s3ForcePathStyle": "true"}}}, namespace=NS)
        location_phase(name, "Available")
        refused = location_phase(untrusted, "Unavailable")
        assert "certificate" in refused.get("message", "").lower(), refused
        assert "caCert is not a PEM CA bundle" in location_phase(garbled, "Unavailable").get("message", "")
        create("Backup", backup, {"includedNamespaces": [namespace], "storageLocation": name})
        assert finished("kpbackup", backup)["phase"] == "Completed"
        keys = [o["Key"] for o in server.client().list_objects_v2(Bucket="tls").get("Contents", [])]
        assert f"backups/{backup}/kubeplane-backup.json" in keys, keys
    finally:
        kubectl("delete", "kpbackup", backup, "-n", NS, "--wait=false", check=False)
        kubectl("delete", "bsl", name, untrusted, garbled, "-n", NS, "--wait=false", check=False)
        kubectl("delete", "secret", name, "-n", NS, check=False)
        server.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


class UploadTrap:
    """A TCP relay in front of a server. Once one connection has sent `limit` bytes upstream (a
    large upload under way), it sets `tripped` and holds that connection until `released` is set:
    the upload cannot finish before the test has acted."""

    def __init__(self, upstream_port: int, limit: int) -> None:
        self.upstream_port, self.limit = upstream_port, limit
        self.tripped, self.released = threading.Event(), threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
        except OSError:
            client.close()  # the server is down: so is the connection
            return
        upstream.settimeout(None)

        def pump(source: socket.socket, sink: socket.socket, count: bool) -> None:
            sent = 0
            try:
                while data := source.recv(65536):
                    sent += len(data)
                    if count and sent > self.limit and not self.released.is_set():
                        self.tripped.set()
                        self.released.wait(120)
                    sink.sendall(data)
            except OSError:
                pass
            finally:
                for s in (source, sink):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)
        threading.Thread(target=pump, args=(upstream, client, False), daemon=True).start()
        pump(client, upstream, True)

    def close(self) -> None:
        self.released.set()
        self.listener.close()


def test_storage_outage_mid_backup(backup_operator: Operator, namespace: str) -> None:
    # ~200 items of 6 KB random data: a tarball of ~1.3 MB, uploaded through the trap (256 KB limit).
    bulk_configmaps(namespace, 200, size=8000)
    data_dir = tempfile.mkdtemp(prefix="kubeplane-private-minio-")
    server = PrivateMinio(data_dir)
    trap: UploadTrap | None = None
    name, backup = unique("flaky"), unique("b")
    try:
        server.start()
        server.client().create_bucket(Bucket="private")
        trap = UploadTrap(server.port, limit=256 << 10)
        credentials = f"[default]\naws_access_key_id = {server.user}\naws_secret_access_key = {server.password}\n"
        kubectl("create", "secret", "generic", name, "-n", NS, f"--from-literal=cloud={credentials}")
        create("BackupStorageLocation", name, {
            "objectStorage": {"bucket": "private"}, "credential": {"name": name, "key": "cloud"},
            "config": {"s3Url": f"http://127.0.0.1:{trap.port}", "s3ForcePathStyle": "true"},
            "validationFrequency": "2s",
        })
        location_phase(name, "Available")

        create("Backup", backup, {"includedNamespaces": [namespace], "includedResources": ["configmaps"],
                                  "storageLocation": name})
        assert trap.tripped.wait(120), "the backup's upload never started"
        status = kubectl_json("get", "kpbackup", backup, "-n", NS).get("status") or {}
        assert status.get("phase") == "InProgress", f"not mid-backup at the outage: {status}"
        stored = server.client().list_objects_v2(Bucket="private", Prefix=f"backups/{backup}/").get("Contents", [])
        assert not stored, f"the tarball is the first upload; already stored: {stored}"
        server.kill()  # mid-upload: the trap holds the rest of the tarball until MinIO is gone
        trap.released.set()

        status = finished("kpbackup", backup, timeout=120)
        assert status["phase"] == "Failed", status
        reason = status.get("failureReason", "")
        assert "storage unreachable" in reason and "uploading" in reason, reason
        assert "interrupted" not in reason, f"the operator did not die, the storage did: {reason}"
        unavailable = location_phase(name, "Unavailable", timeout=60)
        assert "unreachable" in unavailable.get("message", ""), unavailable
        assert server.password not in unavailable["message"]

        # The storage comes back with what it had: nothing half-written may look like a backup.
        server.start()
        location_phase(name, "Available", timeout=60)
        keys = [o["Key"] for o in server.client().list_objects_v2(Bucket="private").get("Contents", [])]
        assert f"backups/{backup}/kubeplane-backup.json" not in keys, keys
        verified = kubeplane("backup", "verify", backup, check=False)
        assert verified.returncode == 1 and "no metadata object" in verified.stderr, verified.stderr

        def last_synced() -> str | None:
            synced: str | None = kubectl_json("get", "bsl", name, "-n", NS)["status"].get("lastSyncedTime")
            return synced

        def sync_passes(count: int) -> None:
            for _ in range(count):
                before = last_synced()
                wait_for(lambda: last_synced() not in (None, before),  # noqa: B023 (called at once)
                         timeout=SYNC_WAIT, what="a sync pass of the location")
        sync_passes(2)
        assert (backup_object(backup) or {}).get("status", {}).get("phase") == "Failed"
        # As after losing the cluster: only the bucket is left, and sync must not bring this one back.
        delete_backup_object_keeping_files(backup)
        sync_passes(2)
        assert backup_object(backup) is None, "sync presented the half-written backup as a backup"
    finally:
        if trap is not None:
            trap.close()
        if backup_object(backup) is not None:
            kubectl("patch", "kpbackup", backup, "-n", NS, "--type=json",
                    "-p", '[{"op":"remove","path":"/metadata/finalizers"}]', check=False)
            kubectl("delete", "kpbackup", backup, "-n", NS, "--wait=false", check=False)
        kubectl("delete", "bsl", name, "-n", NS, check=False)
        kubectl("delete", "secret", name, "-n", NS, check=False)
        server.kill()
        shutil.rmtree(data_dir, ignore_errors=True)
