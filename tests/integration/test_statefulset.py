"""kubeplane's StatefulSet (apps.kubeplane.dev) on the embedded cluster: identity from ordinals.start, claims
that bind (kwok's volume stages) and outlive their pod; a rolling update halted by an unhealthy pod and
then going from the top ordinal down, one pod at a time (counted from a watch of every pod);
`kubeplane rollout status|history|undo statefulset/NAME`; refused specs."""

from __future__ import annotations

import json
from typing import Any

from tests.integration.conftest import ENV, Operator, apply, kubectl, kubectl_json, wait_for
from tests.watch import Watch

KPSTS = "statefulsets.apps.kubeplane.dev"


def manifest(image: str = "db:1", replicas: int = 3, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps.kubeplane.dev/v1alpha1", "kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {"replicas": replicas, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                     "template": {"metadata": {"labels": {"app": "db"}},
                                  "spec": {"automountServiceAccountToken": False,
                                           "containers": [{"name": "db", "image": image}]}},
                     **spec}}


def statefulset(namespace: str) -> Any:
    return kubectl_json("-n", namespace, "get", KPSTS, "db")


def live(pods: Watch) -> dict[str, Any]:
    return {n: p for n, p in pods.current.items() if not p["metadata"].get("deletionTimestamp")}


def ready(pod: Any) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def settled(namespace: str, replicas: int) -> Any:
    def done() -> Any:
        sts = statefulset(namespace)
        status = sts.get("status") or {}
        return sts if (status.get("observedGeneration") == sts["metadata"]["generation"]
                       and status.get("readyReplicas", 0) == replicas == status.get("updatedReplicas", 0)
                       and status.get("currentRevision") == status.get("updateRevision")) else None
    return wait_for(done, timeout=120, what=f"{replicas} ready replicas at the update revision")


def set_ready(namespace: str, pod: str, value: bool) -> None:
    """The kubelet's report, written as KWOK would (KWOK readies only Pending pods, so this stays)."""
    status = "True" if value else "False"
    kubectl("-n", namespace, "patch", "pod", pod, "--subresource=status", "-p",
            json.dumps({"status": {"conditions": [{"type": "Ready", "status": status},
                                                  {"type": "ContainersReady", "status": status}]}}))


def test_identity_from_ordinals_and_claims_that_outlive_their_pod(controllers: Operator, namespace: str) -> None:
    claim = {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
                                                    "resources": {"requests": {"storage": "1Gi"}}}}
    apply(manifest(replicas=2, ordinals={"start": 3}, volumeClaimTemplates=[claim]), namespace)
    settled(namespace, 2)
    pods = {p["metadata"]["name"]: p for p in kubectl_json("-n", namespace, "get", "pods")["items"]}
    assert sorted(pods) == ["db-3", "db-4"]
    for name, pod in pods.items():
        ordinal = name.split("-")[1]
        assert pod["spec"]["hostname"] == name and pod["spec"]["subdomain"] == "db"
        assert pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == name
        assert pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == ordinal
        revision = statefulset(namespace)["status"]["updateRevision"]
        assert pod["metadata"]["labels"]["controller-revision-hash"] == revision
        assert {"name": "data", "persistentVolumeClaim": {"claimName": f"data-db-{ordinal}"}} in pod["spec"]["volumes"]
    claims = {c["metadata"]["name"]: c for c in kubectl_json("-n", namespace, "get", "pvc")["items"]}
    assert sorted(claims) == ["data-db-3", "data-db-4"]
    assert all(c["status"]["phase"] == "Bound" and c["metadata"]["labels"] == {"app": "db"} for c in claims.values())

    # The pod goes; its successor has the same name and the same claim (not a new one).
    old_uid = pods["db-3"]["metadata"]["uid"]
    kubectl("-n", namespace, "delete", "pod", "db-3", "--wait=false")  # the successor takes the name at once
    def successor() -> bool:
        found = kubectl("-n", namespace, "get", "pod", "db-3", "-o", "json", check=False)
        pod = json.loads(found.stdout) if found.returncode == 0 else None
        return pod is not None and pod["metadata"]["uid"] != old_uid and ready(pod)
    wait_for(successor, timeout=60, what="db-3 made again")
    after = {c["metadata"]["name"]: c["metadata"]["uid"] for c in kubectl_json("-n", namespace, "get", "pvc")["items"]}
    assert after == {n: c["metadata"]["uid"] for n, c in claims.items()}, "a claim was replaced"


