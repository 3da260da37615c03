"""The kubeplane Deployment against a real API server, with KWOK running the pods: rollouts, rollback,
pause, Recreate, proportional scaling and history, with the invariants counted from watches."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from tests.faults.apirelay import ApiRelay
from tests.integration.conftest import ENV, KUBECONFIG, Operator, apply, kubectl, kubectl_json, wait_for
from tests.kubectl import BIN
from tests.watch import Watch

API_VERSION = "apps.kubeplane.dev/v1alpha1"
DEPLOY = "deployments.apps.kubeplane.dev"
RS = "replicasets.apps.kubeplane.dev"
REVISION = "deployment.kubernetes.io/revision"


def manifest(name: str = "web", replicas: int = 4, image: str = "registry.local/web:1", **spec: Any) -> dict[str, Any]:
    """An upstream apps/v1 Deployment manifest; only the apiVersion differs."""
    return {
        "apiVersion": API_VERSION, "kind": "Deployment", "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "web", "image": image}]}},
            **spec,
        },
    }


def deployment(namespace: str, name: str = "web") -> dict[str, Any]:
    return kubectl_json("get", DEPLOY, name, "-n", namespace)


def sets(namespace: str) -> dict[str, dict[str, Any]]:
    return {rs["metadata"]["name"]: rs for rs in kubectl_json("get", RS, "-n", namespace)["items"]}


def image_of(rs: dict[str, Any]) -> str:
    return str(rs["spec"]["template"]["spec"]["containers"][0]["image"])


def condition(d: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in (d.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


def rolled_out(namespace: str, replicas: int, image: str, name: str = "web") -> dict[str, Any]:
    """Wait until the Deployment reports a finished rollout to `image`."""
    def done() -> dict[str, Any] | None:
        d = deployment(namespace, name)
        s = d.get("status") or {}
        finished = (s.get("observedGeneration") == d["metadata"]["generation"]
                    and all(s.get(k, 0) == replicas for k in ("replicas", "updatedReplicas", "availableReplicas"))
                    and condition(d, "Progressing").get("reason") == "NewReplicaSetAvailable")
        current = [rs for rs in sets(namespace).values()
                   if image_of(rs) == image and rs["spec"]["replicas"] == replicas]
        return d if finished and current else None
    return wait_for(done, timeout=120, what=f"deployment {name} rolled out to {image}")


def set_image(namespace: str, image: str, name: str = "web") -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}}
    kubectl("patch", DEPLOY, name, "-n", namespace, "--type=merge", "-p", json.dumps(patch))


def live_pods(watch: Watch) -> int:
    return sum(1 for p in watch.current.values() if not p["metadata"].get("deletionTimestamp"))


def scaling_messages(namespace: str) -> list[str]:
    events = kubectl_json("get", "events", "-n", namespace, "--field-selector", "involvedObject.kind=Deployment")
    return [e["message"] for e in events["items"] if e["reason"] == "ScalingReplicaSet"]


def test_rolling_update_then_rollback_reuses_the_old_replica_set(controllers: Operator, namespace: str) -> None:
    apply(manifest(), namespace)
    d = rolled_out(namespace, 4, "registry.local/web:1")
    assert d["metadata"]["annotations"][REVISION] == "1"
    [first] = sets(namespace).values()
    template_hash = first["metadata"]["labels"]["pod-template-hash"]
    assert first["metadata"]["name"] == f"web-{template_hash}"
    assert first["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": template_hash}
    assert first["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] == "5"  # 4 + 25% up
    assert condition(d, "Available")["reason"] == "MinimumReplicasAvailable"
    assert d["status"]["selector"] == "app=web"

    set_image(namespace, "registry.local/web:2")
    d = rolled_out(namespace, 4, "registry.local/web:2")
    assert d["metadata"]["annotations"][REVISION] == "2"
    by_name = sets(namespace)
    assert len(by_name) == 2 and by_name[first["metadata"]["name"]]["spec"]["replicas"] == 0

    # Rollback, as `kubectl rollout undo` does it: revision 1's template back; its ReplicaSet returns.
    set_image(namespace, "registry.local/web:1")
    d = rolled_out(namespace, 4, "registry.local/web:1")
    assert len(sets(namespace)) == 2, "the old ReplicaSet is reused, not a third one created"
    back = sets(namespace)[first["metadata"]["name"]]
    assert back["metadata"]["annotations"][REVISION] == "3"
    assert back["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
    assert d["metadata"]["annotations"][REVISION] == "3"
    messages = wait_for(lambda: (m := scaling_messages(namespace)) and len(m) >= 4 and m, what="scaling events")
    assert f"Scaled up replica set {first['metadata']['name']} from 0 to 4" in messages
    assert any(m.startswith(f"Scaled down replica set {first['metadata']['name']} from ") for m in messages)


def ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_surge_and_unavailability_bounds_hold_at_every_pod_event(controllers: Operator, namespace: str) -> None:
    """maxSurge 1 / maxUnavailable 0 on 4 replicas: at no pod event are there more than 5 pods that are
    not terminating, nor fewer than 4 ready ones (replaying every event of the watch)."""
    apply(manifest(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}),
          namespace)
    rolled_out(namespace, 4, "registry.local/web:1")
    with Watch(ENV, f"/api/v1/namespaces/{namespace}/pods") as pods:
        pods.wait(lambda w: sum(ready(p) for p in w.current.values()) == 4, what="the 4 ready pods listed")
        set_image(namespace, "registry.local/web:2")
        rolled_out(namespace, 4, "registry.local/web:2")
    state: dict[str, dict[str, Any]] = {}
    most, fewest_ready, listed = 0, 4, False
    for kind, pod in pods.events:
        name = pod["metadata"]["name"]
        if kind == "DELETED":
            state.pop(name, None)
        else:
            state[name] = pod
        serving = [p for p in state.values() if not p["metadata"].get("deletionTimestamp")]
        listed = listed or sum(ready(p) for p in serving) == 4  # the watch's initial ADDED events are in
        if listed:
            most = max(most, len(serving))
            fewest_ready = min(fewest_ready, sum(ready(p) for p in serving))
    assert most == 5, f"the surge is used but never exceeded: peak {most}"
    assert fewest_ready == 4, f"maxUnavailable 0: ready pods fell to {fewest_ready}"
    created = [p for p in pods.ever_added.values() if "registry.local/web:2" in json.dumps(p["spec"])]
    assert len(created) == 4


def test_pause_holds_the_rollout_and_resume_releases_it(controllers: Operator, namespace: str) -> None:
    apply(manifest(replicas=2), namespace)
    rolled_out(namespace, 2, "registry.local/web:1")
    kubectl("patch", DEPLOY, "web", "-n", namespace, "--type=merge", "-p", '{"spec": {"paused": true}}')
    wait_for(lambda: condition(deployment(namespace), "Progressing").get("reason") == "DeploymentPaused",
             what="Progressing Unknown DeploymentPaused")
    assert condition(deployment(namespace), "Progressing")["status"] == "Unknown"
    set_image(namespace, "registry.local/web:2")
    kubectl("scale", DEPLOY, "web", "-n", namespace, "--replicas=3")  # scaling still works while paused
    wait_for(lambda: [rs["spec"]["replicas"] for rs in sets(namespace).values()] == [3], what="scaled while paused")
    assert len(sets(namespace)) == 1, "paused: no new ReplicaSet"
    kubectl("patch", DEPLOY, "web", "-n", namespace, "--type=merge", "-p", '{"spec": {"paused": false}}')
    rolled_out(namespace, 3, "registry.local/web:2")


def test_recreate_never_runs_old_and_new_pods_together(controllers: Operator, namespace: str) -> None:
    apply(manifest(replicas=3, strategy={"type": "Recreate"}), namespace)
    rolled_out(namespace, 3, "registry.local/web:1")
    with Watch(ENV, f"/api/v1/namespaces/{namespace}/pods") as pods:
        pods.wait(lambda w: live_pods(w) == 3, what="the 3 pods listed")
        set_image(namespace, "registry.local/web:2")
        rolled_out(namespace, 3, "registry.local/web:2")
    images: dict[str, str] = {}
    alive: set[str] = set()
    for kind, name, uid in pods.log:
        if kind == "DELETED":
            alive.discard(name)
            continue
        images[name] = json.dumps(pods.ever_added[uid]["spec"]["containers"][0]["image"])
        alive.add(name)
        assert len({images[n] for n in alive}) == 1, f"old and new pods alive together: {sorted(alive)}"


def test_history_limit_and_scaling_while_paused(controllers: Operator, namespace: str) -> None:
    apply(manifest(replicas=2, revisionHistoryLimit=1), namespace)
    rolled_out(namespace, 2, "registry.local/web:1")
    for version in (2, 3):
        set_image(namespace, f"registry.local/web:{version}")
        rolled_out(namespace, 2, f"registry.local/web:{version}")
    wait_for(lambda: len(sets(namespace)) == 2, what="history cut to one old ReplicaSet")
    assert {image_of(rs) for rs in sets(namespace).values()} == {"registry.local/web:2", "registry.local/web:3"}

    # Paused with a new template pending: a scale goes to the only active ReplicaSet, no rollout starts.
    kubectl("patch", DEPLOY, "web", "-n", namespace, "--type=merge", "-p",
            json.dumps({"spec": {"paused": True, "replicas": 10, "template": {
                "spec": {"containers": [{"name": "web", "image": "registry.local/web:4"}]}}}}))
    wait_for(lambda: sum(rs["spec"]["replicas"] for rs in sets(namespace).values()) == 10,
             what="paused scale to 10 on the only active ReplicaSet")
    # Paused, the pending template has no ReplicaSet: both existing ones count as old for the history
    # limit of 1, and the empty revision 2 goes (cleanupDeployment runs in a paused sync).
    wait_for(lambda: {image_of(rs): rs["spec"]["replicas"] for rs in sets(namespace).values()} == {
        "registry.local/web:3": 10}, what="revision 2 cleaned up while paused")


def test_schema_refuses_what_apps_v1_refuses(cluster: Any, namespace: str) -> None:
    def refused(spec: dict[str, Any], fragment: str) -> None:
        result = apply(manifest(**spec), namespace, check=False)
        assert result.returncode != 0 and fragment in result.stderr, (spec, result.stderr)

    refused({"selector": {"matchLabels": {"app": "other"}}}, "must match")
    refused({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}},
            "may not be 0 when `maxSurge` is 0")
    refused({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "150%"}}},
            "must not be greater than 100%")
    refused({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "lots"}}}, "a valid IntOrString")
    refused({"strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}},
            "may not be specified when strategy `type` is 'Recreate'")
    refused({"progressDeadlineSeconds": 5, "minReadySeconds": 5}, "must be greater than minReadySeconds")
    refused({"replicas": -1}, "replicas")
    # Upstream's defaults fill what the manifest leaves out.
    apply(manifest(name="plain", replicas=0), namespace)
    spec = kubectl_json("get", DEPLOY, "plain", "-n", namespace)["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
    assert (spec["revisionHistoryLimit"], spec["progressDeadlineSeconds"], spec["minReadySeconds"]) == (10, 600, 0)
    moved = manifest(name="plain", replicas=0)
    moved["spec"]["selector"] = {"matchLabels": {"app": "plain", "tier": "x"}}
    moved["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    result = apply(moved, namespace, check=False)
    assert result.returncode != 0 and "field is immutable" in result.stderr, result.stderr


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`kubectl kubeplane ...`: the CLI as a kubectl plugin (kubectl-kubeplane on PATH)."""
    result = subprocess.run([str(BIN / "kubectl"), "kubeplane", *args], env=ENV, capture_output=True, text=True,
                            timeout=180)
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl kubeplane {' '.join(args)}: {result.stderr}")
    return result


