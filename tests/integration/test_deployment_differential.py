"""Differential: the same Deployment manifest as apps/v1 (kube-controller-manager) and as kubeplane,
through the same sequence (create, image change, scale, pause, change while paused, resume, undo),
compared step by step.

What is compared could differ between two implementations: how many ReplicaSets exist and the
spec/status replicas of each revision, the revision and revision-history annotations, the
Deployment's status counts, its conditions (type, status, reason, message with ReplicaSet names
replaced by their revision), and the event reasons and the first scale-up message. Never hashes,
uids or timestamps. How many steps a rollout takes depends on when pods turn Ready, so scaling
messages after the first are compared as a set of reasons only.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.integration import differential
from tests.integration.conftest import Operator
from tests.integration.differential import Flavour, Side

UPSTREAM = Flavour("upstream", "apps/v1", "deployments.apps")
KUBEPLANE = Flavour("kubeplane", "apps.kubeplane.dev/v1alpha1", "deployments.apps.kubeplane.dev")
SETS = {"upstream": "replicasets.apps", "kubeplane": "replicasets.apps.kubeplane.dev"}
REVISION = "deployment.kubernetes.io/revision"
HISTORY = "deployment.kubernetes.io/revision-history"


def manifest(image: str = "registry.local/web:1", replicas: int = 4) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": image}]}}},
    }


def replica_sets(s: Side) -> list[dict[str, Any]]:
    return list(json.loads(s.kubectl("get", SETS[s.flavour.name], "-o", "json"))["items"])


def by_revision(s: Side) -> dict[str, str]:
    """ReplicaSet name -> `rev<N>`, to compare messages that name ReplicaSets."""
    return {rs["metadata"]["name"]: f"rev{rs['metadata'].get('annotations', {}).get(REVISION, '?')}"
            for rs in replica_sets(s)}


def masked(text: str, names: dict[str, str]) -> str:
    for name, revision in sorted(names.items(), key=lambda item: -len(item[0])):
        text = text.replace(name, revision)
    return re.sub(r"\bweb-[a-z0-9]+\b", "web-?", text)


def snapshot(s: Side) -> dict[str, Any]:
    d = s.get("web")
    names = by_revision(s)
    status = d.get("status") or {}
    return {
        "revision": d["metadata"].get("annotations", {}).get(REVISION),
        "sets": sorted((rs["metadata"].get("annotations", {}).get(REVISION),
                        rs["metadata"].get("annotations", {}).get(HISTORY),
                        rs["spec"]["replicas"], (rs.get("status") or {}).get("replicas", 0))
                       for rs in replica_sets(s)),
        "status": {k: status.get(k, 0) for k in ("replicas", "updatedReplicas", "readyReplicas",
                                                 "availableReplicas", "unavailableReplicas")},
        "conditions": sorted((c["type"], c["status"], c.get("reason"), masked(c.get("message", ""), names))
                             for c in status.get("conditions") or []),
        "event_reasons": sorted(s.event_reasons("web")),
    }


def complete(s: Side, replicas: int) -> bool:
    d = s.get("web")
    status = d.get("status") or {}
    progressing = [c for c in status.get("conditions") or [] if c["type"] == "Progressing"]
    return (status.get("observedGeneration") == d["metadata"]["generation"]
            and all(status.get(k, 0) == replicas for k in ("replicas", "updatedReplicas", "availableReplicas"))
            and status.get("unavailableReplicas", 0) == 0
            and bool(progressing) and progressing[0].get("reason") == "NewReplicaSetAvailable"
            and sum(rs["spec"]["replicas"] for rs in replica_sets(s)) == replicas
            and sum((rs.get("status") or {}).get("replicas", 0) for rs in replica_sets(s)) == replicas)


def set_ready(s: Side, pod: str, ready: bool) -> None:
    """Flip a pod's Ready condition through the status subresource."""
    conditions = s.get(pod, "pods")["status"]["conditions"]
    index = next(i for i, c in enumerate(conditions) if c["type"] == "Ready")
    value = {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": "2026-01-01T00:00:00Z"}
    s.kubectl("patch", "pod", pod, "--subresource=status", "--type=json", "-p",
              json.dumps([{"op": "replace", "path": f"/status/conditions/{index}", "value": value}]))


def set_image(s: Side, image: str) -> None:
    s.kubectl("patch", s.flavour.resource, "web", "--type=merge", "-p",
              json.dumps({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}}))


def paused_flag(s: Side, paused: bool) -> None:
    s.kubectl("patch", s.flavour.resource, "web", "--type=merge", "-p", json.dumps({"spec": {"paused": paused}}))