def test_unhealthy_pod_halts_the_rollout_which_then_goes_top_down(controllers: Operator, namespace: str) -> None:
    apply(manifest(), namespace)
    settled(namespace, 3)
    with Watch(ENV, f"/api/v1/namespaces/{namespace}/pods") as pods:
        pods.wait(lambda w: len(live(w)) == 3, what="the three pods in the watch")
        set_ready(namespace, "db-0", False)
        mark = len(pods.events)
        apply(manifest("db:2"), namespace)
        # The controller has seen the new template (its status says so) and, db-0 being unhealthy, did nothing.
        def observed() -> bool:
            s = statefulset(namespace)
            return bool(s["status"].get("observedGeneration") == s["metadata"]["generation"]
                        and s["status"]["updateRevision"] != s["status"]["currentRevision"])
        wait_for(observed, what="the update observed")
        halted = kubectl("kubeplane", "rollout", "status", "statefulset/db", "-n", namespace, "--watch=false")
        assert halted.stdout.strip() == "Waiting for 1 pods to be ready...", halted.stdout
        assert not [e for e in pods.events[mark:] if e[0] == "DELETED" or e[1]["metadata"].get("deletionTimestamp")]

        set_ready(namespace, "db-0", True)
        healed = len(pods.events)
        done = kubectl("kubeplane", "rollout", "status", "statefulset/db", "-n", namespace, "--timeout=120")
        assert done.stdout.strip().splitlines()[-1] == "partitioned roll out complete: 3 new pods have been updated..."
        settled(namespace, 3)
        every = list(pods.events)
    events = every[mark:]
    gone: list[str] = []
    for kind, pod in events:
        name = pod["metadata"]["name"]
        if (kind == "DELETED" or pod["metadata"].get("deletionTimestamp")) and name not in gone:
            gone.append(name)
    assert gone == ["db-2", "db-1", "db-0"], gone
    # Replay every pod event: once db-0 is seen ready again, never more than one of the three was without a
    # ready, live pod.
    state: dict[str, Any] = {}
    worst = 0
    measuring = False
    for index, (kind, pod) in enumerate(every):
        name = pod["metadata"]["name"]
        if kind == "DELETED":
            state.pop(name, None)
        else:
            state[name] = pod
        measuring = measuring or (index >= healed and name == "db-0" and ready(pod))
        if measuring:
            worst = max(worst, sum(1 for n in ("db-0", "db-1", "db-2") if not (
                n in state and ready(state[n]) and not state[n]["metadata"].get("deletionTimestamp"))))
    assert worst == 1, f"{worst} pods were down at once"

    history = kubectl("kubeplane", "rollout", "history", "statefulset/db", "-n", namespace).stdout.splitlines()
    assert history[0].strip() == "statefulset.apps.kubeplane.dev/db"
    assert [line.split()[0] for line in history[2:] if line.strip()] == ["1", "2"], history
    undo = kubectl("kubeplane", "rollout", "undo", "statefulset/db", "-n", namespace)
    assert undo.stdout.strip() == "statefulset.apps.kubeplane.dev/db rolled back"
    wait_for(lambda: {p["spec"]["containers"][0]["image"] for p in kubectl_json("-n", namespace, "get", "pods")["items"]
                      if not p["metadata"].get("deletionTimestamp")} == {"db:1"}, timeout=120, what="back on db:1")
    settled(namespace, 3)
    revisions = kubectl_json("-n", namespace, "get", "controllerrevisions")["items"]
    by_image = {r["data"]["spec"]["template"]["spec"]["containers"][0]["image"]: r["revision"] for r in revisions}
    assert by_image == {"db:2": 2, "db:1": 3}, "the rollback reuses db:1's revision, renumbered"