def test_rollout_verbs_as_kubectl_gives_them(controllers: Operator, namespace: str) -> None:
    apply(manifest(replicas=2), namespace)
    target = ("deployment/web", "-n", namespace)
    assert cli("rollout", "status", *target, "--timeout=120").stdout.splitlines()[-1] == \
        'deployment "web" successfully rolled out'
    set_image(namespace, "registry.local/web:2")
    cli("rollout", "status", *target, "--timeout=120")
    rolled_out(namespace, 2, "registry.local/web:2")
    assert cli("rollout", "history", *target).stdout.split("\n")[1:4] == [
        "REVISION  CHANGE-CAUSE", "1         <none>", "2         <none>"]

    assert cli("rollout", "undo", *target).stdout.strip() == "deployment.apps.kubeplane.dev/web rolled back"
    d = rolled_out(namespace, 2, "registry.local/web:1")
    assert d["metadata"]["annotations"][REVISION] == "3"
    result = cli("rollout", "undo", *target, "--to-revision=3")
    assert "skipped rollback (current template already matches revision 3)" in result.stdout

    assert cli("rollout", "pause", *target).stdout.strip() == "deployment.apps.kubeplane.dev/web paused"
    refused = cli("rollout", "undo", *target, check=False)
    assert refused.returncode != 0 and "you cannot rollback a paused deployment" in refused.stderr
    refused = cli("rollout", "restart", *target, check=False)
    assert refused.returncode != 0 and "can't restart paused deployment" in refused.stderr
    assert cli("rollout", "resume", *target).stdout.strip() == "deployment.apps.kubeplane.dev/web resumed"

    before = {p["metadata"]["uid"] for p in kubectl_json("get", "pods", "-n", namespace, "-l", "app=web")["items"]}
    assert cli("rollout", "restart", *target).stdout.strip() == "deployment.apps.kubeplane.dev/web restarted"
    cli("rollout", "status", *target, "--timeout=120")
    wait_for(lambda: {p["metadata"]["uid"] for p in kubectl_json("get", "pods", "-n", namespace, "-l", "app=web")[
        "items"] if not p["metadata"].get("deletionTimestamp")}.isdisjoint(before), what="every pod replaced")
    missing = cli("rollout", "status", "deployment/nope", "-n", namespace, check=False)
    assert missing.returncode != 0 and "not found" in missing.stderr


