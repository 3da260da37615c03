"""kubeplane's Job (batch.kubeplane.dev) on the embedded cluster, with pods that end when told
(tests/podexit.py, hack/kwok/pod-exit.yaml): completion, backoff to BackoffLimitExceeded, Indexed pods,
suspend and resume, refused specs, and exactly-once counting across an operator killed mid-count."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.faults.apirelay import ApiRelay
from tests.integration.conftest import ENV, KUBECONFIG, Operator, apply, kubectl, kubectl_json, wait_for
from tests.podexit import EXIT_AFTER, EXIT_CODE, end_pod
from tests.watch import Watch

KPJOB = "jobs.batch.kubeplane.dev"
FINALIZER = "batch.kubernetes.io/job-tracking"


def manifest(name: str, *, exit_code: int | None = 0, after: str = "1s", **spec: Any) -> dict[str, Any]:
    annotations = {} if exit_code is None else {EXIT_CODE: str(exit_code), EXIT_AFTER: after}
    return {"apiVersion": "batch.kubeplane.dev/v1alpha1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"metadata": {"annotations": annotations},
                                  "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                                           "containers": [{"name": "c", "image": "busybox"}]}},
                     **spec}}


def job(namespace: str, name: str) -> Any:
    return kubectl_json("-n", namespace, "get", KPJOB, name)


def conditions(j: Any) -> list[tuple[str, str, str]]:
    return [(c["type"], c["status"], c.get("reason", "")) for c in (j.get("status") or {}).get("conditions") or []]


def finished(namespace: str, name: str, type_: str, timeout: float = 90) -> Any:
    return wait_for(lambda: (j := job(namespace, name)) and any(c[0] == type_ and c[1] == "True"
                                                                   for c in conditions(j)) and j,
                    timeout=timeout, what=f"{name} {type_}")


def pods_of(namespace: str, name: str) -> list[Any]:
    selector = f"batch.kubernetes.io/job-name={name}"
    items: list[Any] = kubectl_json("-n", namespace, "get", "pods", "-l", selector)["items"]
    return items


def reasons(namespace: str, name: str) -> list[str]:
    events = kubectl_json("-n", namespace, "get", "events", "--field-selector", f"involvedObject.name={name}")["items"]
    return [e["reason"] for e in events]


def test_a_job_completes_and_counts_every_pod_once(controllers: Operator, namespace: str) -> None:
    with Watch(ENV, f"/api/v1/namespaces/{namespace}/pods") as pods:
        apply(manifest("pi", completions=3, parallelism=2), namespace)
        done = finished(namespace, "pi", "Complete")
    status = done["status"]
    assert (status["succeeded"], status.get("failed", 0), status["active"]) == (3, 0, 0)
    assert conditions(done) == [("SuccessCriteriaMet", "True", "CompletionsReached"),
                                ("Complete", "True", "CompletionsReached")]
    assert status["completionTime"] >= status["startTime"]
    assert len(pods.ever_added) == 3
    uid = done["metadata"]["uid"]
    assert done["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    for pod in pods_of(namespace, "pi"):
        assert pod["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] == uid
        assert FINALIZER not in (pod["metadata"].get("finalizers") or [])
        assert pod["metadata"]["name"].startswith("pi-")
    # Every pod was born with the finalizer: none could vanish uncounted.
    assert all(FINALIZER in (p["metadata"].get("finalizers") or []) for p in pods.ever_added.values())
    wait_for(lambda: "Completed" in reasons(namespace, "pi"), what="the Completed event")
    assert reasons(namespace, "pi").count("SuccessfulCreate") >= 1
    # kubectl's own columns through the plugin (a CRD column cannot compute STATUS or DURATION).
    table = kubectl("kubeplane", "get", "jobs", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"], table
    assert table[1].split()[:3] == ["pi", "Complete", "3/3"], table


def test_failures_back_off_then_exceed_the_limit(controllers: Operator, namespace: str) -> None:
    apply(manifest("flaky", exit_code=3, after="0s", backoffLimit=1), namespace)
    failed = finished(namespace, "flaky", "Failed", timeout=120)
    assert failed["status"]["failed"] == 2 and not failed["status"].get("succeeded")
    assert conditions(failed) == [("FailureTarget", "True", "BackoffLimitExceeded"),
                                  ("Failed", "True", "BackoffLimitExceeded")]
    assert "completionTime" not in failed["status"]
    pods = sorted(pods_of(namespace, "flaky"), key=lambda p: p["metadata"]["creationTimestamp"])
    assert len(pods) == 2
    first_end = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"]
    gap = (datetime.fromisoformat(pods[1]["metadata"]["creationTimestamp"])
           - datetime.fromisoformat(first_end)).total_seconds()
    assert gap >= 9, f"the replacement came {gap}s after the failure; the first backoff is 10s"
    wait_for(lambda: "BackoffLimitExceeded" in reasons(namespace, "flaky"), what="the warning event")


def test_an_indexed_job_runs_each_index_once(controllers: Operator, namespace: str) -> None:
    apply(manifest("idx", completions=3, parallelism=3, completionMode="Indexed"), namespace)
    done = finished(namespace, "idx", "Complete")
    assert done["status"]["completedIndexes"] == "0-2" and done["status"]["succeeded"] == 3
    by_index = {p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: p
                for p in pods_of(namespace, "idx")}
    assert sorted(by_index) == ["0", "1", "2"]
    for index, pod in by_index.items():
        assert pod["metadata"]["name"].startswith(f"idx-{index}-")
        assert pod["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == index
        assert pod["spec"]["hostname"] == f"idx-{index}"
        env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
        assert "JOB_COMPLETION_INDEX" in env


def test_suspend_and_resume(controllers: Operator, namespace: str) -> None:
    apply(manifest("later", exit_code=None, completions=2, parallelism=2, suspend=True), namespace)
    suspended = finished(namespace, "later", "Suspended")
    assert "startTime" not in suspended["status"] and not pods_of(namespace, "later")
    kubectl("-n", namespace, "patch", KPJOB, "later", "--type=merge", "-p", '{"spec":{"suspend":false}}')
    wait_for(lambda: len([p for p in pods_of(namespace, "later") if p["status"].get("phase") == "Running"]) == 2,
             what="two running pods")
    resumed = job(namespace, "later")
    assert ("Suspended", "False", "JobResumed") in conditions(resumed) and resumed["status"]["startTime"]
    # Suspending again deletes the active pods.
    kubectl("-n", namespace, "patch", KPJOB, "later", "--type=merge", "-p", '{"spec":{"suspend":true}}')
    wait_for(lambda: not [p for p in pods_of(namespace, "later") if not p["metadata"].get("deletionTimestamp")],
             what="the active pods deleted")
    wait_for(lambda: job(namespace, "later")["status"].get("active") == 0, what="active 0")
    assert ("Suspended", "True", "JobSuspended") in conditions(job(namespace, "later"))


def test_a_finished_job_is_deleted_after_its_ttl_with_its_pods(controllers: Operator, namespace: str) -> None:
    """The deletion time is the API server's deletionTimestamp (the foreground delete sets it before the Job
    goes), read from a watch, so a slow or busy machine cannot change the verdict."""
    jobs_path = f"/apis/batch.kubeplane.dev/v1alpha1/namespaces/{namespace}/jobs"
    with Watch(ENV, jobs_path) as jobs:
        apply(manifest("brief", completions=2, parallelism=2, ttlSecondsAfterFinished=5), namespace)
        done = finished(namespace, "brief", "Complete")
        jobs.wait(lambda w: "brief" not in w.current, what="the Job deleted")
    wait_for(lambda: not pods_of(namespace, "brief"), what="its pods deleted with it")
    completed = datetime.fromisoformat(done["status"]["completionTime"])
    deleted = [datetime.fromisoformat(o["metadata"]["deletionTimestamp"]) for _, o in jobs.events
               if o["metadata"].get("deletionTimestamp")]
    assert deleted, "the foreground delete's deletionTimestamp was never seen"
    assert (deleted[0] - completed).total_seconds() >= 5, (completed, deleted[0])


def test_bad_specs_are_refused_with_upstreams_message(cluster: Any, namespace: str) -> None:
    always = manifest("bad")
    always["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    out = apply(always, namespace, check=False)
    assert out.returncode != 0 and 'supported values: "OnFailure", "Never"' in out.stderr, out.stderr
    indexed = manifest("bad", completionMode="Indexed")
    out = apply(indexed, namespace, check=False)
    assert out.returncode != 0 and "when completion mode is Indexed" in out.stderr, out.stderr
    unknown = manifest("bad", completionz=2)  # a typo is refused, never silently ignored
    out = apply(unknown, namespace, check=False)
    assert out.returncode != 0 and 'unknown field "spec.completionz"' in out.stderr, out.stderr
    on_failure = manifest("bad", podFailurePolicy={"rules": [{"action": "Ignore",
                                                              "onPodConditions": [{"type": "DisruptionTarget"}]}]})
    on_failure["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    out = apply(on_failure, namespace, check=False)
    assert out.returncode != 0 and 'only "Never" is supported when podFailurePolicy is specified' in out.stderr
    zero = manifest("bad", podFailurePolicy={"rules": [{"action": "FailJob",
                                                        "onExitCodes": {"operator": "In", "values": [0, 1]}}]})
    out = apply(zero, namespace, check=False)
    assert out.returncode != 0 and "must not be 0 for the In operator" in out.stderr, out.stderr
    index = manifest("bad", podFailurePolicy={"rules": [{"action": "FailIndex",
                                                         "onExitCodes": {"operator": "In", "values": [1]}}]})
    out = apply(index, namespace, check=False)
    assert out.returncode != 0 and "requires the backoffLimitPerIndex to be set" in out.stderr, out.stderr
    for spec, message in [
        ({"completions": 2, "backoffLimitPerIndex": 1}, "backoffLimitPerIndex: requires indexed completion mode"),
        ({"completions": 2, "completionMode": "Indexed", "maxFailedIndexes": 1},
         "backoffLimitPerIndex: Required value: when maxFailedIndexes is specified"),
        ({"completions": 2, "completionMode": "Indexed", "backoffLimitPerIndex": 1, "maxFailedIndexes": 3},
         "maxFailedIndexes: must be less than or equal to completions"),
        ({"backoffPolicy": {"initialSeconds": 60, "maxSeconds": 30}},
         "spec.backoffPolicy.maxSeconds: Invalid value: \"object\": must be at least initialSeconds"),
    ]:
        out = apply(manifest("bad", **spec), namespace, check=False)
        assert out.returncode != 0 and message in out.stderr, (spec, out.stderr)


def test_next_retry_time_holds_the_retry_across_a_restart_without_the_failed_pod(
        controllers: Operator, namespace: str) -> None:
    """kubeplane only: with backoffPolicy.initialSeconds 3600 the retry after the first failure is due an
    hour after its finish, and status.nextRetryTime says so (backoffLimit defaulted to 6 on the first
    sync). The operator is stopped and the failed pod deleted, so no pod tells of the failure any more; a
    fresh operator syncs and makes no replacement (the hour holds, however long the restart took). The
    test then moves nextRetryTime a few seconds ahead: the replacement comes, and not before that time
    (the pods' watch says when)."""
    with Watch(ENV, f"/api/v1/namespaces/{namespace}/pods") as pods:
        apply(manifest("patient", exit_code=3, after="0s", backoffPolicy={"initialSeconds": 3600}), namespace)
        waiting = wait_for(lambda: (j := job(namespace, "patient"))["status"].get("failed") == 1
                           and j["status"].get("nextRetryTime") and j, what="the failure counted, a retry time")
        assert waiting["spec"]["backoffLimit"] == 6
        (first,) = pods_of(namespace, "patient")
        finish = datetime.fromisoformat(first["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"])
        retry = datetime.fromisoformat(waiting["status"]["nextRetryTime"])
        assert retry == finish + timedelta(seconds=3600), (finish, retry)
        controllers.stop()
        try:
            kubectl("-n", namespace, "delete", "pod", first["metadata"]["name"], "--wait=true")
        finally:
            controllers.start()
        # The restarted controller has synced its Jobs once it gives a new Job its selector, and has
        # re-enqueued every Job at start: the patient one was synced with no failed pod to see.
        apply(manifest("probe", exit_code=None, suspend=True), namespace)
        wait_for(lambda: job(namespace, "probe")["spec"].get("selector"), what="the restarted controller syncing")
        assert job(namespace, "patient")["status"]["nextRetryTime"] == waiting["status"]["nextRetryTime"]
        assert [o["metadata"]["uid"] for o in pods.ever_added.values()
                if o["metadata"]["name"].startswith("patient-")] == [first["metadata"]["uid"]], \
            "a replacement was made before nextRetryTime"
        # Move the retry a few seconds ahead (whole seconds, as the field holds them).
        due = (datetime.now(UTC) + timedelta(seconds=5)).replace(microsecond=0)
        kubectl("-n", namespace, "patch", KPJOB, "patient", "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": {"nextRetryTime": due.strftime("%Y-%m-%dT%H:%M:%SZ")}}))
        second = pods.wait(lambda w: [o for o in w.ever_added.values() if o["metadata"]["name"].startswith("patient-")
                                      and o["metadata"]["uid"] != first["metadata"]["uid"]], timeout=90,
                           what="the replacement pod")[0]
    created = datetime.fromisoformat(second["metadata"]["creationTimestamp"])
    assert created >= due, f"the replacement came at {created}, before nextRetryTime {due}"
    # The replacement fails too: the next wait counts the failures the pods show (the deleted one no
    # longer does, so it is an hour again, not two), from its finish.
    again = wait_for(lambda: (j := job(namespace, "patient"))["status"].get("failed") == 2
                     and j["status"].get("nextRetryTime", "") > due.strftime("%Y-%m-%dT%H:%M:%SZ") and j,
                     what="the second failure counted, a later retry time")
    (gone,) = [p for p in pods_of(namespace, "patient") if p["metadata"]["uid"] == second["metadata"]["uid"]]
    finish = datetime.fromisoformat(gone["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"])
    assert datetime.fromisoformat(again["status"]["nextRetryTime"]) == finish + timedelta(seconds=3600)