def test_bad_specs_are_refused(controllers: Operator, namespace: str) -> None:
    mismatch = manifest()
    mismatch["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    out = apply(mismatch, namespace, check=False)
    assert out.returncode != 0 and "must match spec.template.metadata.labels" in out.stderr, out.stderr
    both = manifest(updateStrategy={"type": "OnDelete", "rollingUpdate": {"partition": 1}})
    out = apply(both, namespace, check=False)
    assert out.returncode != 0 and "only allowed for updateStrategy 'RollingUpdate'" in out.stderr, out.stderr
    deadline = manifest()
    deadline["spec"]["template"]["spec"]["activeDeadlineSeconds"] = 10
    out = apply(deadline, namespace, check=False)
    assert out.returncode != 0 and "activeDeadlineSeconds in StatefulSet is not Supported" in out.stderr, out.stderr

    apply(manifest(replicas=1), namespace)
    for change in ({"serviceName": "other"}, {"podManagementPolicy": "Parallel"},
                   {"volumeClaimTemplates": [{"metadata": {"name": "x"}, "spec": {}}]}):
        out = kubectl("-n", namespace, "patch", KPSTS, "db", "--type=merge", "-p", json.dumps({"spec": change}),
                      check=False)
        assert out.returncode != 0 and "updates to statefulset spec for fields other than" in out.stderr, out.stderr
    # What may change does.
    kubectl("-n", namespace, "patch", KPSTS, "db", "--type=merge",
            "-p", json.dumps({"spec": {"replicas": 2, "minReadySeconds": 1, "ordinals": {"start": 1}}}))


def progressing(namespace: str) -> dict[str, Any]:
    conditions = (statefulset(namespace).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Progressing"), {})


def test_a_rollout_stuck_on_a_bad_template_repairs_itself_with_stuck_pod_policy_replace(
        controllers: Operator, namespace: str) -> None:
    """A template no node can run (a nodeSelector nothing matches) leaves db-1 Pending for good; the
    Progressing condition turns False naming it. Fixing the template is not enough upstream (OrderedReady
    waits for db-1, which is at the bad revision, forever: kubernetes issues 67250, 60164); with
    stuckPodPolicy Replace the stale db-1 is replaced with the fixed revision and the rollout completes."""
    stuck = {"stuckPodSeconds": 3}
    apply(manifest(replicas=2, **stuck), namespace)
    settled(namespace, 2)
    bad = manifest("db:2", replicas=2, **stuck)
    bad["spec"]["template"]["spec"]["nodeSelector"] = {"kubeplane-test/nowhere": "true"}
    apply(bad, namespace)
    wait_for(lambda: progressing(namespace).get("status") == "False", timeout=60, what="Progressing False")
    condition = progressing(namespace)
    assert condition["reason"] == "PodNotReady" and "pod db-1" in condition["message"], condition

    with Watch(ENV, f"/api/v1/namespaces/{namespace}/pods") as pods:
        pods.wait(lambda w: "db-1" in w.current, what="db-1 in the watch")
        stuck_uid = pods.current["db-1"]["metadata"]["uid"]
        # The fix alone, without the policy: the controller sees it (observedGeneration) and still waits.
        apply(manifest("db:3", replicas=2, **stuck), namespace)
        def still_stuck() -> bool:
            s = statefulset(namespace)
            return bool(s["status"].get("observedGeneration") == s["metadata"]["generation"]
                        and progressing(namespace).get("status") == "False")
        wait_for(still_stuck, what="the fix observed, still stuck")
        assert pods.current["db-1"]["metadata"]["uid"] == stuck_uid
        assert not any(p["metadata"].get("deletionTimestamp") for _, p in pods.events
                       if p["metadata"]["uid"] == stuck_uid)

        kubectl("-n", namespace, "patch", KPSTS, "db", "--type=merge", "-p", '{"spec":{"stuckPodPolicy":"Replace"}}')
        sts = settled(namespace, 2)
    images = {p["metadata"]["name"]: p["spec"]["containers"][0]["image"]
              for p in kubectl_json("-n", namespace, "get", "pods")["items"]}
    assert images == {"db-0": "db:3", "db-1": "db:3"}
    assert progressing(namespace)["reason"] == "RolloutComplete", sts["status"]
    events = kubectl_json("-n", namespace, "get", "events", "--field-selector", "reason=ReplacingStuckPod")["items"]
    assert len(events) == 1 and "pod db-1" in events[0]["message"], events
