"""The backup.kubeplane.dev schemas refuse contradictory specs at `kubectl apply` time."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.conftest import apply, kubectl, kubectl_json

GROUP = "backup.kubeplane.dev/v1alpha1"


def obj(kind: str, spec: dict[str, Any], name: str = "x") -> dict[str, Any]:
    return {"apiVersion": GROUP, "kind": kind, "metadata": {"name": name}, "spec": spec}


@pytest.mark.parametrize(("kind", "spec", "message"), [
    ("Backup", {"labelSelector": {"matchLabels": {"a": "b"}}, "orLabelSelectors": [{"matchLabels": {"c": "d"}}]},
     "labelSelector and orLabelSelectors are mutually exclusive"),
    ("Backup", {"includedNamespaces": ["a"], "excludedNamespaces": ["a"]}, "both included and excluded"),
    ("Backup", {"ttl": "30 days"}, "spec.ttl"),
    ("Restore", {"backupName": "a", "scheduleName": "b"}, "exactly one of backupName and scheduleName"),
    ("Restore", {}, "exactly one of backupName and scheduleName"),
    ("Restore", {"backupName": "a", "existingResourcePolicy": "overwrite"}, "existingResourcePolicy"),
    ("Schedule", {"schedule": "every day", "template": {}}, "spec.schedule"),
    ("BackupStorageLocation", {"objectStorage": {"bucket": "Bad_Bucket"}}, "spec.objectStorage.bucket"),
    ("BackupStorageLocation", {"objectStorage": {"bucket": "ok-bucket"}, "config": {"s3Url": "http://minio:9000"}},
     "needs a credential"),
])
def test_rejected_with_a_clear_message(cluster: Any, namespace: str, kind: str, spec: dict[str, Any],
                                       message: str) -> None:
    result = apply(obj(kind, spec), namespace, check=False)
    assert result.returncode != 0, f"{kind} {spec} was accepted"
    assert message in result.stderr


def test_defaults_and_immutable_backup_spec(cluster: Any, namespace: str) -> None:
    apply(obj("Backup", {"includedNamespaces": ["app"]}, name="b1"), namespace)
    backup = kubectl_json("get", "kpbackup", "b1", "-n", namespace)
    assert backup["spec"]["ttl"] == "720h0m0s"
    result = kubectl("patch", "kpbackup", "b1", "-n", namespace, "--type=merge",
                     "-p", '{"spec":{"includedNamespaces":["other"]}}', check=False)
    assert result.returncode != 0 and "cannot change" in result.stderr

    apply(obj("BackupStorageLocation", {"objectStorage": {"bucket": "kubeplane"}}, name="l1"), namespace)
    bsl = kubectl_json("get", "bsl", "l1", "-n", namespace)["spec"]
    assert (bsl["provider"], bsl["accessMode"], bsl["default"]) == ("aws", "ReadWrite", False)
    # M6: the bucket and prefix are where the location's Backups are; a repointed location would expire and
    # delete backups/<name>/ in another bucket. The CA bundle may change (rotation).
    for change in ({"bucket": "elsewhere"}, {"prefix": "moved"}):
        result = kubectl("patch", "bsl", "l1", "-n", namespace, "--type=merge",
                         "-p", json.dumps({"spec": {"objectStorage": change}}), check=False)
        assert result.returncode != 0 and "objectStorage.bucket and objectStorage.prefix are immutable" in \
            result.stderr, result.stderr
    kubectl("patch", "bsl", "l1", "-n", namespace, "--type=merge",
            "-p", json.dumps({"spec": {"objectStorage": {"caCert": "Zm9v"}}}))
