"""The CronJob's schedule arithmetic and Job making (cronjob/logic.py), held to upstream's tables.

Ported as facts from pkg/controller/cronjob/utils_test.go (Kubernetes 1.34): TestMostRecentScheduleTime,
TestNextScheduleTime, TestNextScheduleTimeDuration, TestByJobStartTime, TestGetJobFromTemplate2; then
kubeplane's own cases for what `plan` adds (history, conditions, nextScheduleTime).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from operators.controllers.cronjob import logic
from operators.core import cron
from operators.core.apis import CRONJOBS, JOBS
from operators.core.timeutil import format_time

TOP = datetime(2016, 5, 19, 10, 0, 0, tzinfo=UTC)  # topOfTheHour


def after(**delta: float) -> datetime:
    return TOP + timedelta(**delta)


def cronjob(schedule: str, *, created: datetime = TOP, last: datetime | None = None,
            deadline: int | None = None, **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": CRONJOBS.api_version, "kind": "CronJob",
        "metadata": {"name": "mycronjob", "namespace": "snazzycats", "uid": "1a2b3c",
                     "creationTimestamp": format_time(created), "resourceVersion": "1"},
        "spec": {"schedule": schedule, "concurrencyPolicy": "Allow",
                 "jobTemplate": {"metadata": {"labels": {"a": "b"}, "annotations": {"x": "y"}},
                                 "spec": {"template": {"metadata": {"labels": {"foo": "bar"}},
                                                       "spec": {"containers": [{"image": "foo/bar"}],
                                                                "restartPolicy": "OnFailure"}}}},
                 **spec},
        "status": {},
    }
    if deadline is not None:
        obj["spec"]["startingDeadlineSeconds"] = deadline
    if last is not None:
        obj["status"]["lastScheduleTime"] = format_time(last)
    return obj


# --- TestMostRecentScheduleTime -------------------------------------------------------------------------

MOST_RECENT = [
    # name, cronjob, include deadline, now, earliest, most recent, missed (none/few/many)
    ("now before next schedule", cronjob("0 * * * *"), False, after(seconds=30), TOP, None, "none"),
    ("now just after next schedule", cronjob("0 * * * *"), False, after(minutes=61), TOP, after(minutes=60), "none"),
    ("missed 5 schedules", cronjob("0 * * * *", created=after(seconds=10)), False, after(minutes=301),
     after(seconds=10), after(minutes=300), "few"),
    ("complex schedule", cronjob("30 6-16/4 * * 1-5", last=after(minutes=30)), False, after(hours=24, minutes=31),
     after(minutes=30), after(hours=24, minutes=30), "few"),
    ("another complex schedule", cronjob("30 10,11,12 * * 1-5", last=after(minutes=30)), False,
     after(hours=30, minutes=30), after(minutes=30), None, "few"),
    ("complex schedule with longer diff between executions", cronjob("30 6-16/4 * * 1-5", last=after(minutes=30)),
     False, after(hours=96, minutes=31), after(minutes=30), after(hours=96, minutes=30), "few"),
    ("complex schedule with shorter diff between executions", cronjob("30 6-16/4 * * 1-5"), False,
     after(hours=24, minutes=31), TOP, after(hours=24, minutes=30), "few"),
    ("@every schedule", cronjob("@every 1h", created=after(minutes=-59), last=after(minutes=1), deadline=10), False,
     after(days=7), after(minutes=1), after(days=6, hours=23, minutes=1), "many"),
    ("earliestTime being CreationTimestamp and LastScheduleTime", cronjob("0 * * * *", last=TOP), False,
     after(seconds=30), TOP, None, "none"),
    ("earliestTime being LastScheduleTime", cronjob("*/5 * * * *", last=after(minutes=30)), False,
     after(minutes=31), after(minutes=30), None, "none"),
    ("earliestTime being LastScheduleTime (within StartingDeadlineSeconds)",
     cronjob("*/5 * * * *", last=after(minutes=30), deadline=60), False, after(minutes=31), after(minutes=30), None,
     "none"),
    ("earliestTime being LastScheduleTime (outside StartingDeadlineSeconds)",
     cronjob("*/5 * * * *", last=after(minutes=30), deadline=60), True, after(minutes=32), after(minutes=31), None,
     "none"),
]


def _kind(count: int) -> str:
    return "none" if count == 0 else "many" if count > logic.MANY_MISSED else "few"


@pytest.mark.parametrize(("cj", "include", "now", "earliest", "recent", "missed"),
                         [case[1:] for case in MOST_RECENT], ids=[case[0] for case in MOST_RECENT])
def test_most_recent_schedule_time(cj: dict[str, Any], include: bool, now: datetime, earliest: datetime,
                                   recent: datetime | None, missed: str) -> None:
    got = logic.most_recent_schedule_time(cj, now, cron.parse_standard(cj["spec"]["schedule"]), include)
    assert got.earliest == earliest
    assert got.most_recent == recent
    assert _kind(got.count) == missed


def test_most_recent_schedule_time_of_a_rogue_cronjob_is_an_error() -> None:
    cj = cronjob("59 23 31 2 *", created=after(seconds=10))
    with pytest.raises(logic.ScheduleError, match="less than 1 second"):
        logic.most_recent_schedule_time(cj, after(hours=1), cron.parse_standard("59 23 31 2 *"), False)


# --- TestNextScheduleTime -----------------------------------------------------------------------------

T1, T2 = TOP, after(hours=1)
HOURLY = cron.parse_standard("0 * * * ?")


@pytest.mark.parametrize(("created", "last", "now", "deadline", "expected"), [
    (T1 - timedelta(minutes=10), None, T1 - timedelta(minutes=7), None, None),  # 1: none needed yet
    (T1 - timedelta(minutes=10), None, T1 + timedelta(seconds=2), None, T1),  # 2: one needed
    (T1 - timedelta(minutes=10), T1, T1 + timedelta(minutes=2), None, None),  # 3: started, none needed
    (T1 - timedelta(minutes=10), T1, T2 + timedelta(minutes=5), None, T2),  # 4: one needed
    (T1 - timedelta(hours=2), T1 - timedelta(hours=1), T2 + timedelta(minutes=5), None, T2),  # 5: two needed
    (T1 - timedelta(hours=2), T1 - timedelta(hours=1), T2 + timedelta(days=10), None, "some"),  # 6: no deadline
    (T1 - timedelta(hours=2), T1 - timedelta(hours=1), T2 + timedelta(days=10), 7200, "some"),  # 7: short deadline
])
def test_next_schedule_time(created: datetime, last: datetime | None, now: datetime, deadline: int | None,
                            expected: Any) -> None:
    cj = cronjob("0 * * * ?", created=created, last=last, deadline=deadline)
    got, _ = logic.next_schedule_time(cj, now, HOURLY)
    if expected == "some":
        assert got is not None
    else:
        assert got == expected


def test_next_schedule_time_passes_the_error_up() -> None:  # case 8
    cj = cronjob("0 * * * ?", created=T1 + timedelta(seconds=10))
    with pytest.raises(logic.ScheduleError):
        logic.next_schedule_time(cj, after(hours=1), cron.parse_standard("59 23 31 2 *"))


# --- TestNextScheduleTimeDuration ---------------------------------------------------------------------

@pytest.mark.parametrize(("cj", "now", "expected"), [
    (cronjob("30 6-16/4 * * 1-5", last=after(minutes=30)), after(hours=24, minutes=31),
     timedelta(hours=3, minutes=59)),  # complex schedule skipping weekend
    (cronjob("30 10,11,12 * * 1-5", last=after(minutes=30)), after(hours=30, minutes=30),
     timedelta(hours=66)),  # another complex schedule skipping weekend
    (cronjob("0 12 * * 4", last=after(hours=2)), after(days=19, hours=1, minutes=30),
     timedelta(hours=48, minutes=30)),  # once a week cronjob, missed two runs
    (cronjob("0 12 * * 5"), after(hours=6), timedelta(hours=20)),  # no previous run of a cronjob
], ids=["complex schedule skipping weekend", "another complex schedule skipping weekend",
        "once a week cronjob, missed two runs", "no previous run of a cronjob"])
def test_next_schedule_delay(cj: dict[str, Any], now: datetime, expected: timedelta) -> None:
    got = logic.next_schedule_delay(cj, now, cron.parse_standard(cj["spec"]["schedule"]))
    assert got == pytest.approx(expected.total_seconds() + logic.NEXT_SCHEDULE_DELTA)


# --- TestByJobStartTime -------------------------------------------------------------------------------

def _job(name: str, started: datetime | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"startTime": format_time(started)} if started else {}}


EARLY, LATE = datetime(2018, 1, 1, 2, 3, 4, tzinfo=UTC), datetime(2019, 1, 1, 2, 3, 4, tzinfo=UTC)


@pytest.mark.parametrize(("given", "expected"), [
    ([_job("b"), _job("a")], ["a", "b"]),  # both have nil start times
    ([_job("a"), _job("b", EARLY)], ["b", "a"]),  # only the first has a nil start time
    ([_job("a", EARLY), _job("b")], ["a", "b"]),  # only the second has a nil start time
    ([_job("b", EARLY), _job("a", EARLY)], ["a", "b"]),  # equal start times
    ([_job("a", LATE), _job("b", EARLY)], ["b", "a"]),  # different start times
])
def test_by_job_start_time(given: list[dict[str, Any]], expected: list[str]) -> None:
    assert [j["metadata"]["name"] for j in sorted(given, key=logic.start_order)] == expected


# --- TestGetJobFromTemplate2 --------------------------------------------------------------------------

@pytest.mark.parametrize(("zone", "annotations", "stamp"), [
    ("UTC", {"x": "y"}, "2016-05-19T10:00:00Z"),
    (None, {"x": "y"}, "2016-05-19T10:00:00Z"),
    ("Europe/Rome", {"x": "y", "z": "x"}, "2016-05-19T12:00:00+02:00"),
])
def test_job_from_template(zone: str | None, annotations: dict[str, str], stamp: str) -> None:
    cj = cronjob("* * * * ?", **({"timeZone": zone} if zone else {}))
    cj["spec"]["jobTemplate"]["metadata"]["annotations"] = annotations
    job = logic.job_from_template(cj, TOP, CRONJOBS, JOBS)
    assert job["metadata"]["name"] == f"mycronjob-{int(TOP.timestamp()) // 60}"
    assert job["metadata"]["labels"] == {"a": "b"}
    assert len(job["metadata"]["annotations"]) == len(annotations) + 1
    assert job["metadata"]["annotations"][logic.SCHEDULED_TIMESTAMP] == stamp
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["apiVersion"], owner["kind"], owner["name"], owner["uid"], owner["controller"]) == \
        (CRONJOBS.api_version, "CronJob", "mycronjob", "1a2b3c", True)
    assert (job["apiVersion"], job["kind"]) == (JOBS.api_version, "Job")
    assert job["spec"] == cj["spec"]["jobTemplate"]["spec"]
    assert job["spec"] is not cj["spec"]["jobTemplate"]["spec"]


def test_rfc3339_prints_z_for_any_zero_offset() -> None:
    winter = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    assert logic.rfc3339(winter, "Europe/London") == "2026-01-15T12:00:00Z"
    assert logic.rfc3339(winter, "America/New_York") == "2026-01-15T07:00:00-05:00"
    assert logic.rfc3339(winter, "Asia/Kolkata") == "2026-01-15T17:30:00+05:30"


# --- kubeplane's plan: what the sync decides ----------------------------------------------------------

def finished_job(name: str, kind: str, *, started: datetime, uid: str | None = None) -> dict[str, Any]:
    return {"apiVersion": JOBS.api_version, "kind": "Job",
            "metadata": {"name": name, "namespace": "snazzycats", "uid": uid or f"uid-{name}"},
            "status": {"startTime": format_time(started),
                       "completionTime": format_time(started + timedelta(seconds=10)),
                       "conditions": [{"type": kind, "status": "True"}]}}


def test_history_keeps_the_newest_per_kind_and_drops_them_from_active() -> None:
    cj = cronjob("0 * * * *", last=TOP, successfulJobsHistoryLimit=1, failedJobsHistoryLimit=0)
    jobs = [finished_job(f"ok-{i}", "Complete", started=TOP - timedelta(hours=3 - i)) for i in range(3)]
    jobs.append(finished_job("bad", "Failed", started=TOP))
    cj["status"]["active"] = [{"name": "ok-0", "uid": "uid-ok-0"}]
    plan = logic.plan(logic.Observed(cronjob=cj, jobs=jobs, now=after(minutes=1)))
    assert [j["metadata"]["name"] for j in plan.cleanup] == ["ok-0", "ok-1", "bad"]
    assert "active" not in plan.status
    # ok-0 was listed but left through the history: no SawCompletedJob for it (cleanup runs first).
    assert not [e for e in plan.events if e.reason == "SawCompletedJob"]
    assert plan.status["lastSuccessfulTime"] == format_time(TOP - timedelta(hours=1) + timedelta(seconds=10))


def test_a_run_is_planned_with_conditions_and_the_next_time() -> None:
    cj = cronjob("*/5 * * * *", created=TOP - timedelta(minutes=1))
    plan = logic.plan(logic.Observed(cronjob=cj, jobs=[], now=after(seconds=3)))
    assert plan.run == logic.Run(TOP, f"mycronjob-{int(TOP.timestamp()) // 60}")
    assert plan.status["nextScheduleTime"] == format_time(after(minutes=5))
    assert plan.requeue == pytest.approx(5 * 60 - 3 + logic.NEXT_SCHEDULE_DELTA)
    valid = [c for c in plan.status["conditions"] if c["type"] == logic.SCHEDULE_VALID]
    assert valid[0]["status"] == "True"
    recorded = logic.record_run(plan.status, {"apiVersion": JOBS.api_version, "kind": "Job", "metadata": {
        "name": plan.run.name, "namespace": "snazzycats", "uid": "j1", "resourceVersion": "7"}}, plan.run.scheduled)
    assert recorded["lastScheduleTime"] == format_time(TOP)
    assert recorded["active"] == [{"apiVersion": JOBS.api_version, "kind": "Job", "name": plan.run.name,
                                   "namespace": "snazzycats", "uid": "j1", "resourceVersion": "7"}]


def test_a_missed_deadline_is_visible_in_status() -> None:
    cj = cronjob("0 * * * *", last=TOP - timedelta(hours=1), deadline=60)
    plan = logic.plan(logic.Observed(cronjob=cj, jobs=[], now=after(minutes=10)))
    assert plan.run is None
    # Upstream says nothing: the deadline raises the earliest time counted, so 10:00 is never found
    # (its MissSchedule event is unreachable in 1.34's code). kubeplane records the miss.
    assert not plan.events
    assert plan.status["lastMissedTime"] == format_time(TOP)
    missed = next(c for c in plan.status["conditions"] if c["type"] == logic.MISSED_SCHEDULE)
    assert (missed["status"], missed["reason"]) == ("True", "MissedStartingDeadline")
    assert plan.status["nextScheduleTime"] == format_time(after(hours=1))


def test_catching_up_runs_the_newest_and_records_the_skipped_one() -> None:
    cj = cronjob("0 * * * *", last=TOP - timedelta(hours=3))
    plan = logic.plan(logic.Observed(cronjob=cj, jobs=[], now=after(minutes=10)))
    assert plan.run is not None and plan.run.scheduled == TOP
    assert plan.status["lastMissedTime"] == format_time(TOP - timedelta(hours=1))
    missed = next(c for c in plan.status["conditions"] if c["type"] == logic.MISSED_SCHEDULE)
    assert (missed["status"], missed["reason"]) == ("True", "SkippedSchedules")
    # The next run on time clears it.
    cj2 = cronjob("0 * * * *", last=TOP)
    cj2["status"]["conditions"] = plan.status["conditions"]
    plan2 = logic.plan(logic.Observed(cronjob=cj2, jobs=[], now=after(hours=1, seconds=1)))
    missed2 = next(c for c in plan2.status["conditions"] if c["type"] == logic.MISSED_SCHEDULE)
    assert (missed2["status"], missed2["reason"]) == ("False", "OnSchedule")


@pytest.mark.parametrize(("spec", "reason", "message"), [
    ({"schedule": "61 * * * *"}, "UnparseableSchedule",
     'unparseable schedule: "61 * * * *" : end of range (61) above maximum (59): 61'),
    ({"schedule": "0 * * * *", "timeZone": "Mars/Olympus"}, "UnknownTimeZone",
     'invalid timeZone: "Mars/Olympus": unknown time zone Mars/Olympus'),
    ({"schedule": "59 23 31 2 *"}, "InvalidSchedule",
     "invalid schedule: 59 23 31 2 * : time difference between two schedules is less than 1 second"),
])
def test_a_schedule_that_cannot_run_is_a_condition_and_a_warning(spec: dict[str, Any], reason: str,
                                                                 message: str) -> None:
    cj = cronjob(**spec)
    plan = logic.plan(logic.Observed(cronjob=cj, jobs=[], now=after(days=1)))
    assert plan.run is None and plan.requeue is None
    assert [(e.type, e.reason, e.message) for e in plan.events] == [("Warning", reason, message)]
    valid = next(c for c in plan.status["conditions"] if c["type"] == logic.SCHEDULE_VALID)
    assert (valid["status"], valid["reason"], valid["message"]) == ("False", reason, message)
    assert "nextScheduleTime" not in plan.status