def test_killed_while_pods_finish_counts_each_pod_exactly_once(controllers: Operator, namespace: str) -> None:
    """The relay holds every finalizer removal: the operator has recorded the finished pods as uncounted
    and is removing their finalizers when it is SIGKILLed. The held removals then land (a dead
    process's last writes), a fresh operator takes over, and every pod is counted once: the Job's
    counters, read from a watch of every status it ever had, never pass 4."""
    pods_path = f"/api/v1/namespaces/{namespace}/pods"
    jobs_path = f"/apis/batch.kubeplane.dev/v1alpha1/namespaces/{namespace}/jobs"
    with ApiRelay(KUBECONFIG) as relay, Watch(ENV, jobs_path) as jobs:
        controllers.stop()
        relayed = Operator("controllers", env={"KUBECONFIG": str(relay.kubeconfig)},
                           log_name="test-controllers-relayed")
        try:
            relayed.start()
            apply(manifest("four", exit_code=None, completions=4, parallelism=4), namespace)
            wait_for(lambda: len([p for p in pods_of(namespace, "four") if p["status"].get("phase") == "Running"])
                     == 4, what="four running pods")
            gate = relay.hold("PATCH", f"{pods_path}/four-")
            for pod in pods_of(namespace, "four"):
                end_pod(kubectl, namespace, pod["metadata"]["name"])
            gate.wait_held(1, timeout=60)
            recorded = job(namespace, "four")["status"].get("uncountedTerminatedPods") or {}
            assert recorded.get("succeeded"), "the kill should land after the uncounted record"
            relayed.kill()
            gate.release()
            wait_for(lambda: gate.held == 0, what="the held finalizer removals forwarded")
        finally:
            relayed.kill()
            controllers.start()
        done = finished(namespace, "four", "Complete")
        assert done["status"]["succeeded"] == 4
        seen = [int((obj.get("status") or {}).get("succeeded") or 0) for _, obj in jobs.events]
        assert max(seen) == 4 and seen == sorted(seen), seen
    for pod in pods_of(namespace, "four"):
        assert FINALIZER not in (pod["metadata"].get("finalizers") or [])
    assert len(pods_of(namespace, "four")) == 4, [p["metadata"]["name"] for p in pods_of(namespace, "four")]


