"""Differential: the same StatefulSet manifest as apps/v1 (kube-controller-manager) and as kubeplane, in
two namespaces of the embedded cluster, compared step by step.

Compared: the order pods were created and deleted in (from the pod watch), each pod's identity (name,
pod-name and pod-index labels, hostname, subdomain, claim volumes), the claims (names, labels, which
kinds own them, and which were ever made: from a claim watch), the status counters and whether the two
revisions are equal, how many ControllerRevisions exist, which pods run which image, and the messages
of the claim-creation and pod-deletion Events. Never uids, hashes or timestamps. The claims really
bind: kwok's volume stages provision a PersistentVolume for each (StorageClass kwok-volume, the
cluster's default).
"""

from __future__ import annotations

import json
from typing import Any

from tests.integration import differential
from tests.integration.conftest import ENV, Operator, kubectl, kubectl_json
from tests.integration.differential import Flavour, Side
from tests.watch import Watch

UPSTREAM = Flavour("upstream", "apps/v1", "statefulsets.apps")
KUBEPLANE = Flavour("kubeplane", "apps.kubeplane.dev/v1alpha1", "statefulsets.apps.kubeplane.dev")
FLAVOURS = (UPSTREAM, KUBEPLANE)
COUNTERS = ("replicas", "readyReplicas", "availableReplicas", "currentReplicas", "updatedReplicas")


def manifest(image: str, replicas: int, *, policy: str = "OrderedReady", partition: int = 0,
             when_scaled: str = "Retain", when_deleted: str = "Retain") -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "serviceName": "web", "podManagementPolicy": policy,
                     "selector": {"matchLabels": {"app": "web"}},
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}},
                     "persistentVolumeClaimRetentionPolicy": {"whenScaled": when_scaled, "whenDeleted": when_deleted},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"automountServiceAccountToken": False,
                                           "containers": [{"name": "web", "image": image,
                                                           "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
                     "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": {"tier": "db"}},
                                               "spec": {"accessModes": ["ReadWriteOnce"],
                                                        "resources": {"requests": {"storage": "1Gi"}}}}]}}


def settled(s: Side, replicas: int, images: dict[str, str]) -> None:
    """status says so, and exactly the pods of `images` (name -> image) live, Running and ready."""
    def done() -> bool:
        sts = s.get("web")
        status = sts.get("status") or {}
        pods = s.live_pods()
        return (status.get("observedGeneration") == sts["metadata"]["generation"]
                and status.get("replicas", 0) == replicas and status.get("readyReplicas", 0) == replicas
                and {n: p["spec"]["containers"][0]["image"] for n, p in pods.items()} == images
                and all((p.get("status") or {}).get("phase") == "Running" for p in pods.values()))
    s.wait(done, f"pods {images}")


def set_ready(s: Side, pod: str, value: bool) -> None:
    status = "True" if value else "False"
    conditions = [{"type": "Ready", "status": status}, {"type": "ContainersReady", "status": status}]
    s.kubectl("patch", "pod", pod, "--subresource=status", "-p", json.dumps({"status": {"conditions": conditions}}))


def claims_are(s: Side, names: set[str]) -> None:
    def done() -> bool:
        claims = kubectl_json("get", "pvc", "-n", s.namespace)["items"]
        return {c["metadata"]["name"] for c in claims if not c["metadata"].get("deletionTimestamp")} == names and \
            all((c.get("status") or {}).get("phase") == "Bound" for c in claims)
    s.wait(done, f"claims {sorted(names)}, all bound")


def order(s: Side, kind: str, since: int = 0) -> list[str]:
    """Pod names in the order the watch saw them added, or first terminating/deleted."""
    seen: list[str] = []
    for event, pod in s.pods.events[since:]:
        name = pod["metadata"]["name"]
        if kind == "ADDED" and event == "ADDED" and name not in seen:
            seen.append(name)
        if kind == "GONE" and (event == "DELETED" or pod["metadata"].get("deletionTimestamp")) and name not in seen:
            seen.append(name)
    return seen


def facts(s: Side, claim_watch: Watch) -> dict[str, Any]:
    status = s.status("web")
    pods = s.live_pods()
    claims = kubectl_json("get", "pvc", "-n", s.namespace)["items"]
    revisions = kubectl_json("get", "controllerrevisions", "-n", s.namespace)["items"]
    identity = {name: {"labels": {k: v for k, v in p["metadata"]["labels"].items() if k != "controller-revision-hash"},
                       "label_keys": sorted(p["metadata"]["labels"]),
                       "hostname": p["spec"].get("hostname"), "subdomain": p["spec"].get("subdomain"),
                       "claims": sorted(v["persistentVolumeClaim"]["claimName"] for v in p["spec"].get("volumes") or []
                                        if v.get("persistentVolumeClaim")),
                       "image": p["spec"]["containers"][0]["image"],
                       "revision_is_update": p["metadata"]["labels"].get("controller-revision-hash")
                       == status.get("updateRevision")}
                for name, p in sorted(pods.items())}
    return {
        "status": {k: int(status.get(k) or 0) for k in COUNTERS},
        "revisions_equal": status.get("currentRevision") == status.get("updateRevision"),
        "revision_label_is_a_revision": all(
            p["metadata"]["labels"].get("controller-revision-hash") in {r["metadata"]["name"] for r in revisions}
            for p in pods.values()),
        "revisions": sorted(int(r["revision"]) for r in revisions),
        "pods": identity,
        "claims": {c["metadata"]["name"]: {
            "labels": c["metadata"].get("labels") or {},
            "owners": sorted(r["kind"] for r in c["metadata"].get("ownerReferences") or [])}
            for c in claims if not c["metadata"].get("deletionTimestamp")},
        "claims_ever": len(claim_watch.ever_added),
        # Pod creations are compared from the watch ("created"): upstream's own events about them race
        # with the PV controller binding the claims (a conflicting claim update is reported as FailedUpdate
        # instead of the pod's SuccessfulCreate), so only claim creations and pod deletions are compared.
        "messages": sorted(m for reason in ("SuccessfulCreate", "SuccessfulDelete")
                           for m in s.event_messages("web", reason) if not m.startswith("create Pod ")),
    }


