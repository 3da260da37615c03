"""kubeplane's Job and CronJob on kind, with real containers (the e2e workload, tests/e2e/httpserver):

- an Indexed Job whose containers exit 0 on their own: every index runs once, each container saw its
  own JOB_COMPLETION_INDEX (the kubelet resolved the controller's downward-API env), the Job completes;
- a Job whose container is told to exit 3 (tests/podexit.py's kind driver: the workload's /exit,
  through the API server's pod proxy) fails with BackoffLimitExceeded, the real exit code recorded by
  the kubelet;
- a CronJob every minute runs on schedule and its run completes.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import apply, http_container, kubectl, kubectl_json, wait_for
from tests.podexit import end_pod

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300), pytest.mark.usefixtures("kubeplane")]

KPJOB, KPCJ = "jobs.batch.kubeplane.dev", "cronjobs.batch.kubeplane.dev"


def workload(**env: str) -> dict[str, Any]:
    container = http_container("work")
    container["env"] = [*container["env"], *({"name": k, "value": v} for k, v in env.items())]
    if env.get("EXIT_CODE"):
        container.pop("readinessProbe")  # a batch container never serves
    return {"restartPolicy": "Never", "terminationGracePeriodSeconds": 5, "containers": [container]}


def job(name: str, pod_spec: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch.kubeplane.dev/v1alpha1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"spec": pod_spec}, **spec}}


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or []
                 if c["type"] == type_ and c["status"] == "True"), None)


def pods_of(namespace: str, job_name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kubectl_json("get", "pods", "-n", namespace, "-l",
                                               f"batch.kubernetes.io/job-name={job_name}")["items"]
    return items


def test_an_indexed_job_of_real_containers_completes(namespace: str) -> None:
    apply(job("idx", workload(EXIT_CODE="0", EXIT_AFTER="1s"), completions=3, parallelism=3,
              completionMode="Indexed"), namespace)
    done = wait_for(lambda: condition(j := kubectl_json("get", KPJOB, "idx", "-n", namespace), "Complete") and j,
                    timeout=180, what="the Indexed Job complete")
    assert done["status"]["completedIndexes"] == "0-2" and done["status"]["succeeded"] == 3
    seen = {}
    for pod in pods_of(namespace, "idx"):
        index = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (pod["status"]["phase"], terminated["exitCode"]) == ("Succeeded", 0)
        log = kubectl("logs", "-n", namespace, pod["metadata"]["name"]).stdout
        assert f"index={index}" in log, log
        seen[index] = pod["spec"]["hostname"]
    assert seen == {"0": "idx-0", "1": "idx-1", "2": "idx-2"}


def test_a_container_told_to_fail_fails_the_job(namespace: str) -> None:
    apply(job("told", workload(), backoffLimit=0), namespace)
    pod = wait_for(lambda: [p for p in pods_of(namespace, "told")
                            if any(c["type"] == "Ready" and c["status"] == "True"
                                   for c in p["status"].get("conditions") or [])],
                   timeout=120, what="the Job's pod ready")[0]
    end_pod(kubectl, namespace, pod["metadata"]["name"], 3, real=True)
    failed = wait_for(lambda: condition(j := kubectl_json("get", KPJOB, "told", "-n", namespace), "Failed") and j,
                      timeout=120, what="the Job failed")
    assert condition(failed, "Failed")["reason"] == "BackoffLimitExceeded"
    assert failed["status"]["failed"] == 1
    ended = kubectl_json("get", "pod", pod["metadata"]["name"], "-n", namespace)
    assert ended["status"]["phase"] == "Failed"
    assert ended["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3


def test_a_cronjob_runs_on_schedule(namespace: str) -> None:
    apply({"apiVersion": "batch.kubeplane.dev/v1alpha1", "kind": "CronJob", "metadata": {"name": "minutely"},
           "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {
               "template": {"spec": workload(EXIT_CODE="0", EXIT_AFTER="1s")}}}}}, namespace)
    cj = wait_for(lambda: (c := kubectl_json("get", KPCJ, "minutely", "-n", namespace))
                  .get("status", {}).get("lastSuccessfulTime") and c, timeout=150, what="a run on schedule completed")
    assert cj["status"]["lastScheduleTime"].endswith(":00Z")  # on the minute
    jobs = kubectl_json("get", KPJOB, "-n", namespace)["items"]
    assert jobs and all(j["metadata"]["name"].startswith("minutely-") for j in jobs)