def test_a_job_crd_not_served_stops_only_the_job_controller(controllers: Operator, namespace: str) -> None:
    """Discovery says batch.kubeplane.dev/v1alpha1 is not served (the relay answers 404, as for a CRD not
    installed): the operator starts without its Job controller, says why, and the ReplicaSet controller
    runs (before, the Job informer's 404s held every controller's cache sync forever)."""
    from tests.integration.test_replicaset import manifest as replicaset
    from tests.integration.test_replicaset import wait_status

    with ApiRelay(KUBECONFIG) as relay:
        relay.fail("GET", r"^/apis/batch\.kubeplane\.dev/v1alpha1$", status=404, times=None)
        controllers.stop()
        relayed = Operator("controllers", env={"KUBECONFIG": str(relay.kubeconfig)},
                           log_name="test-controllers-no-job-crd")
        try:
            relayed.start()
            apply(replicaset("web", replicas=2), namespace)
            wait_status(namespace, "web", 2)
            log = relayed.log.read_text()
            assert "controller job not started: the API server does not serve" in log, log[-2000:]
            assert not relay.seen("GET", r"/apis/batch\.kubeplane\.dev/v1alpha1/jobs"), "no Job informer"
        finally:
            relayed.kill()
            controllers.start()


def test_a_success_policy_ends_an_indexed_job_early(controllers: Operator, namespace: str) -> None:
    apply(manifest("early", exit_code=None, completions=3, parallelism=3, completionMode="Indexed",
                   successPolicy={"rules": [{"succeededIndexes": "0"}]}), namespace)
    wait_for(lambda: len([p for p in pods_of(namespace, "early") if p["status"].get("phase") == "Running"]) == 3,
             what="three running pods")
    first = next(p for p in pods_of(namespace, "early")
                 if p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "0")
    end_pod(kubectl, namespace, first["metadata"]["name"])
    done = finished(namespace, "early", "Complete")
    assert conditions(done) == [("SuccessCriteriaMet", "True", "SuccessPolicy"), ("Complete", "True", "SuccessPolicy")]
    assert done["status"]["completedIndexes"] == "0" and done["status"]["succeeded"] == 1
    wait_for(lambda: not [p for p in pods_of(namespace, "early") if p["status"].get("phase") == "Running"],
             what="the other indexes' pods gone")
    # Refused: without Indexed, a count above completions, a rule with neither field.
    for spec, message in [
        ({"completions": 2, "successPolicy": {"rules": [{"succeededCount": 1}]}}, "requires indexed completion mode"),
        ({"completions": 2, "completionMode": "Indexed", "successPolicy": {"rules": [{"succeededCount": 3}]}},
         "must be less than or equal to the number of specified completions"),
        ({"completions": 2, "completionMode": "Indexed", "successPolicy": {"rules": [{}]}},
         "at least one of succeededCount or succeededIndexes must be specified"),
    ]:
        out = apply(manifest("bad", **spec), namespace, check=False)
        assert out.returncode != 0 and message in out.stderr, (spec, out.stderr)