def test_ordered_scale_claims_retention_and_partitioned_update(controllers: Operator) -> None:
    def scenario(s: Side) -> None:
        with Watch(ENV, f"/api/v1/namespaces/{s.namespace}/persistentvolumeclaims") as claims:
            s.apply_workload(manifest("web:1", 3, when_scaled="Delete"))
            settled(s, 3, {f"web-{i}": "web:1" for i in range(3)})
            claims_are(s, {"data-web-0", "data-web-1", "data-web-2"})
            s.record("created", created=order(s, "ADDED"), **facts(s, claims))

            mark = len(s.pods.events)
            s.kubectl("scale", f"{s.flavour.resource}/web", "--replicas=1")
            settled(s, 1, {"web-0": "web:1"})
            claims_are(s, {"data-web-0"})  # whenScaled: Delete
            s.record("scaled to 1", deleted=order(s, "GONE", mark), **facts(s, claims))

            mark = len(s.pods.events)
            s.kubectl("scale", f"{s.flavour.resource}/web", "--replicas=3")
            settled(s, 3, {f"web-{i}": "web:1" for i in range(3)})
            claims_are(s, {"data-web-0", "data-web-1", "data-web-2"})
            s.record("scaled to 3", created=order(s, "ADDED", mark), **facts(s, claims))

            mark = len(s.pods.events)
            s.apply_workload(manifest("web:2", 3, partition=1, when_scaled="Delete"))
            settled(s, 3, {"web-0": "web:1", "web-1": "web:2", "web-2": "web:2"})
            s.wait(lambda: s.status("web").get("updatedReplicas") == 2, "2 updated replicas")
            s.record("partition 1", replaced=order(s, "GONE", mark), **facts(s, claims))

            mark = len(s.pods.events)
            s.apply_workload(manifest("web:2", 3, partition=0, when_scaled="Delete"))
            settled(s, 3, {f"web-{i}": "web:2" for i in range(3)})
            s.wait(lambda: s.status("web").get("currentRevision") == s.status("web").get("updateRevision"),
                   "the update revision current")
            s.record("partition 0", replaced=order(s, "GONE", mark), **facts(s, claims))

            # web-0 turns unready (as a kubelet reports it; KWOK readies only Pending pods): a new template is
            # observed and nothing moves; ready again, the update goes top down.
            set_ready(s, "web-0", False)
            s.wait(lambda: s.status("web").get("readyReplicas") == 2, "web-0 counted unready")
            mark = len(s.pods.events)
            s.apply_workload(manifest("web:3", 3, when_scaled="Delete"))
            s.wait(lambda: (x := s.get("web"))["status"].get("observedGeneration") == x["metadata"]["generation"],
                   "the new template observed")
            s.record("halted", replaced=order(s, "GONE", mark), **facts(s, claims))
            set_ready(s, "web-0", True)
            settled(s, 3, {f"web-{i}": "web:3" for i in range(3)})
            s.wait(lambda: s.status("web").get("currentRevision") == s.status("web").get("updateRevision"),
                   "the update revision current")
            s.record("resumed", replaced=order(s, "GONE", mark), **facts(s, claims))
    differential.assert_same(differential.run(scenario, FLAVOURS))


def test_parallel_and_claims_deleted_with_the_set(controllers: Operator) -> None:
    def scenario(s: Side) -> None:
        with Watch(ENV, f"/api/v1/namespaces/{s.namespace}/persistentvolumeclaims") as claims:
            s.apply_workload(manifest("web:1", 3, policy="Parallel", when_deleted="Delete"))
            settled(s, 3, {f"web-{i}": "web:1" for i in range(3)})
            claims_are(s, {"data-web-0", "data-web-1", "data-web-2"})
            s.record("created", created=sorted(order(s, "ADDED")), **facts(s, claims))

            mark = len(s.pods.events)
            s.kubectl("scale", f"{s.flavour.resource}/web", "--replicas=1")
            settled(s, 1, {"web-0": "web:1"})
            # whenScaled: Retain keeps the claims of the pods scaled away.
            claims_are(s, {"data-web-0", "data-web-1", "data-web-2"})
            s.record("scaled to 1", deleted=sorted(order(s, "GONE", mark)), **facts(s, claims))

            # whenDeleted: Delete: the set owns its claims, the garbage collector takes them with it.
            kubectl("delete", s.flavour.resource, "web", "-n", s.namespace, "--wait=true", "--timeout=120s")
            claims_are(s, set())
            s.wait(lambda: not s.live_pods(), "no pods")
            # Every claim gone for good (the pvc-protection finalizer lets each go once no pod uses it).
            claims.wait(lambda w: not w.current, timeout=120, what="every claim deleted")
            s.record("deleted", claims_ever=len(claims.ever_added))
    differential.assert_same(differential.run(scenario, FLAVOURS))
