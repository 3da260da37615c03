"""The embedded cluster's pods end on command (hack/kwok/pod-exit.yaml): an annotation ends a pod with an
exit code, and a Job's pods, without it, run until told (kwokctl's pod-complete stage is not installed)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from tests.integration.conftest import apply, kubectl, kubectl_json
from tests.kubectl import wait_for
from tests.podexit import EXIT_AFTER, EXIT_CODE, end_pod


def _pod(name: str, annotations: dict[str, str] | None = None, containers: int = 1) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "annotations": annotations or {}},
                       "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                                "containers": [{"name": f"c{i}", "image": "app"} for i in range(containers)]}})


def _get(namespace: str, name: str) -> Any:
    return kubectl_json("-n", namespace, "get", "pod", name)


def test_an_annotated_live_pod_ends_with_its_exit_code(namespace: str) -> None:
    apply(_pod("worker", containers=2), namespace)
    wait_for(lambda: _get(namespace, "worker")["status"].get("phase") == "Running", what="worker Running")
    end_pod(kubectl, namespace, "worker", 3)
    pod = wait_for(lambda: (p := _get(namespace, "worker"))["status"].get("phase") == "Failed" and p,
                   what="worker Failed")
    states = [c["state"]["terminated"] for c in pod["status"]["containerStatuses"]]
    assert [(s["exitCode"], s["reason"]) for s in states] == [(3, "Error"), (3, "Error")]
    ready = {c["type"]: c for c in pod["status"]["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "ContainersNotReady")


def test_a_template_annotation_ends_the_pod_after_the_delay(namespace: str) -> None:
    apply(_pod("once", {EXIT_CODE: "0", EXIT_AFTER: "3s"}),
                  namespace)
    pod = wait_for(lambda: (p := _get(namespace, "once"))["status"].get("phase") == "Succeeded" and p,
                   what="once Succeeded")
    state = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (state["exitCode"], state["reason"]) == (0, "Completed")
    started, finished = state["startedAt"], state["finishedAt"]

    gap = (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()
    assert gap >= 3, (started, finished)


def test_a_jobs_pod_runs_until_told(namespace: str) -> None:
    apply({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
                   "spec": {"template": {"spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                                                  "containers": [{"name": "c", "image": "app"}]}}}}, namespace)
    pods = lambda: kubectl_json("-n", namespace, "get", "pods", "-l", "job-name=j")["items"]  # noqa: E731
    wait_for(lambda: pods() and pods()[0]["status"].get("phase") == "Running", what="the Job's pod Running")
    # Without the annotation nothing ends it: the Job is still active once its pod has been Running a while
    # (kwokctl's pod-complete would have completed it at once); then the annotation completes it.
    wait_for(lambda: kubectl_json("-n", namespace, "get", "job", "j")["status"].get("ready") == 1, what="ready 1")
    assert kubectl_json("-n", namespace, "get", "job", "j")["status"].get("succeeded") is None
    end_pod(kubectl, namespace, pods()[0]["metadata"]["name"])
    wait_for(lambda: kubectl_json("-n", namespace, "get", "job", "j")["status"].get("succeeded") == 1,
             what="the Job counts its pod succeeded")