def test_a_job_managed_by_another_controller_is_left_alone(controllers: Operator, namespace: str) -> None:
    apply(manifest("theirs", managedBy="example.com/batch-controller"), namespace)
    apply(manifest("ours", managedBy="kubernetes.io/job-controller"), namespace)
    finished(namespace, "ours", "Complete")  # the controller has been through both by now
    theirs = job(namespace, "theirs")
    assert "selector" not in theirs["spec"] and not theirs.get("status") and not pods_of(namespace, "theirs")
    out = kubectl("-n", namespace, "patch", KPJOB, "theirs", "--type=merge", "-p",
                  '{"spec":{"managedBy":"example.com/other"}}', check=False)
    assert out.returncode != 0 and "spec.managedBy: field is immutable" in out.stderr, out.stderr


def test_orphans_are_adopted_and_unselected_pods_released(controllers: Operator, namespace: str) -> None:
    """As upstream's conformance test does: a pod stripped of its owner is adopted again, a pod whose
    labels no longer match is released (owner and finalizer gone) and replaced."""
    apply(manifest("keep", exit_code=None, completions=4, parallelism=2), namespace)
    wait_for(lambda: len([p for p in pods_of(namespace, "keep") if p["status"].get("phase") == "Running"]) == 2,
             what="two running pods")
    uid = job(namespace, "keep")["metadata"]["uid"]
    first, second = sorted(p["metadata"]["name"] for p in pods_of(namespace, "keep"))
    kubectl("-n", namespace, "patch", "pod", first, "--type=json",
            "-p", '[{"op":"remove","path":"/metadata/ownerReferences"}]')
    wait_for(lambda: [r["uid"] for r in kubectl_json("-n", namespace, "get", "pod", first)["metadata"]
                      .get("ownerReferences") or [] if r.get("controller")] == [uid], what="the orphan adopted")
    kubectl("-n", namespace, "label", "pod", second, "batch.kubernetes.io/controller-uid-", "controller-uid-",
            "batch.kubernetes.io/job-name-", "job-name-")
    released = wait_for(lambda: not (p := kubectl_json("-n", namespace, "get", "pod", second))["metadata"]
                        .get("ownerReferences") and p, what="the unselected pod released")
    assert FINALIZER not in (released["metadata"].get("finalizers") or [])
    wait_for(lambda: len([p for p in pods_of(namespace, "keep") if p["status"].get("phase") == "Running"]) == 2,
             what="a replacement for the released pod")
    assert job(namespace, "keep")["status"]["active"] == 2


