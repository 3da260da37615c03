"""kubeplane's CronJob (batch.kubeplane.dev) on the embedded cluster.

A run is made due without waiting for the clock: the CronJob (monthly, "0 0 1 * *") is created
suspended, its status.lastScheduleTime is set three months back (the status subresource), and it is
resumed; the controller then finds the newest scheduled time not later than now, the 1st of this
month, as after any outage. The next one is a month away, so no second run can come while a test
runs, however slow the machine. Its Jobs are
kubeplane Jobs whose pods end when told (tests/podexit.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.faults.apirelay import ApiRelay
from tests.integration.conftest import ENV, KUBECONFIG, Operator, apply, kubectl, kubectl_json, wait_for
from tests.podexit import EXIT_AFTER, EXIT_CODE
from tests.watch import Watch

KPCJ, KPJOB = "cronjobs.batch.kubeplane.dev", "jobs.batch.kubeplane.dev"
SCHEDULED = "batch.kubernetes.io/cronjob-scheduled-timestamp"


MONTHLY = "0 0 1 * *"


def month_start(months_back: int = 0) -> datetime:
    now = datetime.now(UTC)
    year, month = now.year, now.month - months_back
    while month < 1:
        year, month = year - 1, month + 12
    return datetime(year, month, 1, tzinfo=UTC)


def manifest(name: str, schedule: str = MONTHLY, *, exit_code: int | None = 0, **spec: Any) -> dict[str, Any]:
    annotations = {} if exit_code is None else {EXIT_CODE: str(exit_code), EXIT_AFTER: "1s"}
    return {"apiVersion": "batch.kubeplane.dev/v1alpha1", "kind": "CronJob", "metadata": {"name": name},
            "spec": {"schedule": schedule, "suspend": True,
                     "jobTemplate": {"metadata": {"labels": {"run": name}},
                                     "spec": {"backoffLimit": 0, "template": {
                                         "metadata": {"annotations": annotations},
                                         "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                                                  "containers": [{"name": "c", "image": "busybox"}]}}}},
                     **spec}}


def cronjob(namespace: str, name: str) -> Any:
    return kubectl_json("-n", namespace, "get", KPCJ, name)


def jobs_of(namespace: str, name: str) -> list[Any]:
    items: list[Any] = kubectl_json("-n", namespace, "get", KPJOB, "-l", f"run={name}")["items"]
    return items


def events(namespace: str, name: str) -> list[Any]:
    items: list[Any] = kubectl_json("-n", namespace, "get", "events", "--field-selector",
                                    f"involvedObject.name={name},involvedObject.kind=CronJob")["items"]
    return items


def reasons(namespace: str, name: str) -> list[str]:
    return [e["reason"] for e in events(namespace, name)]


def condition(cj: Any, type_: str) -> tuple[str, str] | None:
    for c in (cj.get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return c["status"], c.get("reason", "")
    return None


def stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_due(namespace: str, name: str, months_back: int = 3) -> datetime:
    """Set lastScheduleTime to the 1st of the month `months_back` ago, then resume: a run is due at once."""
    last = month_start(months_back)
    kubectl("-n", namespace, "patch", KPCJ, name, "--subresource=status", "--type=merge",
            "-p", f'{{"status":{{"lastScheduleTime":"{stamp(last)}"}}}}')
    kubectl("-n", namespace, "patch", KPCJ, name, "--type=merge", "-p", '{"spec":{"suspend":false}}')
    return last


def test_a_due_run_starts_once_completes_and_is_recorded(controllers: Operator, namespace: str) -> None:
    jobs_path = f"/apis/batch.kubeplane.dev/v1alpha1/namespaces/{namespace}/jobs"
    with Watch(ENV, jobs_path) as jobs:
        apply(manifest("tick"), namespace)
        wait_for(lambda: condition(cronjob(namespace, "tick"), "ScheduleValid") == ("True", "Valid"),
                 what="the schedule validated")
        assert "nextScheduleTime" not in cronjob(namespace, "tick")["status"], "suspended: no next time"
        last = make_due(namespace, "tick")
        done = wait_for(lambda: (cj := cronjob(namespace, "tick"))["status"].get("lastSuccessfulTime") and cj,
                        timeout=90, what="a run completed")
    status = done["status"]
    scheduled = datetime.fromisoformat(status["lastScheduleTime"])
    assert scheduled == month_start() and last < scheduled
    created = [o for kind, o in jobs.events if kind == "ADDED"]
    assert [o["metadata"]["name"] for o in created] == [f"tick-{int(scheduled.timestamp()) // 60}"]
    job = created[0]
    assert job["metadata"]["annotations"][SCHEDULED] == stamp(scheduled)
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == \
        ("CronJob", "tick", done["metadata"]["uid"], True)
    assert job["metadata"]["labels"]["run"] == "tick"
    # The runs between the last one and this one did not happen: visible in status.
    assert status["lastMissedTime"] == stamp(month_start(1))
    assert condition(done, "MissedSchedule") == ("True", "SkippedSchedules")
    upcoming = datetime.fromisoformat(status["nextScheduleTime"])
    assert upcoming > datetime.now(UTC) and upcoming.day == 1 and upcoming.hour == 0 and upcoming - scheduled \
        <= timedelta(days=31)
    wait_for(lambda: not cronjob(namespace, "tick")["status"].get("active"), what="the finished run leaves active")
    wait_for(lambda: {"SuccessfulCreate", "SawCompletedJob"} <= set(reasons(namespace, "tick")), what="events")
    assert reasons(namespace, "tick").count("SuccessfulCreate") == 1


def test_history_limits_keep_the_newest_finished_jobs(controllers: Operator, namespace: str) -> None:
    """Finished Jobs the CronJob controls beyond successfulJobsHistoryLimit/failedJobsHistoryLimit go,
    oldest first, even while it is suspended."""
    apply(manifest("hist", successfulJobsHistoryLimit=1, failedJobsHistoryLimit=1), namespace)
    cj = wait_for(lambda: (c := cronjob(namespace, "hist")) and c.get("status") and c, what="the CronJob synced")
    owner = {"apiVersion": "batch.kubeplane.dev/v1alpha1", "kind": "CronJob", "name": "hist",
             "uid": cj["metadata"]["uid"], "controller": True}
    template = cj["spec"]["jobTemplate"]["spec"]["template"]
    # Finished first, then handed to the CronJob (a running Job it does not list is an UnexpectedJob
    # Warning on every sync, and the recorder's spam filter would then drop later events).
    names = [("hist-a", 0), ("hist-b", 0), ("hist-c", 0), ("hist-x", 1), ("hist-y", 1)]
    for name, code in names:
        pod = {**template, "metadata": {"annotations": {EXIT_CODE: str(code), EXIT_AFTER: "0s"}}}
        apply({"apiVersion": "batch.kubeplane.dev/v1alpha1", "kind": "Job",
               "metadata": {"name": name, "labels": {"run": "hist"}},
               "spec": {"backoffLimit": 0, "template": pod}}, namespace)
    wait_for(lambda: all(any(c["status"] == "True" and c["type"] in ("Complete", "Failed")
                             for c in (j.get("status") or {}).get("conditions") or [])
                         for j in jobs_of(namespace, "hist")) and len(jobs_of(namespace, "hist")) == 5,
             timeout=90, what="five finished Jobs")
    for name, _ in names:
        kubectl("-n", namespace, "patch", KPJOB, name, "--type=merge",
                "-p", json.dumps({"metadata": {"ownerReferences": [owner]}}))
    wait_for(lambda: sorted(j["metadata"]["name"] for j in jobs_of(namespace, "hist")) == ["hist-c", "hist-y"],
             timeout=60, what="only the newest Complete and the newest Failed Job left")
    deleted = wait_for(lambda: len(d := [e for e in events(namespace, "hist") if e["reason"] == "SuccessfulDelete"])
                       >= 3 and d, what="three SuccessfulDelete events")
    assert sorted(e["message"] for e in deleted) == ["Deleted job hist-a", "Deleted job hist-b", "Deleted job hist-x"]


def test_bad_schedules_are_refused_or_reported(controllers: Operator, namespace: str) -> None:
    for spec, message in [
        ({"schedule": "TZ=UTC 0 * * * *"}, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"),
        ({"schedule": "0 * * *"}, "must be five cron fields"),
        ({"timeZone": "Local"}, "timeZone must be an explicit time zone"),
        ({"timeZone": "../etc"}, "unknown time zone ../etc"),
        ({"concurrencyPolicy": "Sometimes"}, "supported values"),
        ({"jobTemplate": {"spec": {"manualSelector": True, "selector": {"matchLabels": {"a": "b"}},
                                   "template": {"metadata": {"labels": {"a": "b"}},
                                                "spec": {"restartPolicy": "Never",
                                                         "containers": [{"name": "c", "image": "x"}]}}}}},
         "`selector` will be auto-generated"),
    ]:
        out = apply({**manifest("bad"), "spec": {**manifest("bad")["spec"], **spec}}, namespace, check=False)
        assert out.returncode != 0 and message in out.stderr, (spec, out.stderr)
    long = manifest("x" * 53)
    out = apply(long, namespace, check=False)
    assert out.returncode != 0 and "must be no more than 52 characters" in out.stderr, out.stderr
    # What only the parser and the zone database can tell: a condition and a Warning, never a crash.
    apply({**manifest("range", "61 * * * *"), "spec": {**manifest("range", "61 * * * *")["spec"], "suspend": False}},
          namespace)
    apply({**manifest("mars"), "spec": {**manifest("mars")["spec"], "timeZone": "Mars/Olympus", "suspend": False}},
          namespace)
    wait_for(lambda: condition(cronjob(namespace, "range"), "ScheduleValid") == ("False", "UnparseableSchedule"),
             what="the out-of-range schedule reported")
    wait_for(lambda: condition(cronjob(namespace, "mars"), "ScheduleValid") == ("False", "UnknownTimeZone"),
             what="the unknown zone reported")
    wait_for(lambda: "UnparseableSchedule" in reasons(namespace, "range"), what="the Warning event")
    wait_for(lambda: "UnknownTimeZone" in reasons(namespace, "mars"), what="the Warning event")
    # Fixed, it runs.
    kubectl("-n", namespace, "patch", KPCJ, "range", "--type=merge", "-p", '{"spec":{"schedule":"*/5 * * * *"}}')
    wait_for(lambda: condition(cronjob(namespace, "range"), "ScheduleValid") == ("True", "Valid"),
             what="the fixed schedule accepted")


def test_trigger_starts_a_run_now(controllers: Operator, namespace: str) -> None:
    apply(manifest("manual"), namespace)
    out = subprocess.run([sys.executable, "-m", "operators.cli.main", "cronjob", "trigger", "cronjob/manual",
                          "-n", namespace, "--job-name", "manual-now"], env=ENV, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "job.batch.kubeplane.dev/manual-now created"
    job = kubectl_json("-n", namespace, "get", KPJOB, "manual-now")
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job["metadata"]["ownerReferences"][0]["name"] == "manual"
    wait_for(lambda: any(c["type"] == "Complete" and c["status"] == "True"
                         for c in (kubectl_json("-n", namespace, "get", KPJOB, "manual-now").get("status") or {})
                         .get("conditions") or []), timeout=90, what="the manual run completed")
    missing = subprocess.run([sys.executable, "-m", "operators.cli.main", "cronjob", "trigger", "nope",
                              "-n", namespace], env=ENV, capture_output=True, text=True)
    assert missing.returncode == 1 and 'cronjobs.batch.kubeplane.dev "nope" not found' in missing.stderr


def test_killed_between_the_create_and_the_status_write_starts_the_run_once(controllers: Operator,
                                                                            namespace: str) -> None:
    """The relay swallows the status write that records the run (the Job's create went through), the
    operator is SIGKILLed, and a fresh one takes over from a status that does not know the run: it plans
    the same run, its create meets AlreadyExists on the Job's name, and it records the Job it finds.
    One Job, counted from a watch of every Job ever added."""
    jobs_path = f"/apis/batch.kubeplane.dev/v1alpha1/namespaces/{namespace}/jobs"
    apply(manifest("once", exit_code=None), namespace)
    wait_for(lambda: condition(cronjob(namespace, "once"), "ScheduleValid") == ("True", "Valid"),
             what="the CronJob synced")
    with ApiRelay(KUBECONFIG) as relay, Watch(ENV, jobs_path) as jobs:
        controllers.stop()
        relay.blackhole("PATCH", rf"/namespaces/{namespace}/cronjobs/once/status$")
        relayed = Operator("controllers", env={"KUBECONFIG": str(relay.kubeconfig)}, log_name="test-controllers-cj")
        try:
            relayed.start()
            make_due(namespace, "once")
            wait_for(lambda: relay.seen("POST", rf"/namespaces/{namespace}/jobs$")
                     and relay.seen("PATCH", r"/cronjobs/once/status$"), what="the create, then the swallowed write")
            assert not cronjob(namespace, "once")["status"].get("active"), "the run must not be recorded yet"
            relayed.kill()
        finally:
            relayed.kill()
            controllers.start()
        recorded = wait_for(lambda: (cj := cronjob(namespace, "once"))["status"].get("active") and cj,
                            what="the run recorded by the new operator")
        added = [o["metadata"]["name"] for kind, o in jobs.events if kind == "ADDED"]
    assert len(added) == 1, added
    assert [a["name"] for a in recorded["status"]["active"]] == added
    assert reasons(namespace, "once").count("SuccessfulCreate") == 1