def test_progress_deadline_policy_rollback_returns_to_the_last_complete_revision(
        controllers: Operator, namespace: str) -> None:
    """★ kubeplane's opt-in: a rollout that cannot progress is rolled back when the deadline passes,
    and the condition and a Warning event say which pods blocked it and why."""
    apply(manifest(replicas=2, progressDeadlineSeconds=5, progressDeadlinePolicy="Rollback"), namespace)
    rolled_out(namespace, 2, "registry.local/web:1")
    wait_for(lambda: deployment(namespace)["metadata"]["annotations"].get(
        "apps.kubeplane.dev/last-complete-revision") == "1", what="revision 1 noted as complete")
    kubectl("patch", DEPLOY, "web", "-n", namespace, "--type=merge", "-p", json.dumps({"spec": {"template": {"spec": {
        "containers": [{"name": "web", "image": "registry.local/web:2"}],
        "nodeSelector": {"kubeplane.dev/nowhere": "true"}}}}}))
    try:
        events = wait_for(lambda: [e for e in kubectl_json("get", "events", "-n", namespace)["items"]
                                   if e["reason"] == "ProgressDeadlineRollback"], what="the rollback event",
                          timeout=120)
    except AssertionError as e:
        seen = deployment(namespace)
        replica_sets = [(n, rs["spec"]["replicas"], rs.get("status")) for n, rs in sets(namespace).items()]
        said = [(x["reason"], x["message"]) for x in kubectl_json("get", "events", "-n", namespace)["items"]]
        raise AssertionError(f"{e}\nstatus: {json.dumps(seen.get('status'))}\ntemplate: "
                             f"{json.dumps(seen['spec']['template'])}\nsets: {replica_sets}\nevents: {said}") from None
    message = events[0]["message"]
    assert "has timed out progressing. Rolled back to revision 1. Blocking pods: web-" in message, message
    assert "(Unschedulable)" in message, message
    d = rolled_out(namespace, 2, "registry.local/web:1")
    assert d["metadata"]["annotations"][REVISION] == "3"  # revision 1's ReplicaSet, back as revision 3
    assert "nodeSelector" not in d["spec"]["template"]["spec"]