def test_a_failing_index_is_retried_then_fails_alone(controllers: Operator, namespace: str) -> None:
    """backoffLimitPerIndex 1: index 1 fails twice (its replacement carries the failure count and waits
    out the index's 10 s backoff), the other indexes complete, and the Job fails with FailedIndexes."""
    apply(manifest("per", exit_code=None, completions=3, parallelism=3, completionMode="Indexed",
                   backoffLimitPerIndex=1), namespace)

    def index_of(p: Any) -> str:
        return str(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"])

    ended: set[str] = set()

    def drive() -> Any:
        for p in pods_of(namespace, "per"):
            name = p["metadata"]["name"]
            if p["status"].get("phase") == "Running" and name not in ended:
                end_pod(kubectl, namespace, name, 1 if index_of(p) == "1" else 0)
                ended.add(name)
        j = job(namespace, "per")
        return any(c[0] == "Failed" and c[1] == "True" for c in conditions(j)) and j

    failed = wait_for(drive, timeout=120, what="the Job failed")
    assert conditions(failed)[-1] == ("Failed", "True", "FailedIndexes")
    status = failed["status"]
    assert (status["failedIndexes"], status["completedIndexes"], status["failed"]) == ("1", "0,2", 2)
    ones = sorted((p for p in pods_of(namespace, "per") if index_of(p) == "1"),
                  key=lambda p: p["metadata"]["creationTimestamp"])
    assert [p["metadata"]["annotations"]["batch.kubernetes.io/job-index-failure-count"] for p in ones] == ["0", "1"]
    first_end = ones[0]["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"]
    gap = (datetime.fromisoformat(ones[1]["metadata"]["creationTimestamp"])
           - datetime.fromisoformat(first_end)).total_seconds()
    assert gap >= 9, f"the retry came {gap}s after the failure; the index's first backoff is 10s"
    assert all(FINALIZER not in (p["metadata"].get("finalizers") or []) for p in pods_of(namespace, "per"))
