"""H1 on a real cluster: a namespace whose backup tarball is over 150 MiB is backed up to the in-cluster
MinIO and restored by the operator as the chart deploys it (its default memory limit; /tmp at 64Mi, as
hack/kind/cluster.sh installs it, under the chart's 1Gi), without the operator restarting: the tarball
streams into a multipart upload and back out, never to disk, and a restore over its memory budget reads
it again tier by tier.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re

import pytest

from tests.e2e.conftest import SYSTEM_NAMESPACE, kubectl, kubectl_json, wait_for
from tests.e2e.test_backup import BACKUP, RESTORE, create, finished, namespace_gone

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900), pytest.mark.usefixtures("kubeplane")]

COUNT = 90  # ConfigMaps of ~0.9 MB random bytes: two copies each in the tarball, base64 barely compresses
BLOB = 900_000
MIN_TARBALL = 150 << 20


def operator_pod() -> dict:  # type: ignore[type-arg]
    pods = kubectl_json("get", "pods", "-n", SYSTEM_NAMESPACE, "-l", "app.kubernetes.io/component=backup")["items"]
    [pod] = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    return pod  # type: ignore[no-any-return]


def restarts(pod: dict) -> int:  # type: ignore[type-arg]
    return sum(c.get("restartCount", 0) for c in (pod.get("status") or {}).get("containerStatuses") or [])


def test_a_150_mib_backup_and_restore_under_the_charts_limits(namespace: str, backup_objects: list) -> None:  # type: ignore[type-arg]
    pod = operator_pod()
    container = pod["spec"]["containers"][0]
    assert container["resources"]["limits"]["memory"] == "1Gi"  # the chart's default, untouched
    tmp = next(v for v in pod["spec"]["volumes"] if v["name"] == "tmp")
    assert tmp["emptyDir"]["sizeLimit"] == "64Mi"  # under the tarball: it cannot have been spooled there
    before = restarts(pod)

    digests = {}
    for i in range(COUNT):
        data = os.urandom(BLOB)
        digests[f"big-{i}"] = hashlib.sha256(data).hexdigest()
        kubectl("create", "-n", namespace, "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"big-{i}"},
            "binaryData": {"blob": base64.b64encode(data).decode()}}), timeout=60)

    backup = create(BACKUP, "Backup", {"includedNamespaces": [namespace], "storageLocation": "default"},
                    backup_objects)
    status = finished(BACKUP, backup, timeout=600)
    assert status["phase"] == "Completed", status
    logs = kubectl("logs", "-n", SYSTEM_NAMESPACE, pod["metadata"]["name"]).stdout
    sizes = re.findall(rf"backup {backup}: \d+ items, tarball (\d+) bytes", logs)
    assert sizes and int(sizes[-1]) >= MIN_TARBALL, f"tarball {sizes}: not over 150 MiB"
    print(f"tarball: {int(sizes[-1]) / (1 << 20):.0f} MiB")

    kubectl("delete", "namespace", namespace, "--wait=false")
    wait_for(lambda: namespace_gone(namespace), timeout=300, interval=2, what=f"namespace {namespace} deleted")
    restore = create(RESTORE, "Restore", {"backupName": backup}, backup_objects)
    status = finished(RESTORE, restore, timeout=600)
    assert status["phase"] == "Completed", status

    for name, digest in digests.items():
        data = base64.b64decode(kubectl_json("get", "cm", name, "-n", namespace)["binaryData"]["blob"])
        assert hashlib.sha256(data).hexdigest() == digest, name
    after = operator_pod()
    assert after["metadata"]["uid"] == pod["metadata"]["uid"] and restarts(after) == before, \
        "the backup operator restarted (OOM-killed or evicted?)"
