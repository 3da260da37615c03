"""PodViews: one stream of pod events keeps every view the scheduler reads (by node, nominated,
pending, group members) exactly as the pod's latest state says, through its whole life."""

from __future__ import annotations

import copy
from typing import Any

from operators.scheduler import gang
from operators.scheduler.informers import Buckets, ByName, PodViews
from operators.scheduler.operator import is_pending_for_us


def lifecycle_pod() -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {gang.POD_GROUP_LABEL: "g"}},
        "spec": {"schedulerName": "kubeplane-scheduler", "containers": [{"name": "c"}]},
        "status": {"phase": "Pending"},
    }


def views_of(v: PodViews) -> dict[str, dict[Any, list[str]]]:
    def names(b: Buckets) -> dict[Any, list[str]]:
        return {k: sorted(p["metadata"]["name"] for p in b.get(k)) for k in b.keys()}
    return {"by_node": names(v.by_node), "nominated": names(v.nominated), "pending": names(v.pending),
            "members": names(v.group_members)}


def test_a_pod_moves_between_views_as_it_is_nominated_bound_finished_and_deleted() -> None:
    v = PodViews(is_pending_for_us)
    pod = lifecycle_pod()
    v.apply("ADDED", pod, None)
    assert views_of(v) == {"by_node": {}, "nominated": {}, "pending": {("ns", "p"): ["p"]},
                           "members": {("ns", "g"): ["p"]}}

    nominated = copy.deepcopy(pod)
    nominated["status"]["nominatedNodeName"] = "n1"
    v.apply("MODIFIED", nominated, pod)
    assert views_of(v)["nominated"] == {"n1": ["p"]}

    bound = copy.deepcopy(nominated)
    bound["spec"]["nodeName"] = "n1"
    v.apply("MODIFIED", bound, nominated)
    assert views_of(v) == {"by_node": {"n1": ["p"]}, "nominated": {}, "pending": {},
                           "members": {("ns", "g"): ["p"]}}

    done = copy.deepcopy(bound)
    done["status"]["phase"] = "Succeeded"
    v.apply("MODIFIED", done, bound)
    assert views_of(v) == {"by_node": {}, "nominated": {}, "pending": {}, "members": {}}

    v.apply("DELETED", done, done)
    assert views_of(v) == {"by_node": {}, "nominated": {}, "pending": {}, "members": {}}


def test_other_schedulers_pods_only_occupy_nodes() -> None:
    v = PodViews(is_pending_for_us)
    theirs = lifecycle_pod()
    theirs["spec"]["schedulerName"] = "default-scheduler"
    theirs["metadata"]["labels"] = {}
    v.apply("ADDED", theirs, None)
    assert views_of(v) == {"by_node": {}, "nominated": {}, "pending": {}, "members": {}}
    bound = copy.deepcopy(theirs)
    bound["spec"]["nodeName"] = "n2"
    v.apply("MODIFIED", bound, theirs)
    assert views_of(v)["by_node"] == {"n2": ["p"]}
    # A deletion event carries the last state; the old one is what the views hold.
    v.apply("DELETED", bound, bound)
    assert len(v.by_node) == 0 and v.by_node.get("n2") is None


def test_two_pods_share_a_bucket_and_leave_it_one_by_one() -> None:
    v = PodViews(is_pending_for_us)
    a, b = lifecycle_pod(), lifecycle_pod()
    b["metadata"].update(name="q", uid="u2")
    for pod in (a, b):
        pod["spec"]["nodeName"] = "n1"
        v.apply("ADDED", pod, None)
    assert views_of(v)["by_node"] == {"n1": ["p", "q"]}
    v.apply("DELETED", a, a)
    assert views_of(v)["by_node"] == {"n1": ["q"]}
    assert "n1" in v.by_node


def test_by_name_keeps_the_latest_value() -> None:
    labels = ByName(lambda ns: ns["metadata"].get("labels") or {})
    labels.apply("ADDED", {"metadata": {"name": "ns"}}, None)
    labels.apply("MODIFIED", {"metadata": {"name": "ns", "labels": {"team": "a"}}}, None)
    assert list(labels.get("ns")) == [{"team": "a"}] and list(labels.keys()) == ["ns"]
    labels.apply("DELETED", {"metadata": {"name": "ns"}}, None)
    assert "ns" not in labels and labels.get("ns") is None