def release(s: Side) -> None:
    s.apply_workload(manifest())
    s.wait(lambda: complete(s, 4), what="first rollout")
    s.wait(lambda: "ScalingReplicaSet" in s.event_reasons("web"), what="the scale-up event")
    s.record("created", **snapshot(s),
             first_scale=sorted(masked(m, by_revision(s)) for m in s.event_messages("web", "ScalingReplicaSet")))

    # A pod turns unready on command (a status patch: KWOK leaves it so): availability drops below
    # replicas - maxUnavailable (4 - 1 at 25%) only when two are; with one, Available stays True.
    victims = sorted(s.live_pods())[:2]
    for victim in victims:
        set_ready(s, victim, False)
    s.wait(lambda: s.status("web").get("availableReplicas") == 2, what="two pods unavailable")
    s.record("two pods unready", **snapshot(s))
    for victim in victims:
        set_ready(s, victim, True)
    s.wait(lambda: complete(s, 4), what="ready again")
    s.record("ready again", **snapshot(s))

    set_image(s, "registry.local/web:2")
    s.wait(lambda: complete(s, 4) and s.get("web")["metadata"]["annotations"].get(REVISION) == "2",
           what="rollout to v2")
    s.record("image changed", **snapshot(s))

    s.kubectl("scale", s.flavour.resource, "web", "--replicas=6")
    s.wait(lambda: complete(s, 6), what="scaled to 6")
    s.record("scaled", **snapshot(s))

    paused_flag(s, True)
    set_image(s, "registry.local/web:3")
    s.wait(lambda: any(c.get("reason") == "DeploymentPaused"
                       for c in (s.get("web").get("status") or {}).get("conditions") or [])
           and s.get("web")["status"].get("observedGeneration") == s.get("web")["metadata"]["generation"],
           what="paused")
    s.record("changed while paused", **snapshot(s))

    paused_flag(s, False)
    s.wait(lambda: complete(s, 6) and s.get("web")["metadata"]["annotations"].get(REVISION) == "3",
           what="resumed rollout to v3")
    s.record("resumed", **snapshot(s))

    set_image(s, "registry.local/web:2")  # `rollout undo --to-revision=2` writes revision 2's template back
    s.wait(lambda: complete(s, 6) and s.get("web")["metadata"]["annotations"].get(REVISION) == "4",
           what="rolled back to v2")
    s.record("undone", **snapshot(s))


def test_a_release_follows_the_same_trajectory(controllers: Operator) -> None:
    results = differential.run(release, (UPSTREAM, KUBEPLANE))
    differential.assert_same(results)
    facts = dict(results["upstream"])  # not vacuous: what upstream does, as documented
    assert facts["created"]["first_scale"] == ["Scaled up replica set rev1 from 0 to 4"]
    assert ["Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability."] in \
        facts["two pods unready"]["conditions"]
    assert ["Progressing", "Unknown", "DeploymentPaused", "Deployment is paused"] in \
        facts["changed while paused"]["conditions"]
    assert facts["undone"]["sets"] == [["1", None, 0, 0], ["3", None, 0, 0], ["4", "2", 6, 6]]


def stuck(s: Side) -> None:
    """A template whose pods can never start (no node matches): the deadline passes on both sides."""
    s.apply_workload({**manifest(replicas=2), "spec": {**manifest(replicas=2)["spec"], "progressDeadlineSeconds": 5}})
    s.wait(lambda: complete(s, 2), what="first rollout")
    s.kubectl("patch", s.flavour.resource, "web", "--type=merge", "-p", json.dumps(
        {"spec": {"template": {"spec": {"nodeSelector": {"kubeplane.dev/nowhere": "true"}}}}}))

    def timed_out() -> bool:
        conditions = (s.get("web").get("status") or {}).get("conditions") or []
        return any(c.get("reason") == "ProgressDeadlineExceeded" for c in conditions)
    s.wait(timed_out, what="the progress deadline to pass", timeout=90)
    s.wait(lambda: s.status("web").get("updatedReplicas") == 1, what="the one surge pod counted")
    s.record("deadline passed", **snapshot(s))


def test_a_rollout_that_cannot_progress_times_out_the_same_way(controllers: Operator) -> None:
    results = differential.run(stuck, (UPSTREAM, KUBEPLANE))
    differential.assert_same(results)
    facts = dict(results["upstream"])
    assert ["Progressing", "False", "ProgressDeadlineExceeded", "ReplicaSet \"rev2\" has timed out progressing."] in \
        facts["deadline passed"]["conditions"]