def test_a_lagging_deployment_watch_cannot_hide_a_stuck_rollout(controllers: Operator, namespace: str) -> None:
    """The operator's Deployment watch falls behind just as a rollout starts (held at a relay): it has
    seen the new template, not the NewReplicaSetCreated it then wrote, so the ReplicaSet and pod events
    that follow wake it with a cache saying the last rollout finished. A status written from that copy
    would put NewReplicaSetAvailable back, and a finished rollout is exempt from the deadline: the
    stuck rollout would never report ProgressDeadlineExceeded. (The CI flake of #12, made to land.)"""
    path = f"/apis/{API_VERSION}/namespaces/{namespace}/deployments/web"
    with ApiRelay(KUBECONFIG) as relay:
        controllers.stop()
        relayed = Operator("controllers", env={"KUBECONFIG": str(relay.kubeconfig)},
                           log_name="test-controllers-deployment-lag")
        stalled = None
        try:
            relayed.start()
            apply(manifest(replicas=2, progressDeadlineSeconds=5), namespace)
            rolled_out(namespace, 2, "registry.local/web:1")
            # The new rollout's first write to the Deployment (its revision annotation) waits at the
            # relay: by then the operator has seen the new template and created the new ReplicaSet.
            annotate = relay.hold("PATCH", f"{path}$", times=1)
            kubectl("patch", DEPLOY, "web", "-n", namespace, "--type=merge", "-p", json.dumps(
                {"spec": {"template": {"spec": {"nodeSelector": {"kubeplane.dev/nowhere": "true"}}}}}))
            annotate.wait_held(1, timeout=60)
            stalled = relay.stall("GET", r"/deployments$", query="watch=true")
            annotate.release()
            wait_for(lambda: [s for s in relay.seen("PATCH", f"{path}/status$") if s.status == 200],
                     what="NewReplicaSetCreated written (the operator's cache does not see it)")
            # Wait for the surge pod to be counted in the new set's status, then for a sync after that
            # (the set's status event wakes the Deployment): it plans from the stale copy.
            new = lambda: [rs for rs in sets(namespace).values() if rs["spec"]["replicas"] == 1]  # noqa: E731
            wait_for(lambda: new() and (new()[0].get("status") or {}).get("replicas") == 1,
                     what="the surge pod counted by the new ReplicaSet")
            since = time.monotonic()
            wait_for(lambda: relay.seen("PATCH", f"{path}(/status)?$", since=since),
                     what="a sync of the Deployment planned from the stale cache")
            stalled.release()
            reason = lambda: condition(deployment(namespace), "Progressing").get("reason")  # noqa: E731
            wait_for(lambda: reason() == "ProgressDeadlineExceeded", timeout=60,
                     what="ProgressDeadlineExceeded (the reason stays what the stale sync wrote)")
        finally:
            if stalled is not None:
                stalled.release()
            relayed.stop()
            controllers.start()


def test_deleting_a_deployment_deletes_its_replica_sets_and_pods(controllers: Operator, namespace: str) -> None:
    """The ReplicaSets carry the Deployment as controller (blockOwnerDeletion), their pods the
    ReplicaSets: the garbage collector removes the whole tree."""
    apply(manifest(replicas=2), namespace)
    rolled_out(namespace, 2, "registry.local/web:1")
    [rs] = sets(namespace).values()
    [ref] = rs["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["controller"], ref["blockOwnerDeletion"]) == ("Deployment", "web", True, True)
    kubectl("delete", DEPLOY, "web", "-n", namespace, "--wait=true", "--timeout=60s")
    wait_for(lambda: not sets(namespace), what="the ReplicaSets collected")
    wait_for(lambda: not [p for p in kubectl_json("get", "pods", "-n", namespace)["items"]
                          if not p["metadata"].get("deletionTimestamp")], what="the pods collected")
