"""The CronJob sync (cronjob/controller.py with cronjob/logic.py) held to upstream's table.

Every case of TestControllerV2SyncCronJob (pkg/controller/cronjob/cronjob_controllerv2_test.go,
Kubernetes 1.34) is ported below as a fact, field for field, and run through the real controller on the
scripted fake client (tests/unit/controllers/fakekube.py) with the same set-up upstream's test makes:
the CronJob the cache shows, the live copy a GET returns, the previous run's Job (in the cache or only
behind a GET), and the create and get errors. What is compared is what the table compares: Jobs
created and deleted, the number of Events and of Warnings among them, the requeue,
whether the status changed, and lastSuccessfulTime. (Not expectActive: upstream's fake records no status
update from syncCronJob, so its active check never runs and the column is not a fact; several of its
values contradict its own cases. The integration tests count active Jobs on a real API server.)

Where the two differ by construction, the harness says so: upstream's table calls syncCronJob alone,
while kubeplane's sync also runs the history cleanup that upstream's sync() runs first; so with
successfulJobsHistoryLimit 0 the finished Job is deleted (one more delete and SuccessfulDelete, and no
SawCompletedJob: the cleanup took it off the active list first), as upstream's full sync does. And
upstream's Replace reads each active Job with a GET before deleting it (FailedGet when that fails);
kubeplane deletes with the uid as precondition (FailedDelete when that fails): one Warning either way.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from operators.controllers.cronjob import logic
from operators.core.apis import CRONJOBS, JOBS
from operators.core.kube import ApiError
from operators.core.timeutil import format_time
from tests.unit.controllers.fakekube import Call, ControllerWorld, _merge

NS = "snazzycats"
CJ_COLLECTION, JOB_COLLECTION = CRONJOBS.path(NS), JOBS.path(NS)
ZERO = datetime(1, 1, 1, tzinfo=UTC)  # Go's zero time.Time
MS, SEC, MIN, HOUR = (timedelta(milliseconds=1), timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=1))
DELTA = timedelta(seconds=logic.NEXT_SCHEDULE_DELTA)
SHORT_DEAD, MEDIUM_DEAD, LONG_DEAD = 10, 2 * 60 * 60, 1000000
ERROR_SCHEDULE, ON_THE_HOUR, EVERY_HOUR = "obvious error schedule", "0 * * * ?", "@every 1h"
ERROR_TIME_ZONE, NEW_YORK = "bad timezone", "America/New_York"


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def just_a_second_before_the_hour() -> datetime:
    return _at("2016-05-19T09:59:59")


def just_after_the_prior_hour() -> datetime:
    return _at("2016-05-19T09:01:00")


def just_before_the_prior_hour() -> datetime:
    return _at("2016-05-19T08:59:00")


def just_after_the_hour() -> datetime:
    return _at("2016-05-19T10:01:00")


def just_before_the_hour() -> datetime:
    return _at("2016-05-19T09:59:00")


def just_before_the_next_hour() -> datetime:
    return _at("2016-05-19T10:59:00")


def week_after_the_hour() -> datetime:
    return _at("2016-05-26T10:00:00")


def top_of_the_hour() -> datetime:
    return _at("2016-05-19T10:00:00")


@dataclass(frozen=True)
class Case:
    # the CronJob's spec
    concurrency_policy: str = ""
    suspend: bool = False
    schedule: str = ""
    time_zone: str | None = None
    deadline: int | None = 0  # upstream's zero value: a case without one has startingDeadlineSeconds 0
    successful_jobs_history_limit: int | None = None
    # its status
    ran_previously: bool = False
    still_active: bool = False
    # the environment
    cronjob_creation_time: datetime | None = None
    job_creation_time: datetime = ZERO
    last_schedule_time: datetime | None = None
    now: datetime = ZERO
    job_create_error: str | None = None
    job_get_err: str | None = None
    # expectations
    expect_create: bool = False
    expect_delete: bool = False
    expect_completed: bool = False
    expect_active: int = 0
    expected_warnings: int = 0
    expect_err: bool = False
    expect_requeue_after: bool = False
    expected_requeue_duration: timedelta = timedelta(0)
    expect_update_status: bool = False
    job_still_not_found_in_lister: bool = False
    job_present_in_cj_active_status: bool = False


CASES: dict[str, Case] = {
    "never ran, not valid schedule, A": Case(
        concurrency_policy="Allow", schedule=ERROR_SCHEDULE, deadline=None,
        job_creation_time=just_after_the_prior_hour(), now=just_before_the_hour(), expected_warnings=1,
        job_present_in_cj_active_status=True,
    ),
    "never ran, not valid schedule, F": Case(
        concurrency_policy="Forbid", schedule=ERROR_SCHEDULE, deadline=None,
        job_creation_time=just_after_the_prior_hour(), now=just_before_the_hour(), expected_warnings=1,
        job_present_in_cj_active_status=True,
    ),
    "never ran, not valid schedule, R": Case(
        concurrency_policy="Forbid", schedule=ERROR_SCHEDULE, deadline=None,
        job_creation_time=just_after_the_prior_hour(), now=just_before_the_hour(), expected_warnings=1,
        job_present_in_cj_active_status=True,
    ),
    "never ran, not valid time zone": Case(
        concurrency_policy="Allow", schedule=ON_THE_HOUR, time_zone=ERROR_TIME_ZONE, deadline=None,
        job_creation_time=just_after_the_prior_hour(), now=just_before_the_hour(), expected_warnings=1,
        job_present_in_cj_active_status=True,
    ),
    "never ran, not time, A": Case(
        concurrency_policy="Allow", schedule=ON_THE_HOUR, deadline=None,
        job_creation_time=just_after_the_prior_hour(), now=just_before_the_hour(), expect_requeue_after=True,
        expected_requeue_duration=1*MIN + DELTA, job_present_in_cj_active_status=True,
    ),
    "never ran, not time, F": Case(
        concurrency_policy="Forbid", schedule=ON_THE_HOUR, deadline=None,
        job_creation_time=just_after_the_prior_hour(), now=just_before_the_hour(), expect_requeue_after=True,
        expected_requeue_duration=1*MIN + DELTA, job_present_in_cj_active_status=True,
    ),
    "never ran, not time, R": Case(
        concurrency_policy="Replace", schedule=ON_THE_HOUR, deadline=None,
        job_creation_time=just_after_the_prior_hour(), now=just_before_the_hour(), expect_requeue_after=True,
        expected_requeue_duration=1*MIN + DELTA, job_present_in_cj_active_status=True,
    ),
    "never ran, not time in zone": Case(
        concurrency_policy="Allow", schedule=ON_THE_HOUR, time_zone=NEW_YORK, deadline=None,
        job_creation_time=just_after_the_prior_hour(), now=just_before_the_hour(), expect_requeue_after=True,
        expected_requeue_duration=1*MIN + DELTA, job_present_in_cj_active_status=True,
    ),
    "never ran, is time, A": Case(
        concurrency_policy="Allow", schedule=ON_THE_HOUR, deadline=None,
        job_creation_time=just_after_the_prior_hour(), now=just_after_the_hour(), expect_create=True, expect_active=1,
        expect_requeue_after=True, expected_requeue_duration=1*HOUR - 1*MIN + DELTA, expect_update_status=True,
        job_present_in_cj_active_status=True,
    ),
    "never ran, is time, F": Case(
        concurrency_policy="Forbid", schedule=ON_THE_HOUR, deadline=None,
        job_creation_time=just_after_the_prior_hour(), now=just_after_the_hour(), expect_create=True, expect_active=1,
        expect_requeue_after=True, expected_requeue_duration=1*HOUR - 1*MIN + DELTA, expect_update_status=True,
        job_present_in_cj_active_status=True,
    ),
    "never ran, is time, R": Case(
        concurrency_policy="Replace", schedule=ON_THE_HOUR, deadline=None,
        job_creation_time=just_after_the_prior_hour(), now=just_after_the_hour(), expect_create=True, expect_active=1,
        expect_requeue_after=True, expected_requeue_duration=1*HOUR - 1*MIN + DELTA, expect_update_status=True,
        job_present_in_cj_active_status=True,
    ),
    "never ran, is time in zone, but time zone disabled": Case(
        concurrency_policy="Allow", schedule=ON_THE_HOUR, time_zone=NEW_YORK, deadline=None,
        job_creation_time=just_after_the_prior_hour(), now=just_after_the_hour(), expect_create=True, expect_active=1,
        expect_requeue_after=True, expected_requeue_duration=1*HOUR - 1*MIN + DELTA, expect_update_status=True,
        job_present_in_cj_active_status=True,
    ),
    "never ran, is time in zone": Case(
        concurrency_policy="Allow", schedule=ON_THE_HOUR, time_zone=NEW_YORK, deadline=None,
        job_creation_time=just_after_the_prior_hour(), now=just_after_the_hour(), expect_create=True, expect_active=1,
        expect_requeue_after=True, expected_requeue_duration=1*HOUR - 1*MIN + DELTA, expect_update_status=True,
        job_present_in_cj_active_status=True,
    ),
    "never ran, is time in zone, but TZ is also set in schedule": Case(
        concurrency_policy="Allow", schedule="TZ=UTC " + ON_THE_HOUR, time_zone=NEW_YORK, deadline=None,
        job_creation_time=just_after_the_prior_hour(), now=just_after_the_hour(), expect_create=True,
        expected_warnings=1, expect_requeue_after=True, expected_requeue_duration=1*HOUR - 1*MIN + DELTA,
        expect_update_status=True, job_present_in_cj_active_status=True,
    ),
    "never ran, is time, suspended": Case(
        concurrency_policy="Allow", suspend=True, schedule=ON_THE_HOUR, deadline=None,
        job_creation_time=just_after_the_prior_hour(), now=just_after_the_hour(),
        job_present_in_cj_active_status=True,
    ),
    "never ran, is time, past deadline": Case(
        concurrency_policy="Allow", schedule=ON_THE_HOUR, deadline=SHORT_DEAD,
        job_creation_time=just_after_the_prior_hour(), now=just_after_the_hour() + (MIN * (SHORT_DEAD+1)),
        expect_requeue_after=True, expected_requeue_duration=1*HOUR - 1*MIN - MIN*(SHORT_DEAD+1) + DELTA,
        job_present_in_cj_active_status=True,
    ),
    "never ran, is time, not past deadline": Case(
        concurrency_policy="Allow", schedule=ON_THE_HOUR, deadline=LONG_DEAD,
        job_creation_time=just_after_the_prior_hour(), now=just_after_the_hour(), expect_create=True, expect_active=1,
        expect_requeue_after=True, expected_requeue_duration=1*HOUR - 1*MIN + DELTA, expect_update_status=True,
        job_present_in_cj_active_status=True,
    ),
    "prev ran but done, not time, A": Case(
        concurrency_policy="Allow", schedule=ON_THE_HOUR, deadline=None, ran_previously=True,
        job_creation_time=just_after_the_prior_hour(), now=just_before_the_hour(), expect_requeue_after=True,
        expected_requeue_duration=1*MIN + DELTA, expect_update_status=True, job_present_in_cj_active_status=True,
        expect_completed=True,
    ),
    "prev ran but done, not time, F": Case(
        concurrency_policy="Forbid", schedule=ON_THE_HOUR, deadline=None, ran_previously=True,
        job_creation_time=just_after_the_prior_hour(), now=just_before_the_hour(), expect_requeue_after=True,
        expected_requeue_duration=1*MIN + DELTA, expect_update_status=True, job_present_in_cj_active_status=True,
        expect_completed=True,
    ),
    "prev ran but done, not time, R": Case(
        concurrency_policy="Replace", schedule=ON_THE_HOUR, deadline=None, ran_previously=True,
        job_creation_time=just_after_the_prior_hour(), now=just_before_the_hour(), expect_requeue_after=True,
        expected_requeue_duration=1*MIN + DELTA, expect_update_status=True, job_present_in_cj_active_status=True,
        expect_completed=True,
    ),
    "prev ran but done, is time, A": Case(
        concurrency_policy="Allow", schedule=ON_THE_HOUR, deadline=None, ran_previously=True,
        job_creation_time=just_after_the_prior_hour(), now=just_after_the_hour(), expect_create=True, expect_active=1,
        expect_requeue_after=True, expected_requeue_duration=1*HOUR - 1*MIN + DELTA, expect_update_status=True,
        job_present_in_cj_active_status=True, expect_completed=True,
    ),
    "prev ran but done, is time, create job failed, A": Case(
        concurrency_policy="Allow", schedule=ON_THE_HOUR, deadline=None, ran_previously=True,
        job_creation_time=just_after_the_prior_hour(), now=just_after_the_hour(), job_create_error='AlreadyExists',
        expect_err=False, expect_update_status=True, job_present_in_cj_active_status=True, expect_completed=True,
    ),
    "prev ran but done, is time, job not present in CJ active status, create job failed, A": Case(
        concurrency_policy="Allow", schedule=ON_THE_HOUR, deadline=None, ran_previously=True,
        job_creation_time=just_after_the_prior_hour(), now=just_after_the_hour(), job_create_error='AlreadyExists',
        expect_err=False, expect_update_status=True, job_present_in_cj_active_status=False,
    ),
    "prev ran but done, is time, F": Case(
        concurrency_policy="Forbid", schedule=ON_THE_HOUR, deadline=None, ran_previously=True,
        job_creation_time=just_after_the_prior_hour(), now=just_after_the_hour(), expect_create=True, expect_active=1,
        expect_requeue_after=True, expected_requeue_duration=1*HOUR - 1*MIN + DELTA, expect_update_status=True,
        job_present_in_cj_active_status=True, expect_completed=True,
    ),
    "prev ran but done, is time, R": Case(
        concurrency_policy="Replace", schedule=ON_THE_HOUR, deadline=None, ran_previously=True,
        job_creation_time=just_after_the_prior_hour(), now=just_after_the_hour(), expect_create=True, expect_active=1,
        expect_requeue_after=True, expected_requeue_duration=1*HOUR - 1*MIN + DELTA, expect_update_status=True,
        job_present_in_cj_active_status=True, expect_completed=True,
    ),
    "prev ran but done, is time, suspended": Case(
        concurrency_policy="Allow", suspend=True, schedule=ON_THE_HOUR, deadline=None, ran_previously=True,
        job_creation_time=just_after_the_prior_hour(), now=just_after_the_hour(), expect_update_status=True,
        job_present_in_cj_active_status=True, expect_completed=True,
    ),
    "prev ran but done, is time, past deadline": Case(
        concurrency_policy="Allow", schedule=ON_THE_HOUR, deadline=SHORT_DEAD, ran_previously=True,
        job_creation_time=just_after_the_prior_hour(), now=just_after_the_hour(), expect_requeue_after=True,
        expected_requeue_duration=1*HOUR - 1*MIN + DELTA, expect_update_status=True,
        job_present_in_cj_active_status=True, expect_completed=True,
    ),
    "prev ran but done, is time, not past deadline": Case(
        concurrency_policy="Allow", schedule=ON_THE_HOUR, deadline=LONG_DEAD, ran_previously=True,
        job_creation_time=just_after_the_prior_hour(), now=just_after_the_hour(), expect_create=True, expect_active=1,
        expect_requeue_after=True, expected_requeue_duration=1*HOUR - 1*MIN + DELTA, expect_update_status=True,
        job_present_in_cj_active_status=True, expect_completed=True,
    ),
    "still active, not time, A": Case(
        concurrency_policy="Allow", schedule=ON_THE_HOUR, deadline=None, ran_previously=True, still_active=True,
        job_creation_time=just_after_the_prior_hour(), now=just_before_the_hour(), expect_active=1,
        expect_requeue_after=True, expected_requeue_duration=1*MIN + DELTA, job_present_in_cj_active_status=True,
    ),
    "still active, not time, F": Case(
        concurrency_policy="Forbid", schedule=ON_THE_HOUR, deadline=None, ran_previously=True, still_active=True,
        job_creation_time=just_after_the_prior_hour(), now=just_before_the_hour(), expect_active=1,
        expect_requeue_after=True, expected_requeue_duration=1*MIN + DELTA, job_present_in_cj_active_status=True,
    ),
    "still active, not time, R": Case(
        concurrency_policy="Replace", schedule=ON_THE_HOUR, deadline=None, ran_previously=True, still_active=True,
        job_creation_time=just_after_the_prior_hour(), now=just_before_the_hour(), expect_active=1,
        expect_requeue_after=True, expected_requeue_duration=1*MIN + DELTA, job_present_in_cj_active_status=True,
    ),
    "still active, is time, A": Case(
        concurrency_policy="Allow", schedule=ON_THE_HOUR, deadline=None, ran_previously=True, still_active=True,
        job_creation_time=just_after_the_prior_hour(), now=just_after_the_hour(), expect_create=True, expect_active=2,
        expect_requeue_after=True, expected_requeue_duration=1*HOUR - 1*MIN + DELTA, expect_update_status=True,
        job_present_in_cj_active_status=True,
    ),
    "still active, is time, F": Case(
        concurrency_policy="Forbid", schedule=ON_THE_HOUR, deadline=None, ran_previously=True, still_active=True,
        job_creation_time=just_after_the_prior_hour(), now=just_after_the_hour(), expect_active=1,
        expect_requeue_after=True, expected_requeue_duration=1*HOUR - 1*MIN + DELTA,
        job_present_in_cj_active_status=True,
    ),
    "still active, is time, R": Case(
        concurrency_policy="Replace", schedule=ON_THE_HOUR, deadline=None, ran_previously=True, still_active=True,
        job_creation_time=just_after_the_prior_hour(), now=just_after_the_hour(), expect_create=True,
        expect_delete=True, expect_active=1, expect_requeue_after=True,
        expected_requeue_duration=1*HOUR - 1*MIN + DELTA, expect_update_status=True,
        job_present_in_cj_active_status=True,
    ),
    "still active, is time, get job failed, R": Case(
        concurrency_policy="Replace", schedule=ON_THE_HOUR, deadline=None, ran_previously=True, still_active=True,
        job_creation_time=just_after_the_prior_hour(), now=just_after_the_hour(), job_get_err='BadRequest',
        expect_active=1, expected_warnings=1, job_present_in_cj_active_status=True,
    ),
    "still active, is time, suspended": Case(
        concurrency_policy="Allow", suspend=True, schedule=ON_THE_HOUR, deadline=None, ran_previously=True,
        still_active=True, job_creation_time=just_after_the_prior_hour(), now=just_after_the_hour(), expect_active=1,
        job_present_in_cj_active_status=True,
    ),
    "still active, is time, past deadline": Case(
        concurrency_policy="Allow", schedule=ON_THE_HOUR, deadline=SHORT_DEAD, ran_previously=True, still_active=True,
        job_creation_time=just_after_the_prior_hour(), now=just_after_the_hour(), expect_active=1,
        expect_requeue_after=True, expected_requeue_duration=1*HOUR - 1*MIN + DELTA,
        job_present_in_cj_active_status=True,
    ),
    "still active, is time, not past deadline": Case(
        concurrency_policy="Allow", schedule=ON_THE_HOUR, deadline=LONG_DEAD, ran_previously=True, still_active=True,
        job_creation_time=just_after_the_prior_hour(), now=just_after_the_hour(), expect_create=True, expect_active=2,
        expect_requeue_after=True, expected_requeue_duration=1*HOUR - 1*MIN + DELTA, expect_update_status=True,
        job_present_in_cj_active_status=True,
    ),
    "prev ran but done, long overdue, not past deadline, A": Case(
        concurrency_policy="Allow", schedule=ON_THE_HOUR, deadline=LONG_DEAD, ran_previously=True,
        job_creation_time=just_after_the_prior_hour(), now=week_after_the_hour(), expect_create=True, expect_active=1,
        expected_warnings=1, expect_requeue_after=True, expected_requeue_duration=1*HOUR + DELTA,
        expect_update_status=True, job_present_in_cj_active_status=True, expect_completed=True,
    ),
    "prev ran but done, long overdue, not past deadline, R": Case(
        concurrency_policy="Replace", schedule=ON_THE_HOUR, deadline=LONG_DEAD, ran_previously=True,
        job_creation_time=just_after_the_prior_hour(), now=week_after_the_hour(), expect_create=True, expect_active=1,
        expected_warnings=1, expect_requeue_after=True, expected_requeue_duration=1*HOUR + DELTA,
        expect_update_status=True, job_present_in_cj_active_status=True, expect_completed=True,
    ),
    "prev ran but done, long overdue, not past deadline, F": Case(
        concurrency_policy="Forbid", schedule=ON_THE_HOUR, deadline=LONG_DEAD, ran_previously=True,
        job_creation_time=just_after_the_prior_hour(), now=week_after_the_hour(), expect_create=True, expect_active=1,
        expected_warnings=1, expect_requeue_after=True, expected_requeue_duration=1*HOUR + DELTA,
        expect_update_status=True, job_present_in_cj_active_status=True, expect_completed=True,
    ),
    "prev ran but done, long overdue, no deadline, A": Case(
        concurrency_policy="Allow", schedule=ON_THE_HOUR, deadline=None, ran_previously=True,
        job_creation_time=just_after_the_prior_hour(), now=week_after_the_hour(), expect_create=True, expect_active=1,
        expected_warnings=1, expect_requeue_after=True, expected_requeue_duration=1*HOUR + DELTA,
        expect_update_status=True, job_present_in_cj_active_status=True, expect_completed=True,
    ),
    "prev ran but done, long overdue, no deadline, R": Case(
        concurrency_policy="Replace", schedule=ON_THE_HOUR, deadline=None, ran_previously=True,
        job_creation_time=just_after_the_prior_hour(), now=week_after_the_hour(), expect_create=True, expect_active=1,
        expected_warnings=1, expect_requeue_after=True, expected_requeue_duration=1*HOUR + DELTA,
        expect_update_status=True, job_present_in_cj_active_status=True, expect_completed=True,
    ),
    "prev ran but done, long overdue, no deadline, F": Case(
        concurrency_policy="Forbid", schedule=ON_THE_HOUR, deadline=None, ran_previously=True,
        job_creation_time=just_after_the_prior_hour(), now=week_after_the_hour(), expect_create=True, expect_active=1,
        expected_warnings=1, expect_requeue_after=True, expected_requeue_duration=1*HOUR + DELTA,
        expect_update_status=True, job_present_in_cj_active_status=True, expect_completed=True,
    ),
    "prev ran but done, long overdue, past medium deadline, A": Case(
        concurrency_policy="Allow", schedule=ON_THE_HOUR, deadline=MEDIUM_DEAD, ran_previously=True,
        job_creation_time=just_after_the_prior_hour(), now=week_after_the_hour(), expect_create=True, expect_active=1,
        expect_requeue_after=True, expected_requeue_duration=1*HOUR + DELTA, expect_update_status=True,
        job_present_in_cj_active_status=True, expect_completed=True,
    ),
    "prev ran but done, long overdue, past short deadline, A": Case(
        concurrency_policy="Allow", schedule=ON_THE_HOUR, deadline=SHORT_DEAD, ran_previously=True,
        job_creation_time=just_after_the_prior_hour(), now=week_after_the_hour(), expect_create=True, expect_active=1,
        expect_requeue_after=True, expected_requeue_duration=1*HOUR + DELTA, expect_update_status=True,
        job_present_in_cj_active_status=True, expect_completed=True,
    ),
    "prev ran but done, long overdue, past medium deadline, R": Case(
        concurrency_policy="Replace", schedule=ON_THE_HOUR, deadline=MEDIUM_DEAD, ran_previously=True,
        job_creation_time=just_after_the_prior_hour(), now=week_after_the_hour(), expect_create=True, expect_active=1,
        expect_requeue_after=True, expected_requeue_duration=1*HOUR + DELTA, expect_update_status=True,
        job_present_in_cj_active_status=True, expect_completed=True,
    ),
    "prev ran but done, long overdue, past short deadline, R": Case(
        concurrency_policy="Replace", schedule=ON_THE_HOUR, deadline=SHORT_DEAD, ran_previously=True,
        job_creation_time=just_after_the_prior_hour(), now=week_after_the_hour(), expect_create=True, expect_active=1,
        expect_requeue_after=True, expected_requeue_duration=1*HOUR + DELTA, expect_update_status=True,
        job_present_in_cj_active_status=True, expect_completed=True,
    ),
    "prev ran but done, long overdue, past medium deadline, F": Case(
        concurrency_policy="Forbid", schedule=ON_THE_HOUR, deadline=MEDIUM_DEAD, ran_previously=True,
        job_creation_time=just_after_the_prior_hour(), now=week_after_the_hour(), expect_create=True, expect_active=1,
        expect_requeue_after=True, expected_requeue_duration=1*HOUR + DELTA, expect_update_status=True,
        job_present_in_cj_active_status=True, expect_completed=True,
    ),
    "prev ran but done, long overdue, past short deadline, F": Case(
        concurrency_policy="Forbid", schedule=ON_THE_HOUR, deadline=SHORT_DEAD, ran_previously=True,
        job_creation_time=just_after_the_prior_hour(), now=week_after_the_hour(), expect_create=True, expect_active=1,
        expect_requeue_after=True, expected_requeue_duration=1*HOUR + DELTA, expect_update_status=True,
        job_present_in_cj_active_status=True, expect_completed=True,
    ),
    "this ran but done, time drifted back, F": Case(
        concurrency_policy="Forbid", schedule=ON_THE_HOUR, deadline=None, ran_previously=True,
        job_creation_time=just_after_the_hour(), now=just_before_the_hour(), job_create_error='AlreadyExists',
        expect_requeue_after=True, expected_requeue_duration=1*MIN + DELTA, expect_update_status=True,
    ),
    "this started but went missing, not past deadline, A": Case(
        concurrency_policy="Allow", schedule=ON_THE_HOUR, deadline=LONG_DEAD, ran_previously=True, still_active=True,
        job_creation_time=top_of_the_hour() + (MS * 100), now=just_after_the_hour() + (MS * 100), expect_active=1,
        expect_requeue_after=True, expected_requeue_duration=1*HOUR - 1*MIN - MS*100 + DELTA,
        job_still_not_found_in_lister=True, job_present_in_cj_active_status=True,
    ),
    "this started but went missing, not past deadline, f": Case(
        concurrency_policy="Forbid", schedule=ON_THE_HOUR, deadline=LONG_DEAD, ran_previously=True, still_active=True,
        job_creation_time=top_of_the_hour() + (MS * 100), now=just_after_the_hour() + (MS * 100), expect_active=1,
        expect_requeue_after=True, expected_requeue_duration=1*HOUR - 1*MIN - MS*100 + DELTA,
        job_still_not_found_in_lister=True, job_present_in_cj_active_status=True,
    ),
    "this started but went missing, not past deadline, R": Case(
        concurrency_policy="Replace", schedule=ON_THE_HOUR, deadline=LONG_DEAD, ran_previously=True,
        still_active=True, job_creation_time=top_of_the_hour() + (MS * 100), now=just_after_the_hour() + (MS * 100),
        expect_active=1, expect_requeue_after=True, expected_requeue_duration=1*HOUR - 1*MIN - MS*100 + DELTA,
        job_still_not_found_in_lister=True, job_present_in_cj_active_status=True,
    ),
    "this started but is not present in cronjob active list, not past deadline, A": Case(
        concurrency_policy="Allow", schedule=ON_THE_HOUR, deadline=LONG_DEAD, ran_previously=True, still_active=True,
        job_creation_time=top_of_the_hour() + (MS * 100), now=just_after_the_hour() + (MS * 100), expect_active=1,
        expect_requeue_after=True, expected_requeue_duration=1*HOUR - 1*MIN - MS*100 + DELTA,
    ),
    "this started but is not present in cronjob active list, not past deadline, f": Case(
        concurrency_policy="Forbid", schedule=ON_THE_HOUR, deadline=LONG_DEAD, ran_previously=True, still_active=True,
        job_creation_time=top_of_the_hour() + (MS * 100), now=just_after_the_hour() + (MS * 100), expect_active=1,
        expect_requeue_after=True, expected_requeue_duration=1*HOUR - 1*MIN - MS*100 + DELTA,
    ),
    "this started but is not present in cronjob active list, not past deadline, R": Case(
        concurrency_policy="Replace", schedule=ON_THE_HOUR, deadline=LONG_DEAD, ran_previously=True,
        still_active=True, job_creation_time=top_of_the_hour() + (MS * 100), now=just_after_the_hour() + (MS * 100),
        expect_active=1, expect_requeue_after=True, expected_requeue_duration=1*HOUR - 1*MIN - MS*100 + DELTA,
    ),
    "with @every schedule, never ran, not time": Case(
        concurrency_policy="Allow", schedule=EVERY_HOUR, deadline=None, cronjob_creation_time=just_before_the_hour(),
        job_creation_time=just_before_the_hour(), now=top_of_the_hour(), expect_requeue_after=True,
        expected_requeue_duration=1*HOUR - 1*MIN + DELTA, job_present_in_cj_active_status=True,
    ),
    "with @every schedule, never ran, is time": Case(
        concurrency_policy="Allow", schedule=EVERY_HOUR, deadline=None,
        cronjob_creation_time=just_before_the_prior_hour(), job_creation_time=just_before_the_prior_hour(),
        now=just_before_the_hour(), expect_requeue_after=True, expected_requeue_duration=1*HOUR + DELTA,
        job_present_in_cj_active_status=True, expect_create=True, expect_active=1, expect_update_status=True,
    ),
    "with @every schedule, never ran, is time, past deadline": Case(
        concurrency_policy="Allow", schedule=EVERY_HOUR, deadline=SHORT_DEAD,
        cronjob_creation_time=just_before_the_prior_hour(), job_creation_time=just_before_the_prior_hour(),
        now=just_before_the_hour() + (SEC * (SHORT_DEAD+1)), expect_requeue_after=True,
        expected_requeue_duration=1*HOUR - SEC*(SHORT_DEAD+1) + DELTA, job_present_in_cj_active_status=True,
    ),
    "with @every schedule, never ran, is time, not past deadline": Case(
        concurrency_policy="Allow", schedule=EVERY_HOUR, deadline=LONG_DEAD,
        cronjob_creation_time=just_before_the_prior_hour(), job_creation_time=just_before_the_prior_hour(),
        now=just_before_the_hour() + (SEC * (SHORT_DEAD-1)), expect_create=True, expect_active=1,
        expect_requeue_after=True, expected_requeue_duration=1*HOUR - SEC*(SHORT_DEAD-1) + DELTA,
        expect_update_status=True, job_present_in_cj_active_status=True,
    ),
    "with @every schedule, prev ran but done, not time": Case(
        concurrency_policy="Allow", schedule=EVERY_HOUR, deadline=None, ran_previously=True,
        cronjob_creation_time=just_before_the_prior_hour(), job_creation_time=just_before_the_prior_hour(),
        last_schedule_time=just_before_the_hour(), now=top_of_the_hour(), expect_requeue_after=True,
        expected_requeue_duration=1*HOUR - 1*MIN + DELTA, expect_update_status=True,
        job_present_in_cj_active_status=True, expect_completed=True,
    ),
    "with @every schedule, prev ran but done, is time": Case(
        concurrency_policy="Allow", schedule=EVERY_HOUR, deadline=None, ran_previously=True,
        cronjob_creation_time=just_before_the_prior_hour(), job_creation_time=just_before_the_prior_hour(),
        last_schedule_time=just_before_the_hour(), now=top_of_the_hour() + (1 * HOUR), expect_create=True,
        expect_active=1, expect_requeue_after=True, expected_requeue_duration=1*HOUR - 1*MIN + DELTA,
        expect_update_status=True, job_present_in_cj_active_status=True, expect_completed=True,
    ),
    "with @every schedule, prev ran but done, is time, past deadline": Case(
        concurrency_policy="Allow", schedule=EVERY_HOUR, deadline=SHORT_DEAD, ran_previously=True,
        cronjob_creation_time=just_before_the_prior_hour(), job_creation_time=just_before_the_prior_hour(),
        last_schedule_time=just_before_the_hour(), now=just_before_the_next_hour() + (SEC * (SHORT_DEAD+1)),
        expect_requeue_after=True, expected_requeue_duration=1*HOUR - SEC*(SHORT_DEAD+1) + DELTA,
        expect_update_status=True, job_present_in_cj_active_status=True, expect_completed=True,
    ),
    "with @every schedule, still active, not time": Case(
        concurrency_policy="Allow", schedule=EVERY_HOUR, deadline=None, ran_previously=True, still_active=True,
        cronjob_creation_time=just_before_the_prior_hour(), job_creation_time=just_before_the_hour(),
        last_schedule_time=just_before_the_hour(), now=top_of_the_hour(), expect_active=1, expect_requeue_after=True,
        expected_requeue_duration=1*HOUR - 1*MIN + DELTA, job_present_in_cj_active_status=True,
    ),
    "with @every schedule, still active, is time": Case(
        concurrency_policy="Allow", schedule=EVERY_HOUR, deadline=None, ran_previously=True, still_active=True,
        cronjob_creation_time=just_before_the_prior_hour(), job_creation_time=just_before_the_prior_hour(),
        last_schedule_time=just_before_the_prior_hour(), now=just_after_the_hour(), expect_create=True,
        expect_active=2, expect_requeue_after=True, expected_requeue_duration=1*HOUR - 2*MIN + DELTA,
        expect_update_status=True, job_present_in_cj_active_status=True,
    ),
    "with @every schedule, still active, is time, past deadline": Case(
        concurrency_policy="Allow", schedule=EVERY_HOUR, deadline=SHORT_DEAD, ran_previously=True, still_active=True,
        cronjob_creation_time=just_before_the_prior_hour(), job_creation_time=just_before_the_hour(),
        last_schedule_time=just_before_the_hour(), now=just_before_the_next_hour() + (SEC * (SHORT_DEAD+1)),
        expect_active=1, expect_requeue_after=True, expected_requeue_duration=1*HOUR - SEC*(SHORT_DEAD+1) + DELTA,
        job_present_in_cj_active_status=True,
    ),
    "with @every schedule, still active, is time, not past deadline": Case(
        concurrency_policy="Allow", schedule=EVERY_HOUR, deadline=LONG_DEAD, ran_previously=True, still_active=True,
        cronjob_creation_time=just_before_the_prior_hour(), job_creation_time=just_before_the_hour(),
        last_schedule_time=just_before_the_hour(), now=just_before_the_next_hour() + (SEC * (SHORT_DEAD-1)),
        expect_create=True, expect_active=2, expect_requeue_after=True,
        expected_requeue_duration=1*HOUR - SEC*(SHORT_DEAD-1) + DELTA, expect_update_status=True,
        job_present_in_cj_active_status=True,
    ),
    "with @every schedule, prev ran but done, long overdue, no deadline": Case(
        concurrency_policy="Allow", schedule=EVERY_HOUR, deadline=None, ran_previously=True,
        cronjob_creation_time=just_after_the_prior_hour(), last_schedule_time=just_after_the_hour(),
        job_creation_time=just_after_the_prior_hour(), now=week_after_the_hour(), expect_create=True, expect_active=1,
        expected_warnings=1, expect_requeue_after=True, expected_requeue_duration=1*MIN + DELTA,
        expect_update_status=True, job_present_in_cj_active_status=True, expect_completed=True,
    ),
    "with @every schedule, prev ran but done, long overdue, past deadline": Case(
        concurrency_policy="Allow", schedule=EVERY_HOUR, deadline=SHORT_DEAD, ran_previously=True,
        cronjob_creation_time=just_after_the_prior_hour(), last_schedule_time=just_after_the_hour(),
        job_creation_time=just_after_the_prior_hour(), now=week_after_the_hour() + (1 * MIN) + (SEC * (SHORT_DEAD+1)),
        expect_active=1, expect_requeue_after=True, expected_requeue_duration=1*HOUR - SEC*(SHORT_DEAD+1) + DELTA,
        expect_update_status=True, job_present_in_cj_active_status=True, expect_completed=True,
    ),
    "do nothing if the namespace is terminating": Case(
        job_create_error='NamespaceTerminating', concurrency_policy="Allow", schedule=ON_THE_HOUR, deadline=None,
        ran_previously=True, still_active=True, job_creation_time=just_after_the_prior_hour(),
        now=just_after_the_hour(), expect_active=0, expect_requeue_after=False, expect_update_status=False,
        expect_err=True, job_present_in_cj_active_status=False,
    ),
    "set lastsuccessfultime if successfulJobHistoryLimit is zero": Case(
        successful_jobs_history_limit=0, ran_previously=True, schedule=ON_THE_HOUR, expect_update_status=True,
        expect_completed=True, job_present_in_cj_active_status=True,
    ),
    "set lastsuccessfultime if successfulJobHistoryLimit is ten": Case(
        successful_jobs_history_limit=10, ran_previously=True, schedule=ON_THE_HOUR, expect_update_status=True,
        expect_completed=True, job_present_in_cj_active_status=True,
    ),
    "set lastsuccessfultime if successfulJobHistoryLimit is nil": Case(
        ran_previously=True, schedule=ON_THE_HOUR, expect_update_status=True, expect_completed=True,
        job_present_in_cj_active_status=True,
    ),
}


def cronjob(case: Case) -> dict[str, Any]:
    """upstream's cronJob(), with the case's spec."""
    spec: dict[str, Any] = {
        "schedule": case.schedule, "suspend": case.suspend,
        "jobTemplate": {"metadata": {"labels": {"a": "b"}, "annotations": {"x": "y"}},
                        "spec": {"parallelism": 1, "completions": 1,
                                 "template": {"metadata": {"labels": {"foo": "bar"}},
                                              "spec": {"containers": [{"image": "foo/bar"}]}}}},
    }
    if case.concurrency_policy:
        spec["concurrencyPolicy"] = case.concurrency_policy
    if case.time_zone is not None:
        spec["timeZone"] = case.time_zone
    if case.successful_jobs_history_limit is not None:
        spec["successfulJobsHistoryLimit"] = case.successful_jobs_history_limit
    if case.deadline is not None:
        spec["startingDeadlineSeconds"] = case.deadline
    return {"apiVersion": CRONJOBS.api_version, "kind": "CronJob",
            "metadata": {"name": "mycronjob", "namespace": NS, "uid": "1a2b3c", "resourceVersion": "1",
                         "creationTimestamp": format_time(just_before_the_hour())},
            "spec": spec, "status": {}}


UPSTREAM_FIELDS = ("active", "lastScheduleTime", "lastSuccessfulTime")


def _upstream(status: dict[str, Any] | None) -> list[Any]:
    status = status or {}
    return [[r.get("uid") for r in status.get("active") or []], status.get("lastScheduleTime"),
            status.get("lastSuccessfulTime")]


@pytest.mark.parametrize("name", list(CASES))
async def test_sync_cronjob(name: str) -> None:
    case = CASES[name]
    cj = cronjob(case)
    real = copy.deepcopy(cj)  # what a live GET of the CronJob returns
    job: dict[str, Any] | None = None
    in_lister = False
    if case.ran_previously:
        cj["metadata"]["creationTimestamp"] = format_time(case.cronjob_creation_time or just_before_the_prior_hour())
        cj["status"]["lastScheduleTime"] = format_time(case.last_schedule_time or just_after_the_prior_hour())
        job = logic.job_from_template(cj, case.job_creation_time, CRONJOBS, JOBS)
        job["metadata"].update(uid="1234", creationTimestamp=format_time(case.job_creation_time),
                               resourceVersion="5")
        ref = logic.job_reference(job)
        if case.job_present_in_cj_active_status:
            cj["status"]["active"] = [ref]
        if case.still_active:
            real["status"]["active"] = [ref]
        else:
            job["status"] = {"completionTime": format_time(case.job_creation_time + 10 * SEC),
                             "conditions": [{"type": "Complete", "status": "True"}]}
        in_lister = not case.job_still_not_found_in_lister
    elif case.cronjob_creation_time is not None:
        cj["metadata"]["creationTimestamp"] = format_time(case.cronjob_creation_time)

    objects = [(CJ_COLLECTION, cj)] + ([(JOB_COLLECTION, job)] if job is not None and in_lister else [])
    world = ControllerWorld("cronjob", objects, f"{NS}/mycronjob")
    await world.observe()
    kube = world.kube
    kube.objects[CRONJOBS.path(NS, "mycronjob")] = real  # the cache keeps `cj`; a GET answers `real`
    world.controller.clock = lambda: case.now

    # upstream's fakeJobControl: GetJob answers the previous run's Job whatever the name (or its error).
    answer = kube.request

    async def request(method: str, path: str, **kw: Any) -> dict[str, Any]:
        if path.startswith(JOB_COLLECTION + "/") and method in ("GET", "DELETE"):
            if case.job_get_err:
                kube.calls.append(Call(method, path))
                raise ApiError(400, {"reason": "BadRequest", "message": "request is invalid"})
            if method == "GET":
                if job is None:
                    raise ApiError(404, {"reason": "NotFound", "message": "not found"})
                return job
            kube.objects.pop(f"{JOB_COLLECTION}/{job['metadata']['name']}" if job else path, None)
            deleted.append(path)
            return {}
        return await answer(method, path, **kw)

    deleted: list[str] = []
    kube.request = request  # type: ignore[method-assign]
    if case.job_create_error == "AlreadyExists":
        kube.fail("POST", f"^{JOB_COLLECTION}$", ApiError(409, {"reason": "AlreadyExists", "message": "exists"}))
    elif case.job_create_error == "NamespaceTerminating":
        kube.fail("POST", f"^{JOB_COLLECTION}$", ApiError(403, {
            "reason": "Forbidden", "message": f"namespace {NS} is being terminated",
            "details": {"causes": [{"reason": "NamespaceTerminating", "field": "metadata.namespace"}]}}))

    requeue: float | None = None
    error: BaseException | None = None
    try:
        requeue = await world.sync()
    except Exception as e:  # the table asks whether the sync failed
        error = e

    creates = 0 if case.job_create_error else len([c for c in kube.calls if c.method == "POST"
                                                   and c.path == JOB_COLLECTION])
    events = list(world.controller.events._queue._queue)
    expected_creates, expected_deletes = int(case.expect_create), int(case.expect_delete)
    expected_events = expected_creates + expected_deletes + int(case.expect_completed) + case.expected_warnings
    if name == "still active, is time, F":
        expected_events += 1  # JobAlreadyActive, the one case that tells of not scheduling
    if case.successful_jobs_history_limit == 0 and job is not None and not case.still_active:
        expected_deletes += 1  # the history cleanup of upstream's sync(): see the module docstring
        expected_events += 1 - int(case.expect_completed)

    if case.expect_err:
        assert error is not None
    elif not (case.job_create_error or case.job_get_err):  # upstream only checks one way; no fault: no error
        assert error is None, error
    assert creates == expected_creates
    assert len(deleted) == expected_deletes
    assert len([e for e in events if e["type"] == "Warning"]) == case.expected_warnings, \
        [(e["reason"], e["message"]) for e in events]
    assert len(events) == expected_events, [(e["reason"], e["message"]) for e in events]
    if case.expect_requeue_after:
        assert requeue == pytest.approx(case.expected_requeue_duration.total_seconds(), abs=1e-6)
    # The status the sync wrote: its patch laid over the status it planned from.
    result = copy.deepcopy(cj["status"])
    for call in kube.calls:
        if call.method == "PATCH" and call.path.endswith("/status"):
            _merge(result, call.body["status"])
    assert (_upstream(result) != _upstream(cj["status"])) == case.expect_update_status, (result, cj["status"])
    if case.ran_previously and not case.still_active and not case.job_still_not_found_in_lister:
        assert result.get("lastSuccessfulTime") == format_time(case.job_creation_time + 10 * SEC)
    for call in kube.calls:
        if call.method == "POST" and call.path == JOB_COLLECTION:
            owner = call.body["metadata"]["ownerReferences"][0]
            assert (owner["apiVersion"], owner["kind"], owner["name"], owner["uid"], owner["controller"]) == \
                (CRONJOBS.api_version, "CronJob", "mycronjob", "1a2b3c", True)


async def test_a_failed_replace_keeps_that_job_and_the_untried_ones_listed() -> None:
    """Replace with three active Jobs, the second delete failing: the first leaves the list, the second and
    third stay, no run starts, and the sync is retried."""
    cj = cronjob(Case(concurrency_policy="Replace", schedule=ON_THE_HOUR, deadline=None))
    cj["status"] = {"lastScheduleTime": format_time(just_after_the_prior_hour()),
                    "active": [{"name": f"old-{i}", "namespace": NS, "uid": f"u{i}"} for i in range(3)]}
    world = ControllerWorld("cronjob", [(CJ_COLLECTION, cj)], f"{NS}/mycronjob")
    for i in range(3):
        world.kube.put(JOB_COLLECTION, {"metadata": {"name": f"old-{i}", "namespace": NS, "uid": f"u{i}"},
                                        "status": {}})
    await world.observe()
    world.controller.clock = just_after_the_hour
    world.kube.fail("DELETE", "/jobs/old-1$", ApiError(500, {"reason": "InternalError", "message": "boom"}))
    with pytest.raises(Exception, match="could not replace job"):
        await world.sync()
    stored = world.kube.objects[CRONJOBS.path(NS, "mycronjob")]["status"]
    assert [r["name"] for r in stored["active"]] == ["old-1", "old-2"]
    assert not [c for c in world.kube.calls if c.method == "POST" and c.path == JOB_COLLECTION]
